"""Throughput of VAE+ (and its VAE / AE baselines): training iterations/s, inference images/s.

    .venv/bin/python bench/train_vaeplus.py [--variant vaeplus] [--batch-size 104] [--steps 5]

At the paper's sizes (68×68×3 crops, 256-d latent, 32 filters) and batch size (104: one crop
per BBBC021 treatment, the authors' code). One VAE+ iteration auto-encodes B1, runs the
discriminator on [B2, x̂] and [B1, x̂] and updates both networks; "images/s" of training
counts the B1 crops. Inference = the `encode` endpoint (posterior means). On the CPU it times
float32 (mixed precision is slower there, see ARCHITECTURE.md); on a GPU also
mixed_bfloat16 and XLA. 40,000 iterations take 40000 / (iterations/s) seconds.
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


def time_model(variant: str, batch_size: int, steps: int, precision: str, jit: bool) -> dict:
    from statcell_tf.vaeplus.model import VAEPlus

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = VAEPlus(variant, seed=0)
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.random((batch_size, 68, 68, 3), dtype=np.float32)),
        "image_d": tf.constant(rng.random((batch_size, 68, 68, 3), dtype=np.float32)),
    }
    model.prepare(batch)
    train = tf.function(model.train_step_fn, jit_compile=jit)
    infer = tf.function(model.encode, jit_compile=jit)

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
        return steps / (time.perf_counter() - started), first

    train_rate, train_first = rate(train, batch)
    infer_rate, infer_first = rate(infer, batch["image"])
    result = {
        "variant": variant, "precision": precision, "xla": jit, "batch_size": batch_size,
        "train_iterations_per_s": round(train_rate, 3),
        "train_images_per_s": round(train_rate * batch_size, 1),
        "hours_for_40000_iterations": round(40000 / train_rate / 3600, 2),
        "inference_images_per_s": round(infer_rate * batch_size, 1),
        "train_first_call_s": round(train_first, 1), "inference_first_call_s": round(infer_first, 1),
        "parameters": model.count_params(),
    }
    keras.mixed_precision.set_global_policy("float32")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=["vaeplus", "vae", "ae", "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=104)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after 3 warm-up steps.")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)

    device = runtime.describe_device()
    if runtime.gpu_rows_note():
        print(runtime.gpu_rows_note(), flush=True)
    print(f"VAE+ bench, batch {args.batch_size}, device: {device}", flush=True)
    settings = runtime.benchmark_settings()
    variants = ["vaeplus", "vae"] if args.variant == "all" else [args.variant]
    rows = []
    for variant in variants:
        for precision, jit in settings:
            try:
                row = time_model(variant, args.batch_size, args.steps, precision, jit)
            except Exception as error:  # report a failing setting (e.g. XLA) and go on
                row = {"variant": variant, "precision": precision, "xla": jit,
                       "error": str(error).splitlines()[0][:200]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        from statcell_tf.atomic import write_json

        write_json(args.json, {"device": device, "runs": rows})


if __name__ == "__main__":
    main()
