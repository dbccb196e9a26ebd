"""Throughput of the Statistical Cell β-VAE: training and inference images/s, 2D and 3D.

    .venv/bin/python bench/train_statcell.py [--dims 2 3] [--model target] [--preset paper]
        [--size2d 128x96] [--size3d ZxYxX] [--batch-size 32] [--steps 5]

Training = one optimizer step of the reparameterised objective (one posterior sample);
inference = the posterior mean (``encode``), and the per-cell ELBO with 10 posterior
samples (the evaluation used by coupling and the β sweep). On the CPU it times float32; on a
GPU float32 and mixed_bfloat16, each with and without XLA. Paper sizes by default (Table 3
widths, latent 512, 128×96 and 64×128×96 = Z×Y×X); on a CPU the 3D default is 32×64×64
(the paper size at batch 32 takes tens of minutes there).
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


def _size(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.lower().split("x"))


def time_model(role, rank, size, preset, batch_size, steps, precision, jit, num_types=24) -> dict:
    from statcell_tf.statcell.model import PRESETS, ConditionalBetaVAE

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = ConditionalBetaVAE(role, rank, size, num_types=num_types, **PRESETS[preset])
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.random(v.shape).astype(v.dtype)) for k, v in model.example_batch(batch_size).items()}
    if role == "target":
        batch["target_type"] = tf.constant(rng.integers(0, num_types, batch_size).astype("int32"))
    model.prepare(batch)
    train = tf.function(model.train_step_fn, jit_compile=jit)
    encode = tf.function(lambda b: model.encode(b)[0], jit_compile=jit)
    elbo = tf.function(lambda b: model.elbo_per_cell(b, n_samples=10), jit_compile=jit)

    def rate(fn, timed_steps):
        started = time.perf_counter()
        out = fn(batch)
        first = time.perf_counter() - started
        out = fn(batch)  # warm-up
        tf.nest.map_structure(lambda t: t.numpy(), out)
        started = time.perf_counter()
        for _ in range(timed_steps):
            out = fn(batch)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        return batch_size * timed_steps / (time.perf_counter() - started), first

    train_rate, train_first = rate(train, steps)
    encode_rate, _ = rate(encode, steps)
    elbo_rate, _ = rate(elbo, max(1, steps // 2))
    result = {
        "model": role, "dims": rank, "size": "x".join(map(str, size)), "preset": preset,
        "precision": precision, "xla": jit, "batch_size": batch_size,
        "train_images_per_s": round(train_rate, 2), "encode_images_per_s": round(encode_rate, 2),
        "elbo10_images_per_s": round(elbo_rate, 2), "train_first_call_s": round(train_first, 1),
        "parameters": model.count_params(),
    }
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", choices=[2, 3], default=[2, 3])
    parser.add_argument("--model", choices=["reference", "target"], default="target",
                        help="target = conditioned on reference + type in every block (the heavier one).")
    parser.add_argument("--preset", choices=["paper", "demo", "tiny"], default="paper")
    parser.add_argument("--size2d", default="128x96")
    parser.add_argument("--size3d", default=None,
                        help="Z×Y×X [64x128x96, the paper's, on a GPU; 32x64x64 on a CPU, where the paper "
                             "size takes tens of minutes].")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after 1 warm-up step.")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args(argv)

    device = runtime.describe_device()
    if runtime.gpu_rows_note():
        print(runtime.gpu_rows_note(), flush=True)
    print(f"Statistical Cell bench on {device}", flush=True)
    variants = runtime.benchmark_settings()
    rows = []
    for rank in args.dims:
        size3d = args.size3d or ("64x128x96" if runtime.gpus() else "32x64x64")
        size = _size(args.size2d if rank == 2 else size3d)
        for precision, jit in variants:
            try:
                row = time_model(args.model, rank, size, args.preset, args.batch_size, args.steps, precision, jit)
            except Exception as error:  # report a failing variant (e.g. out of memory, XLA) and go on
                row = {"model": args.model, "dims": rank, "size": "x".join(map(str, size)), "precision": precision,
                       "xla": jit, "error": str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        from statcell_tf.atomic import write_json

        write_json(args.json, {"device": device, "runs": rows})


if __name__ == "__main__":
    main()
