"""The ``metadata`` group of HDF5 embedding files: one 1-D dataset per column.

Shared by the writers and readers of cell embeddings (`statcell_tf.cytoself.embeddings`
writes them, `statcell_tf.profiling.moa` reads any such table). Text columns are stored as
UTF-8 strings, numbers and booleans as numbers; the group's ``columns`` attribute keeps the
column order.
"""

from __future__ import annotations

import json

import pandas as pd


def write_metadata(group, metadata: pd.DataFrame) -> None:
    """Write `metadata` into an open HDF5 group, one dataset per column (see module docstring)."""
    import h5py

    for column in metadata.columns:
        values = metadata[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            group.create_dataset(str(column), data=values.to_numpy())
        else:
            text = values.astype(str).where(values.notna(), "").to_numpy()
            group.create_dataset(str(column), data=text.astype(object), dtype=h5py.string_dtype("utf-8"))
    group.attrs["columns"] = json.dumps([str(c) for c in metadata.columns])


def read_metadata(group) -> pd.DataFrame:
    """The metadata table of an open HDF5 ``metadata`` group, one 1-D dataset per column.

    Columns come in the order of the group's ``columns`` attribute (written by
    `write_metadata`), else in the group's order; text datasets are decoded as UTF-8.
    """
    import h5py

    columns = json.loads(group.attrs["columns"]) if "columns" in group.attrs else list(group.keys())
    return pd.DataFrame(
        {c: (group[c].asstr()[()] if h5py.check_string_dtype(group[c].dtype) else group[c][()]) for c in columns}
    )
