"""Where the time of one cytoself training step goes, by op family and by sub-network.

    .venv/bin/python bench/profile_cytoself.py [--preset paper] [--batch-size 32] [--steps 3]
        [--mode train|inference] [--top 25]

Runs the TensorFlow profiler over `--steps` steps (after two warm-up steps), reads the host
trace (``*.xplane.pb``) and sums the time of every TensorFlow op, grouped (1) by op family
(convolutions, depthwise convolutions, batch norm, VQ distances/argmin/histograms, dense,
resize, elementwise, optimizer, ...) and (2) by the sub-network that owns the op (its name
scope: encoder1, encoder2, vq1, vq2, decoder1, decoder2, fc1, fc2, optimizer). Gradient ops
count under the forward op's family and owner. On a multi-core CPU ops overlap, so the op
total exceeds the wall time; shares are of the op total.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from statcell_tf.backend import keras, tf  # noqa: E402

# (family, regular expression on the op type), first match wins.
FAMILIES = [
    ("depthwise conv", r"Depthwise"),
    ("conv 1x1 / 3x3 / 5x5", r"Conv2D|Conv2d|_FusedConv|_MklConv|_MklNativeConv|Conv"),
    ("batch norm", r"FusedBatchNorm|BatchNorm"),
    ("matmul (dense, VQ distances)", r"MatMul|BatchMatMul|_MklMatMul|Einsum"),
    ("bilinear resize", r"Resize"),
    ("argmin / argmax", r"ArgMin|ArgMax"),
    ("gather / scatter (VQ lookup)", r"Gather|Scatter|UnsortedSegment|Bincount|DenseBincount"),
    ("reductions (mean, sum, SE pool)", r"^(Mean|Sum|Max|Min|Prod)$|Reduce"),
    ("optimizer (Adam)", r"ResourceApply|Adam|AssignAddVariable|AssignVariable|AssignSub"),
    ("activations (swish, sigmoid, relu, softmax)", r"Sigmoid|Relu|Softmax|Swish|Tanh|Elu|Exp$|Log$"),
    ("reshape / transpose / concat / slice / cast", r"Reshape|Transpose|Concat|Slice|Pack|Unpack|Split|Cast|"
     r"Squeeze|ExpandDims|Tile|Pad|Identity|Shape|BroadcastTo|Fill|Range|ZerosLike|OnesLike|Select"),
    ("elementwise arithmetic", r"Add|Sub|Mul|Div|Square|Sqrt|Rsqrt|Neg|Pow|Maximum|Minimum|Greater|Less|Equal|"
     r"Where|Reciprocal|BiasAdd|Abs|Sign|Floor|Cumsum|_MklAdd"),
    ("variable reads", r"ReadVariableOp|VarHandle"),
]

OWNERS = ("encoder1", "encoder2", "vq1", "vq2", "decoder1", "decoder2", "fc1", "fc2")


def family(op_type: str) -> str:
    for name, pattern in FAMILIES:
        if re.search(pattern, op_type):
            return name
    return "other"


def owner(op_name: str) -> str:
    if "Adam" in op_name or op_name.startswith(("adam", "optimizer")):
        return "optimizer"
    for name in OWNERS:
        if re.search(rf"(^|/){name}(/|_\d|$)", op_name):
            return name
    if "sparse_categorical" in op_name or "softmax_cross" in op_name.lower():
        return "losses"
    return "other (losses, glue)"


def op_events(logdir: str):
    """(op name, op type, microseconds) of every TF op event in the host trace under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise SystemExit(f"no xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as file:
        space.ParseFromString(file.read())
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor threads that run the ops
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # Op events are "op_name:OpType"; "ExecutorState::Process" etc. wrap them.
                if ":" not in name or "::" in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if not re.fullmatch(r"_?[A-Z][A-Za-z0-9_]*", op_type):
                    continue
                yield op_name, op_type, event.duration_ps / 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["paper", "demo"], default="paper")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", choices=["train", "inference"], default="train")
    parser.add_argument("--num-classes", type=int, default=1311)
    parser.add_argument("--top", type=int, default=20, help="Also list the N most expensive op types.")
    args = parser.parse_args(argv)
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config

    keras.utils.set_random_seed(0)
    model = CytoselfModel(**preset_config(args.preset, num_classes=args.num_classes))
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.random((args.batch_size,) + model.image_shape, dtype=np.float32)),
        "label": tf.constant(rng.integers(0, args.num_classes, args.batch_size).astype("int32")),
    }
    model.prepare(batch)
    if args.mode == "train":
        fn, arg = tf.function(model.train_step_fn), batch
    else:
        fn, arg = tf.function(lambda x: model.encode(x, training=False)["global"]), batch["image"]
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy(), fn(arg))
    with tempfile.TemporaryDirectory(prefix="statcell-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        for _ in range(args.steps):
            tf.nest.map_structure(lambda t: t.numpy(), fn(arg))
        wall = (time.perf_counter() - started) / args.steps
        tf.profiler.experimental.stop()
        events = list(op_events(logdir))
    by_family, by_owner, by_type = collections.Counter(), collections.Counter(), collections.Counter()
    for op_name, op_type, us in events:
        by_family[family(op_type)] += us
        by_owner[owner(op_name)] += us
        by_type[op_type] += us
    total = sum(by_family.values())
    print(f"cytoself {args.preset} {args.mode}, batch {args.batch_size}: {wall * 1e3:.0f} ms/step wall "
          f"({args.batch_size / wall:.1f} img/s, profiler on); op time {total / 1e3 / args.steps:.0f} ms/step "
          f"summed over {len(events) // args.steps} op runs per step")
    for title, counter in (("op family", by_family), ("sub-network", by_owner),
                           (f"top {args.top} op types", collections.Counter(dict(by_type.most_common(args.top))))):
        print(f"\n  by {title}:")
        for name, us in counter.most_common():
            print(f"    {name:46s}{us / 1e3 / args.steps:9.1f} ms/step  {100 * us / total:5.1f} %")


if __name__ == "__main__":
    main()
