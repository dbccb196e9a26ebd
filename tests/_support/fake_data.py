"""Tiny data sets in every supported format, written with plain numpy/tifffile."""

import numpy as np
import pandas as pd
import tifffile


def write_opencell(folder, proteins=("A", "B"), n=6, size=100, seed=0, label_format="csv"):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for p, protein in enumerate(proteins):
        prefix = f"ENSG{p:05d}"
        for channel in ("pro", "nuc", "nucdist"):
            np.save(folder / f"{prefix}_{channel}.npy", rng.random((n, size, size), dtype=np.float32))
        table = pd.DataFrame(
            {
                "ensg": [prefix] * n,
                "protein": [protein] * n,
                "localization": ["nucleolus" if p % 2 else "er"] * n,
                "fov": [f"{protein}_fov{i // 2}" for i in range(n)],
            }
        )
        if label_format == "csv":
            table.to_csv(folder / f"{prefix}_label.csv", index=False)
        elif label_format == "npy":
            np.save(folder / f"{prefix}_label.npy", table.to_numpy().astype(str))
        elif label_format == "pickle":
            np.save(folder / f"{prefix}_label.npy", table.to_numpy().astype(object), allow_pickle=True)
    return folder


def write_manifest(folder, n=4, dims=2, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        shape = (3, size, size) if dims == 2 else (3, 4, size, size)
        tifffile.imwrite(folder / f"cell{i}.tif", rng.random(shape, dtype=np.float32), metadata={"axes": "CYX" if dims == 2 else "CZYX"})
        rows.append(
            {"CellId": i, "structure_name": "ST" + str(i % 2), "path": f"cell{i}.tif",
             "ch_membrane": 0, "ch_dna": 1, "ch_structure": 2, "cell_cycle_phase": "interphase"}
        )
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"
