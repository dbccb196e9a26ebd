"""tf.data pipelines: row indices → gathered batch → normalise → augment → prefetch.

Batches are gathered from the lazy `ImageArray` one batch at a time (sorted reads from
memory-mapped or per-file data), so data larger than memory streams. Each batch is checked
for NaN/inf pixels (readers scan only data sets under 512 MB when they open them), cast to
float32, normalised in TensorFlow on the whole batch (a named normalisation: the models'
`InputNormalization`; a custom function runs in NumPy), then augmented in TensorFlow: a uniformly random rotation by
k·90°, k ∈ {0, 1, 2, 3} (the cytoself reference code applied every rotation together, so 90°
never happened), and random horizontal and vertical flips, per image.

Shuffling. Data that fit in memory are fully shuffled: any row may follow any other. Data
larger than a quarter of the memory (`statcell_tf.data.source.is_large`, or ``shuffle="block"``)
are shuffled by blocks, so the disk reads sequentially: the rows (in file order) are cut into
contiguous blocks of about `BLOCK_BYTES`; the order of the blocks is shuffled; the epoch's
rows in that order are cut into buffers of about `BUFFER_BYTES` (whole batches: k blocks),
each buffer is read in file order (one sequential sweep per file), its rows are shuffled in
memory and cut into batches. Memory holds a few buffers, whatever the size of the data.

How mixed block-shuffled batches are: a batch of B rows drawn from a buffer of k blocks holds
rows of about k·(1 − (1 − 1/k)^B) distinct blocks, and rows of one block are neighbours on
disk (the same protein in OpenCell's per-protein files, the same plate/well in prepared
crops). For 100×100×2 float32 crops (80 KB) the defaults give blocks of 26 images and buffers
of 1,536 images (59 blocks): a batch of 256 spans ~58 distinct blocks, so with OpenCell's
~840 crops per protein (1.1 M crops, 1,311 proteins) about 58 distinct proteins against ~230
for a full shuffle (tests/data/test_pipeline.py measures the formula on labelled toy data).
Every row is still read exactly once per epoch, and the reader asks the kernel for every
block of a buffer at once (MADV_WILLNEED, `statcell_tf.data.opencell`), so the disk sees a deep
queue instead of one page fault at a time. The block size trades mixing for read speed,
measured with `bench/pipeline.py --images 60000 --stream --cold` (4.8 GB, page cache dropped,
a virtual disk that caps at ~235 MB/s once its burst is spent; runs where it was not capped):
without read-ahead, blocks of 512 KB (6 images, ~160 proteins per batch) ran shuffled at
0.66-0.72× the in-order pass and blocks of 2 MB at 0.71-1.08× (2 MB with 256 MB buffers: 0.73×);
with read-ahead, 2 MB: 0.89×. Reading buffers of 1,536 random-block crops alone, read-ahead
took 512 KB blocks from 3,300-3,500 to 9,200-14,700 images/s and 2 MB blocks from 4,800-6,000
to 8,600-17,200 (in order: 15,500).

Determinism: every pass over the dataset (an epoch) draws one epoch key from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``; the shuffle order is a
stateless shuffle keyed by (epoch key) and the augmentation of a batch is keyed by
(epoch key, batch number). So the same `seed` gives the same sequence of epochs in every run
and on every machine, while the order and the augmentations change from epoch to epoch, with
or without ``repeat``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from statcell_tf.backend import tf
from statcell_tf.data.source import CellImages, check_shuffle, is_large
from statcell_tf.errors import USER_ERROR_MARK, UserError

NORMALIZATIONS = ("none", "mode", "max", "minmax")
BLOCK_BYTES = 1 << 21  # contiguous rows read as one run (≈ 26 crops of 80 KB; 1 MB per channel file)
BUFFER_BYTES = 1 << 27  # rows mixed in memory at a time (as float32)


def shuffle_mode(shuffle, cells: CellImages, indices) -> str | None:
    """The shuffle `make_dataset` uses: None (no shuffle), ``"full"`` or ``"block"``.

    ``True`` and ``"auto"`` mean ``"block"`` when the selected rows are large data (more than a
    quarter of the memory, `statcell_tf.data.source.is_large`), else ``"full"``.
    """
    if shuffle is False or shuffle is None:
        return None
    if shuffle is True:
        shuffle = "auto"
    if check_shuffle(shuffle) == "auto":
        nbytes = len(indices) * int(np.prod(cells.image_shape)) * np.dtype(cells.images.dtype).itemsize
        return "block" if is_large(nbytes) else "full"
    return shuffle


def _blocks(indices: np.ndarray, image_bytes: int, block_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted rows, row splits): `indices` in file order cut into blocks of contiguous rows."""
    rows = np.sort(indices)
    block = max(1, block_rows or BLOCK_BYTES // image_bytes)
    return rows, np.append(np.arange(0, len(rows), block), len(rows)).astype(np.int64)


def _normalizer(normalize):
    """(NumPy function on gathered batches or None, TensorFlow layer on batches or None).

    A named normalisation runs in TensorFlow on the whole batch (`InputNormalization`, the
    layer the models own: vectorised, outside the GIL, parallel across batches); a function
    runs in NumPy on each gathered batch.
    """
    if normalize is None or (isinstance(normalize, str) and normalize == "none"):
        return None, None
    if callable(normalize):
        return normalize, None
    if normalize not in NORMALIZATIONS:
        raise UserError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}. Received: {normalize!r}")
    from statcell_tf.layers.input_normalization import InputNormalization

    return None, InputNormalization(normalize)


def encode_labels(values: Sequence, label_values: Sequence | None = None, column: str = "label"):
    """Map label values to ints following `label_values` (default: sorted unique values).

    Args:
        values: sequence. One label per image (compared as strings).
        label_values: sequence of str or None. Class names in model order.
        column: str. Column name, for messages.

    Returns:
        (int32 codes, list of class names).
    """
    values = np.asarray(values).astype(str)
    classes = sorted(set(values)) if label_values is None else [str(v) for v in label_values]
    lookup = {name: i for i, name in enumerate(classes)}
    if len(lookup) != len(classes):
        raise UserError(f"label_values for {column} repeat a class name. Received: {classes}")
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise UserError(
            f"{column} value(s) {', '.join(unknown[:5])} are not among the {len(classes)} classes "
            f"the model knows (e.g. {', '.join(classes[:5])})"
        )
    return np.array([lookup[v] for v in values], dtype=np.int32), classes


def _column_tensor(values, column: str, source: str):
    """A metadata column as a constant tensor (numbers keep their kind, text becomes tf.string)."""
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return tf.constant(array.astype(np.int64))
    if array.dtype.kind == "f":
        return tf.constant(array.astype(np.float32))
    if array.dtype.kind == "b":
        return tf.constant(array)
    if array.dtype.kind in "OUS":
        return tf.constant(np.array(["" if v is None else str(v) for v in array], dtype=object))
    raise UserError(f"column {column!r} of {source} has unsupported dtype {array.dtype}")


def make_dataset(
    cells: CellImages,
    indices,
    batch_size: int,
    *,
    shuffle: bool | str = False,
    seed: int = 0,
    augment: bool = False,
    normalize=None,
    label_column: str | None = None,
    label_values: Sequence | None = None,
    extra_columns: Sequence[str] = (),
    repeat: bool = False,
    drop_remainder: bool = False,
    epoch: int | None = None,
    steps: int | None = None,
    block_rows: int | None = None,
    buffer_rows: int | None = None,
) -> tf.data.Dataset:
    """A dataset of dict batches over rows `indices` of `cells`.

    Args:
        cells: CellImages. The data.
        indices: int array. Rows to use (e.g. one split).
        batch_size: int. Global batch size.
        shuffle: bool or str. Reshuffle the rows every epoch (deterministic under `seed`):
            ``"full"``, ``"block"`` (see the module docstring), ``"auto"`` or True (block for
            data larger than a quarter of the memory, else full). Rows within a fully shuffled
            batch come in increasing order (sequential reads); without shuffling the batches
            follow `indices` exactly.
        seed: int. Seed of shuffling and augmentation.
        augment: bool. Random k·90° rotations (k uniform in {0, 1, 2, 3}; {0, 2} for
            non-square images) and horizontal/vertical flips in the YX plane, per image,
            for 2D (B, H, W, C) and 3D (B, D, H, W, C) batches.
        normalize: None, a name (``"none"``, ``"max"``, ``"minmax"``, ``"mode"``; see
            `statcell_tf.data.preprocess`) or a function on (B, ..., C) float32 batches.
        label_column: str or None. Metadata column to return as int32 ``"label"``.
        label_values: list of str or None. Class names in model order (default: the sorted
            unique values of the column over all rows of `cells`, so every split shares one
            encoding).
        extra_columns: metadata columns to return under their own names (numbers as int64 /
            float32 / bool, text as tf.string).
        repeat: bool. Repeat forever (each repetition a new epoch).
        drop_remainder: bool. Drop the last partial batch (needed with several replicas).
        epoch: int or None. Only this epoch (counting from 1): its shuffle order and
            augmentation keys depend on (`seed`, `epoch`) alone, so a resumed run reads
            exactly what an uninterrupted one reads. With `repeat` the stream is endless
            and the epoch is its `steps` batches starting at batch (epoch − 1)·steps (a
            block shuffle reads the buffers of the batches it skips to get there).
        steps: int or None. Batches per epoch of a repeated stream (with `epoch`).
        block_rows: int or None. Rows per block of a block shuffle (default: `BLOCK_BYTES`).
        buffer_rows: int or None. Rows mixed together by a block shuffle (default:
            `BUFFER_BYTES`); rounded down to whole blocks.

    Returns:
        tf.data.Dataset of ``{"image": float32 (B, ..., C), "index": int64 (B,),
        "label": int32 (B,), <extra>: (B,)}``; auto-sharded by DATA under a distribution
        strategy.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
        raise UserError(f"indices must be a 1-D integer array. Received: shape {indices.shape}, dtype {indices.dtype}")
    indices = indices.astype(np.int64)
    if indices.size == 0:
        raise UserError(f"no images selected from {cells.source} (the split is empty)")
    if indices.min() < 0 or indices.max() >= len(cells):
        raise UserError(
            f"indices must lie in [0, {len(cells)}) for {cells.source}. "
            f"Received: min {indices.min()}, max {indices.max()}"
        )
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1. Received: {batch_size}")
    normalizer, normalization_layer = _normalizer(normalize)
    mode = shuffle_mode(shuffle, cells, indices)
    image_shape = tuple(cells.image_shape)
    images = cells.images
    source = cells.source

    # Augmented batches of channel-files data (OpenCell) are read channel-first (contiguous
    # copies) and interleaved by the augmentation's copy: one strided pass instead of two.
    planar_reads = augment and normalizer is None and hasattr(images, "take_planar") and len(image_shape) == 3

    def read(rows: np.ndarray, planar: bool) -> np.ndarray:
        """float32 images at `rows` (channel-first with `planar`, for sorted rows), checked finite."""
        try:
            if rows.size > 1 and (rows[1:] >= rows[:-1]).all():  # sorted: skip the reorder copy
                batch = images.take_planar(rows) if planar else images._take(rows)
            else:
                batch = images[rows]
            batch = np.asarray(batch, dtype=np.float32)
        except UserError as error:
            raise ValueError(USER_ERROR_MARK + str(error)) from None
        if not np.isfinite(batch).all():
            bad = ~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
            raise ValueError(
                f"{USER_ERROR_MARK}image {int(rows[np.argmax(bad)])} in {source} has NaN or infinite "
                "pixels; expected finite values (fix or drop that image)"
            )
        return batch

    def arrange(batch: np.ndarray, codes=None, order=None, planar: bool = False) -> np.ndarray:
        """Images ``batch[order]`` (all without `order`), normalised by a NumPy function and
        augmented by `codes`, channel-last: the reorder is fused into the augmentation's copy."""
        if planar:
            return dihedral_numpy(batch, codes, channels_first=True, order=order)
        if order is not None:
            batch = batch[order]
        if normalizer is not None:
            batch = np.asarray(normalizer(batch), dtype=np.float32)
            if batch.shape[1:] != image_shape:
                raise ValueError(
                    f"{USER_ERROR_MARK}normalize returned batches of shape {batch.shape}; "
                    f"expected (B, {', '.join(map(str, image_shape))})"
                )
        if codes is not None:
            batch = dihedral_numpy(batch, codes)
        return batch

    def gather(rows: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        planar = planar_reads and codes is not None and rows.size > 1 and bool((rows[1:] >= rows[:-1]).all())
        return arrange(read(rows, planar), codes, None, planar)

    columns = {}
    metadata = cells.metadata
    if label_column is not None:
        if label_column not in metadata:
            raise UserError(
                f"label column {label_column!r} is not in the metadata of {source}. "
                f"Received columns: {', '.join(map(str, metadata.columns))}"
            )
        codes, _ = encode_labels(metadata[label_column], label_values, label_column)
        columns["label"] = tf.constant(codes)
    for column in extra_columns:
        if column not in metadata:
            raise UserError(
                f"column {column!r} is not in the metadata of {source}. "
                f"Received columns: {', '.join(map(str, metadata.columns))}"
            )
        columns[column] = _column_tensor(metadata[column].to_numpy(), column, source)

    square = len(image_shape) >= 3 and image_shape[-3] == image_shape[-2]
    all_rows = tf.constant(indices)

    def one_epoch(key):
        rows = all_rows
        if mode:
            rows = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([key, tf.constant(-1, tf.int64)]))
        batches = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(lambda position, batch_rows: (key, position, batch_rows))

    if mode == "block":
        image_bytes = int(np.prod(image_shape)) * 4
        blocks = tf.RaggedTensor.from_row_splits(*map(tf.constant, _blocks(indices, image_bytes, block_rows)))
        n_blocks = int(blocks.nrows())
        # Buffers hold whole batches: only the epoch's last batch may be partial, as without blocks.
        per_buffer = max(1, (buffer_rows or BUFFER_BYTES // image_bytes) // batch_size) * batch_size
        n_buffers = -(-len(indices) // per_buffer)

    def block_epoch(key):
        # The epoch's rows: whole blocks in random order, cut into buffers of `per_buffer` rows.
        block_order = tf.random.experimental.stateless_shuffle(
            tf.range(n_blocks, dtype=tf.int64), seed=tf.stack([key, tf.constant(-2, tf.int64)]))
        epoch_rows = tf.gather(blocks, block_order).flat_values

        def read_buffer(number):
            # A buffer's rows in file order: one sequential sweep over its blocks.
            rows = tf.sort(epoch_rows[number * per_buffer:(number + 1) * per_buffer])
            raw = tf.numpy_function(lambda r: read(r, planar_reads), [rows], tf.float32, stateful=False)
            return number, raw, rows

        def batches(number, raw, rows):
            # The buffer's rows mixed in memory, then cut into batches (gathered in parallel).
            n = tf.shape(rows, out_type=tf.int64)[0]
            order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([key, number]))
            count = n // batch_size if drop_remainder else (n + batch_size - 1) // batch_size
            first = number * (per_buffer // batch_size)
            return tf.data.Dataset.range(count).map(lambda j: (
                key, first + j, raw, tf.gather(rows, order[j * batch_size:(j + 1) * batch_size]),
                order[j * batch_size:(j + 1) * batch_size]))

        # Two buffers read at once (a second sequential stream; a few buffers in memory at most).
        return tf.data.Dataset.range(n_buffers).map(read_buffer, num_parallel_calls=2, deterministic=True) \
            .flat_map(batches)

    def load_block(key, position, raw, rows, order):
        if augment:
            codes = augmentation_codes(tf.shape(rows)[0], tf.stack([key, position]), square)
            batch = tf.numpy_function(lambda r, o, c: arrange(r, c, o, planar_reads), [raw, order, codes],
                                      tf.float32, stateful=False)
        else:
            batch = tf.numpy_function(lambda r, o: arrange(r, None, o), [raw, order], tf.float32, stateful=False)
        return finish({"image": batch, "index": rows})

    def finish(batch):
        image = tf.ensure_shape(batch["image"], (batch_size if drop_remainder else None,) + image_shape)
        if normalization_layer is not None:
            image = normalization_layer(image)
        out = {"image": image, "index": batch["index"]}
        for name, values in columns.items():
            out[name] = tf.gather(values, batch["index"])
        return out

    def load(key, position, rows):
        if mode:
            rows = tf.sort(rows)  # order inside a random batch is free: read sequentially
        if augment:
            # Drawn in TensorFlow (stateless, keyed by epoch and batch), applied by NumPy while
            # the gathered batch is still in cache: the same images as `augment_images` at a
            # quarter of its cost (strided copies instead of a per-pixel gather).
            codes = augmentation_codes(tf.shape(rows)[0], tf.stack([key, position]), square)
            batch = tf.numpy_function(gather, [rows, codes], tf.float32, stateful=False)
        else:
            batch = tf.numpy_function(gather, [rows], tf.float32, stateful=False)
        # per image statistics in `finish`'s normalisation: commutes with the augmentation
        return finish({"image": batch, "index": rows})

    per_pass = len(indices) // batch_size if drop_remainder else -(-len(indices) // batch_size)
    if per_pass == 0:
        raise UserError(
            f"--batch-size {batch_size} is larger than the {len(indices)} images selected from {source}; "
            "expected at most that many"
        )
    passes = block_epoch if mode == "block" else one_epoch
    if epoch is not None:
        # Pass p of the data has key p of a fixed random sequence: positioned without state.
        keys = tf.data.Dataset.random(seed=seed)
        if repeat:
            if not steps or steps < 1:
                raise ValueError(f"`steps` must be >= 1 with `epoch` and `repeat`. Received: steps={steps}")
            start = (int(epoch) - 1) * int(steps)
            dataset = keys.skip(start // per_pass).flat_map(passes).skip(start % per_pass).take(steps)
            count = steps
        else:
            dataset = keys.skip(int(epoch) - 1).take(1).flat_map(passes)
            count = per_pass
    else:
        # One element per epoch: a key that differs per pass over the dataset, reproducibly.
        epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        if not repeat:
            epochs = epochs.take(1)
        dataset = epochs.flat_map(passes)
        count = None if repeat else per_pass
    if count is not None:  # a known length: progress bars show steps and an ETA
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    dataset = dataset.map(load_block if mode == "block" else load, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def apply_preprocessing(dataset: tf.data.Dataset, layer) -> tf.data.Dataset:
    """Apply a model's preprocessing layer (e.g. `InputNormalization`) to the ``"image"`` of
    whole batches, in TensorFlow (vectorised, parallel): the pipeline and the model's
    SavedModel endpoints share one implementation."""
    if getattr(layer, "method", None) == "none":
        return dataset
    return dataset.map(lambda batch: {**batch, "image": layer(batch["image"])},
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _dihedral_table(height: int, width: int) -> np.ndarray:
    """(16, H·W) int32: row ``4·k + 2·flip_w + flip_h`` holds, for every output pixel, the flat
    input pixel it takes after ``np.rot90(·, k)`` then the flips (odd k only if H == W)."""
    grid = np.arange(height * width, dtype=np.int32).reshape(height, width)
    rows = []
    for k in range(4):
        turned = np.rot90(grid, k) if k % 2 == 0 or height == width else np.rot90(grid, k - 1)
        for flip_w in (0, 1):
            for flip_h in (0, 1):
                moved = turned[:, ::-1] if flip_w else turned
                moved = moved[::-1] if flip_h else moved
                rows.append(moved.ravel())
    return np.stack(rows)


def dihedral(images, k, flip_w, flip_h):
    """Rotate (B, ..., H, W, C) images by k[b]·90° counter-clockwise, then flip W and/or H.

    Same result as ``np.rot90(x, k, axes=(H, W))`` followed by ``x[..., :, ::-1, :]`` (flip W)
    and ``x[..., ::-1, :, :]`` (flip H), per image. The 16 combinations are pixel
    permutations of the YX plane, applied as one gather over the batch (one pass; per image
    `tf.where` selections between transposed/reversed copies were ~6× slower on CPU).
    Non-square images support only even k (odd k are rounded down).
    """
    height, width, channels = (int(d) for d in images.shape[-3:])
    table = tf.constant(_dihedral_table(height, width))
    code = 4 * (tf.cast(k, tf.int32) % 4) + 2 * tf.cast(flip_w, tf.int32) + tf.cast(flip_h, tf.int32)
    source = tf.gather(table, code)  # (B, H·W): input pixel of every output pixel
    shape = tf.shape(images)
    depth = tf.reduce_prod(shape[1:-3])  # 1 for 2D, D for 3D
    # Flat pixel index into (B·D·H·W, C): plane (b, d) starts at (b·D + d)·H·W.
    starts = tf.reshape(tf.range(shape[0] * depth) * (height * width), [shape[0], depth, 1])
    index = tf.reshape(starts + source[:, None, :], [-1])
    if channels == 2 and images.dtype == tf.float32:
        # Move each pixel's two float32 channels as one 8-byte element (~20% faster).
        pixels = tf.bitcast(tf.reshape(images, [-1, 2]), tf.float64)
        moved = tf.bitcast(tf.gather(pixels, index), tf.float32)
    else:
        moved = tf.gather(tf.reshape(images, [-1, channels]), index)
    return tf.reshape(moved, shape)


def augmentation_codes(n, key, square: bool = True):
    """(n, 3) int32 (k, flip_w, flip_h) of `augment_images` for a batch of n images and `key`."""
    draws = tf.random.stateless_uniform([n, 3], seed=tf.cast(key, tf.int64), minval=0, maxval=4, dtype=tf.int32)
    k = draws[:, 0] if square else 2 * (draws[:, 0] // 2)
    return tf.stack([k, draws[:, 1] % 2, draws[:, 2] % 2], axis=1)


def dihedral_numpy(images: np.ndarray, codes: np.ndarray, channels_first: bool = False,
                   order: np.ndarray | None = None) -> np.ndarray:
    """NumPy twin of `dihedral`: image j rotated by ``codes[j, 0]``·90° then flipped in W
    (``codes[j, 1]``) and H (``codes[j, 2]``); (B, ..., H, W, C) in (or (B, C, ..., H, W)
    with `channels_first`), a new channel-last array out. With `order`, output image j is
    input image ``order[j]`` (a reordering fused into the same copy)."""
    if channels_first:
        images = np.moveaxis(images, 1, -1)  # a view: the copy below interleaves the channels
    codes = np.asarray(codes)
    out = np.empty((len(codes),) + images.shape[1:], images.dtype)  # one image per code
    for j, (k, flip_w, flip_h) in enumerate(codes):
        view = np.rot90(images[j if order is None else order[j]], int(k), axes=(-3, -2))
        if flip_w:
            view = view[..., ::-1, :]
        if flip_h:
            view = view[..., ::-1, :, :]
        out[j] = view
    return out


def augment_images(images, key, square: bool = True):
    """Per image: rotate by k·90° with k uniform in {0, 1, 2, 3} ({0, 2} if not square), then
    flip horizontally and vertically, each with probability 1/2.

    Args:
        images: float tensor (B, H, W, C) or (B, D, H, W, C).
        key: int tensor of shape (2,). Stateless seed: same key, same augmentation.
        square: bool. H == W (else 90° rotations would change the shape).

    Returns:
        Tensor of the shape of `images`.
    """
    codes = augmentation_codes(tf.shape(images)[0], key, square)
    return dihedral(images, codes[:, 0], codes[:, 1], codes[:, 2])
