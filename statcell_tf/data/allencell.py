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
import pandas as pd
import tifffile

from statcell_tf.data import tables, unfinished, validation
from statcell_tf.data.source import CellImages, ImageArray
from statcell_tf.errors import UserError

CHANNELS = ("membrane", "dna", "structure")
REQUIRED_COLUMNS = ("CellId", "structure_name", "path")


def is_manifest(path: Path) -> bool:
    """True for a CSV whose header has the manifest's CellId and path columns."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    header = validation.csv_header(path)
    return "CellId" in header and "path" in header


def _error_text(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def read_tiff(path: str) -> tuple[np.ndarray, str]:
    """Read a cell TIFF; return the array and its axes string (clear error when unreadable)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.asarray(), series.axes.upper()
    except Exception as error:  # tifffile raises several types for broken files
        raise UserError(f"{path} is not a readable TIFF ({_error_text(error)})") from None


def tiff_layout(path: str) -> tuple[tuple[int, ...], str, np.dtype]:
    """Shape, axes and dtype of a cell TIFF's first series, from its header (no pixels read)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), series.axes.upper(), np.dtype(series.dtype)
    except Exception as error:
        raise UserError(f"{path} is not a readable TIFF ({_error_text(error)})") from None


def channel_last_order(shape: tuple[int, ...], axes: str, path: str = "") -> tuple[list[int], bool]:
    """Axis order turning a CYX / CZYX / ZCYX array channel-last, and whether a channel axis
    must be added (single-channel ZYX / YX files).

    tifffile names axes from the file's metadata (ImageJ, OME). Unknown names (Q, I) mean the
    writer stored none: channels are then taken to come first (C, [Z,] Y, X), as Allen
    pipelines write them.
    """
    axes = axes.upper().replace("S", "C")  # planar samples of a plain 3-page TIFF = channels
    if len(axes) == len(shape) and "C" not in axes and set(axes) <= set("ZYX") and {"Y", "X"} <= set(axes):
        return [axes.index(a) for a in "ZYX" if a in axes], True
    if len(axes) != len(shape) or "C" not in axes or not set(axes) <= set("CZYX"):
        axes = {3: "CYX", 4: "CZYX"}.get(len(shape), "")  # unnamed (Q, I, ...) axes: C first
    if sorted(axes) not in (sorted("CYX"), sorted("CZYX")):
        raise UserError(
            f"{path} must hold a 2D (CYX) or 3D (CZYX or ZCYX) multi-channel cell. "
            f"Received: shape {tuple(shape)}, axes {axes or '?'!r}"
        )
    return [axes.index(a) for a in ("Z", "Y", "X", "C") if a in axes], False


def to_channel_last(array: np.ndarray, axes: str, path: str = "") -> np.ndarray:
    """(C, Y, X), (C, Z, Y, X) or (Z, C, Y, X) → (Y, X, C) or (Z, Y, X, C)."""
    order, add_channel = channel_last_order(array.shape, axes, path)
    array = np.transpose(array, order)
    return array[..., None] if add_channel else array


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
                f"{self.paths[i]} has {n_channels} channel(s) but the manifest asks for channel "
                f"{int(self.channels[i].max())}"
            )
        image = image[..., self.channels[i]]
        if image.shape != self.shape[1:]:
            raise UserError(
                f"{self.paths[i]} must be {self.shape[1:-1]} like the other cells. "
                f"Received: {image.shape[:-1]} (resize or crop cells to one size first)"
            )
        return image

    def _take(self, indices):
        out = np.empty((len(indices),) + self.shape[1:], self.dtype)
        for j, i in enumerate(indices):
            out[j] = self.load(i)
        return out


def read_allencell(
    manifest,
    membrane: int | None = None,
    dna: int | None = None,
    structure: int | None = None,
    expected_shape: tuple[int, ...] | None = None,
    check_finite: bool = True,
    allow_unfinished: bool = False,
) -> CellImages:
    """Read an Allen-style manifest.

    Every cell's TIFF header is read at once (not its pixels) to check that the file is a
    readable TIFF with the channels the manifest names and that all cells share one shape;
    pixels are read when a batch needs them.

    Args:
        manifest: str or Path. The manifest CSV, or a folder holding ``manifest.csv``.
        membrane, dna, structure: int or None. Channel indices for every cell; None reads the
            manifest's ``ch_membrane`` / ``ch_dna`` / ``ch_structure`` columns.
        expected_shape: (H, W) or (D, H, W) or None. Reject cells of another size ((H, W)
            compares the last two spatial axes of 3D cells).
        check_finite: bool. Scan float cells for NaN/inf now when they take less than
            512 MB. Defaults to True.
        allow_unfinished: bool. Read a folder marked unfinished (`statcell_tf.data.unfinished`)
            as it is. Defaults to False (refused).

    Returns:
        CellImages of float32 (H, W, 3) or (D, H, W, 3) cells with channels membrane, dna,
        structure and the manifest's columns plus ``label`` (= structure_name) and ``group``
        (= CellId).
    """
    manifest = Path(manifest)
    if not manifest.exists():
        raise UserError(f"--data {manifest} does not exist")
    unfinished.check(manifest, "--data", allow_unfinished)
    if manifest.is_dir():
        candidate = manifest / "manifest.csv"
        if not candidate.exists():
            raise UserError(f"--data {manifest} is a folder without manifest.csv")
        manifest = candidate
    table = validation.read_csv(manifest)
    tables.require_ids(table, REQUIRED_COLUMNS, manifest)
    if table.empty:
        raise UserError(f"{manifest} must list at least one cell. Received: a header without rows")
    if table["CellId"].duplicated().any():
        duplicate = table["CellId"][table["CellId"].duplicated()].iloc[0]
        raise UserError(f"{manifest} must list each CellId once. Received: CellId {duplicate} more than once")
    overrides = {"membrane": membrane, "dna": dna, "structure": structure}
    columns = []
    for name in CHANNELS:
        if overrides[name] is not None:
            columns.append(np.full(len(table), int(overrides[name])))
        elif f"ch_{name}" in table:
            values = pd.to_numeric(table[f"ch_{name}"], errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
            if bad.any():
                row = int(np.argmax(bad))
                raise UserError(
                    f"{manifest}: ch_{name} must be a channel index (0, 1, ...) on every row. "
                    f"Received: {table[f'ch_{name}'].iloc[row]!r} for CellId {table['CellId'].iloc[row]}"
                )
            columns.append(values.astype(np.int64))
        else:
            raise UserError(
                f"{manifest} has no ch_{name} column; add it or pass --{name}-channel. "
                f"Received columns: {', '.join(map(str, table.columns))}"
            )
    channels = np.stack(columns, axis=1)
    paths = [str(p if Path(p).is_absolute() else manifest.parent / p) for p in table["path"].astype(str)]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"{len(missing)} file(s) in {manifest} do not exist (first: {missing[0]})")
    spatial, floating = None, False
    for i, path in enumerate(paths):
        shape, axes, dtype = tiff_layout(path)
        floating |= np.issubdtype(dtype, np.floating)
        order, add_channel = channel_last_order(shape, axes, path)
        moved = tuple(shape[a] for a in order) + ((1,) if add_channel else ())
        if channels[i].max() >= moved[-1]:
            raise UserError(
                f"{path} (CellId {table['CellId'].iloc[i]}) has {moved[-1]} channel(s) but {manifest} "
                f"asks for channel {int(channels[i].max())}"
            )
        if spatial is None:
            spatial = moved[:-1]
        elif moved[:-1] != spatial:
            raise UserError(
                f"{path} (CellId {table['CellId'].iloc[i]}) must be {spatial} like {paths[0]}: all cells "
                f"must share one shape. Received: {moved[:-1]}"
            )
    if expected_shape is not None and tuple(spatial[-len(expected_shape):]) != tuple(expected_shape):
        raise UserError(
            f"{paths[0]}: cells must be {'x'.join(map(str, expected_shape))}. "
            f"Received: {'x'.join(map(str, spatial))}"
        )
    images = ManifestImages(paths, channels, spatial + (3,))
    metadata = table.copy()
    metadata["label"] = metadata["structure_name"].astype(str)
    metadata["group"] = metadata["CellId"].astype(str)
    cells = CellImages(images, metadata, CHANNELS, str(manifest))
    if check_finite and floating:  # integer pixels cannot be NaN
        validation.check_finite(cells)
    return cells
