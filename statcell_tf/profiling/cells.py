"""Cell tables in the profiling convention, read and validated once.

The convention shared by ``bin/embed``, ``bin/embed-classical`` and ``profile-moa``: one row
per cell (or per well / treatment profile), metadata columns named ``Metadata_<name>``
(``Metadata_plate``, ``Metadata_well``, ``Metadata_compound``, ``Metadata_concentration``,
``Metadata_moa``, optional ``Metadata_batch``) and every other column a numeric feature
(learned ``global_0``, ``mu_3``, ``z_0``…; classical ``Cells_Intensity_MeanIntensity_DNA``…).
Older tables name the metadata bare (``plate``, ``well``, …) and their features ``z_0``-like;
both are accepted. Every format is read by `statcell_tf.data.embedding_files.read_embeddings`.

Inside the package the metadata go by their bare names (the NSC/NSCB code and the crops'
metadata use them); profiles are written back with ``Metadata_`` names
(`profiles.METADATA`).
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from statcell_tf.data import tables
from statcell_tf.data.embedding_files import BARE_KEYS, METADATA_PREFIX, read_embeddings, split_columns
from statcell_tf.errors import UserError
from statcell_tf.profiling import moa

KEYS = BARE_KEYS


@dataclasses.dataclass
class CellTable:
    """A validated cell table: bare metadata + float64 feature columns.

    Attributes:
        table: DataFrame. Metadata (plate, well, compound, concentration, moa[, batch],
            other ``Metadata_*`` kept) and the features, as float64.
        features: list of the feature columns.
        dropped_rows: int. Rows dropped for non-finite values (``nonfinite="drop"`` only).
        source: str. Names the table in messages (``--embeddings cells.parquet``).
    """

    table: pd.DataFrame
    features: list
    dropped_rows: int
    source: str


def bare_metadata(table: pd.DataFrame) -> pd.DataFrame:
    """``Metadata_plate`` → ``plate`` (and so on for `KEYS`) where the bare name is absent."""
    renames = {f"{METADATA_PREFIX}{key}": key for key in KEYS
               if f"{METADATA_PREFIX}{key}" in table.columns and key not in table.columns}
    return table.rename(columns=renames)


def validate_cells(
    table: pd.DataFrame, source: str, prefix: str | None = None, nonfinite: str = "error",
    features: list[str] | None = None,
) -> CellTable:
    """Check metadata and features of a cell table (see `tables.numeric_matrix`).

    Args:
        table: DataFrame as read (either naming convention).
        source: str. Names the table in messages.
        prefix: str or None. Feature columns starting with it (`embedding_files.split_columns`).
        nonfinite: ``"error"`` stops at a NaN/inf/empty feature cell; ``"drop"`` drops the
            cells holding one and counts them. A text cell always stops.
        features: list of str or None. The feature columns when known (from the reader).
    """
    if features is None:
        _, features = split_columns(table, prefix, source)
    table = moa.check_table(bare_metadata(table), source)
    values, kept = tables.numeric_matrix(table, features, source, nonfinite=nonfinite)
    if not kept.any():
        raise UserError(f"{source}: every row holds a non-finite feature value; nothing left to profile")
    metadata = table.drop(columns=features)[kept].reset_index(drop=True)
    # One block for the features: assigning hundreds of columns one by one fragments the frame.
    values = pd.DataFrame(values, columns=features)
    return CellTable(pd.concat([metadata, values], axis=1), features, int((~kept).sum()), source)


def read_cells(path, vectors: str | None = None, prefix: str | None = None, nonfinite: str = "error",
               flag: str = "--embeddings") -> CellTable:
    """Read (`embedding_files.read_embeddings`, the one reader) and validate (`validate_cells`) one cell table."""
    metadata, features = read_embeddings(path, vectors, flag, prefix, check_finite=False)
    table = pd.concat([metadata, features], axis=1)
    return validate_cells(table, f"{flag} {path}", nonfinite=nonfinite, features=list(features.columns))


def as_metadata_names(table: pd.DataFrame, features) -> pd.DataFrame:
    """Bare metadata names → ``Metadata_<name>``; feature columns keep their names."""
    features = set(features)
    return table.rename(columns={c: f"{METADATA_PREFIX}{c}" for c in table.columns
                                 if c not in features and not str(c).startswith(METADATA_PREFIX)})

