"""Per-cell embedding files: one writer and one reader for every model and for classical features.

Two formats, chosen by the output's suffix:

- **Parquet** (``.parquet``, ``.pq``): one row per cell, the exchange format of image-based
  profiling (pycytominer, copairs read it as it is).

  - every metadata column of the data → ``Metadata_<column>`` (a column already named
    ``Metadata_…``, as in CellProfiler tables, keeps its name). Float columns stay float64,
    booleans stay booleans; every other column (text, integers, categories: plates, wells,
    compounds, cell indices, replicates) is written as **text**, exactly as the reader gave it
    (a compound literally named ``NA`` stays the text ``NA``; a missing value is a null);
  - every other column is a **float32 feature**: ``<vector>_<j>`` for a model's vector
    flattened in C order (``global_0``, ``mu_12``, ``z_ref_3``), or a CellProfiler-style name
    for classical features (``Cells_Intensity_MeanIntensity_DNA``), so pycytominer's
    ``infer_cp_features`` finds them;
  - each written chunk is one row group (the file streams in and out); the writer's
    attributes (run, source, ...) sit in the schema metadata under ``statcell_tf``.

- **HDF5** (``.h5``, ``.hdf5``): one dataset per vector (N, ...) in its own shape and dtype, and
  group ``metadata`` with one 1-D dataset per metadata column under its original name (text
  as UTF-8 strings, numbers as numbers; the group's ``columns`` attribute keeps the order),
  plus file attributes.

`read_embeddings` is the one reader of both formats (and of CSV/TSV tables): profile-moa, the
cytoself analyses (`read_arrays`, arrays in their own shapes) and the tests use it.

Every file is written under a temporary name and renamed when complete
(`statcell_tf.atomic`): a failure leaves nothing behind. `check_out_file` validates the
destination before anything is computed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError

PARQUET_SUFFIXES = (".parquet", ".pq")
HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = PARQUET_SUFFIXES + HDF5_SUFFIXES
METADATA_PREFIX = "Metadata_"
# Bare metadata names of the profiling convention (never features, even beside Metadata_ columns).
BARE_KEYS = ("plate", "well", "compound", "concentration", "moa", "batch")
ATTRS_KEY = b"statcell_tf"


# ----- the metadata group of HDF5 files ---------------------------------------------------------
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


# ----- destination --------------------------------------------------------------------------------
def file_format(path, flag: str = "--out") -> str:
    """``"parquet"`` or ``"hdf5"`` from the suffix of `path`, else a UserError naming `flag`."""
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise UserError(
        f"{flag} {path}: expected a file ending in {', '.join(SUFFIXES)} (the suffix chooses the format). "
        f"Received suffix: {suffix or 'none'!r}"
    )


def check_out_file(out, flag: str = "--out", inputs: Sequence = ()) -> Path:
    """`out` if an embedding file can be written there; else one UserError line. Creates nothing.

    Refuses: an unknown suffix, a folder, a path under a regular file, an input (a file of
    the data or the run, or a path inside an input folder), and a location that cannot be
    written (read-only filesystem or no permission).
    """
    from statcell_tf.atomic import check_out

    out = Path(out)
    file_format(out, flag)
    if out.is_dir():
        raise UserError(f"{flag} {out} is a folder; expected a file path ending in {', '.join(SUFFIXES)}")
    return check_out(out, flag, inputs=[source for source in inputs if source is not None])


# ----- the one writer -----------------------------------------------------------------------------
def metadata_schema(metadata: pd.DataFrame):
    """The pyarrow schema of the ``Metadata_*`` columns of `metadata` (module docstring rule)."""
    import pyarrow as pa

    fields = []
    for column in metadata.columns:
        values = metadata[column]
        if pd.api.types.is_bool_dtype(values):
            kind = pa.bool_()
        elif pd.api.types.is_float_dtype(values):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(metadata_column(column), kind))
    return fields


def metadata_column(column) -> str:
    """``Metadata_<column>``; a column already named ``Metadata_…`` keeps its name."""
    column = str(column)
    return column if column.startswith(METADATA_PREFIX) else f"{METADATA_PREFIX}{column}"


def _metadata_arrays(chunk: pd.DataFrame, fields) -> list:
    import pyarrow as pa

    arrays = []
    for column, field in zip(chunk.columns, fields):
        values = chunk[column]
        if pa.types.is_string(field.type):
            text = [None if _missing(v) else str(v) for v in values.tolist()]
            arrays.append(pa.array(text, type=pa.string()))
        else:
            arrays.append(pa.array(values.to_numpy(), type=field.type))
    return arrays


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT


def feature_names(name: str, shape: Sequence[int]) -> list[str]:
    """Column names of vector `name` with per-cell shape `shape`, flattened in C order."""
    return [f"{name}_{j}" for j in range(int(np.prod(shape, dtype=np.int64)))]


class EmbeddingWriter:
    """Stream per-cell vectors and their metadata into one Parquet or HDF5 file, atomically.

    Use as a context manager; call `write` once per chunk, in cell order. The file appears
    under its name only when the block ends without an exception.

    Args:
        path: str or Path. Destination; its suffix chooses the format (`file_format`).
        metadata: DataFrame. One row per cell to be written, in order.
        attrs: mapping or None. Attributes stored with the file (HDF5 attributes; Parquet
            schema metadata as JSON under ``statcell_tf``).
        parquet_vectors: sequence of str or None. Parquet only: the vectors written as
            feature columns (the others are left out); None = every vector.
        named_columns: mapping or None. Vector → its column names (e.g. CellProfiler-style
            names); other vectors get ``<vector>_<j>``.
        hdf5_dtypes: mapping or None. HDF5 only: vector → stored dtype (e.g. ``float16``);
            default float32 for floats, the array's own dtype for integers.
        hdf5_extra: mapping or None. HDF5 only: extra 1-D datasets written whole at the end
            (e.g. ``label``, ``index``).
    """

    def __init__(
        self,
        path,
        metadata: pd.DataFrame,
        attrs: Mapping | None = None,
        parquet_vectors: Sequence[str] | None = None,
        named_columns: Mapping[str, Sequence[str]] | None = None,
        hdf5_dtypes: Mapping[str, str] | None = None,
        hdf5_extra: Mapping[str, np.ndarray] | None = None,
    ):
        self.path = Path(path)
        self.format = file_format(self.path)
        self.metadata = metadata.reset_index(drop=True)
        self.attrs = dict(attrs or {})
        self.parquet_vectors = None if parquet_vectors is None else list(parquet_vectors)
        self.named_columns = {k: list(v) for k, v in (named_columns or {}).items()}
        self.hdf5_dtypes = dict(hdf5_dtypes or {})
        self.hdf5_extra = dict(hdf5_extra or {})
        self.rows_written = 0
        self._context = None
        self._handle = None
        self._datasets: dict = {}
        self._parquet = None
        self._schema = None

    # ----- context ----------------------------------------------------------------------------
    def __enter__(self) -> "EmbeddingWriter":
        from statcell_tf.atomic import atomic_path

        self._context = atomic_path(self.path)
        self._tmp = self._context.__enter__()
        if self.format == "hdf5":
            import h5py

            self._handle = h5py.File(self._tmp, "w")
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                if self.rows_written != len(self.metadata):
                    raise RuntimeError(f"{self.rows_written} rows written for {len(self.metadata)} metadata rows")
                self._finish()
        except BaseException as failure:
            self._close()
            self._context.__exit__(type(failure), failure, failure.__traceback__)  # removes the temporary
            raise
        self._close()
        return self._context.__exit__(kind, error, traceback)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    # ----- writing ----------------------------------------------------------------------------
    def write(
        self,
        vectors: Mapping[str, np.ndarray],
        metadata: Mapping[str, Sequence] | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Append the next chunk: every vector (B, ...) for the next B cells.

        Args:
            vectors: name → array (B, ...). The same names in every chunk.
            metadata: column → B values for these cells, for metadata known only once the
                cells are processed (e.g. a QC flag); the column must exist in the writer's
                metadata (with a placeholder) so that its type is fixed from the start.
            columns: vector → column names (Parquet), when only known at the first chunk.
        """
        sizes = {name: len(value) for name, value in vectors.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"vectors of one chunk must have the same number of rows. Received: {sizes}")
        count = next(iter(sizes.values()), 0)
        start = self.rows_written
        if start + count > len(self.metadata):
            raise ValueError(f"{start + count} rows written for {len(self.metadata)} metadata rows")
        for column, values in (metadata or {}).items():
            if column not in self.metadata:
                raise ValueError(f"metadata column {column!r} is not in the writer's metadata")
            if count:
                self.metadata.loc[start:start + count - 1, column] = list(values)
        for name, names in (columns or {}).items():
            self.named_columns.setdefault(name, list(names))
        if self.format == "hdf5":
            self._write_hdf5(start, vectors)
        else:
            self._write_parquet(self.metadata.iloc[start:start + count], vectors)
        self.rows_written = start + count

    def _write_hdf5(self, start: int, vectors) -> None:
        n = len(self.metadata)
        for name, value in vectors.items():
            value = np.asarray(value)
            if name not in self._datasets:
                dtype = self.hdf5_dtypes.get(name, "float32" if value.dtype.kind == "f" else value.dtype)
                chunk = (max(1, min(n, 64)),) + value.shape[1:]
                self._datasets[name] = self._handle.create_dataset(
                    name, shape=(n,) + value.shape[1:], dtype=dtype, chunks=chunk if n else None,
                    compression="gzip" if n else None, compression_opts=1 if n else None,
                )
            self._datasets[name][start:start + len(value)] = value

    def _write_parquet(self, chunk: pd.DataFrame, vectors) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        chosen = [name for name in vectors if self.parquet_vectors is None or name in self.parquet_vectors]
        flat = {name: np.asarray(vectors[name], dtype=np.float32).reshape(len(chunk), -1) for name in chosen}
        if self._schema is None:
            fields = metadata_schema(self.metadata)
            self._metadata_fields = fields
            self._columns = {}
            for name in chosen:
                names = self.named_columns.get(name) or feature_names(name, np.asarray(vectors[name]).shape[1:])
                if len(names) != flat[name].shape[1]:
                    raise ValueError(f"{len(names)} column names for {flat[name].shape[1]} values of {name!r}")
                self._columns[name] = names
            features = [pa.field(c, pa.float32()) for name in chosen for c in self._columns[name]]
            clash = sorted({f.name for f in fields} & {f.name for f in features})
            if clash:
                raise UserError(f"metadata column(s) and feature column(s) share names: {', '.join(clash)}")
            meta = {ATTRS_KEY: json.dumps(self.attrs, default=str).encode()}
            self._schema = pa.schema(fields + features, metadata=meta)
            self._parquet = pq.ParquetWriter(self._tmp, self._schema, compression="zstd")
        if list(flat) != list(self._columns):
            raise ValueError(f"every chunk must hold the vectors {list(self._columns)}. Received: {list(flat)}")
        arrays = _metadata_arrays(chunk, self._metadata_fields)
        for name in self._columns:
            arrays += [pa.array(column) for column in flat[name].T]
        self._parquet.write_table(pa.Table.from_arrays(arrays, schema=self._schema))

    def _finish(self) -> None:
        if self.format == "hdf5":
            for name, value in self.hdf5_extra.items():
                self._handle.create_dataset(name, data=np.asarray(value))
            write_metadata(self._handle.create_group("metadata"), self.metadata)
            for key, value in self.attrs.items():
                self._handle.attrs[key] = value if isinstance(value, (int, float, np.integer, np.floating)) else str(value)
        elif self._parquet is None:  # no chunk at all: an empty table with the metadata columns
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema(metadata_schema(self.metadata), metadata={ATTRS_KEY: json.dumps(self.attrs, default=str).encode()})
            self._parquet = pq.ParquetWriter(self._tmp, schema, compression="zstd")


# ----- reading back ------------------------------------------------------------------------------
def vector_datasets(handle) -> list[str]:
    """Names of the top-level datasets of an open HDF5 file that can serve as cell vectors:
    numeric, with at least one axis after the cell axis; codebook ``*_indices`` (categories,
    not coordinates) are left out."""
    import h5py

    return sorted(
        name for name, item in handle.items()
        if isinstance(item, h5py.Dataset) and item.ndim >= 2 and item.dtype.kind in "fiu"
        and not name.endswith("_indices")
    )


DEFAULT_VECTORS = ("embeddings", "global")
FEATURE_PATTERN = re.compile(r"^(z|emb|embedding|feature|f|mu)_?\d+$")


def read_embeddings(
    path,
    vectors: str | Sequence[str] | None = None,
    flag: str = "--embeddings",
    prefix: str | None = None,
    check_finite: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """THE reader of per-cell embedding tables: (metadata, features), one row per cell.

    Formats, by suffix:

    - a table (Parquet, CSV, TSV; `statcell_tf.data.tables.read_table`): with ``Metadata_*``
      columns, those are the metadata (prefix removed) and every other column a feature;
      without, the features are the columns named like ``z_0``, ``emb_3``, ``mu_1`` (a word
      and an index, `FEATURE_PATTERN`) and the rest metadata. `prefix` picks the feature
      columns by name instead.
    - HDF5 (group ``metadata`` + vector datasets, `EmbeddingWriter`, embed-cytoself, profile-moa's
      ``embeddings.h5``): the `vectors` datasets, each flattened per cell into
      ``<vector>_<j>``. None = ``embeddings``, else ``global``, else the file's only vector
      dataset (`vector_datasets`); several and none of those: a UserError asking for them.

    Args:
        path: str or Path. The file.
        vectors: str, sequence of str or None. HDF5 only: the vector datasets.
        flag: str. Names `path` in messages.
        prefix: str or None. Tables only: the feature columns start with it.
        check_finite: bool. Check every feature value is a finite number (False: the caller
            does, e.g. to drop such cells). Defaults to True.

    Returns:
        (metadata with the original column names, i.e. without the ``Metadata_`` prefix;
        features as float64, checked finite by `statcell_tf.data.tables.numeric_matrix`).
    """
    from statcell_tf.data import tables

    path = Path(path)
    where = f"{flag} {path}"
    if not path.exists():
        raise UserError(f"{where} does not exist")
    if path.is_dir():
        raise UserError(f"{where} is a folder; expected a table or HDF5 file")
    if isinstance(vectors, str):
        vectors = [vectors]
    if path.suffix.lower() not in HDF5_SUFFIXES:
        if path.suffix.lower() not in tables.TABLE_SUFFIXES:
            raise UserError(
                f"{where} must be a table ({', '.join(tables.TABLE_SUFFIXES)}) or an .h5/.hdf5 file. "
                f"Received suffix: {path.suffix!r}"
            )
        if vectors is not None:
            raise UserError(
                f"--vectors applies to HDF5 embedding files; {path} is not one (choose table columns with --features "
                f"PREFIX). Received: --vectors {','.join(vectors)}"
            )
        table = tables.read_table(path, flag)
        metadata, features = split_columns(table, prefix, where)
        values = tables.numeric_matrix(table, features, where)[0] if check_finite else table[features]
        metadata = table[metadata].rename(columns=lambda c: c[len(METADATA_PREFIX):] if c.startswith(METADATA_PREFIX) else c)
        return metadata.reset_index(drop=True), pd.DataFrame(values, columns=features).reset_index(drop=True)
    if prefix is not None:
        raise UserError(f"--features applies to tables; {where} is HDF5 (choose its vectors with --vectors). "
                        f"Received: --features {prefix}")
    arrays, metadata = read_arrays(path, lambda where, handle: _choose_vectors(where, handle, vectors), flag)
    frames = []
    for name, value in arrays.items():
        value = np.asarray(value, dtype=np.float64).reshape(len(value), -1)  # (N, 4, 4, 576) -> (N, 9216)
        if len(value) != len(metadata):
            raise UserError(f"{where}: {name!r} has {len(value)} rows for {len(metadata)} metadata rows")
        frames.append(pd.DataFrame(value, columns=feature_names(name, value.shape[1:])))
    features = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=range(len(metadata)))
    if frames and check_finite:
        tables.numeric_matrix(features, list(features.columns), where)
    return metadata, features


def read_arrays(path, keys=None, flag: str = "--embeddings") -> tuple[dict, pd.DataFrame]:
    """Datasets of an HDF5 embedding file in their own shapes, and its metadata.

    Args:
        path: str or Path. The file (group ``metadata`` + datasets).
        keys: sequence of str, callable or None. Datasets to read (each must exist); a
            callable ``keys(where, handle)`` returns them (and may refuse the file); None =
            every vector dataset (`vector_datasets`).
        flag: str. Names `path` in messages.

    Returns:
        ({name: array}, metadata DataFrame with the file's attributes in ``.attrs``).
    """
    import h5py

    path = Path(path)
    where = f"{flag} {path}"
    if not path.is_file():
        raise UserError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{where} is not a readable HDF5 file ({error})") from None
    with handle:
        if not isinstance(handle.get("metadata"), h5py.Group):
            raise UserError(f"{where}: expected a group 'metadata' (one dataset per column). "
                            f"Received: {', '.join(sorted(handle.keys())) or 'nothing'}")
        keys = vector_datasets(handle) if keys is None else keys(where, handle) if callable(keys) else list(keys)
        missing = [k for k in keys if not isinstance(handle.get(k), h5py.Dataset)]
        if missing:
            available = ", ".join(name for name in handle if isinstance(handle[name], h5py.Dataset)) or "none"
            raise UserError(f"{where} has no dataset(s) {', '.join(missing)}. Received: {available}")
        arrays = {k: handle[k][()] for k in keys}
        metadata = read_metadata(handle["metadata"])
        metadata.attrs = {
            k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v)
            for k, v in handle.attrs.items()
        }
    return arrays, metadata


def _choose_vectors(where: str, handle, vectors: Sequence[str] | None) -> list[str]:
    """The vectors `read_embeddings` reads from an open HDF5 file: `vectors` (checked) or the default."""
    candidates = vector_datasets(handle)
    listed = ", ".join(candidates) or "none"
    for name in vectors or ():
        if name not in candidates:
            why = (
                "does not exist" if name not in handle
                else "holds codebook indices, not vectors" if name.endswith("_indices")
                else "is not a numeric (cells, dims, ...) dataset"
            )
            raise UserError(f"--vectors {name}: dataset {name!r} of {where} {why}; expected one of: {listed}. "
                            f"Received: --vectors {name}")
    if vectors:
        return list(vectors)
    for name in DEFAULT_VECTORS:
        if name in candidates:
            return [name]
    if len(candidates) == 1:
        return candidates
    defaults = " or ".join(map(repr, DEFAULT_VECTORS))
    if not candidates:
        raise UserError(
            f"{where} has no vector dataset (numeric, one row per cell; expected {defaults}). "
            f"Received: {', '.join(sorted(handle.keys())) or 'nothing'}"
        )
    raise UserError(f"{where} has several vector datasets and no {defaults}; pass --vectors NAME. Received: {listed}")


def split_columns(table: pd.DataFrame, prefix: str | None = None, source: str = "cell table") -> tuple[list[str], list[str]]:
    """(metadata columns, feature columns) of a cell table (the rule of `read_embeddings`).

    With ``Metadata_*`` columns every other column is a feature (bare `BARE_KEYS` excepted);
    without, the features are the ``z_0``-like columns (`FEATURE_PATTERN`); with `prefix`,
    those starting with it.
    """
    columns = [str(c) for c in table.columns]
    if prefix is None and any(c.startswith(METADATA_PREFIX) for c in columns):
        features = [c for c in columns if not c.startswith(METADATA_PREFIX) and c not in BARE_KEYS]
        if not features:
            raise UserError(f"{source}: no feature columns: every column is metadata. Received columns: {', '.join(columns[:12])}")
    else:
        features = feature_columns(table, prefix, source)
    return [c for c in columns if c not in features], features


def feature_columns(table: pd.DataFrame, prefix: str | None = None, source: str = "embedding table") -> list[str]:
    """The embedding columns of a table without ``Metadata_`` names.

    Args:
        table: DataFrame. One row per cell.
        prefix: str or None. Columns starting with it; None = columns named like ``z_0``,
            ``z0``, ``emb_3``, ``feature_12``, ``f7``, ``mu_1`` (a word and an index).
    """
    if prefix is not None:
        columns = [c for c in table.columns if str(c).startswith(prefix)]
    else:
        columns = [c for c in table.columns if FEATURE_PATTERN.match(str(c))]
    if not columns:
        shown = ", ".join(map(str, list(table.columns)[:12]))
        raise UserError(
            f"{source}: no embedding columns found (expected columns "
            f"{'starting with ' + repr(prefix) if prefix else 'named like z_0, z_1, ...'}; pass --features PREFIX). "
            f"Received columns: {shown}{', ...' if len(table.columns) > 12 else ''}"
        )
    return columns


def write_embedding_table(path, embeddings: np.ndarray, metadata: pd.DataFrame, name: str = "embeddings") -> Path:
    """Write whole arrays of cell vectors + metadata as HDF5 (dataset `name`), via `EmbeddingWriter`."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) != len(metadata):
        raise ValueError(f"{len(embeddings)} embeddings for {len(metadata)} metadata rows")
    with EmbeddingWriter(path, metadata) as writer:
        writer.write({name: embeddings})
    return Path(path)


# ----- streaming a model's encodings ------------------------------------------------------------
class CellEncoder:
    """What a paper's embedding function hands the shared writer: which cells, how to encode them.

    Args:
        metadata: DataFrame. One row per cell to embed, in output order.
        encode: callable. ``encode(positions) -> {vector name: array (B, ...)}`` for the cells
            at these positions of `metadata` (a 1-D int array; consecutive in practice).
        vectors: sequence of str. Names of the vectors `encode` returns, in order.
        attrs: mapping. Attributes stored with the file (run, paper, source, ...).
        parquet_default: sequence of str or None. Vectors written to Parquet when the user
            does not choose (None = every vector).
        hdf5_dtypes: mapping. HDF5 stored dtype per vector (see `EmbeddingWriter`).
        hdf5_extra: mapping. Extra HDF5 datasets (see `EmbeddingWriter`).
    """

    def __init__(self, metadata, encode, vectors, attrs=None, parquet_default=None, hdf5_dtypes=None, hdf5_extra=None):
        self.metadata = metadata.reset_index(drop=True)
        self.encode = encode
        self.vectors = list(vectors)
        self.attrs = dict(attrs or {})
        self.parquet_default = None if parquet_default is None else list(parquet_default)
        self.hdf5_dtypes = dict(hdf5_dtypes or {})
        self.hdf5_extra = dict(hdf5_extra or {})

    def __len__(self) -> int:
        return len(self.metadata)

    def parquet_vectors(self, chosen: Sequence[str] | None, flag: str = "--vectors") -> list[str]:
        """The vectors written as Parquet columns: `chosen` (checked) or the default."""
        if not chosen:
            return list(self.parquet_default or self.vectors)
        unknown = [v for v in chosen if v not in self.vectors]
        if unknown:
            raise UserError(f"{flag} {','.join(chosen)}: this run gives vectors {', '.join(self.vectors)}. "
                            f"Received unknown: {', '.join(unknown)}")
        return list(chosen)

    def features(self, chunk_size: int = 256, vectors: Sequence[str] | None = None) -> np.ndarray:
        """Every cell's chosen vectors (default: `parquet_default`), flattened side by side
        into one (N, D) float32 array, encoded `chunk_size` cells at a time."""
        chosen = self.parquet_vectors(vectors)
        parts = []
        for start in range(0, len(self), chunk_size):
            encoded = self.encode(np.arange(start, min(start + chunk_size, len(self))))
            parts.append(np.concatenate([np.asarray(encoded[v], np.float32).reshape(len(encoded[v]), -1)
                                         for v in chosen], axis=1))
        if not parts:
            empty = self.encode(np.arange(0))
            width = sum(int(np.prod(np.shape(empty[v])[1:])) for v in chosen)
            return np.zeros((0, width), np.float32)
        return np.concatenate(parts, axis=0)


def write_embeddings(
    out,
    encoder: CellEncoder,
    chunk_size: int = 256,
    vectors: Sequence[str] | None = None,
    progress=None,
) -> Path:
    """Encode every cell of `encoder` in chunks of `chunk_size` and stream them into `out`.

    Memory holds one chunk of images and vectors at a time. Parquet gets the `vectors`
    chosen (default: the encoder's `parquet_default`); HDF5 gets every vector (`vectors`
    selects there too when given).

    Args:
        out: str or Path. ``.parquet`` / ``.pq`` or ``.h5`` / ``.hdf5``.
        encoder: CellEncoder.
        chunk_size: int. Cells per encoder call. Defaults to 256.
        vectors: sequence of str or None. Vectors to write.
        progress: callable or None. Called with the number of cells done after each chunk.
    """
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1. Received: chunk_size={chunk_size}")
    kind = file_format(out)
    chosen = encoder.parquet_vectors(vectors) if (kind == "parquet" or vectors) else list(encoder.vectors)
    n = len(encoder)
    writer = EmbeddingWriter(out, encoder.metadata, attrs=encoder.attrs, parquet_vectors=chosen,
                             hdf5_dtypes=encoder.hdf5_dtypes, hdf5_extra=encoder.hdf5_extra)
    with writer:
        for start in range(0, n, chunk_size):
            positions = np.arange(start, min(n, start + chunk_size))
            result = encoder.encode(positions)
            writer.write({name: result[name] for name in result if name in chosen})
            if progress is not None:
                progress(int(positions[-1]) + 1)
        if n == 0:  # an empty file still has every vector (HDF5: datasets of length 0)
            result = encoder.encode(np.arange(0))
            writer.write({name: result[name] for name in result if name in chosen})
    return Path(out)
