"""Throughput of the cytoself model: training and inference images/s, GFLOPs per image.

    .venv/bin/python bench/train_cytoself.py [--preset paper] [--batch-size 32] [--steps 5]

"inference" is the embedding pass (encoders + quantisers, what ``embed-cytoself`` runs);
"forward" the whole model with decoders and heads. On the CPU it times float32 (mixed
precision is slower there, see ARCHITECTURE.md); on a GPU it times float32, mixed_bfloat16
and XLA (``jit_compile``) with each precision, and prints one row each.
GFLOPs come from the TensorFlow profiler on the frozen forward graph (one image): the full
forward pass (encoders, quantisers, decoders, heads) and the embedding pass alone; a training
step costs about 3× the forward pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from statcell_tf.backend import keras, tf  # noqa: E402
from statcell_tf.training import runtime  # noqa: E402


def gflops_per_image(model, fn_name: str) -> float:
    """Float operations of one image through `fn_name` ("forward" or "embed"), in GFLOPs."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if fn_name == "forward":
        fn = tf.function(lambda x: model(x, training=False))
    else:
        fn = tf.function(lambda x: {k: v for k, v in model.encode(x, training=False).items()
                                    if k in ("global", "local")})
    concrete = fn.get_concrete_function(tf.TensorSpec((1,) + model.image_shape, tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return profile.total_float_ops / 1e9


def time_model(preset: str, batch_size: int, steps: int, precision: str, jit: bool, num_classes: int) -> dict:
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = CytoselfModel(**preset_config(preset, num_classes=num_classes))
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.random((batch_size,) + model.image_shape, dtype=np.float32)),
        "label": tf.constant(rng.integers(0, num_classes, batch_size).astype("int32")),
    }
    model.prepare(batch)
    train = tf.function(model.train_step_fn, jit_compile=jit)
    infer = tf.function(lambda x: model.encode(x, training=False)["global"], jit_compile=jit)
    forward = tf.function(lambda x: model(x, training=False)["reconstruction"], jit_compile=jit)

    def rate(fn, arg):
        started = time.perf_counter()
        out = fn(arg)
        first = time.perf_counter() - started
        for _ in range(2):  # warm-up
            out = fn(arg)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        started = time.perf_counter()
        for _ in range(steps):
            out = fn(arg)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        return batch_size * steps / (time.perf_counter() - started), first

    train_rate, train_first = rate(train, batch)
    infer_rate, infer_first = rate(infer, batch["image"])
    forward_rate, _ = rate(forward, batch["image"])
    result = {
        "preset": preset, "precision": precision, "xla": jit, "batch_size": batch_size,
        "train_images_per_s": round(train_rate, 2), "inference_images_per_s": round(infer_rate, 2),
        "forward_images_per_s": round(forward_rate, 2),
        "train_first_call_s": round(train_first, 1), "inference_first_call_s": round(infer_first, 1),
        "parameters": model.count_params(),
    }
    keras.mixed_precision.set_global_policy("float32")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["paper", "demo"], default="paper")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after 3 warm-up steps.")
    parser.add_argument("--num-classes", type=int, default=1311, help="Protein identities (paper: 1311).")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)

    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config

    device = runtime.describe_device()
    model = CytoselfModel(**preset_config(args.preset, num_classes=args.num_classes))
    model.build((None,) + model.image_shape)
    flops = {"forward": gflops_per_image(model, "forward"), "embed": gflops_per_image(model, "embed")}
    print(f"cytoself {args.preset}: {model.count_params():,} parameters; "
          f"{flops['forward']:.3f} GFLOPs/image forward (train step ≈ {3 * flops['forward']:.2f}), "
          f"{flops['embed']:.3f} GFLOPs/image embedding; device: {device}", flush=True)
    variants = runtime.benchmark_settings()
    rows = []
    for precision, jit in variants:
        try:
            row = time_model(args.preset, args.batch_size, args.steps, precision, jit, args.num_classes)
        except Exception as error:  # report a failing variant (e.g. XLA) and go on
            row = {"preset": args.preset, "precision": precision, "xla": jit, "error": str(error).splitlines()[0][:200]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        from statcell_tf.atomic import write_json

        write_json(args.json, {"device": device, "gflops_per_image": flops, "runs": rows})


if __name__ == "__main__":
    main()
