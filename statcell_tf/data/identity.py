"""What a data set is, in a few bytes: the identity a run records of the data it was trained on.

A run's ``config.json`` keeps ``data.identity`` (`data_identity`); whatever later uses the
run's split on some ``--data`` compares that data's identity with it (`compare`) and refuses
other data in one line, instead of reading rows of unrelated cells as the run's test split.

The identity holds:

- ``num_cells`` and ``image_shape`` (spatial size and channels, as read: before the model's
  own preprocessing);
- ``ids_digest``: a digest of the ordered cell ids (the first of `ID_COLUMNS` the metadata
  has; without one, of the whole metadata table, row by row);
- ``files_digest``: a digest of the data's files: relative names and sizes of every data file
  under the source folder (or the source file), plus the bytes at the start, middle and end
  of up to `SAMPLED_FILES` of them;
- ``pixels_digest``: a digest of `SAMPLED_CELLS` cells' pixels, evenly spaced over the data,
  read through the data's own reader (so regenerated images under the same names and ids are
  seen, whatever the format keeps its pixels in).

Cheap on any size: one ``stat`` per file, at most 64 × 12 KiB and 8 cells read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

ID_COLUMNS = ("cell_id", "CellId", "file")
DATA_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".tif", ".tiff", ".h5", ".hdf5", ".parquet", ".zarray", ".zgroup")
SAMPLED_FILES = 64
SAMPLE_BYTES = 4096
SAMPLED_CELLS = 8


def cell_ids(metadata: pd.DataFrame) -> tuple[str | None, np.ndarray]:
    """(column, ids as text) of the cells: the first id column present, else (None, row numbers)."""
    for column in ID_COLUMNS:
        if column in metadata.columns:
            return column, metadata[column].astype(str).to_numpy()
    return None, np.arange(len(metadata)).astype(str)


def _digest(parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def ids_digest(metadata: pd.DataFrame) -> str:
    column, ids = cell_ids(metadata)
    if column is not None:
        return _digest(ids)
    hashed = pd.util.hash_pandas_object(metadata.astype(str), index=False).to_numpy()
    return _digest([hashed.tobytes(), ",".join(map(str, metadata.columns))])


def _data_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        return []
    found = []
    for root, folders, files in os.walk(source):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [Path(root) / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in DATA_SUFFIXES]
    return found


def _sample(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        chunks = []
        for offset in sorted({0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)}):
            handle.seek(offset)
            chunks.append(handle.read(SAMPLE_BYTES))
    return b"".join(chunks)


def files_digest(source) -> str | None:
    """Digest of the data files at `source` (names, sizes, sampled bytes); None if unreadable."""
    source = Path(str(source))
    try:
        files = _data_files(source)
        if not files:
            return None
        base = source if source.is_dir() else source.parent
        sizes = [f.stat().st_size for f in files]
        parts = [f"{f.relative_to(base)}:{s}" for f, s in zip(files, sizes)]
        step = max(1, len(files) // SAMPLED_FILES)
        parts += [_sample(f, s) for f, s in list(zip(files, sizes))[::step][:SAMPLED_FILES]]
        return _digest(parts)
    except OSError:
        return None


def pixels_digest(cells) -> str:
    """Digest of the pixels of up to `SAMPLED_CELLS` cells evenly spaced over `cells`."""
    n = len(cells)
    if n == 0:
        return _digest([])
    rows = np.unique(np.linspace(0, n - 1, min(SAMPLED_CELLS, n)).round().astype(np.int64))
    images = np.ascontiguousarray(np.asarray(cells.images[rows]))
    return _digest([str(images.dtype), str(images.shape), images.tobytes()])


def data_identity(cells) -> dict:
    """The identity of `cells` (CellImages) as a JSON-able dict."""
    column, _ = cell_ids(cells.metadata)
    return {
        "source": str(cells.source),
        "num_cells": int(len(cells)),
        "image_shape": [int(s) for s in cells.image_shape],
        "channels": list(cells.channel_names),
        "ids_column": column,
        "ids_digest": ids_digest(cells.metadata),
        "files_digest": files_digest(cells.source),
        "pixels_digest": pixels_digest(cells),
    }


def differences(recorded: dict, current: dict) -> list[str]:
    """What differs between two identities, in words (empty when they describe the same data)."""
    found = []
    if recorded.get("num_cells") != current.get("num_cells"):
        found.append(f"{current.get('num_cells')} cells, the run's data had {recorded.get('num_cells')}")
    if list(recorded.get("image_shape") or []) != list(current.get("image_shape") or []):
        found.append(f"images of shape {describe_shape(current.get('image_shape'))}, the run's were "
                     f"{describe_shape(recorded.get('image_shape'))}")
    if not found and recorded.get("ids_digest") != current.get("ids_digest"):
        what = f"cell ids ({recorded.get('ids_column')})" if recorded.get("ids_column") else "cell metadata"
        found.append(f"other {what}: digest {current.get('ids_digest')}, the run's {recorded.get('ids_digest')}")
    for key, what in (("files_digest", "other files"), ("pixels_digest", "other pixels")):
        if not found and None not in (recorded.get(key), current.get(key)) and recorded.get(key) != current.get(key):
            found.append(f"{what}: digest {current.get(key)}, the run's {recorded.get(key)}")
    return found


def describe_shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape) if shape else "unknown"
