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

from statcell_tf.data import tables, unfinished, validation
from statcell_tf.data.source import CellImages, FileImages
from statcell_tf.errors import UserError

CHANNELS = ("dna", "actin", "tubulin")
REQUIRED_COLUMNS = ("file", "plate", "well", "compound")


def is_bbbc021(path: Path) -> bool:
    """True for a BBBC021 crop folder (or its metadata.csv): columns file, plate, well, compound."""
    path = Path(path)
    csv_path = path / "metadata.csv" if path.is_dir() else path
    if not csv_path.is_file() or csv_path.suffix.lower() != ".csv":
        return False
    return set(REQUIRED_COLUMNS) <= set(validation.csv_header(csv_path))


def _load_crop(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a readable crop .npy ({str(error).splitlines()[0]})") from None


def read_bbbc021(
    path, expected_shape: tuple[int, int] | None = None, check_finite: bool = True, allow_unfinished: bool = False
) -> CellImages:
    """Read a BBBC021 crop folder (or its metadata.csv).

    Args:
        path: str or Path. The folder holding ``metadata.csv``, or the CSV itself. Crops are
            looked up by file name anywhere under the ``crops/`` folder beside the CSV (or
            under the CSV's folder when there is no ``crops/``).
        expected_shape: (H, W) or None. Reject crops of another size.
        check_finite: bool. Scan float crops for NaN/inf now when they take less than 512 MB
            (integer crops cannot hold NaN). Defaults to True.
        allow_unfinished: bool. Read a folder marked unfinished (`statcell_tf.data.unfinished`)
            as it is. Defaults to False (refused).

    Returns:
        CellImages of (68, 68, 3) crops with channels dna, actin, tubulin, read lazily one
        file per crop, with every metadata.csv column (``qc_flag_low_dna_contrast`` included
        when present) plus ``label`` (= compound), ``treatment`` (compound@concentration)
        and ``group`` (= plate/well: splits never divide a well).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    unfinished.check(path, "--data", allow_unfinished)
    csv = path / "metadata.csv" if path.is_dir() else path
    folder = csv.parent
    if not csv.exists():
        raise UserError(f"{csv} is missing: a BBBC021 folder needs metadata.csv next to its crops")
    metadata = validation.read_csv(csv)
    if metadata.empty:
        raise UserError(f"{csv} must list at least one crop. Received: a header without rows")
    tables.require_ids(metadata, REQUIRED_COLUMNS, csv)
    if "concentration" in metadata:
        metadata["concentration"] = tables.numeric_matrix(metadata, ["concentration"], str(csv))[0][:, 0]
    root = folder / "crops" if (folder / "crops").is_dir() else folder
    located: dict[str, Path] = {}
    for crop in sorted(root.rglob("*.npy")):
        if crop.name in located:
            raise UserError(
                f"{crop} has the same file name as {located[crop.name]}; crops are found by file "
                "name, so every name under the crop folder must be unique"
            )
        located[crop.name] = crop
    names = [Path(str(name)).name for name in metadata["file"]]
    missing = [name for name in names if name not in located]
    if missing:
        raise UserError(
            f"{len(missing)} crop(s) listed in {csv} are not under {root} "
            f"(first: {missing[0]}). Received: {len(located)} .npy files"
        )
    paths = [str(located[name]) for name in names]
    first = _load_crop(paths[0])
    if first.ndim != 3:
        raise UserError(f"{paths[0]} must be one channel-last crop (H, W, C). Received: shape {first.shape}")
    if expected_shape is not None and tuple(first.shape[:2]) != tuple(expected_shape):
        raise UserError(
            f"{paths[0]}: crops must be {expected_shape[0]}x{expected_shape[1]} pixels. "
            f"Received: {first.shape[0]}x{first.shape[1]}"
        )
    metadata = metadata.copy()
    metadata["label"] = metadata["compound"].astype(str)
    if "concentration" in metadata:
        metadata["treatment"] = metadata["compound"].astype(str) + "@" + metadata["concentration"].astype(str)
    metadata["group"] = metadata["plate"].astype(str) + "/" + metadata["well"].astype(str)
    names = CHANNELS if first.shape[-1] == 3 else tuple(f"ch{i}" for i in range(first.shape[-1]))
    images = _CheckedFileImages(paths, first.shape, first.dtype)
    cells = CellImages(images, metadata, names, str(folder))
    if check_finite:
        validation.check_finite(cells)
    return cells


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

    The key: a crop's file name minus its trailing ``_<cell_index>.npy``, plus ``.tif``, is
    the image's ``Image_FileName_DAPI`` in ``BBBC021_v1_image.csv``. The MoA table joins on
    (compound, concentration), taken from the crop metadata when it has them, else from the
    official image table; its ``moa`` column arrives as ``moa_official``.

    Args:
        metadata: DataFrame. Crop metadata with a ``file`` column (e.g. `read_bbbc021`'s).
        image_csv: str or Path. ``BBBC021_v1_image.csv``.
        moa_csv: str, Path or None. ``BBBC021_v1_moa.csv``.

    Returns:
        DataFrame with the rows of `metadata` in order, plus the official columns (NaN
        where a crop has no official image row).
    """
    validation.require_columns(metadata, ["file"], "crop metadata")
    images = validation.read_csv(Path(image_csv))
    validation.require_columns(images, ["Image_FileName_DAPI"], image_csv)
    images = images.drop_duplicates("Image_FileName_DAPI")
    joined = metadata.reset_index(drop=True).copy()
    names = joined["file"].astype(str).map(lambda name: Path(name).name)
    joined["Image_FileName_DAPI"] = names.str.replace(r"_\d+\.npy$", ".tif", regex=True)
    joined = joined.merge(images, on="Image_FileName_DAPI", how="left", suffixes=("", "_official"))
    if joined["Image_FileName_DAPI"].isin(images["Image_FileName_DAPI"]).sum() == 0:
        raise UserError(
            f"{image_csv}: no crop matches an Image_FileName_DAPI (crop file name minus _<cell>.npy "
            f"plus .tif). Received: crop names like {names.iloc[0]}"
        )
    if moa_csv is not None:
        moa = validation.read_csv(Path(moa_csv))
        validation.require_columns(moa, ["compound", "concentration", "moa"], moa_csv)
        compound = "compound" if "compound" in joined else "Image_Metadata_Compound"
        concentration = "concentration" if "concentration" in joined else "Image_Metadata_Concentration"
        keys = pd.DataFrame(
            {
                "_compound": moa["compound"].astype(str),
                "_concentration": pd.to_numeric(moa["concentration"], errors="coerce").round(9),
                "moa_official": moa["moa"],
            }
        ).drop_duplicates(["_compound", "_concentration"])
        joined["_compound"] = joined[compound].astype(str)
        joined["_concentration"] = pd.to_numeric(joined[concentration], errors="coerce").round(9)
        joined = joined.merge(keys, on=["_compound", "_concentration"], how="left")
        joined = joined.drop(columns=["_compound", "_concentration"])
    return joined
