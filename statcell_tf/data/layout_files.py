"""The files of each crop layout, written in ONE place (prepare-crops and make-synthetic-data).

- OpenCell (`statcell_tf.data.opencell`): per set ``<prefix>_pro.npy``, ``<prefix>_nuc.npy``,
  ``<prefix>_nucdist.npy`` (float32 ``(N, H, W)``) and ``<prefix>_label.csv``, the labels last
  (a reader that sees the labels sees the arrays).
- BBBC021 (`statcell_tf.data.bbbc021`): one ``.npy`` per crop ``(H, W, C)``.
- Allen Cell (`statcell_tf.data.allencell`): one TIFF per cell, axes ``CYX`` or ``CZYX``
  (OME-TIFF with channel names when they are given); the manifest's ``ch_<channel>`` columns
  give each channel's index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

OPENCELL_ARRAYS: tuple[str, ...] = ("pro", "nuc", "nucdist")
OPENCELL_SUFFIXES: tuple[str, ...] = tuple(f"_{key}.npy" for key in OPENCELL_ARRAYS) + ("_label.csv",)


def write_opencell_set(folder: str | Path, prefix: str, arrays: Mapping[str, np.ndarray], labels: pd.DataFrame) -> None:
    """Write one OpenCell set ``<prefix>_{pro,nuc,nucdist}.npy`` + ``<prefix>_label.csv`` into `folder`.

    Args:
        folder: str or Path. An existing folder (a staging folder when the caller moves the files).
        prefix: str. The set's name.
        arrays: mapping. ``pro``, ``nuc``, ``nucdist`` arrays ``(N, H, W)`` (saved as float32).
        labels: DataFrame. One row per crop.
    """
    folder = Path(folder)
    for key in OPENCELL_ARRAYS:
        np.save(folder / f"{prefix}_{key}.npy", np.asarray(arrays[key]).astype(np.float32, copy=False))
    labels.to_csv(folder / f"{prefix}_label.csv", index=False)


def write_bbbc021_crop(path: str | Path, crop: np.ndarray) -> None:
    """One BBBC021-layout crop ``(H, W, C)`` as ``.npy``, in its own dtype."""
    np.save(path, crop)


def write_allen_cell(path: str | Path, image: np.ndarray, channel_names: Sequence[str] | None = None) -> None:
    """One Allen-layout cell ``(C, [Z,] Y, X)`` as a TIFF (an OME-TIFF naming its channels when given)."""
    import tifffile

    axes = "CZYX" if image.ndim == 4 else "CYX"
    if channel_names is None:
        tifffile.imwrite(path, image, metadata={"axes": axes})
    else:
        tifffile.imwrite(path, image, ome=True, metadata={"axes": axes, "Channel": {"Name": list(channel_names)}})


def allen_channel_columns(channel_names: Sequence[str]) -> dict[str, int]:
    """The manifest's channel-index columns: ``{"ch_<name>": index}``."""
    return {f"ch_{name}": i for i, name in enumerate(channel_names)}
