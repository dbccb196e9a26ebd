"""Real BBBC021 MCF-7 crops (../shared/data) in the Allen-cell roles: membrane := F-actin,
dna := DNA, structure := β-tubulin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROLES = ("actin", "dna", "tubulin")  # BBBC021 channel of membrane, dna, structure


def bbbc021_reference(folder, n, size, seed=0, structure=False):
    """[membrane := F-actin, dna := DNA] of `n` DMSO crops, background-subtracted, (n, size, size, 2);
    with `structure`, β-tubulin as a third (structure) channel."""
    from statcell_tf.data.bbbc021 import read_bbbc021
    from statcell_tf.layers.input_normalization import InputNormalization
    from statcell_tf.statcell.data import fit_shape

    cells = read_bbbc021(folder)
    metadata = cells.metadata
    keep = metadata["compound"].astype(str).eq("DMSO")
    if "qc_flag_low_dna_contrast" in metadata:
        keep &= ~metadata["qc_flag_low_dna_contrast"].astype(bool)
    rows = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(keep.to_numpy()), n, replace=False))
    raw = np.asarray(cells.images[rows], "float32")
    channels = [cells.channel_names.index(c) for c in ROLES[: 3 if structure else 2]]
    # Background (mode) subtraction and max scaling, as the models do it (InputNormalization).
    reference = fit_shape(np.asarray(InputNormalization("mode")(raw[..., channels])), (64, 64))
    factor = 64 // size
    reference = reference.reshape(n, size, factor, size, factor, len(channels)).mean(axis=(2, 4))  # area downsampling
    return np.asarray(InputNormalization("max")(reference))


def write_bbbc021_allen(folder, out: Path, n: int, size: int, seed: int = 0,
                        structure_name: str = "BETA_TUBULIN") -> Path:
    """`n` DMSO crops (`bbbc021_reference`, with β-tubulin) written as an Allen-format data set
    (one uint16 CYX TIFF per cell, channels membrane, dna, structure; ``manifest.csv``) through
    the project's one Allen writer (`statcell_tf.data.layout_files`); returns the manifest path."""
    from statcell_tf.data import layout_files

    images = bbbc021_reference(folder, n, size, seed=seed, structure=True)
    out = Path(out)
    (out / "cells").mkdir(parents=True)
    rows = []
    for i, image in enumerate(images):
        path = f"cells/{i}.tiff"
        layout_files.write_allen_cell(out / path, np.round(np.moveaxis(image, -1, 0) * 60000).astype(np.uint16))
        rows.append({"CellId": f"bbbc021-{i}", "structure_name": structure_name, "path": path,
                     **layout_files.allen_channel_columns(("membrane", "dna", "structure"))})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"
