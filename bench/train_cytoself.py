"""Throughput of the cytoself model: training and inference images/s, GFLOPs per image.

    .venv/bin/python bench/train_cytoself.py [--preset paper] [--batch-size 32] [--steps 5]
    .venv/bin/python bench/train_cytoself.py --compare main [--repeats 3]   # before/after

``--compare REF`` times the ``statcell_tf`` of git revision REF (extracted with ``git archive``
into a temp dir) and of this checkout alternately, each in a fresh process, `--repeats` times
(the order flips every round), and prints the medians and the speed-ups: both codes are timed
on the same machine at the same moment, which matters on a shared CPU. Rates are wall-clock
images/s and images per CPU-second of the process (all its threads): the second is the work
done per image, less sensitive to other programs sharing the cores.

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

HERE = os.path.dirname(os.path.abspath(__file__))
# `--code-root DIR` (used by --compare): time the statcell_tf found in DIR.
_ROOT = sys.argv[sys.argv.index("--code-root") + 1] if "--code-root" in sys.argv else os.path.join(HERE, "..")
sys.path.insert(0, _ROOT)

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

    def rate(fn, arg, n):
        started = time.perf_counter()
        out = fn(arg)
        first = time.perf_counter() - started
        for _ in range(2):  # warm-up
            out = fn(arg)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            out = fn(arg)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        images = batch_size * n
        return images / (time.perf_counter() - started), images / (time.process_time() - cpu), first

    train_rate, train_cpu, train_first = rate(train, batch, steps)
    # Inference is ~10x faster than a training step: time more batches.
    infer_rate, infer_cpu, infer_first = rate(infer, batch["image"], 3 * steps)
    forward_rate, forward_cpu, _ = rate(forward, batch["image"], 2 * steps)
    result = {
        "preset": preset, "precision": precision, "xla": jit, "batch_size": batch_size,
        "train_images_per_s": round(train_rate, 2), "inference_images_per_s": round(infer_rate, 2),
        "forward_images_per_s": round(forward_rate, 2),
        "train_images_per_cpu_s": round(train_cpu, 2), "inference_images_per_cpu_s": round(infer_cpu, 2),
        "forward_images_per_cpu_s": round(forward_cpu, 2),
        "train_first_call_s": round(train_first, 1), "inference_first_call_s": round(infer_first, 1),
        "parameters": model.count_params(),
    }
    keras.mixed_precision.set_global_policy("float32")
    return result


RATES = ("train_images_per_s", "inference_images_per_s", "forward_images_per_s",
         "train_images_per_cpu_s", "inference_images_per_cpu_s", "forward_images_per_cpu_s")


def compare(ref: str, repeats: int, passthrough: list[str]) -> None:
    """Time git revision `ref`'s statcell_tf and this checkout's alternately; print medians."""
    import io
    import statistics
    import subprocess
    import tarfile
    import tempfile

    repo = os.path.abspath(os.path.join(HERE, ".."))
    with tempfile.TemporaryDirectory(prefix="statcell-compare-") as tmp:
        archive = subprocess.run(["git", "-C", repo, "archive", ref, "statcell_tf"], check=True,
                                 capture_output=True).stdout
        before = os.path.join(tmp, "before")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(before, filter="data")
        codes = {f"{ref} (before)": before, "this checkout (after)": repo}
        results = {label: [] for label in codes}
        for round_ in range(repeats):
            order = list(codes) if round_ % 2 == 0 else list(codes)[::-1]
            for label in order:
                out = os.path.join(tmp, "out.json")
                command = [sys.executable, os.path.abspath(__file__), "--code-root", codes[label],
                           "--no-flops", "--json", out, *passthrough]
                env = {**os.environ, "PYTHONPATH": codes[label]}
                subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
                with open(out) as file:
                    row = json.load(file)["runs"][0]
                results[label].append(row)
                print(f"round {round_ + 1}, {label}: " + ", ".join(f"{k} {row.get(k)}" for k in RATES)
                      + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
    labels = list(codes)
    print(f"\nmedians of {repeats} alternating runs (cytoself {passthrough}):")
    print(f"  {'':28s}" + "".join(f"{label:>24s}" for label in labels) + f"{'after / before':>16s}")
    for key in RATES:
        medians = [statistics.median(r[key] for r in results[label]) for label in labels]
        print(f"  {key:28s}" + "".join(f"{m:24.2f}" for m in medians) + f"{medians[1] / medians[0]:15.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["paper", "demo"], default="paper")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after 3 warm-up steps.")
    parser.add_argument("--num-classes", type=int, default=1311, help="Protein identities (paper: 1311).")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--compare", default=None, metavar="REF",
                        help="Time git revision REF's code and this checkout's alternately (before/after).")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds of --compare.")
    parser.add_argument("--code-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-flops", action="store_true", help="Skip the GFLOPs count.")
    args = parser.parse_args(argv)
    if args.compare:
        passthrough = ["--preset", args.preset, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                       "--num-classes", str(args.num_classes)]
        compare(args.compare, args.repeats, passthrough)
        return

    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config

    device = runtime.describe_device()
    note = getattr(runtime, "gpu_rows_note", lambda: None)()  # absent in older code (--compare)
    if note:
        print(note, flush=True)
    model = CytoselfModel(**preset_config(args.preset, num_classes=args.num_classes))
    model.build((None,) + model.image_shape)
    if args.no_flops:
        flops = {}
        print(f"cytoself {args.preset}: {model.count_params():,} parameters; device: {device}", flush=True)
    else:
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
