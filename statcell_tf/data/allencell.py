"""Allen Cell style data: a manifest CSV of per-cell multi-channel TIFF / OME-TIFF files.

Manifest columns: ``CellId``, ``structure_name``, ``path`` (relative to the manifest's folder
or absolute), optional per-row channel indices ``ch_membrane``, ``ch_dna``, ``ch_structure``
(keyword arguments override them), optional ``cell_cycle_phase``. Each TIFF holds one cell,
2D (axes CYX) or 3D (CZYX; ZCYX is also accepted). Images come back channel-last with the
channels in the order membrane, dna, structure: (H, W, 3) or (D, H, W, 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from statcell_tf.data import validation
from statcell_tf.data.source import CellImages, ImageArray
from statcell_tf.errors import UserError

CHANNELS = ("membrane", "dna", "structure")
REQUIRED_COLUMNS = ("CellId", "structure_name", "path")


def is_manifest(path: Path) -> bool:
    """True for a CSV whose header has the manifest's CellId and path columns."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    header = [c.strip() for c in path.open().readline().split(",")]
    return "CellId" in header and "path" in header


def read_tiff(path: str) -> tuple[np.ndarray, str]:
    """Read a cell TIFF; return the array and its axes string (clear error when unreadable)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.asarray(), series.axes.upper()
    except Exception as error:  # tifffile raises several types for broken files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} is not a readable TIFF ({first[:160]})") from None


def to_channel_last(array: np.ndarray, axes: str, path: str = "") -> np.ndarray:
    """(C, Y, X), (C, Z, Y, X) or (Z, C, Y, X) → (Y, X, C) or (Z, Y, X, C)."""
    axes = axes.replace("S", "C").replace("I", "Z").replace("Q", "")
    if len(axes) != array.ndim or "C" not in axes:
        if array.ndim == 3:
            axes = "CYX"  # unknown axes: channel first, as written by Allen pipelines
        elif array.ndim == 4:
            axes = "CZYX"
        else:
            raise UserError(f"{path} must be CYX or CZYX. Received: shape {array.shape}, axes {axes!r}")
    order = [axes.index(a) for a in ("Z", "Y", "X", "C") if a in axes]
    if len(order) != array.ndim:
        raise UserError(f"{path} has unsupported axes {axes!r} (expected CYX, CZYX or ZCYX)")
    return np.transpose(array, order)


class ManifestImages(ImageArray):
    """Cells read from their TIFF on access, with the three channels picked per row."""

    def __init__(self, paths, channels, shape, dtype=np.float32):
        self.paths = list(paths)
        self.channels = np.asarray(channels, dtype=np.int64)
        self.shape = (len(self.paths),) + tuple(shape)
        self.dtype = np.dtype(dtype)

    def load(self, i: int) -> np.ndarray:
        array, axes = read_tiff(self.paths[i])
        image = to_channel_last(array, axes, self.paths[i])
        n_channels = image.shape[-1]
        if self.channels[i].max() >= n_channels:
            raise UserError(
                f"{self.paths[i]} has {n_channels} channels but the manifest asks for channel "
                f"{int(self.channels[i].max())}"
            )
        image = image[..., self.channels[i]]
        if image.shape != self.shape[1:]:
            raise UserError(
                f"{self.paths[i]} is {image.shape[:-1]} but cells must all be {self.shape[1:-1]} "
                "(resize or crop them to one size first)"
            )
        return image

    def _take(self, indices):
        return np.stack([self.load(i) for i in indices]).astype(self.dtype, copy=False)


def read_allencell(manifest, membrane=None, dna=None, structure=None) -> CellImages:
    """Read an Allen-style manifest.

    Args:
        manifest: str or Path. The manifest CSV.
        membrane, dna, structure: int or None. Channel indices for every cell; None reads the
            manifest's ``ch_membrane`` / ``ch_dna`` / ``ch_structure`` columns.

    Returns:
        CellImages with channels membrane, dna, structure and the manifest's columns plus
        ``label`` (= structure_name) and ``group`` (= CellId).
    """
    manifest = Path(manifest)
    if not manifest.exists():
        raise UserError(f"--data {manifest} does not exist")
    if manifest.is_dir():
        candidate = manifest / "manifest.csv"
        if not candidate.exists():
            raise UserError(f"--data {manifest} is a folder without manifest.csv")
        manifest = candidate
    table = validation.read_csv(manifest)
    validation.require_columns(table, REQUIRED_COLUMNS, manifest)
    if table.empty:
        raise UserError(f"{manifest} lists no cells")
    if table["CellId"].duplicated().any():
        duplicate = table["CellId"][table["CellId"].duplicated()].iloc[0]
        raise UserError(f"{manifest} lists CellId {duplicate} more than once")
    overrides = {"membrane": membrane, "dna": dna, "structure": structure}
    columns = []
    for name in CHANNELS:
        if overrides[name] is not None:
            columns.append(np.full(len(table), int(overrides[name])))
        elif f"ch_{name}" in table:
            columns.append(table[f"ch_{name}"].to_numpy(dtype=np.int64))
        else:
            raise UserError(
                f"{manifest} has no ch_{name} column; add it or pass --{name}-channel. "
                f"Received columns: {', '.join(table.columns)}"
            )
    channels = np.stack(columns, axis=1)
    paths = [str(p if Path(p).is_absolute() else manifest.parent / p) for p in table["path"].astype(str)]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(f"{len(missing)} file(s) in {manifest} do not exist (first: {missing[0]})")
    first, axes = read_tiff(paths[0])
    first = to_channel_last(first, axes, paths[0])
    shape = first.shape[:-1] + (3,)
    images = ManifestImages(paths, channels, shape)
    metadata = table.copy()
    metadata["label"] = metadata["structure_name"].astype(str)
    metadata["group"] = metadata["CellId"].astype(str)
    return CellImages(images, metadata, CHANNELS, str(manifest))

