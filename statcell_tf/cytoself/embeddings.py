"""Embeddings of a trained cytoself run, streamed to HDF5 (or Parquet), and reading them back.

Layout of an embeddings file (written to a temporary file, renamed when complete):

- ``global`` (N, 4, 4, 576) and ``local`` (N, 25, 25, 64): quantised localisation encodings
  (float32, or float16 with ``dtype="float16"``);
- with vector quantisation: ``global_indices`` (N, 4, 4, 9), ``local_indices`` (N, 25, 25)
  and the hard code histograms ``global_hist`` / ``local_hist`` (N, K) (rows sum to 144 / 625);
- with the identification heads: ``probabilities`` (N, num_classes) of the global head;
- ``label`` (N,) int32: the run's class index of each cell (-1 for a label the run never saw);
- ``index`` (N,) int64: row of each cell in the data it was read from;
- group ``metadata``: one dataset per metadata column (text as UTF-8 strings, numbers as
  numbers);
- attributes ``run``, ``num_embeddings`` (local codebook size), ``global_num_embeddings``,
  ``channels``, ``label_column``, ``label_values`` (JSON list), ``source`` and ``paper``.

The same cells as Parquet (``bin/embed``): one row per cell, ``Metadata_*`` columns and the
chosen vectors flattened into ``global_0 …`` columns (`statcell_tf.data.embedding_files`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.data.embedding_files import read_arrays
from statcell_tf.errors import UserError

ARRAY_KEYS = (
    "global", "local", "global_indices", "local_indices", "global_hist", "local_hist", "probabilities",
)


def normalize_images(images: np.ndarray, normalization: dict | None) -> np.ndarray:
    """Apply a run's input normalisation ``(x − offset) · scale`` per channel (float32).

    Args:
        images: array (B, H, W, C).
        normalization: dict with ``offset`` and ``scale`` lists of length C, or None
            (identity: the data is already scaled, as OpenCell's [0, 1] / [−1, 1] channels).
    """
    images = np.asarray(images, dtype=np.float32)
    if not normalization:
        return images
    offset = np.asarray(normalization["offset"], dtype=np.float32)
    scale = np.asarray(normalization["scale"], dtype=np.float32)
    return (images - offset) * scale


def select_run_channels(cells, config: dict):
    """`cells` restricted to the run's input channels (``config["channels"]``), in order."""
    channels = config.get("channels")
    if channels and tuple(cells.channel_names) != tuple(channels):
        return cells.select_channels(list(channels))
    return cells


def label_indices(metadata: pd.DataFrame, config: dict) -> np.ndarray:
    """The run's class index of each row (``config["label_values"]``), -1 when unseen/absent."""
    column = config.get("label_column", "label")
    values = config.get("label_values")
    if not values or column not in metadata.columns:
        return np.full(len(metadata), -1, dtype=np.int32)
    lookup = {str(v): i for i, v in enumerate(values)}
    return np.array([lookup.get(str(v), -1) for v in metadata[column]], dtype=np.int32)


def cytoself_encoder(run_dir, cells, indices: Sequence[int] | None = None, dtype: str = "float32",
                     include_local: bool = True):
    """The cells of `cells` (rows `indices`) as a `CellEncoder` of a cytoself run's best model.

    Vectors: ``global`` (N, 4, 4, 576), ``local`` (N, 25, 25, 64) unless `include_local` is
    False, ``global_indices``, ``local_indices``, ``global_hist``, ``local_hist`` and
    ``probabilities`` (those the model has). Parquet gets ``global`` unless told otherwise
    (``local`` is 40,000 columns per cell).
    """
    from statcell_tf.cytoself.model import load_run
    from statcell_tf.data.embedding_files import CellEncoder

    if dtype not in ("float32", "float16"):
        raise ValueError(f"`dtype` must be 'float32' or 'float16'. Received: dtype={dtype!r}")
    model, config = load_run(run_dir)
    cells = select_run_channels(cells, config)
    if tuple(cells.image_shape) != tuple(model.image_shape):
        raise UserError(
            f"--data {cells.source}: the run {run_dir} was trained on images of shape "
            f"{tuple(model.image_shape)}. Received: {tuple(cells.image_shape)}"
        )
    rows = np.arange(len(cells)) if indices is None else np.asarray(indices, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(cells)):
        raise ValueError(f"`indices` must be in [0, {len(cells)}). Received: min={rows.min()}, max={rows.max()}")
    metadata = cells.metadata.iloc[rows].reset_index(drop=True)

    def encode(positions):
        if len(positions):
            result = model.embed(cells.images[rows[positions]])  # the model normalises (its own layer)
        else:  # no cells: the shapes of every vector, zero rows
            result = {k: v[:0] for k, v in model.embed(np.zeros((1,) + model.image_shape, np.float32)).items()}
        if not include_local:
            result.pop("local", None)
        return result

    top = max(model.local_num_embeddings, model.global_num_embeddings, int(np.prod(model.local_shape[:2])))
    integer = "int16" if top < 2**15 else "int32"  # indices < K, counts <= 625
    vectors = list(encode(np.arange(0)))
    attrs = {
        "run": str(Path(run_dir).resolve()), "paper": "cytoself",
        "num_embeddings": model.local_num_embeddings, "global_num_embeddings": model.global_num_embeddings,
        "channels": json.dumps(list(cells.channel_names)),
        "label_column": str(config.get("label_column", "label")),
        "label_values": json.dumps([str(v) for v in config.get("label_values", [])]),
        "source": str(cells.source),
    }
    dtypes = {k: (dtype if k in ("global", "local") else "float32" if k == "probabilities" else integer) for k in vectors}
    return CellEncoder(
        metadata, encode, vectors, attrs, parquet_default=["global"], hdf5_dtypes=dtypes,
        hdf5_extra={"label": label_indices(metadata, config), "index": rows},
    )


def embed_cytoself(
    run_dir,
    cells,
    out_path,
    batch_size: int = 64,
    indices: Sequence[int] | None = None,
    dtype: str = "float32",
    include_local: bool = True,
    progress: bool = True,
    vectors: Sequence[str] | None = None,
) -> Path:
    """Embed `cells` with the best model of a cytoself run, streaming into an HDF5 (or Parquet) file.

    Args:
        run_dir: str or Path. Run folder written by ``bin/train-cytoself``.
        cells: CellImages. Any reader's output; the run's channels are selected by name.
        out_path: str or Path. File to write (atomically: temp file, then rename); ``.h5``
            gives the layout of the module docstring, ``.parquet`` one row per cell
            (`statcell_tf.data.embedding_files`).
        batch_size: int. Images per inference batch. Defaults to 64.
        indices: sequence of int or None. Rows of `cells` to embed; None = all.
        dtype: str. ``"float32"`` or ``"float16"`` for the quantised vectors (HDF5).
        include_local: bool. Write the (large) local vectors. Defaults to True.
        progress: bool. Show a progress bar.
        vectors: sequence of str or None. Vectors to write (Parquet default: ``global``).

    Returns:
        Path of the written file.
    """
    from statcell_tf.backend import keras
    from statcell_tf.data.embedding_files import write_embeddings

    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    encoder = cytoself_encoder(run_dir, cells, indices, dtype, include_local)
    bar = keras.utils.Progbar(len(encoder), verbose=1, unit_name="cell") if progress else None
    return write_embeddings(out_path, encoder, batch_size, vectors, progress=bar.update if bar else None)


def load_embeddings(path, keys: Sequence[str] | None = None) -> tuple[dict, pd.DataFrame]:
    """Read an embeddings file written by `embed_cytoself`.

    Args:
        path: str or Path. The HDF5 file.
        keys: sequence of str or None. Arrays to read (e.g. ``["local_hist"]``, skipping the
            large ``local`` vectors); None = every array.

    Returns:
        (dict of numpy arrays: the `ARRAY_KEYS` present plus ``label`` and ``index``; and the
        metadata DataFrame, one row per cell, with the file's attributes in ``.attrs``).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise UserError(f"embeddings file {path} does not exist")

    def cytoself_arrays(where, handle):
        if "label" not in handle:
            raise UserError(
                f"{path} is not a cytoself embeddings file: it needs a 'label' dataset and a "
                f"'metadata' group. Received: {sorted(handle.keys())}"
            )
        present = [k for k in ARRAY_KEYS + ("label", "index") if isinstance(handle.get(k), h5py.Dataset)]
        missing = sorted(set(keys or ()) - set(present))
        if missing:
            raise UserError(f"{path} has no dataset(s) {', '.join(missing)}. Received: {', '.join(present)}")
        return present if keys is None else list(keys)

    arrays, metadata = read_arrays(path, cytoself_arrays, "embeddings file")
    return arrays, metadata
