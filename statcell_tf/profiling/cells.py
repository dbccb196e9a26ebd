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
    if not len(table):
        raise UserError(f"{source} holds no cells (a header without rows); expected one row per cell")
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


def check_controls(table: pd.DataFrame, control: str, source: str) -> None:
    """The control labels of a validated cell table, checked once for every evaluation.

    Matching is exact; a compound spelled like `control` but for case or spaces (``dmso``,
    ``DMSO ``) is named in the error. Control rows must not carry the mechanism of a treated
    compound, and share one concentration (a control with a dose is pointed out).
    """
    compounds = table["compound"].astype(str)
    exact = (compounds == control).to_numpy()

    def key(text: str) -> str:
        return " ".join(str(text).split()).casefold()

    near = sorted(set(compounds[~exact & (compounds.map(key) == key(control)).to_numpy()]))
    if near:
        count = int(compounds.isin(near).sum())
        raise UserError(
            f"{source}: control labels must match --control {control!r} exactly; {count} row(s) spell it "
            f"{', '.join(map(repr, near))}. Fix those labels (or pass --control with their spelling)"
        )
    if not exact.any():
        shown = ", ".join(sorted(compounds.unique())[:10])
        raise UserError(f"{source} has no control cells (compound == {control!r}); pass --control NAME. "
                        f"Received compounds: {shown}")
    treated = set(table.loc[~exact, "moa"].astype(str))
    borrowed = sorted(set(table.loc[exact, "moa"].astype(str)) & treated)
    if borrowed:
        raise UserError(
            f"{source}: control {control!r} rows carry the mechanism {', '.join(map(repr, borrowed))} of treated "
            f"compounds; a control has no mechanism of action (label its moa {control!r}). Received: "
            f"{int(table.loc[exact, 'moa'].astype(str).isin(borrowed).sum())} such row(s)"
        )
    doses = sorted(set(table.loc[exact, "concentration"].astype(float)))
    if len(doses) > 1:
        raise UserError(
            f"{source}: control {control!r} rows have several concentrations ({', '.join(f'{d:g}' for d in doses)}); "
            "a control has one (usually 0): check the rows with a dose"
        )


# Columns that identify a cell, besides plate, well, compound, concentration (whichever all tables have).
ID_COLUMNS = ("file", "cell_id", "CellId", "cell_index", "site", "field", "fov", "nucleus_label", "image")


def same_cells(methods: list, intersect: bool = False) -> tuple[list, str | None]:
    """Tables compared side by side must describe the same cells: check it, or keep the shared ones.

    A cell is identified by the metadata every table has among plate, well, compound,
    concentration and `ID_COLUMNS`, numbered within repeats (several cells of one well).

    Args:
        methods: list of (label, CellTable).
        intersect: bool. Keep only the cells every table holds (the user's explicit choice)
            instead of refusing.

    Returns:
        (methods, a note saying what was dropped or None).
    """
    if len(methods) < 2:
        return methods, None
    shared = set.intersection(*(set(c.table.columns) - set(c.features) for _, c in methods))
    columns = [c for c in ("plate", "well", "compound", "concentration", *ID_COLUMNS) if c in shared]

    def keys(cells: CellTable) -> pd.Series:
        frame = cells.table[columns].astype(str)
        repeat = frame.groupby(columns, sort=False).cumcount().astype(str)
        return frame.agg("|".join, axis=1) + "#" + repeat

    identified = [(label, cells, keys(cells)) for label, cells in methods]
    common = set.intersection(*(set(k) for _, _, k in identified))
    differ = [(label, len(k), int((~k.isin(common)).sum()), k[~k.isin(common)]) for label, _, k in identified]
    if not any(n for _, _, n, _ in differ):
        return methods, None
    summary = "; ".join(f"{label}: {total} cells, {n} not in every table" for label, total, n, _ in differ)
    if not intersect:
        first = next(extra.iloc[0] for _, _, n, extra in differ if n)
        raise UserError(
            f"--embeddings tables compared side by side must describe the same cells (matched on "
            f"{', '.join(columns)}): {summary} (first: {first.replace('|', ', ')}); pass --intersect to compare "
            f"the {len(common)} cells they share"
        )
    kept = []
    for label, cells, k in identified:
        mask = k.isin(common).to_numpy()
        kept.append((label, dataclasses.replace(cells, table=cells.table[mask].reset_index(drop=True))))
    return kept, f"--intersect: compared the {len(common)} cells every table holds ({summary})"


def as_metadata_names(table: pd.DataFrame, features) -> pd.DataFrame:
    """Bare metadata names → ``Metadata_<name>``; feature columns keep their names."""
    features = set(features)
    return table.rename(columns={c: f"{METADATA_PREFIX}{c}" for c in table.columns
                                 if c not in features and not str(c).startswith(METADATA_PREFIX)})

