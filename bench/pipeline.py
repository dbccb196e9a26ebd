"""tf.data throughput: 100×100×2 crops (protein + nuclear distance) streamed from disk.

Writes an OpenCell-format folder of float32 ``<name>_pro.npy`` / ``<name>_nucdist.npy`` crops
in a temp dir, opens it with `read_opencell` (memory-mapped), then times
`make_dataset(..., batch_size=256, shuffle=True, augment=True)` over several epochs after a
warm-up epoch (graph tracing, page cache). Prints images/s for the raw NumPy gather, the
pipeline without and with augmentation, and (``--normalize``) with a normalisation too.
Target: > 2,000 images/s with augmentation on 2 CPU cores.

    .venv/bin/python bench/pipeline.py [--images 20000] [--batch-size 256] [--epochs 3]
        [--normalize max]
"""

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_crops(folder: Path, n: int, size: int = 100, per_prefix: int = 1000) -> None:
    """`n` random crops in prefixes of `per_prefix` images, 8 crops per field of view."""
    rng = np.random.default_rng(0)
    for p, start in enumerate(range(0, n, per_prefix)):
        count = min(per_prefix, n - start)
        prefix = f"ENSG{p:08d}"
        for channel in ("pro", "nucdist"):
            np.save(folder / f"{prefix}_{channel}.npy", rng.random((count, size, size), dtype=np.float32))
        pd.DataFrame(
            {
                "ensg": prefix,
                "protein": f"P{p}",
                "localization": "cytoplasm",
                "fov": [f"{prefix}_{i // 8}" for i in range(count)],
            }
        ).to_csv(folder / f"{prefix}_label.csv", index=False)


def _rates(seen: int, wall_start: float, cpu_start: float) -> tuple[float, float]:
    """(images per second of wall time, images per second of process CPU time)."""
    return seen / (time.perf_counter() - wall_start), seen / max(time.process_time() - cpu_start, 1e-9)


def gather_rate(cells, batch_size: int, epochs: int) -> tuple[float, float]:
    """NumPy only: sorted random batches read from the memory maps."""
    rng = np.random.default_rng(0)
    start, cpu, seen = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        order = rng.permutation(len(cells))
        for begin in range(0, len(order), batch_size):
            seen += len(cells.images[np.sort(order[begin : begin + batch_size])])
    return _rates(seen, start, cpu)


def pipeline_rate(cells, batch_size: int, epochs: int, **kwargs) -> tuple[float, float]:
    from statcell_tf.data.pipeline import make_dataset

    dataset = make_dataset(
        cells, np.arange(len(cells)), batch_size, shuffle=True, label_column="protein", **kwargs
    )
    for _ in dataset:  # warm-up epoch: tracing, thread pools, page cache
        pass
    start, cpu, seen = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        for batch in dataset:
            seen += int(batch["image"].shape[0])
    return _rates(seen, start, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--normalize", choices=["none", "max", "minmax", "mode"], default="none")
    args = parser.parse_args()
    # Remove the temp folder (GBs of crops) also when interrupted or terminated.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from statcell_tf.data.opencell import read_opencell

    with tempfile.TemporaryDirectory(prefix="statcell-bench-") as tmp:
        write_crops(Path(tmp), args.images)
        cells = read_opencell(tmp)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(
            f"tf.data: {args.images} crops 100x100x2 float32 memory-mapped from disk, batch "
            f"{args.batch_size}, {args.epochs} epochs after a warm-up, {cores} CPU cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print("  (wall-clock images/s; images per CPU-second in brackets: the work, whatever the load)")

        def show(label, rates, note=""):
            print(f"  {label:38s}{rates[0]:8.0f} images/s  ({rates[1]:6.0f} per CPU-s){note}")

        show("NumPy gather only:", gather_rate(cells, args.batch_size, args.epochs))
        show("make_dataset shuffle:", pipeline_rate(cells, args.batch_size, args.epochs))
        show(
            "make_dataset shuffle + augment:",
            pipeline_rate(cells, args.batch_size, args.epochs, augment=True),
            "  target > 2000 images/s",
        )
        if args.normalize != "none":
            rates = pipeline_rate(cells, args.batch_size, args.epochs, augment=True, normalize=args.normalize)
            show(f"+ normalize={args.normalize!r}:", rates)


if __name__ == "__main__":
    main()
