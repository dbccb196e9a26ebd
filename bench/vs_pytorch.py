"""cytoself on the CPU against the authors' PyTorch code, side by side in one run.

    .venv/bin/python bench/vs_pytorch.py --torch-python ../torch-ref/bin/python [--repeats 3] [--steps 5]
        [--variant LABEL=ENV,ENV ...]

Alternates, `--repeats` rounds (the order flips every round, each run a fresh process):
the authors' PyTorch ``CytoselfFull`` (``../shared/reference/cytoself-pytorch/bench.py matched``:
the paper model with this package's decoder widths, batch 32, 2 threads) and
``bench/train_cytoself.py --preset paper`` under each TensorFlow variant. A variant is a label
and environment settings, e.g. ``--variant "oneDNN off=TF_ENABLE_ONEDNN_OPTS=0"``; the default
compares this package's settings (``statcell_tf.backend``: oneDNN on) with oneDNN off, which is
what TensorFlow picks on CPUs without AVX-512 VNNI / AMX (AMD EPYC, older Intel).

Prints, per implementation, the median training and inference (embedding pass) images/s,
the ratio to PyTorch, and GFLOP/s achieved: GFLOPs per image from the TensorFlow profiler
(forward pass; a training step counted as 3× the forward pass, the embedding pass as its
own count) times images/s, against the CPU's peak (cores × clock × FLOPs per cycle per
core: 32 for AVX2 + FMA fp32, i.e. two 8-wide FMA units, 64 with AVX-512, 16 with AVX alone).
torch lives in a scratch environment (see ../shared/reference/README.md), never in the
project's requirements.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
REFERENCE = os.path.join(ROOT, "..", "shared", "reference", "cytoself-pytorch", "bench.py")
DEFAULT_VARIANTS = ["statcell_tf (oneDNN on)=", "oneDNN off=TF_ENABLE_ONEDNN_OPTS=0"]


def cpu_peak_gflops() -> tuple[float, str]:
    """Peak fp32 GFLOP/s of the cores this process may use, and how it was computed."""
    flags, mhz = set(), None
    with open("/proc/cpuinfo") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            if key.strip() == "cpu MHz" and mhz is None:
                mhz = float(value)
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16 if "avx" in flags else 8
    cores = len(os.sched_getaffinity(0))
    peak = cores * (mhz or 0) / 1000 * per_cycle
    return peak, f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FLOPs/cycle"


def parse_variant(text: str) -> tuple[str, dict]:
    label, _, settings = text.partition("=")
    env = dict(item.split("=", 1) for item in settings.split(",") if item.strip())
    return label, env


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    """`command` with its output captured; on failure, exit naming it with the end of its stderr."""
    out = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if out.returncode:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        sys.exit(f"{' '.join(command[:3])} exited {out.returncode}:\n{tail}")
    return out


def run_torch(python: str, steps: int) -> dict:
    out = run([python, REFERENCE, "matched", str(steps)])
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"train": row["train_img_s"], "inference": row["infer_img_s"]}


def run_tf(env: dict, steps: int, tmp: str) -> dict:
    path = os.path.join(tmp, "tf.json")
    command = [sys.executable, os.path.join(HERE, "train_cytoself.py"), "--preset", "paper", "--steps", str(steps),
               "--no-flops", "--json", path]
    run(command, env={**os.environ, **env})
    with open(path) as file:
        row = json.load(file)["runs"][0]
    return {"train": row["train_images_per_s"], "inference": row["inference_images_per_s"]}


def gflops(env: dict) -> dict:
    """GFLOPs per image (forward, embedding pass) from the profiler, in a fresh process."""
    code = (
        "import json, sys; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "import train_cytoself as b\n"
        "from statcell_tf.cytoself.model import CytoselfModel\n"
        "from statcell_tf.cytoself.presets import preset_config\n"
        "m = CytoselfModel(**preset_config('paper', num_classes=1311)); m.build((None,) + m.image_shape)\n"
        "print(json.dumps({'forward': b.gflops_per_image(m, 'forward'), 'embed': b.gflops_per_image(m, 'embed')}))\n"
    ) % (HERE, ROOT)
    out = run([sys.executable, "-c", code], env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-python", required=True, help="Python of a scratch environment with torch.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per run (after warm-up).")
    parser.add_argument("--variant", action="append", default=None, metavar="LABEL=ENV,ENV",
                        help="A TensorFlow run: label and environment settings (repeatable).")
    parser.add_argument("--json", default=None, help="Also write medians and rounds to this JSON file.")
    args = parser.parse_args(argv)
    variants = dict(parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS))
    flops = gflops({})
    peak, how = cpu_peak_gflops()
    runs = {"PyTorch (authors)": None, **variants}
    results = {label: [] for label in runs}
    with tempfile.TemporaryDirectory(prefix="vs-pytorch-") as tmp:
        for round_ in range(args.repeats):
            order = list(runs) if round_ % 2 == 0 else list(runs)[::-1]
            for label in order:
                env = runs[label]
                row = run_torch(args.torch_python, args.steps) if env is None else run_tf(env, args.steps, tmp)
                results[label].append(row)
                print(f"round {round_ + 1} {label}: train {row['train']} img/s, inference {row['inference']} img/s; "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
    medians = {label: {k: statistics.median(r[k] for r in rows) for k in ("train", "inference")}
               for label, rows in results.items()}
    torch = medians["PyTorch (authors)"]
    print(f"\ncytoself paper model, batch 32, medians of {args.repeats} alternating rounds; "
          f"{flops['forward']:.3f} GFLOPs/image forward (training step ~{3 * flops['forward']:.2f}), "
          f"{flops['embed']:.3f} embedding; CPU peak {peak:.0f} GFLOP/s ({how})")
    print(f"  {'':26s}{'train img/s':>12s}{'x PyTorch':>10s}{'GFLOP/s':>9s}{'% peak':>8s}"
          f"{'infer img/s':>13s}{'x PyTorch':>10s}{'GFLOP/s':>9s}{'% peak':>8s}")
    table = {}
    for label, m in medians.items():
        train_gf = m["train"] * 3 * flops["forward"]
        infer_gf = m["inference"] * flops["embed"]
        table[label] = {**m, "train_x_pytorch": m["train"] / torch["train"],
                        "inference_x_pytorch": m["inference"] / torch["inference"],
                        "train_gflop_s": train_gf, "inference_gflop_s": infer_gf}
        print(f"  {label:26s}{m['train']:12.2f}{m['train'] / torch['train']:9.2f}x{train_gf:9.1f}"
              f"{100 * train_gf / peak:7.1f}%{m['inference']:13.2f}{m['inference'] / torch['inference']:9.2f}x"
              f"{infer_gf:9.1f}{100 * infer_gf / peak:7.1f}%")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"peak_gflop_s": peak, "peak": how, "gflops_per_image": flops, "medians": table,
                       "rounds": results}, file, indent=1)


if __name__ == "__main__":
    main()
