import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_data import write_opencell  # noqa: E402

from statcell_tf.backend import tf  # noqa: E402
from statcell_tf.data import opencell  # noqa: E402
from statcell_tf.data.pipeline import augment_batch, dihedral, make_dataset  # noqa: E402
from statcell_tf.data.source import ArrayImages, CellImages  # noqa: E402


def _cells(tmp_path):
    return opencell.read_opencell(write_opencell(tmp_path / "oc", size=16), channels=["pro", "nucdist"])


def test_batches_are_dicts_with_labels_in_given_order(tmp_path):
    cells = _cells(tmp_path)
    ds = make_dataset(cells, np.arange(12), 5, label_column="protein", label_values=["B", "A"])
    batches = list(ds)
    assert [len(b["index"]) for b in batches] == [5, 5, 2]
    first = batches[0]
    assert first["image"].shape == (5, 16, 16, 2) and first["image"].dtype == tf.float32
    np.testing.assert_array_equal(first["label"].numpy(), [1] * 5)  # protein A -> index 1
    np.testing.assert_array_equal(first["image"].numpy(), cells.images[[0, 1, 2, 3, 4]])


def test_shuffle_is_deterministic_under_seed_and_changes_each_epoch(tmp_path):
    cells = _cells(tmp_path)

    def order(seed):
        ds = make_dataset(cells, np.arange(12), 4, shuffle=True, seed=seed, augment=True)
        return [np.concatenate([b["index"].numpy() for b in ds]) for _ in range(2)]

    a, b = order(3), order(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert sorted(a[0]) == list(range(12))


def test_dihedral_matches_numpy_rotations_and_flips():
    x = np.arange(16 * 3 * 3 * 1, dtype=np.float32).reshape(16, 3, 3, 1)
    k, fw, fh = np.arange(16) % 4, (np.arange(16) // 4) % 2, np.arange(16) // 8
    out = dihedral(tf.constant(x), tf.constant(k), tf.constant(fw), tf.constant(fh)).numpy()
    for i in range(16):
        expected = np.rot90(x[i], k[i])
        expected = expected[:, ::-1] if fw[i] else expected
        expected = expected[::-1] if fh[i] else expected
        np.testing.assert_array_equal(out[i], expected)
    volume = np.arange(2 * 2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 2, 3, 3, 1)
    out3 = dihedral(tf.constant(volume), tf.constant([2, 1]), tf.constant([0, 0]), tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(out3[1], np.rot90(volume[1], 1, axes=(1, 2)))


def test_augmentation_rotations_are_uniform():
    # An image marked in one corner: its orientation after augmentation tells k and the flips.
    image = np.zeros((1, 4, 4, 1), np.float32)
    image[0, 0, 0, 0] = 1.0
    images = tf.constant(np.repeat(image, 4000, axis=0))
    out = augment_batch({"image": images, "position": tf.constant(7, tf.int64)}, seed=0)["image"].numpy()
    corners = np.stack([out[:, 0, 0, 0], out[:, 0, -1, 0], out[:, -1, 0, 0], out[:, -1, -1, 0]], axis=1)
    counts = corners.sum(axis=0)
    assert corners.sum() == 4000
    np.testing.assert_allclose(counts / 4000, 0.25, atol=0.03)
    # Without flips, the rotation angle alone must also be uniform over {0, 90, 180, 270}.
    keys = tf.random.stateless_uniform([4000, 3], seed=[0, 7], minval=0, maxval=4, dtype=tf.int32)[:, 0]
    np.testing.assert_allclose(np.bincount(keys.numpy(), minlength=4) / 4000, 0.25, atol=0.03)


def test_nan_batch_is_reported_with_row_and_source():
    images = np.zeros((4, 8, 8, 1), np.float32)
    images[2, 3, 3, 0] = np.nan
    import pandas as pd

    cells = CellImages(ArrayImages(images), pd.DataFrame({"label": list("abcd")}), ("x",), "nan.npy")
    from statcell_tf.errors import user_message

    with pytest.raises(tf.errors.OpError) as raised:
        list(make_dataset(cells, np.arange(4), 4))
    assert user_message(raised.value) == "image 2 in nan.npy has NaN or infinite pixels"


def test_normalize_callable_and_extra_columns(tmp_path):
    cells = _cells(tmp_path)
    cells.metadata["target_type"] = np.arange(12) % 3
    ds = make_dataset(cells, np.arange(6), 6, normalize=lambda b: b * 0 + 2, extra_columns=["target_type"])
    batch = next(iter(ds))
    assert float(batch["image"].numpy().max()) == 2.0
    np.testing.assert_array_equal(batch["target_type"].numpy(), [0, 1, 2, 0, 1, 2])
