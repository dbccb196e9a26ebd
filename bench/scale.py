"""How time and memory grow with the work: prepare-crops, embed, embed-classical, profile-moa at 1×, 10×, 100×.

Each stage runs at three sizes (a small base that runs in seconds, ×10, ×100), each in a fresh
process (``python bench/scale.py --child STAGE N FOLDER``) that imports its libraries first, then
times the command alone (`statcell_tf.cli.run_command`, as on the command line) and reports the
seconds and its peak resident memory (VmHWM). The inputs are made beforehand, outside the
timings, in a temporary folder:

- prepare-crops: N synthetic 256×256 fields of view (2 channels, 6 cells each; a pool of 8
  listed under distinct fov ids), OpenCell layout, 48 px crops: items = fields;
- embed: N BBBC021-layout crops (68×68×3 uint16) embedded by a tiny VAE+ run: items = cells;
- embed-classical: N of those crops, default feature groups, one worker: items = cells;
- profile-moa: a Parquet cell table of N cells × 16 features (2 plates × 20 wells, 4 MoAs of
  2 compounds each; the cells per well grow with N): cells → wells → treatments, NSC/NSCB
  and mAP: items = cells.

Prints one row per (stage, size): items, seconds, time per item, peak resident memory and
the memory added per item between the two largest sizes (the bytes per item a stage holds in
memory: about 0 for streaming stages), then writes a log-log PNG (time per item and peak
memory against items) to ``--png``. Streaming stages should show flat memory and flat time
per item (100× within 1.3× of 10×); profile-moa holds its cell table in memory. Streaming
stages hold one chunk (prepare-crops: up to 1,000 crops or 64 MiB; embed-classical: 256 cells;
embed: 64), so their memory still grows while the work is smaller than a chunk.

    .venv/bin/python bench/scale.py [--stages prepare-crops,embed,embed-classical,profile-moa]
        [--png /tmp/statcell-scale.png] [--factor 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# stage -> (items, base size)
STAGES = {
    "prepare-crops": ("fields", 2),
    "embed": ("cells", 64),
    "embed-classical": ("cells", 4),
    "profile-moa": ("cells", 2000),
}
FEATURES = 16


def peak_rss() -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# ----- inputs (made once, outside the timings) ------------------------------------------------------
def make_inputs(folder: Path, sizes: dict[str, list[int]]) -> None:
    from statcell_tf.data.synthetic import write_fovs

    if "prepare-crops" in sizes:
        pool = write_fovs(folder / "pool", n_families=2, fields_per_protein=4, cells_per_field=6, size=(256, 256),
                          cell_size=64, seed=0)
        base = pd.read_csv(pool / "fovs_opencell.csv")
        for n in sizes["prepare-crops"]:
            rows = base.iloc[[i % len(base) for i in range(n)]].copy()
            rows["fov"] = [f"f{i:06d}" for i in range(n)]
            for column in ("pro", "nuc"):
                rows[column] = [str(pool / p) for p in rows[column]]
            rows.to_csv(folder / f"fovs_{n}.csv", index=False)
    crops = max(sizes.get("embed", [0]) + sizes.get("embed-classical", [0]))
    if crops:
        write_crops(folder / "crops", crops, [n for s in ("embed", "embed-classical") for n in sizes.get(s, [])])
    if "embed" in sizes:
        write_run(folder / "run")
    for n in sizes.get("profile-moa", []):
        write_cell_table(folder / f"cells_{n}.parquet", n)


def write_crops(folder: Path, n: int, counts: list[int]) -> None:
    """`n` BBBC021-layout crops with round cells, and metadata_<count>.csv listing the first ones."""
    rng = np.random.default_rng(0)
    (folder / "crops").mkdir(parents=True)
    yy, xx = np.mgrid[:68, :68]
    rows = []
    for i in range(n):
        centre = 34 + rng.integers(-4, 5, 2)
        radius = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
        crop = rng.integers(100, 400, (68, 68, 3)).astype(np.uint16)
        crop[..., 0][radius < 64] += 20000
        crop[..., 1][radius < 225] += 8000
        crop[..., 2][radius < 225] += 3000
        np.save(folder / "crops" / f"c{i:06d}.npy", crop)
        rows.append({"file": f"crops/c{i:06d}.npy", "plate": f"Week1_{i % 2}", "well": f"B{i % 12:02d}",
                     "compound": ["DMSO", "taxol"][i % 2], "concentration": float(i % 2), "moa": ["DMSO", "m"][i % 2]})
    table = pd.DataFrame(rows)
    for count in sorted(set(counts)):
        table.iloc[:count].to_csv(folder / f"metadata_{count}.csv", index=False)
    table.to_csv(folder / "metadata.csv", index=False)


def write_run(folder: Path) -> None:
    """A tiny VAE+ run (untrained weights: the cost of encoding does not depend on them)."""
    from statcell_tf.training.export import export_saved_model
    from statcell_tf.training.run_dir import RunDirectory, make_config
    from statcell_tf.vaeplus.model import VAEPlus

    model = VAEPlus(latent_dim=8, filters=4, discriminator_filters=2, seed=0)
    model.encode(np.zeros((1, 68, 68, 3), np.float32))
    run = RunDirectory(folder)
    folder.mkdir()
    run.write_config(make_config("vaeplus", "vaeplus", None, {}))
    export_saved_model(model, run.saved_model)


def write_cell_table(path: Path, n: int) -> None:
    """`n` cells over 2 plates × 20 wells: DMSO and 4 MoAs × 2 compounds (one per plate)."""
    rng = np.random.default_rng(0)
    wells = []
    for p, plate in enumerate(("Week1_1", "Week2_1")):
        for w in range(20):
            if w < 4:
                wells.append((plate, f"A{w:02d}", "DMSO", 0.0, "DMSO", np.zeros(FEATURES)))
            else:
                moa = (w - 4) % 4
                centre = np.zeros(FEATURES)
                centre[moa] = 3.0
                wells.append((plate, f"A{w:02d}", f"c{moa}_{p}", 1.0 + (w - 4) // 4, f"moa{moa}", centre))
    which = np.arange(n) % len(wells)
    frame = pd.DataFrame({
        "Metadata_plate": [wells[i][0] for i in which], "Metadata_well": [wells[i][1] for i in which],
        "Metadata_compound": [wells[i][2] for i in which], "Metadata_concentration": [wells[i][3] for i in which],
        "Metadata_moa": [wells[i][4] for i in which],
    })
    values = np.stack([wells[i][5] for i in which]) + rng.normal(size=(n, FEATURES))
    features = pd.DataFrame(values.astype(np.float32), columns=[f"z_{j}" for j in range(FEATURES)])
    pd.concat([frame, features], axis=1).to_parquet(path, index=False)


# ----- one measurement (a fresh process) --------------------------------------------------------------
def child(stage: str, n: int, folder: Path) -> None:
    import pyarrow.parquet  # noqa: F401  (imports are not the work)

    from statcell_tf.backend import tf  # noqa: F401
    from statcell_tf.cli import run_command

    out = folder / f"out_{stage}_{n}"
    arguments = {
        "prepare-crops": [folder / f"fovs_{n}.csv", "--layout", "opencell", "--size", "48", "--downsample", "1",
                          "--montage-crops", "0", "--out", out],
        "embed": [folder / "run", "--data", folder / "crops" / f"metadata_{n}.csv", "--out", f"{out}.parquet"],
        "embed-classical": ["--data", folder / "crops" / f"metadata_{n}.csv", "--out", f"{out}.parquet"],
        "profile-moa": ["--embeddings", folder / f"cells_{n}.parquet", "--out", out],
    }[stage]
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        sys.stdout, saved = quiet, sys.stdout
        try:
            code = run_command(stage, [str(a) for a in arguments])
        finally:
            sys.stdout = saved
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{stage} at {n} failed with exit status {code}")
    print(json.dumps({"stage": stage, "items": n, "seconds": seconds, "peak_rss_bytes": peak_rss()}))


def measure(stage: str, n: int, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, __file__, "--child", stage, str(n), str(folder)], check=False,
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{stage} at {n}: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, group in rows.groupby("stage", sort=False):
        label = f"{stage} ({STAGES[stage][0]})"
        left.loglog(group["items"], group["seconds"] / group["items"], "o-", label=label)
        right.loglog(group["items"], group["peak_rss_bytes"] / 2**20, "o-", label=label)
    left.set(xlabel="items", ylabel="seconds per item", title="time per item (flat = linear cost)")
    right.set(xlabel="items", ylabel="peak resident memory (MiB)", title="peak memory (flat = streaming)")
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--factor", type=int, default=10, help="growth between sizes (sizes: base, ×f, ×f²)")
    parser.add_argument("--png", type=Path, default=Path(tempfile.gettempdir()) / "statcell-scale.png")
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"--stages: unknown {', '.join(unknown)}; known: {', '.join(STAGES)}")
    sizes = {s: [STAGES[s][1] * args.factor**k for k in range(3)] for s in stages}
    sys.path.insert(0, str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory(prefix="statcell-scale-") as tmp:
        started = time.perf_counter()
        make_inputs(Path(tmp), sizes)
        print(f"inputs made in {time.perf_counter() - started:.0f} s; {os.cpu_count()} CPU cores, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for stage in stages:
            for n in sizes[stage]:
                rows.append(measure(stage, n, Path(tmp)))
                row = rows[-1]
                print(f"  {stage:16s} {n:>8,} {STAGES[stage][0]:7s} {row['seconds']:8.1f} s  "
                      f"{1e3 * row['seconds'] / n:9.3f} ms/item  peak {row['peak_rss_bytes'] / 2**20:7.0f} MiB", flush=True)
    table = pd.DataFrame(rows)
    table["ms_per_item"] = 1e3 * table["seconds"] / table["items"]
    table["peak_MiB"] = table["peak_rss_bytes"] / 2**20
    print(f"\n{'stage':16s} {'items':>9s} {'seconds':>9s} {'ms/item':>9s} {'peak MiB':>9s}  "
          f"{'100x/10x time per item':>22s} {'bytes/item (10x->100x)':>22s}")
    for stage, group in table.groupby("stage", sort=False):
        group = group.reset_index(drop=True)
        ratio = group["ms_per_item"].iloc[-1] / group["ms_per_item"].iloc[-2]
        per_item = (group["peak_rss_bytes"].iloc[-1] - group["peak_rss_bytes"].iloc[-2]) / (
            group["items"].iloc[-1] - group["items"].iloc[-2])
        for i, row in group.iterrows():
            tail = f"  {ratio:22.2f} {per_item:22,.0f}" if i == len(group) - 1 else ""
            print(f"{stage:16s} {row['items']:>9,} {row['seconds']:9.1f} {row['ms_per_item']:9.3f} "
                  f"{row['peak_MiB']:9.0f}{tail}")
    plot(table, args.png)
    print(f"\nlog-log plot: {args.png} (load average {os.getloadavg()[0]:.1f}: other programs share the cores)")


if __name__ == "__main__":
    main()
