"""Tables of cells, wells or features: one reader and one validator for every command.

Every command that reads a CSV, TSV or Parquet table of cells (embeddings, classical
features, profiles, manifests) goes through `read_table` and, for its numeric columns,
`numeric_matrix`. Two rules hold everywhere:

- **Identifiers are text, kept as written.** A plate, well, protein or compound literally
  named ``NA``, ``None`` or ``nan`` is that name, not a missing value (pandas' default
  would turn it into NaN and merge such groups). Only an empty cell is missing.
- **A numeric column holds finite numbers only.** A text cell, an empty cell, NaN or ±inf
  in a feature column stops with one line naming the file, column, row and value (never a
  silently dropped column or a NaN that spreads through every distance). With
  ``nonfinite="drop"`` rows with non-finite values are dropped instead and counted, for
  users who ask for it explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.data import validation
from statcell_tf.errors import UserError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def read_table(path, flag: str | None = None, text: bool = False) -> pd.DataFrame:
    """Read a CSV/TSV or Parquet table with identifiers kept as written (see module docstring).

    Args:
        path: str or Path. The table; the suffix chooses the format.
        flag: str or None. The command-line flag that named `path`, for error messages.
        text: bool. Every column as text (CSV / TSV: as written, so a well ``01`` or a plate
            ``0001`` keeps its zeros; Parquet: each value's ``str``), empty cells as ``""``.
            Defaults to False (numbers parsed, empty cells missing).
    """
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise UserError(f"{where} is a folder; expected a table file ({', '.join(TABLE_SUFFIXES)})")
    if not path.exists():
        raise UserError(f"{where} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{where}: expected a table file ({', '.join(TABLE_SUFFIXES)}). Received suffix: {suffix!r}")
    if suffix in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(path)
        except OSError as error:
            raise UserError(f"{where} cannot be read ({error.strerror or error})") from None
        except Exception as error:  # pyarrow raises its own ArrowInvalid etc.
            raise UserError(f"{where} is not a readable Parquet file ({str(error).splitlines()[0]})") from None
    else:
        table = validation.read_csv(
            path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""],
            dtype=str if text else None,
        )
    if len(table.columns) == 0:
        raise UserError(f"{where} has no columns")
    header = list(table.columns) if suffix in (".parquet", ".pq") else validation.csv_header(path)
    duplicated = sorted({str(c) for c in header if header.count(c) > 1})
    if duplicated:
        raise UserError(f"{where} has duplicate column name(s): {', '.join(map(str, duplicated))}")
    if text:
        table = table.astype(object).where(table.notna(), "").astype(str)
        table.columns = [str(c).strip() for c in table.columns]
    return table


def numeric_matrix(
    table: pd.DataFrame,
    columns: Sequence[str],
    source: str,
    nonfinite: str = "error",
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 values of `columns`, after checking every cell is a finite number.

    Args:
        table: DataFrame.
        columns: the numeric (feature) columns.
        source: str. Names the table in messages (``--embeddings cells.csv``).
        nonfinite: ``"error"`` (default) stops at the first NaN, ±inf or empty cell;
            ``"drop"`` drops the rows holding one. A text cell always stops.

    Returns:
        (values (N', D) float64, kept (N,) bool): the rows kept.
    """
    if nonfinite not in ("error", "drop"):
        raise ValueError(f"nonfinite must be 'error' or 'drop', not {nonfinite!r}")
    columns = list(columns)
    if not columns:
        raise UserError(f"{source} has no feature columns")
    values = np.empty((len(table), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        series = table[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            parsed = pd.to_numeric(series, errors="coerce")
            spelled_nan = series.astype(str).str.strip().str.lower().isin(("nan", "+nan", "-nan"))
            text = parsed.isna() & series.notna() & ~spelled_nan
            if text.any():
                row = int(np.argmax(text.to_numpy()))
                raise UserError(
                    f"{source}: column {column!r} must hold numbers. Received: {series.iloc[row]!r} "
                    f"in row {row + 1} ({int(text.sum())} non-numeric cell(s) in that column)"
                )
            series = parsed
        values[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    kept = finite.all(axis=1)
    if not kept.all() and nonfinite == "error":
        row, j = np.argwhere(~finite)[0]
        raw = table[columns[j]].iloc[row]
        # read_table parses only empty cells as missing: a missing value was an empty cell
        shown = "an empty cell (or NaN)" if pd.isna(raw) else repr(raw.item() if hasattr(raw, "item") else raw)
        raise UserError(
            f"{source}: column {columns[j]!r} must hold finite numbers. Received: {shown} in row {row + 1} "
            f"({int((~kept).sum())} row(s) with NaN, inf or empty values; drop them or fix the table)"
        )
    return values[kept], kept


def require_ids(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Every identifier column present and never empty (``NA`` is a name, not a gap)."""
    validation.require_columns(table, columns, source)
    for column in columns:
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            raise UserError(
                f"{source}: column {column!r} must name every row. Received: an empty cell in row {row + 1} "
                f"({int(empty.sum())} empty)"
            )


def duplicate_rows(table: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of `table` that repeat an earlier row (on `keys`, or on every column)."""
    return table[table.duplicated(subset=list(keys) if keys else None, keep="first")]
