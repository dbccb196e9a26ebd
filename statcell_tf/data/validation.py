"""Input checks shared by every reader: safe .npy / CSV loading and finiteness scans.

Each failure is a `UserError` naming the file and what was wrong with it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError

# Data up to this size is scanned for NaN/inf when read; larger data is checked batch by
# batch in the pipeline (a full scan of a 100 GB release would take longer than training).
FULL_SCAN_BYTES = 512 * 2**20
_CHUNK_BYTES = 64 * 2**20


def load_npy(path: Path):
    """Memory-map a .npy file (never unpickling); clear errors for truncated or odd files."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic != b"\x93NUMPY":
            raise UserError(
                f"{path} is not a .npy file (no NUMPY header). Received: {len(magic)} leading bytes {magic!r}"
            )
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as error:
        text = str(error) or type(error).__name__
        if "pickle" in text.lower() or "python objects" in text.lower():
            raise UserError(
                f"{path} must hold numeric images. Received: pickled Python objects (dtype object)"
            ) from None
        raise UserError(f"{path} is truncated or not a valid .npy file ({text.splitlines()[0]})") from None
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror or error})") from None
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise UserError(f"{path} must hold numeric images. Received: dtype {getattr(array, 'dtype', '?')}")
    return array


def csv_header(path: Path) -> list[str]:
    """Column names on the first line of a CSV file (stripped); [] when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            return [column.strip() for column in next(csv.reader(file), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV table (`kwargs` go to `pandas.read_csv`); a clear error for an empty or
    unparsable file.

    Only empty cells are missing values: a plate, protein or field literally named ``NA``,
    ``None`` or ``nan`` keeps its name (pandas' default reads those as NaN and merges such
    groups). A number column holding such text then reads as text, and its validator
    (`statcell_tf.data.tables.numeric_matrix`) names the cell.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; expected a CSV file")
    kwargs.setdefault("keep_default_na", False)
    kwargs.setdefault("na_values", [] if kwargs.get("dtype") is str else [""])
    try:
        table = pd.read_csv(path, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not a readable CSV table ({str(error).splitlines()[0]})") from None
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror or error})") from None
    return table


def require_columns(table: pd.DataFrame, columns, path) -> None:
    """UserError listing the required columns missing from `table`."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(
            f"{path} is missing column(s) {', '.join(missing)}. "
            f"Received columns: {', '.join(map(str, table.columns))}"
        )


def first_nonfinite(array, start: int = 0):
    """Index of the first image with a NaN/inf pixel, or None (chunked, memory-safe)."""
    if not np.issubdtype(np.dtype(array.dtype), np.floating):
        return None
    n = len(array)
    per_image = max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    step = max(1, _CHUNK_BYTES // per_image)
    for begin in range(0, n, step):
        chunk = np.asarray(array[begin : begin + step])
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if bad.any():
            return start + begin + int(np.argmax(bad))
    return None


def check_finite(cells) -> None:
    """Scan small data sets for NaN/inf at read time (large ones are checked per batch)."""
    images = cells.images
    nbytes = int(np.prod(images.shape)) * np.dtype(images.dtype).itemsize
    if nbytes > FULL_SCAN_BYTES or not np.issubdtype(np.dtype(images.dtype), np.floating):
        return
    bad = first_nonfinite(images)
    if bad is not None:
        row = cells.metadata.iloc[bad]
        where = ", ".join(f"{k}={row[k]}" for k in ("prefix", "file", "path", "protein", "CellId") if k in row)
        raise UserError(
            f"image {bad} in {cells.source} ({where}) has NaN or infinite pixels; "
            "fix or drop it before training"
        )
