"""Deterministic grouped splits: no group (field of view, well, cell) in two splits.

Groups are ordered by an MD5 hash of ``"<seed>:<group>"`` (stable across runs, machines and
Python versions, unlike ``hash()``), then filled into train, val and test until each holds its
fraction of the images (`split_indices`). Where a group gets depends on the other groups of the
table, so that rule cannot place a group that was not in the table a split was made from;
`hash_splits` does: it thresholds each group's own hash, whatever else is in the table.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.errors import UserError

SPLITS = ("train", "val", "test")


def _key(seed: int, group: str) -> str:
    return hashlib.md5(f"{seed}:{group}".encode()).hexdigest()


def _check_fractions(fractions) -> np.ndarray:
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise UserError(f"split fractions must be three non-negative numbers summing to 1. Received: {list(fractions)}")
    return fractions


def hash_splits(groups, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Split name of each group from its own hash only (train, val or test).

    The MD5 hash of ``"<seed>:<group>"`` read as a number u in [0, 1) picks train when
    u < f_train, val when u < f_train + f_val, else test. A group's split therefore never
    depends on the other groups (unlike `split_indices`, which fills the fractions exactly);
    the fractions hold only on average.

    Args:
        groups: sequence of group ids (converted with ``str``).
        fractions: three floats. Expected train, val and test fractions of the groups (sum 1).
        seed: int. The seed of the hash.

    Returns:
        (N,) object array of ``"train"``, ``"val"`` or ``"test"``.
    """
    fractions = _check_fractions(fractions)
    bounds = np.cumsum(fractions)[:2]
    # The first 52 bits of the hash: exact in a float64, so u < 1 always.
    u = np.array([int(_key(seed, str(g))[:13], 16) / 16**13 for g in groups], dtype=float)
    codes = np.searchsorted(bounds, u, side="right")
    return np.array(SPLITS, dtype=object)[codes] if len(u) else np.array([], dtype=object)


def split_indices(
    metadata: pd.DataFrame, group_column: str = "group", fractions=(0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Split the rows of `metadata` by group.

    Args:
        metadata: DataFrame. One row per image.
        group_column: str. Rows sharing its value stay together. Defaults to "group".
        fractions: three floats. Train, val and test fractions of the images (sum 1).
        seed: int. Changes the assignment; the same seed always gives the same split.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}`` of sorted int64 row indices.
    """
    if group_column not in metadata:
        raise UserError(
            f"--group-column {group_column!r} is not a metadata column. "
            f"Received columns: {', '.join(map(str, metadata.columns))}"
        )
    fractions = _check_fractions(fractions)
    groups = metadata[group_column].astype(str).to_numpy()
    sizes = pd.Series(groups).value_counts()
    order = sorted(sizes.index, key=lambda g: _key(seed, g))
    bounds = np.cumsum(fractions) * len(groups)
    assignment, filled = {}, 0
    for position, group in enumerate(order):
        # Place the group where the midpoint of its images falls.
        midpoint = filled + sizes[group] / 2
        split = int(np.searchsorted(bounds[:2], midpoint, side="right"))
        # With few groups make sure val and test are not left empty.
        remaining = len(order) - position
        taken = set(assignment.values())
        if remaining <= 2 and len(order) >= 3:
            for wanted in (1, 2):
                if fractions[wanted] > 0 and wanted not in taken and split != wanted:
                    if remaining == 1 or wanted == 1:
                        split = wanted
                        break
        assignment[group] = split
        filled += sizes[group]
    codes = pd.Series(groups).map(assignment).to_numpy(dtype=np.int64)
    return {name: np.flatnonzero(codes == i).astype(np.int64) for i, name in enumerate(SPLITS)}


def splits_table(
    metadata: pd.DataFrame, splits: dict, group_column: str | None = "group", id_column: str | None = None
) -> pd.DataFrame:
    """The one splits.csv schema: one row per cell with its ``row`` in the data, ``cell_id``
    (`id_column`, else the row), ``group`` (`group_column`, else the cell) and ``split``
    (train, val, test, or empty for a cell in none)."""
    split = np.full(len(metadata), "", dtype=object)
    for name, rows in splits.items():
        split[np.asarray(rows, np.int64)] = name
    rows = np.arange(len(metadata))
    ids = metadata[id_column].astype(str).to_numpy() if id_column else rows.astype(str)
    groups = metadata[group_column].astype(str).to_numpy() if group_column else ids
    return pd.DataFrame({"row": rows, "cell_id": ids, "group": groups, "split": split})


def save_splits(path, metadata: pd.DataFrame, splits: dict, group_column: str = "group", id_column=None):
    """Record the split of every row (`splits_table`) as CSV, atomically."""
    return atomic.write_csv(path, splits_table(metadata, splits, group_column, id_column))


def load_splits(path, n: int) -> dict[str, np.ndarray]:
    """Read a split written by `save_splits`, checking it was made for these `n` images.

    Returns:
        ``{"train", "val", "test"}`` of sorted int64 row indices (rows recorded with another
        or no split name belong to none).
    """
    from statcell_tf.data import validation

    table = validation.read_csv(path)
    validation.require_columns(table, ["row", "split"], path)
    if len(table) != n:
        raise UserError(f"{path} records a split of {len(table)} images but the data has {n}")
    rows = pd.to_numeric(table["row"], errors="coerce")
    if rows.isna().any() or not np.array_equal(np.sort(rows.to_numpy()), np.arange(n)):
        raise UserError(f"{path}: column row must list every image 0..{n - 1} once. Received: {len(table)} rows")
    rows = rows.to_numpy(np.int64)
    split = table["split"].astype(str).to_numpy()
    return {name: np.sort(rows[split == name]) for name in SPLITS}
