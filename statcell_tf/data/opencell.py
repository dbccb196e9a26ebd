"""OpenCell / cytoself data: per-protein channel files or the full release's shards.

Two layouts are read, both memory-mapped (nothing is loaded until a batch is gathered):

- a folder of ``<name>_pro.npy``, ``<name>_nuc.npy``, ``<name>_nucdist.npy`` (N, H, W) per
  prefix (the cytoself repository ships one prefix per protein) with labels in
  ``<name>_label.csv`` (columns ensg, protein, localization[, fov]) or ``<name>_label.npy``
  (a 2-D string array with those columns in that order);
- the full release's shards ``Image_dataXX.npy`` (N, 100, 100, 4: protein, nucleus, nuclear
  distance, nuclear segmentation) with ``Label_dataXX.csv``.

The reference repository stores labels as pickled object arrays; unpickling runs code from
the file, so it is refused unless `allow_pickle` is set (``--allow-pickle``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.data import validation
from statcell_tf.data.source import ArrayImages, CellImages, ConcatenatedImages, StackedChannels
from statcell_tf.errors import UserError

CHANNELS = ("pro", "nuc", "nucdist")
SHARD_CHANNELS = ("pro", "nuc", "nucdist", "nucseg")
LABEL_COLUMNS = ("ensg", "protein", "localization", "fov")
_ALIASES = {
    "ensg": ("ensg", "ensembl id", "ensembl_id", "ensemblid", "ensembl", "gene_id"),
    "protein": ("protein", "protein name", "protein_name", "name", "gene_name", "gene"),
    "localization": ("localization", "localisation", "loc_grade1", "annotation", "family_label"),
    "fov": ("fov", "fov_id", "field_of_view", "fov id"),
}
_CHANNEL_FILE = re.compile(r"^(?P<prefix>.+)_(?P<channel>pro|nuc|nucdist)\.npy$")
_SHARD_FILE = re.compile(r"^Image_data(?P<key>\w+)\.npy$")


def is_opencell_folder(path: Path) -> bool:
    """True when `path` is a folder with OpenCell channel files or release shards."""
    path = Path(path)
    return path.is_dir() and (any(path.glob("*_pro.npy")) or any(path.glob("Image_data*.npy")))


def read_opencell(
    path,
    allow_pickle: bool = False,
    channels=None,
    expected_shape: tuple[int, int] | None = None,
) -> CellImages:
    """Read an OpenCell / cytoself folder.

    Args:
        path: str or Path. The folder.
        allow_pickle: bool. Allow pickled (object) label arrays. Defaults to False.
        channels: sequence of str or None. Channels to keep, in order (e.g.
            ``("pro", "nucdist")``); None keeps every channel present.
        expected_shape: (H, W) or None. Reject images of another size.

    Returns:
        CellImages with metadata columns ensg, protein, localization, fov (when present),
        any extra label columns, ``label`` (= protein: the identification target) and
        ``group`` (= fov when present, else the file prefix: what splits keep together).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    if not path.is_dir():
        raise UserError(f"--data {path} must be a folder of OpenCell .npy files. Received: a file")
    if any(path.glob("Image_data*.npy")):
        cells = _read_shards(path)
    else:
        cells = _read_prefixes(path, allow_pickle)
    if expected_shape is not None and tuple(cells.image_shape[:2]) != tuple(expected_shape):
        raise UserError(
            f"images in {path} are {cells.image_shape[0]}x{cells.image_shape[1]}, expected "
            f"{expected_shape[0]}x{expected_shape[1]}. Received: shape {cells.image_shape}"
        )
    validation.check_finite(cells)
    if channels is not None:
        cells = cells.select_channels(list(channels))
    return cells


def _read_prefixes(folder: Path, allow_pickle: bool) -> CellImages:
    files: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.glob("*.npy")):
        match = _CHANNEL_FILE.match(file.name)
        if match:
            files.setdefault(match["prefix"], {})[match["channel"]] = file
    if not files:
        raise UserError(
            f"--data {folder} holds no OpenCell files: expected <name>_pro.npy, <name>_nuc.npy, "
            f"<name>_nucdist.npy (+ <name>_label.csv) or Image_dataXX.npy shards. "
            f"Received: {_describe(folder)}"
        )
    present = sorted({c for found in files.values() for c in found}, key=CHANNELS.index)
    parts, tables = [], []
    for prefix, found in files.items():
        missing = [c for c in present if c not in found]
        if missing:
            raise UserError(
                f"{folder / (prefix + '_' + missing[0] + '.npy')} is missing: every prefix needs "
                f"the same channel files ({', '.join(present)}). Received: {', '.join(sorted(found))}"
            )
        arrays = [validation.load_npy(found[c]) for c in present]
        for channel, array in zip(present, arrays):
            if array.ndim != 3:
                raise UserError(
                    f"{found[channel]} must hold images (N, H, W). Received: shape {array.shape}"
                )
            if array.shape != arrays[0].shape:
                raise UserError(
                    f"{found[channel]} has shape {array.shape} but {found[present[0]]} has "
                    f"{arrays[0].shape}: channel files of one prefix must match"
                )
        labels = _read_labels(folder, prefix, len(arrays[0]), allow_pickle)
        labels["prefix"] = prefix
        parts.append(StackedChannels(arrays))
        tables.append(labels)
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise UserError(f"images in {folder} differ in size: {sorted(shapes)}; all must match")
    metadata = _standardise(pd.concat(tables, ignore_index=True))
    images = parts[0] if len(parts) == 1 else ConcatenatedImages(parts)
    return CellImages(images, metadata, tuple(present), str(folder))


def _read_labels(folder: Path, prefix: str, n: int, allow_pickle: bool) -> pd.DataFrame:
    csv, npy = folder / f"{prefix}_label.csv", folder / f"{prefix}_label.npy"
    if csv.exists():
        table = validation.read_csv(csv)
    elif npy.exists():
        table = _label_npy(npy, allow_pickle)
    else:
        raise UserError(
            f"{csv} is missing: labels are needed for {prefix}_*.npy "
            f"(CSV with ensg, protein, localization[, fov], or {npy.name})"
        )
    table = _rename(table, csv if csv.exists() else npy)
    if len(table) != n:
        raise UserError(
            f"{csv if csv.exists() else npy} has {len(table)} rows but {prefix}_*.npy hold {n} "
            "images: they must match"
        )
    return table


def _label_npy(path: Path, allow_pickle: bool) -> pd.DataFrame:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" not in str(error).lower():
            raise UserError(f"{path} is not a readable .npy file ({error})") from None
        if not allow_pickle:
            raise UserError(
                f"{path} holds pickled objects; unpickling runs code from the file, so it is refused. "
                "Pass --allow-pickle only if you trust its source, or save labels as CSV"
            ) from None
        array = np.load(path, allow_pickle=True)
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= array.shape[1] <= len(LABEL_COLUMNS) + 4:
        raise UserError(
            f"{path} must be a 2-D array with columns ensg, protein, localization[, fov]. "
            f"Received: shape {array.shape}"
        )
    names = list(LABEL_COLUMNS[: array.shape[1]]) + [f"extra_{i}" for i in range(array.shape[1] - 4)]
    if array.shape[1] == 1:
        names = ["protein"]
    return pd.DataFrame(array.astype(str), columns=names)


def _rename(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    lowered = {c.strip().lower(): c for c in table.columns}
    mapping = {}
    for standard, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                mapping[lowered[alias]] = standard
                break
    table = table.rename(columns=mapping)
    if "protein" not in table.columns:
        raise UserError(
            f"{path} has no protein column (expected one of: {', '.join(_ALIASES['protein'])}). "
            f"Received columns: {', '.join(map(str, table.columns))}"
        )
    return table


def _standardise(metadata: pd.DataFrame) -> pd.DataFrame:
    metadata = metadata.copy()
    for column in ("ensg", "protein", "localization", "fov"):
        if column in metadata:
            metadata[column] = metadata[column].astype(str)
    metadata["label"] = metadata["protein"]
    if "fov" in metadata:
        metadata["group"] = metadata["fov"]
    elif "prefix" in metadata:
        metadata["group"] = metadata["prefix"].astype(str)
    else:
        metadata["group"] = metadata["protein"]
    if "family" not in metadata and "localization" in metadata:
        metadata["family"] = metadata["localization"]
    return metadata


def _read_shards(folder: Path) -> CellImages:
    parts, tables = [], []
    for image_file in sorted(folder.glob("Image_data*.npy")):
        key = _SHARD_FILE.match(image_file.name)["key"]
        label_file = folder / f"Label_data{key}.csv"
        if not label_file.exists():
            raise UserError(f"{label_file} is missing: every Image_data{key}.npy needs its labels")
        array = validation.load_npy(image_file)
        if array.ndim != 4 or array.shape[-1] != 4:
            raise UserError(
                f"{image_file} must hold (N, H, W, 4) images (protein, nucleus, distance, "
                f"segmentation). Received: shape {array.shape}"
            )
        table = _rename(validation.read_csv(label_file), label_file)
        if len(table) != len(array):
            raise UserError(
                f"{label_file} has {len(table)} rows but {image_file.name} holds {len(array)} images"
            )
        table["prefix"] = f"Image_data{key}"
        parts.append(ArrayImages(array))
        tables.append(table)
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise UserError(f"shards in {folder} differ in image size: {sorted(shapes)}")
    metadata = _standardise(pd.concat(tables, ignore_index=True))
    images = parts[0] if len(parts) == 1 else ConcatenatedImages(parts)
    return CellImages(images, metadata, SHARD_CHANNELS, str(folder))


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())[:5]
    return "an empty folder" if not names else "files " + ", ".join(names)
