"""The prepared GPU check (`make bench-gpu`): every paper's model at its paper size, on the
visible GPUs, in under 8 minutes.

    .venv/bin/python bench/gpu.py [--json bench-gpu.json] [--budget-s 450] [--steps 10]

Per model and setting (float32, mixed_float16, mixed_bfloat16, each with XLA off and on):
training images/s (the model's own ``train_step_fn``, loss scaling under mixed_float16) and
inference images/s (its first SavedModel endpoint, the encoder, on images as on disk), the peak
GPU memory of the setting, and a correctness line: the relative difference of the first-step
loss terms from float32 (same weights, same batch). Then, per model, MirroredStrategy over all
visible GPUs (the `--precision auto` policy). Prints one table and writes one JSON. Rows left
when the time budget runs out are marked ``skipped (budget)``, never silently dropped. Without a
GPU it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from statcell_tf.backend import keras, tf  # noqa: E402
from statcell_tf.training import runtime  # noqa: E402

SETTINGS = [(p, jit) for p in ("float32", "mixed_float16", "mixed_bfloat16") for jit in (False, True)]


def _cytoself():
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config

    rng = np.random.default_rng(0)
    n = 32
    return (lambda: CytoselfModel(**preset_config("paper", num_classes=1311)),
            {"image": rng.random((n, 100, 100, 2), "float32"), "label": rng.integers(0, 1311, n).astype("int32")})


def _statcell():
    from statcell_tf.statcell.model import PRESETS, ConditionalBetaVAE

    rng = np.random.default_rng(0)
    n = 32
    return (lambda: ConditionalBetaVAE("target", 2, (128, 96), num_types=24, **PRESETS["paper"]),
            {"image": rng.random((n, 128, 96, 1), "float32"), "reference": rng.random((n, 128, 96, 2), "float32"),
             "target_type": rng.integers(0, 24, n).astype("int32")})


def _integrated_cell():
    from statcell_tf.integrated_cell.model import IntegratedCellReference

    rng = np.random.default_rng(0)
    n = 32
    return lambda: IntegratedCellReference(seed=0), {"image": rng.random((n, 256, 256, 3), "float32")}


def _vaeplus():
    from statcell_tf.vaeplus.model import VAEPlus

    rng = np.random.default_rng(0)
    n = 104
    return lambda: VAEPlus("vaeplus", seed=0), {"image": rng.random((n, 68, 68, 3), "float32"),
                                                 "image_d": rng.random((n, 68, 68, 3), "float32")}


MODELS = {"cytoself": _cytoself, "statcell": _statcell, "integrated_cell": _integrated_cell, "vaeplus": _vaeplus}


def _sync(out):
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)


def _rate(fn, arg, images, steps):
    _sync(fn(arg))  # trace / compile
    _sync(fn(arg))  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        out = fn(arg)
    _sync(out)
    return images * steps / (time.perf_counter() - started)


def _losses(model, batch):
    return {k: float(v) for k, v in model.compute_losses(batch, training=False).items() if np.ndim(v) == 0}


def measure(name, policy, jit, steps, reference):
    """One row: train/inference images/s, peak memory, first-step loss difference from float32."""
    make, arrays = MODELS[name]()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = make()
        batch = {k: tf.constant(v) for k, v in arrays.items()}
        tf.config.experimental.reset_memory_stats("GPU:0")
        model.prepare(batch)
        if reference.get("weights") is None:
            reference["weights"] = [v.numpy() for v in model.variables]
        for variable, value in zip(model.variables, reference["weights"]):
            variable.assign(value)
        losses = _losses(model, batch)
        if policy == "float32" and not jit:
            reference["losses"] = losses
        base = reference.get("losses", {})
        difference = max((abs(losses[k] - v) / max(abs(v), 1e-3) for k, v in base.items()), default=float("nan"))
        n = len(next(iter(arrays.values())))
        train = tf.function(model.train_step_fn, jit_compile=jit)
        train_rate = _rate(train, batch, n, steps)
        first, (function, specs) = next(iter(model.export_endpoints().items()))
        encoder = tf.function(function, input_signature=list(specs), jit_compile=jit)
        images = tf.constant(arrays["image"][..., : specs[0].shape[-1]])
        infer_rate = _rate(encoder, images, n, 3 * steps)
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
        return {"train_img_s": round(train_rate, 1), "infer_img_s": round(infer_rate, 1),
                "peak_gib": round(peak, 2), "loss_rel_diff_vs_fp32": float(f"{difference:.2e}"),
                "batch": n, "inference_endpoint": first}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def measure_mirrored(name, steps):
    strategy = tf.distribute.MirroredStrategy()
    policy = runtime.set_precision("auto")
    try:
        make, arrays = MODELS[name]()
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = make()
            model.prepare({k: tf.constant(v) for k, v in arrays.items()})
        n = len(next(iter(arrays.values())))
        global_batch = n * strategy.num_replicas_in_sync
        data = tf.data.Dataset.from_tensor_slices({k: np.resize(v, (global_batch, *v.shape[1:]))
                                                   for k, v in arrays.items()}).batch(global_batch).repeat()
        iterator = iter(strategy.experimental_distribute_dataset(data))
        step = tf.function(lambda b: strategy.run(model.train_step_fn, args=(b,)))
        rate = _rate(lambda _: step(next(iterator)), None, global_batch, steps)
        return {"replicas": strategy.num_replicas_in_sync, "precision": policy, "train_img_s": round(rate, 1),
                "global_batch": global_batch}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="bench-gpu.json", help="Where to write the results.")
    parser.add_argument("--budget-s", type=float, default=450.0, help="Stop starting rows after this many seconds.")
    parser.add_argument("--steps", type=int, default=10, help="Timed training steps per row (inference: 3×).")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    args = parser.parse_args(argv)
    gpus = runtime.gpus()
    if not gpus:
        print("bench-gpu: no GPU visible on this machine; nothing measured (run it where `nvidia-smi` lists a GPU).")
        return 0
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    started = time.time()
    results = {"device": runtime.describe_device(), "gpus": len(gpus), "rows": [], "mirrored": []}
    print(f"{'model':16s} {'precision':15s} {'xla':4s} {'train img/s':>11s} {'infer img/s':>11s} "
          f"{'peak GiB':>8s} {'Δloss vs fp32':>13s}", flush=True)
    for name in args.models:
        reference = {}
        for policy, jit in SETTINGS:
            row = {"model": name, "precision": policy, "xla": jit}
            if time.time() - started > args.budget_s:
                row["status"] = "skipped (budget)"
            else:
                try:
                    row.update(measure(name, policy, jit, args.steps, reference), status="ok")
                except Exception as error:  # a setting TF cannot run here is a row, not a crash
                    row["status"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
            results["rows"].append(row)
            if row["status"] == "ok":
                print(f"{name:16s} {policy:15s} {'on' if jit else 'off':4s} {row['train_img_s']:11.1f} "
                      f"{row['infer_img_s']:11.1f} {row['peak_gib']:8.2f} {row['loss_rel_diff_vs_fp32']:13.1e}",
                      flush=True)
            else:
                print(f"{name:16s} {policy:15s} {'on' if jit else 'off':4s} {row['status']}", flush=True)
    for name in args.models:
        row = {"model": name}
        if time.time() - started > args.budget_s:
            row["status"] = "skipped (budget)"
        else:
            try:
                row.update(measure_mirrored(name, args.steps), status="ok")
            except Exception as error:
                row["status"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
        results["mirrored"].append(row)
        print(f"mirrored {name:16s} " + (f"{row['replicas']} GPU(s), {row['precision']}: {row['train_img_s']} img/s"
                                         if row["status"] == "ok" else row["status"]), flush=True)
    results["seconds"] = round(time.time() - started, 1)
    with open(args.json, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"{results['device']}: {results['seconds']} s; results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
