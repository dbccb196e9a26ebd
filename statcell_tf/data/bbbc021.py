"""BBBC021 single-cell crops (MCF-7; Caie et al. 2010, Ljosa et al. 2012).

A folder holds ``metadata.csv`` (one row per crop: file, plate, well, site, compound,
concentration, moa, ...) and the crops themselves (``.npy``, (68, 68, 3) uint16, channel-last:
DNA, F-actin, β-tubulin) anywhere under it: crops are found by file name, never by the
sub-folder layout. Crops are read lazily, one file per image.

`join_official` adds the columns of the official BBBC021v1 image and MoA tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.data import validation
from statcell_tf.data.source import CellImages, FileImages
from statcell_tf.errors import UserError

CHANNELS = ("dna", "actin", "tubulin")
REQUIRED_COLUMNS = ("file", "plate", "well", "compound")


def is_bbbc021(path: Path) -> bool:
    """True for a BBBC021 crop folder (or its metadata.csv)."""
    path = Path(path)
    csv = path / "metadata.csv" if path.is_dir() else path
    if not csv.is_file() or csv.suffix.lower() != ".csv":
        return False
    header = csv.open().readline().lower()
    return all(column in header for column in REQUIRED_COLUMNS)


def _load_crop(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a readable crop .npy ({str(error).splitlines()[0]})") from None


def read_bbbc021(path) -> CellImages:
    """Read a BBBC021 crop folder (or its metadata.csv).

    Returns:
        CellImages of (68, 68, 3) crops with channels dna, actin, tubulin and every
        metadata.csv column, plus ``label`` (= compound), ``treatment`` (compound @
        concentration) and ``group`` (= plate/well: splits never divide a well).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    csv = path / "metadata.csv" if path.is_dir() else path
    folder = csv.parent
    if not csv.exists():
        raise UserError(f"{csv} is missing: a BBBC021 folder needs metadata.csv next to its crops")
    metadata = validation.read_csv(csv)
    validation.require_columns(metadata, REQUIRED_COLUMNS, csv)
    if metadata.empty:
        raise UserError(f"{csv} lists no crops")
    located = {p.name: p for p in folder.rglob("*.npy")}
    missing = [name for name in metadata["file"] if name not in located]
    if missing:
        raise UserError(
            f"{len(missing)} crop(s) listed in {csv} are not under {folder} "
            f"(first: {missing[0]}). Received: {len(located)} .npy files"
        )
    paths = [str(located[name]) for name in metadata["file"]]
    first = _load_crop(paths[0])
    if first.ndim != 3:
        raise UserError(f"{paths[0]} must be one crop (H, W, C). Received: shape {first.shape}")
    metadata = metadata.copy()
    metadata["label"] = metadata["compound"].astype(str)
    if "concentration" in metadata:
        metadata["treatment"] = metadata["compound"].astype(str) + "@" + metadata["concentration"].astype(str)
    metadata["group"] = metadata["plate"].astype(str) + "/" + metadata["well"].astype(str)
    names = CHANNELS if first.shape[-1] == 3 else tuple(f"ch{i}" for i in range(first.shape[-1]))
    images = _CheckedFileImages(paths, first.shape, first.dtype)
    return CellImages(images, metadata, names, str(folder))


class _CheckedFileImages(FileImages):
    """Per-file crops that must all share the first crop's shape."""

    def __init__(self, paths, shape, dtype):
        super().__init__(paths, _load_crop, shape, dtype)

    def _take(self, indices):
        crops = [self.loader(self.paths[i]) for i in indices]
        for i, crop in zip(indices, crops):
            if crop.shape != self.shape[1:]:
                raise UserError(
                    f"{self.paths[i]} has shape {crop.shape}; every crop must be {self.shape[1:]}"
                )
        return np.stack(crops).astype(self.dtype, copy=False)


def join_official(metadata: pd.DataFrame, image_csv, moa_csv=None) -> pd.DataFrame:
    """Add the official BBBC021v1 image-table (and MoA-table) columns to crop metadata.

    The key: a crop's file name minus ``_<cell_index>.npy`` plus ``.tif`` is the image's
    ``Image_FileName_DAPI``. MoA joins on (compound, concentration).
    """
    images = validation.read_csv(Path(image_csv))
    validation.require_columns(images, ["Image_FileName_DAPI"], image_csv)
    joined = metadata.copy()
    joined["Image_FileName_DAPI"] = joined["file"].str.replace(r"_\d+\.npy$", ".tif", regex=True)
    joined = joined.merge(images, on="Image_FileName_DAPI", how="left", suffixes=("", "_official"))
    if moa_csv is not None:
        moa = validation.read_csv(Path(moa_csv))
        validation.require_columns(moa, ["compound", "concentration", "moa"], moa_csv)
        moa = moa.rename(columns={"moa": "moa_official"})
        joined = joined.merge(moa, on=["compound", "concentration"], how="left")
    return joined
