"""tf.data throughput: 100×100×2 crops (protein + nuclear distance) streamed from disk.

Writes an OpenCell-format folder of float32 ``<name>_pro.npy`` / ``<name>_nucdist.npy`` crops
in a temp dir, opens it with `read_opencell` (memory-mapped), then times
`make_dataset(..., batch_size=256, shuffle=True, augment=True)` over several epochs after a
warm-up epoch (graph tracing, page cache). Prints images/s for the raw NumPy gather, the
pipeline without and with augmentation, and (``--normalize``) with a normalisation too.
Target: > 2,000 images/s with augmentation on 2 CPU cores (> 8,000 with ``--normalize max``,
the VAE+ input). Every run ends with the process's peak resident memory.

Data larger than memory (``--images 350000`` is 28 GB of float32 crops): when the crops take
more than half of the machine's memory (or with ``--stream``), the bench streams them through
the training pipeline (augment + the normalisation) with no warm-up: one pass in file order
(sequential reads) and a shuffled pass for at most ``--max-seconds`` (random 40 KB reads, at
the disk's IOPS once the data exceed the page cache), and reports images/s, GB/s and the peak
resident memory (VmHWM) next to the data size. The
free space of the temp folder (``--tmp``) is checked first; the crops are written in chunks
and deleted at the end, also when interrupted.

    .venv/bin/python bench/pipeline.py [--images 20000] [--batch-size 256] [--epochs 3]
        [--normalize max] [--stream] [--tmp DIR]
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CROP_BYTES = 100 * 100 * 2 * 4  # float32 protein + nuclear distance


def write_crops(folder: Path, n: int, size: int = 100, per_prefix: int = 1000, progress: bool = False) -> None:
    """`n` random crops in prefixes of `per_prefix` images, 8 crops per field of view."""
    rng = np.random.default_rng(0)
    for p, start in enumerate(range(0, n, per_prefix)):
        if progress and p % 50 == 0:
            print(f"  writing crops {start:,}/{n:,}", flush=True)
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


def memory_status() -> dict:
    """VmHWM (peak resident), VmRSS, RssAnon and RssFile of this process in bytes (Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def stream_once(cells, batch_size: int, normalize: str, shuffle: bool, max_seconds: float) -> None:
    """One pass of [shuffle +] augment (+ normalisation) over the crops (at most `max_seconds`),
    no warm-up; prints images/s and the peak resident memory against the data size."""
    from statcell_tf.data.pipeline import make_dataset

    dataset = make_dataset(cells, np.arange(len(cells)), batch_size, shuffle=shuffle, label_column="protein",
                           augment=True, normalize=None if normalize == "none" else normalize)
    total = len(cells)
    start, cpu, seen, report = time.perf_counter(), time.process_time(), 0, total // 10
    for batch in dataset:
        seen += int(batch["image"].shape[0])
        if seen >= report:
            print(f"    {seen:,}/{total:,} crops, {seen / (time.perf_counter() - start):,.0f} images/s, "
                  f"resident {memory_status().get('VmRSS', 0) / 2**30:.2f} GiB", flush=True)
            report += total // 10
        if time.perf_counter() - start > max_seconds:
            break
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    memory, size = memory_status(), seen * CROP_BYTES
    print(f"  {'shuffled' if shuffle else 'in order'}: {seen:,} of {total:,} crops ({size / 1e9:.1f} GB) in "
          f"{wall:.0f} s: {seen / wall:,.0f} images/s ({seen / used:,.0f} per CPU-s), {size / wall / 1e9:.3f} GB/s; "
          f"peak resident memory (VmHWM) {memory.get('VmHWM', 0) / 2**30:.2f} GiB (now anonymous "
          f"{memory.get('RssAnon', 0) / 2**30:.2f}, file-backed {memory.get('RssFile', 0) / 2**30:.2f} GiB) "
          f"for {total * CROP_BYTES / 2**30:.1f} GiB of data", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--normalize", choices=["none", "max", "minmax", "mode"], default="none")
    parser.add_argument("--stream", action="store_true",
                        help="One pass of the full pipeline only (automatic above half the memory).")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="Time limit of the shuffled streaming pass (the in-order pass reads everything).")
    parser.add_argument("--tmp", default=None, help="Folder for the temporary crops (default: the system's).")
    args = parser.parse_args()
    size = args.images * CROP_BYTES
    stream = args.stream or size > physical_memory() // 2
    free = shutil.disk_usage(args.tmp or tempfile.gettempdir()).free
    if size * 1.02 + 2**30 > free:
        raise SystemExit(f"--images {args.images}: {size / 1e9:.1f} GB of crops do not fit in the "
                         f"{free / 1e9:.1f} GB free under {args.tmp or tempfile.gettempdir()}; pass a smaller "
                         f"--images (at most {int((free - 2**30) / 1.02 / CROP_BYTES):,}) or another --tmp")
    # Remove the temp folder (GBs of crops) also when interrupted or terminated.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from statcell_tf.data.opencell import read_opencell

    with tempfile.TemporaryDirectory(prefix="statcell-bench-", dir=args.tmp) as tmp:
        started = time.perf_counter()
        write_crops(Path(tmp), args.images, progress=stream)
        if stream:
            print(f"wrote {args.images:,} crops ({size / 1e9:.1f} GB) in {time.perf_counter() - started:.0f} s")
        cells = read_opencell(tmp)
        if stream:
            print(f"tf.data, one pass over data {size / physical_memory():.2f}x the memory: shuffle + augment"
                  f"{'' if args.normalize == 'none' else ' + normalize=' + repr(args.normalize)}, batch "
                  f"{args.batch_size}, load average {os.getloadavg()[0]:.1f}", flush=True)
            # In file order: sequential reads, the disk's bandwidth. Shuffled: random 40 KB reads
            # (the disk's IOPS) once the data no longer fit in the page cache.
            stream_once(cells, args.batch_size, args.normalize, False, float("inf"))
            stream_once(cells, args.batch_size, args.normalize, True, args.max_seconds)
            return
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
            show(f"+ normalize={args.normalize!r}:", rates, "  target > 8000 images/s")
        print(f"  peak resident memory (VmHWM) {memory_status().get('VmHWM', 0) / 2**30:.2f} GiB "
              f"for {size / 2**30:.2f} GiB of crops")


if __name__ == "__main__":
    main()
