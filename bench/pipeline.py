"""tf.data throughput: 100×100×2 crops (protein + nuclear distance) read from disk.

Writes an OpenCell-format folder of memory-mapped float32 crops in a temp dir, then times
`make_dataset(..., shuffle=True, augment=True, normalize="mode")` over several epochs after a
warm-up epoch. Prints images/s (with and without the normalisation and augmentation).

    .venv/bin/python bench/pipeline.py [--images 20000] [--batch-size 256] [--epochs 3]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_crops(folder: Path, n: int, size: int = 100, per_prefix: int = 2000) -> None:
    rng = np.random.default_rng(0)
    for start in range(0, n, per_prefix):
        count = min(per_prefix, n - start)
        prefix = f"ENSG{start:08d}"
        for channel in ("pro", "nucdist"):
            np.save(folder / f"{prefix}_{channel}.npy", rng.random((count, size, size), dtype=np.float32))
        pd.DataFrame(
            {"ensg": prefix, "protein": f"P{start}", "localization": "x", "fov": [f"{prefix}_{i // 8}" for i in range(count)]}
        ).to_csv(folder / f"{prefix}_label.csv", index=False)


def images_per_second(cells, batch_size, epochs, **kwargs) -> float:
    from statcell_tf.data.pipeline import make_dataset

    dataset = make_dataset(cells, np.arange(len(cells)), batch_size, shuffle=True, label_column="protein", **kwargs)
    for _ in dataset:  # warm-up epoch (graph tracing, page cache)
        pass
    start = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        for batch in dataset:
            seen += int(batch["image"].shape[0])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from statcell_tf.data.opencell import read_opencell

    with tempfile.TemporaryDirectory() as tmp:
        write_crops(Path(tmp), args.images)
        cells = read_opencell(tmp)
        print(f"tf.data, {args.images} crops 100x100x2 float32 from disk (memory-mapped), batch {args.batch_size}:")
        plain = images_per_second(cells, args.batch_size, args.epochs)
        print(f"  read + shuffle + batch:                 {plain:9.0f} images/s")
        full = images_per_second(cells, args.batch_size, args.epochs, augment=True, normalize="mode")
        print(f"  + mode normalisation + rot90/flip aug:  {full:9.0f} images/s")


if __name__ == "__main__":
    main()
