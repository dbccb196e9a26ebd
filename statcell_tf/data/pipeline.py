"""tf.data pipelines: row indices → gathered batch → normalise → augment → prefetch.

Batches are gathered from the lazy `ImageArray` one batch at a time (sorted reads from
memory-mapped or per-file data), so data larger than memory streams. Each batch is checked
for NaN/inf pixels, cast to float32 and normalised in NumPy, then augmented in TensorFlow:
a uniformly random rotation by k·90°, k ∈ {0, 1, 2, 3} (the cytoself reference code applied
every rotation together, so 90° never happened), and random horizontal and vertical flips,
per image. Randomness is stateless and keyed by (seed, epoch position, row), so a pipeline is
deterministic under its seed while the shuffle order and augmentations change every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from statcell_tf.backend import tf
from statcell_tf.data.source import CellImages
from statcell_tf.errors import USER_ERROR_MARK, UserError

NORMALIZATIONS = ("none", "mode", "max", "minmax")


def _normalizer(normalize) -> Callable[[np.ndarray], np.ndarray] | None:
    if normalize is None or normalize == "none":
        return None
    if callable(normalize):
        return normalize
    if normalize not in NORMALIZATIONS:
        raise UserError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}. Received: {normalize!r}")
    from statcell_tf.data import preprocess

    return {"mode": preprocess.normalize_mode, "max": preprocess.normalize_max, "minmax": preprocess.normalize_minmax}[
        normalize
    ]


def encode_labels(values: Sequence, label_values: Sequence | None = None, column: str = "label"):
    """Map label strings to ints following `label_values` (default: sorted unique values)."""
    values = np.asarray(values).astype(str)
    classes = sorted(set(values)) if label_values is None else [str(v) for v in label_values]
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise UserError(
            f"{column} value(s) {', '.join(unknown[:5])} are not among the {len(classes)} classes "
            f"the model knows (e.g. {', '.join(classes[:5])})"
        )
    return np.array([lookup[v] for v in values], dtype=np.int32), classes


def make_dataset(
    cells: CellImages,
    indices,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    augment: bool = False,
    normalize=None,
    label_column: str | None = None,
    label_values: Sequence | None = None,
    extra_columns: Sequence[str] = (),
    repeat: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A dataset of dict batches over rows `indices` of `cells`.

    Args:
        cells: CellImages. The data.
        indices: int array. Rows to use (e.g. one split).
        batch_size: int. Global batch size.
        shuffle: bool. Reshuffle the rows every epoch (deterministic under `seed`).
        seed: int. Seed of shuffling and augmentation.
        augment: bool. Random 90° rotations and flips (only 180° for non-square images).
        normalize: None, a name (``"mode"``, ``"max"``, ``"minmax"``) or a function on
            (B, ..., C) float32 batches.
        label_column: str or None. Metadata column to return as int ``"label"``.
        label_values: list of str or None. Class names in model order (default sorted).
        extra_columns: numeric metadata columns to return under their own names.
        repeat: bool. Repeat forever.
        drop_remainder: bool. Drop the last partial batch (needed with several replicas).

    Returns:
        tf.data.Dataset of ``{"image": float32 (B, ..., C), "index": int64 (B,),
        "label": int32 (B,), <extra>: (B,)}``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise UserError(f"no images selected from {cells.source} (the split is empty)")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1. Received: {batch_size}")
    normalizer = _normalizer(normalize)
    image_shape = tuple(cells.image_shape)
    images = cells.images
    source = cells.source

    def gather(rows: np.ndarray) -> np.ndarray:
        try:
            batch = np.asarray(images[rows], dtype=np.float32)
        except UserError as error:
            raise ValueError(USER_ERROR_MARK + str(error)) from None
        bad = ~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{USER_ERROR_MARK}image {int(rows[np.argmax(bad)])} in {source} has NaN or infinite pixels"
            )
        return normalizer(batch).astype(np.float32, copy=False) if normalizer else batch

    columns = {}
    if label_column is not None:
        if label_column not in cells.metadata:
            raise UserError(
                f"label column {label_column!r} is not in the metadata of {source}. "
                f"Received columns: {', '.join(map(str, cells.metadata.columns))}"
            )
        codes, _ = encode_labels(cells.metadata[label_column], label_values, label_column)
        columns["label"] = tf.constant(codes)
    for column in extra_columns:
        if column not in cells.metadata:
            raise UserError(f"column {column!r} is not in the metadata of {source}")
        columns[column] = tf.constant(cells.metadata[column].to_numpy())

    def load(position, rows):
        batch = tf.numpy_function(gather, [rows], tf.float32, stateful=False)
        batch = tf.ensure_shape(batch, (None,) + image_shape)
        out = {"image": batch, "index": rows, "position": position}
        for name, values in columns.items():
            out[name] = tf.gather(values, rows)
        return out

    dataset = tf.data.Dataset.from_tensor_slices(indices)
    if shuffle:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).enumerate()
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment:
        square = image_shape[-3] == image_shape[-2]
        dataset = dataset.map(
            lambda b: augment_batch(b, seed, square), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    dataset = dataset.map(_drop_position)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _drop_position(batch):
    return {k: v for k, v in batch.items() if k != "position"}


def dihedral(images, k, flip_w, flip_h):
    """Rotate (B, ..., H, W, C) images by k[b]·90° counter-clockwise, then flip W and/or H.

    Same result as ``np.rot90(x, k, axes=(H, W))`` followed by the flips, computed as one
    optional H↔W transpose and two optional reversals per image (the 8 elements of the
    square's symmetry group), which is about 3× cheaper than building every rotation.
    """
    rank = len(images.shape)
    h, w = rank - 3, rank - 2
    shape = [-1] + [1] * (rank - 1)
    k = tf.cast(k, tf.int32) % 4
    transpose = tf.reshape(k % 2 == 1, shape)
    reverse_h = tf.reshape(tf.math.logical_xor((k == 1) | (k == 2), tf.cast(flip_h, tf.bool)), shape)
    reverse_w = tf.reshape(tf.math.logical_xor((k == 2) | (k == 3), tf.cast(flip_w, tf.bool)), shape)
    if images.shape[h] == images.shape[w]:
        perm = list(range(rank))
        perm[h], perm[w] = perm[w], perm[h]
        images = tf.where(transpose, tf.transpose(images, perm), images)
    images = tf.where(reverse_h, tf.reverse(images, [h]), images)
    return tf.where(reverse_w, tf.reverse(images, [w]), images)


def augment_batch(batch: dict, seed: int, square: bool = True) -> dict:
    """Uniform random k·90° rotation (k ∈ {0..3}; {0, 2} if not square) and flips, per image."""
    images = batch["image"]
    n = tf.shape(images)[0]
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(batch["position"], tf.int64)])
    draws = tf.random.stateless_uniform([n, 3], seed=key, minval=0, maxval=4, dtype=tf.int32)
    k = draws[:, 0] if square else 2 * (draws[:, 0] // 2)
    return {**batch, "image": dihedral(images, k, draws[:, 1] % 2, draws[:, 2] % 2)}
