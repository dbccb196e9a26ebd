import numpy as np
import pandas as pd
import pytest

from statcell_tf.backend import tf
from statcell_tf.cli._errors import user_message
from statcell_tf.data import opencell
from statcell_tf.data.pipeline import augment_images, dihedral, dihedral_numpy, make_dataset
from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.errors import UserError
from tests._support.fake_data import write_opencell


def _cells(tmp_path):
    return opencell.read_opencell(write_opencell(tmp_path / "oc", size=16), channels=["pro", "nucdist"])


def _array_cells(images, labels=None):
    labels = labels if labels is not None else [f"c{i % 3}" for i in range(len(images))]
    return CellImages(ArrayImages(images), pd.DataFrame({"label": labels}), ("x",) * images.shape[-1], "mem")


def _epoch(dataset, key="index"):
    return np.concatenate([b[key].numpy() for b in dataset])


def test_batches_are_dicts_with_labels_in_given_order(tmp_path):
    cells = _cells(tmp_path)
    ds = make_dataset(cells, np.arange(12), 5, label_column="protein", label_values=["B", "A"])
    batches = list(ds)
    assert [len(b["index"]) for b in batches] == [5, 5, 2]
    first = batches[0]
    assert set(first) == {"image", "index", "label"}
    assert first["image"].shape == (5, 16, 16, 2) and first["image"].dtype == tf.float32
    assert first["index"].dtype == tf.int64 and first["label"].dtype == tf.int32
    np.testing.assert_array_equal(first["label"].numpy(), [1] * 5)  # protein A -> index 1
    np.testing.assert_array_equal(first["image"].numpy(), cells.images[[0, 1, 2, 3, 4]])
    # Without shuffling the given order is kept, even when it is not sorted.
    unsorted = make_dataset(cells, [7, 2, 9], 2, drop_remainder=True)
    (only,) = list(unsorted)
    np.testing.assert_array_equal(only["index"].numpy(), [7, 2])
    np.testing.assert_array_equal(only["image"].numpy(), cells.images[[7, 2]])
    assert only["image"].shape[0] == 2
    policy = ds.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA


def test_shuffle_is_deterministic_under_seed_and_changes_each_epoch(tmp_path):
    cells = _array_cells(np.random.default_rng(0).random((40, 4, 4, 1), dtype=np.float32))

    def two_epochs(seed):
        ds = make_dataset(cells, np.arange(40), 8, shuffle=True, seed=seed)
        return [_epoch(ds) for _ in range(2)]

    a, b = two_epochs(3), two_epochs(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], two_epochs(4)[0])
    assert sorted(a[0]) == list(range(40))
    # repeat=True: consecutive epochs are each a permutation, and differ.
    stream = _epoch(make_dataset(cells, np.arange(40), 8, shuffle=True, seed=3, repeat=True).take(10))
    assert sorted(stream[:40]) == sorted(stream[40:]) == list(range(40))
    assert not np.array_equal(stream[:40], stream[40:])


def test_augmentation_changes_every_epoch_even_without_shuffle():
    cells = _array_cells(np.random.default_rng(0).random((16, 6, 6, 1), dtype=np.float32))
    ds = make_dataset(cells, np.arange(16), 4, augment=True, seed=1)
    first, second = _epoch(ds, "image"), _epoch(ds, "image")
    assert not np.array_equal(first, second)
    again = make_dataset(cells, np.arange(16), 4, augment=True, seed=1)
    np.testing.assert_array_equal(first, _epoch(again, "image"))
    # Augmentation only moves pixels: each image keeps its values.
    np.testing.assert_allclose(np.sort(first.reshape(16, -1)), np.sort(cells.images[:].reshape(16, -1)))


def test_dihedral_matches_numpy_rotations_and_flips():
    x = np.arange(16 * 3 * 3 * 2, dtype=np.float32).reshape(16, 3, 3, 2)  # 2 channels: packed path
    k, fw, fh = np.arange(16) % 4, (np.arange(16) // 4) % 2, np.arange(16) // 8
    out = dihedral(tf.constant(x), tf.constant(k), tf.constant(fw), tf.constant(fh)).numpy()
    for i in range(16):
        expected = np.rot90(x[i], k[i])
        expected = expected[:, ::-1] if fw[i] else expected
        expected = expected[::-1] if fh[i] else expected
        np.testing.assert_array_equal(out[i], expected)
    volume = np.arange(2 * 2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3, 3)
    out3 = dihedral(tf.constant(volume), tf.constant([2, 1]), tf.constant([0, 0]), tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(out3[1], np.rot90(volume[1], 1, axes=(1, 2)))
    np.testing.assert_array_equal(out3[0], np.rot90(volume[0], 2, axes=(1, 2)))


def test_numpy_dihedral_equals_the_tensorflow_one_and_the_pipeline_its_augment_images(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ((16, 5, 5, 2), (16, 4, 5, 3), (16, 2, 5, 5, 1)):  # 2 channels, non-square, 3D
        x = rng.random(shape).astype("float32")
        square = shape[-3] == shape[-2]
        k = np.arange(16) % 4 if square else 2 * (np.arange(16) % 2)
        codes = np.stack([k, (np.arange(16) // 4) % 2, np.arange(16) // 8], 1).astype("int32")
        want = dihedral(tf.constant(x), codes[:, 0], codes[:, 1], codes[:, 2]).numpy()
        np.testing.assert_array_equal(dihedral_numpy(x, codes), want)
    # make_dataset augments in NumPy with the codes `augment_images` draws for that key.

    images = rng.random((8, 6, 6, 2)).astype("float32")
    cells = CellImages(images=ArrayImages(images), metadata=pd.DataFrame({"label": ["a"] * 8}),
                       channel_names=("a", "b"), source="memory")
    key = next(iter(tf.data.Dataset.random(seed=3, rerandomize_each_iteration=True).take(1)))
    oc = opencell.read_opencell(write_opencell(tmp_path / "oc", n=5, size=6), channels=["pro", "nucdist"])
    assert hasattr(oc.images, "take_planar")  # OpenCell batches are read channel-first
    for data, shuffle in ((cells, False), (oc, True)):
        dataset = make_dataset(data, np.arange(len(data.images)), 4, augment=True, seed=3, shuffle=shuffle)
        for position, batch in enumerate(dataset):
            raw = tf.constant(data.images[batch["index"].numpy()])
            want = augment_images(raw, tf.stack([key, tf.constant(position, tf.int64)]))
            np.testing.assert_array_equal(batch["image"].numpy(), want.numpy())


def _orientations(marked: np.ndarray) -> list[np.ndarray]:
    """The 8 images of `marked` (H, W, C) under rotations by k·90° and a horizontal flip."""
    return [np.rot90(f, k) for f in (marked, marked[:, ::-1]) for k in range(4)]


def test_rotation_is_uniform_over_all_four_angles():
    # One marked pixel off the diagonal: its 8 rotated/flipped images are all different, so
    # each output tells which one was drawn. The reference code's bug (90° never happens)
    # would produce only 4 of the 8.
    marked = np.zeros((4, 4, 1), np.float32)
    marked[0, 1, 0] = 1.0
    cells = _array_cells(marked[None])
    n = 4000
    out = _epoch(make_dataset(cells, np.zeros(n, np.int64), 500, augment=True, seed=0), "image")
    references = np.stack(_orientations(marked)).reshape(8, -1)
    which = np.argmax(out.reshape(n, -1) @ references.T, axis=1)
    assert (out.reshape(n, -1) == references[which]).all()
    counts = np.bincount(which, minlength=8) / n
    np.testing.assert_allclose(counts, 1 / 8, atol=0.025)
    # The rotation angle (up to a flip) is uniform over {0, 90, 180, 270}; 90°/270° included.
    angles = np.bincount(which % 4, minlength=4) / n
    np.testing.assert_allclose(angles, 0.25, atol=0.03)


def test_non_square_and_3d_augmentation_keep_shapes():
    flat = tf.constant(np.random.default_rng(0).random((64, 4, 6, 1), dtype=np.float32))
    out = augment_images(flat, tf.constant([0, 1]), square=False).numpy()
    assert out.shape == (64, 4, 6, 1)
    # Only 180° turns and flips: each output is one of the 4 shape-preserving symmetries.
    for image, result in zip(flat.numpy(), out):
        candidates = [image, image[::-1], image[:, ::-1], image[::-1, ::-1]]
        assert any(np.array_equal(result, c) for c in candidates)
    volumes = np.random.default_rng(1).random((3, 2, 8, 8, 2), dtype=np.float32)
    ds = make_dataset(_array_cells(volumes), np.arange(3), 3, augment=True)
    batch = next(iter(ds))["image"].numpy()
    assert batch.shape == (3, 2, 8, 8, 2)
    # The z order is never touched: every z-slice stays with its own slice index.
    for b in range(3):
        for z in range(2):
            np.testing.assert_allclose(np.sort(batch[b, z].ravel()), np.sort(volumes[b, z].ravel()))


def test_nan_batch_is_reported_with_row_and_source():
    images = np.zeros((4, 8, 8, 1), np.float32)
    images[2, 3, 3, 0] = np.nan
    cells = CellImages(ArrayImages(images), pd.DataFrame({"label": list("abcd")}), ("x",), "nan.npy")
    with pytest.raises(tf.errors.OpError) as raised:
        list(make_dataset(cells, np.arange(4), 4))
    message = user_message(raised.value)
    assert message.startswith("image 2 in nan.npy has NaN or infinite pixels"), message


def test_normalize_by_name_or_callable_and_extra_columns(tmp_path):
    cells = _cells(tmp_path)
    cells.metadata["target_type"] = np.arange(12) % 3
    cells.metadata["note"] = [f"n{i}" for i in range(12)]
    ds = make_dataset(cells, np.arange(6), 6, normalize=lambda b: b * 0 + 2, extra_columns=["target_type", "note"])
    batch = next(iter(ds))
    assert float(batch["image"].numpy().max()) == 2.0
    np.testing.assert_array_equal(batch["target_type"].numpy(), [0, 1, 2, 0, 1, 2])
    assert batch["note"].numpy()[5] == b"n5"
    scaled = next(iter(make_dataset(cells, np.arange(6), 6, normalize="max")))["image"].numpy()
    np.testing.assert_allclose(scaled.max(axis=(1, 2)), 1.0, rtol=1e-6)


def test_bad_arguments_are_user_errors(tmp_path):
    cells = _array_cells(np.zeros((3, 4, 4, 1), np.float32), labels=["a", "b", "c"])
    with pytest.raises(UserError, match="label value\\(s\\) c are not among the 2 classes"):
        make_dataset(cells, np.arange(3), 2, label_column="label", label_values=["a", "b"])
    with pytest.raises(UserError, match="indices must lie in \\[0, 3\\).*max 3"):
        make_dataset(cells, [0, 3], 2)
    with pytest.raises(UserError, match="split is empty"):
        make_dataset(cells, [], 2)
    with pytest.raises(UserError, match="--normalize must be one of"):
        make_dataset(cells, [0], 2, normalize="zscore")


@pytest.mark.slow
def test_an_epoch_is_positioned_without_state_and_has_a_known_length():
    images = np.random.default_rng(0).random((10, 4, 4, 1)).astype("float32")
    cells = _array_cells(images)
    kw = dict(shuffle=True, seed=3, augment=True)
    one = make_dataset(cells, np.arange(10), 4, epoch=2, **kw)
    assert int(one.cardinality()) == 3  # 4 + 4 + 2
    again = make_dataset(cells, np.arange(10), 4, epoch=2, **kw)
    np.testing.assert_array_equal(_epoch(one, "image"), _epoch(again, "image"))  # same in any process
    other = make_dataset(cells, np.arange(10), 4, epoch=3, **kw)
    assert not np.array_equal(_epoch(one), _epoch(other))  # a new order every epoch
    # A repeated stream cut into epochs of 3 batches (a pass holds 2 full batches of 4): epochs
    # cross pass boundaries and continue the stream exactly.
    stream = [make_dataset(cells, np.arange(10), 4, epoch=e, repeat=True, steps=3, drop_remainder=True, **kw)
              for e in (1, 2, 3)]
    assert all(int(d.cardinality()) == 3 for d in stream)  # 9 batches = 4.5 passes
    whole = np.concatenate([_epoch(d) for d in stream])
    passes = [_epoch(make_dataset(cells, np.arange(10), 4, epoch=p, drop_remainder=True, **kw)) for p in (1, 2, 3, 4, 5)]
    np.testing.assert_array_equal(whole, np.concatenate(passes)[:36])


def test_block_shuffle_reads_blocks_mixes_them_and_is_keyed_by_seed_and_epoch():
    # 64 "proteins" of 32 consecutive rows each (as OpenCell's per-protein files); pixel = row.
    n, per_protein = 2048, 32
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    cells = _array_cells(images, [f"p{i // per_protein:02d}" for i in range(n)])
    kw = dict(shuffle="block", seed=5, block_rows=8, buffer_rows=512, label_column="label", augment=True)

    def epoch(e, **extra):
        return list(make_dataset(cells, np.arange(n), 64, epoch=e, **{**kw, **extra}))

    first = epoch(1)
    rows = np.concatenate([b["index"].numpy() for b in first])
    assert sorted(rows) == list(range(n))  # every row exactly once
    for batch in first:  # the images are the rows' images (augmented: same pixels), labels follow
        np.testing.assert_array_equal(batch["image"].numpy()[:, 0, 0, 0], batch["index"].numpy())
        np.testing.assert_array_equal(batch["label"].numpy(), batch["index"].numpy() // per_protein)
    # Blocks stay whole in a buffer: 512 consecutive output rows hold whole blocks of 8.
    for start in range(0, n, 512):
        buffer = rows[start:start + 512]
        assert (np.bincount(buffer // 8, minlength=n // 8)[np.unique(buffer // 8)] == 8).all()
    # Mixing: a batch of 64 from a buffer of 64 blocks spans k(1-(1-1/k)^B) = 40.7 blocks on
    # average (≥ 15 distinct proteins here, as blocks of one protein come 4 at a time); a batch
    # in file order holds 2 proteins, a full shuffle ~40 of 64.
    distinct_blocks = np.mean([len(np.unique(b["index"].numpy() // 8)) for b in first])
    distinct_proteins = np.mean([len(np.unique(b["label"].numpy())) for b in first])
    assert 36 <= distinct_blocks <= 45, distinct_blocks
    assert distinct_proteins >= 20, distinct_proteins
    full = make_dataset(cells, np.arange(n), 64, shuffle="full", seed=5, epoch=1, label_column="label")
    full_proteins = np.mean([len(np.unique(b["label"].numpy())) for b in full])
    assert distinct_proteins <= full_proteins  # the price of sequential reads
    # Same (seed, epoch): the same batches, images included; another epoch or seed: another order.
    again = epoch(1)
    np.testing.assert_array_equal(_epoch(again, "image"), _epoch(first, "image"))
    assert not np.array_equal(_epoch(epoch(2)), rows)
    assert not np.array_equal(_epoch(epoch(1, seed=6)), rows)
    # auto: block for data above a quarter of the memory, full below.
    from statcell_tf.data import pipeline, source

    assert pipeline.shuffle_mode(True, cells, np.arange(n)) == "full"
    original = source.LARGE_DATA_FRACTION
    try:
        source.LARGE_DATA_FRACTION = 1e-12
        assert pipeline.shuffle_mode("auto", cells, np.arange(n)) == "block"
    finally:
        source.LARGE_DATA_FRACTION = original
    with pytest.raises(UserError, match="--shuffle must be one of auto, full, block"):
        make_dataset(cells, np.arange(n), 64, shuffle="random")


def test_block_shuffle_of_opencell_files_gives_the_rows_images_augmented(tmp_path):
    # OpenCell channel files are read channel-first (planar) and augmented while reordered.
    cells = _cells(tmp_path)
    n = len(cells)
    dataset = make_dataset(cells, np.arange(n), 5, shuffle="block", seed=1, augment=True, block_rows=2,
                           buffer_rows=10, label_column="protein")
    batches = list(dataset)
    assert [len(b["image"]) for b in batches] == [len(b["index"]) for b in batches]
    assert sum(len(b["index"]) for b in batches) == n
    for batch in batches:  # each image is its row's image turned/flipped: same sorted pixels per channel
        rows = batch["index"].numpy()
        got = np.sort(batch["image"].numpy().reshape(len(rows), -1, 2), axis=1)
        expected = np.sort(np.asarray(cells.images[rows], np.float32).reshape(len(rows), -1, 2), axis=1)
        np.testing.assert_array_equal(got, expected)
