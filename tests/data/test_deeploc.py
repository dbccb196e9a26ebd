import h5py
import numpy as np
import pytest

from statcell_tf.data import deeploc
from statcell_tf.errors import UserError


def _write(path, flat, onehot, images_key="data1", labels_key="Index1"):
    with h5py.File(path, "w") as f:
        f[images_key] = flat
        f[labels_key] = onehot
    return path


def test_flat_rows_become_row_major_channel_blocks(tmp_path):
    size = 4
    protein = np.arange(size * size, dtype=np.float64).reshape(size, size)
    dic = 100 + protein
    flat = np.stack([np.concatenate([protein.ravel(), dic.ravel()]) + 1000 * i for i in range(3)])
    onehot = np.eye(11, dtype=np.uint8)[[0, 7, 10]]
    cells = deeploc.read_deeploc(_write(tmp_path / "d.hdf5", flat, onehot))
    assert cells.image_shape == (4, 4, 2) and cells.images.dtype == np.float32
    assert cells.channel_names == ("protein", "brightfield")
    np.testing.assert_array_equal(cells.images[1][..., 0], protein + 1000)
    np.testing.assert_array_equal(cells.images[[2, 0, 2]][..., 1], [dic + 2000, dic, dic + 2000])
    assert list(cells.metadata["label"]) == ["ER", "Nucleus", "Vacuole Membrane"]
    # The Chong sets name the datasets data / Index and may have other class counts.
    chong = _write(tmp_path / "c.h5", flat, np.eye(19, dtype=np.uint8)[[1, 2, 3]], "data", "Index")
    other = deeploc.read_deeploc(chong)
    assert list(other.metadata["label"]) == ["class_1", "class_2", "class_3"]


def test_bad_one_hot_and_nan_rows(tmp_path):
    flat = np.zeros((2, 2 * 16), np.float64)
    with pytest.raises(UserError, match="d.h5:Index1 must have exactly one 1 per row. Received: row 1"):
        deeploc.read_deeploc(_write(tmp_path / "d.h5", flat, np.array([[1, 0], [1, 1]], np.uint8)))
    flat[1, 5] = np.nan
    with pytest.raises(UserError, match="n.h5:data1 row 1 has NaN or infinite pixels"):
        deeploc.read_deeploc(_write(tmp_path / "n.h5", flat, np.eye(2, dtype=np.uint8)))
    with pytest.raises(UserError, match="must hold a dataset named data1 or data"):
        deeploc.read_deeploc(_write(tmp_path / "k.h5", flat, np.eye(2), "images", "Index1"))


def test_real_schuldiner_set_protein_then_brightfield(shared_data):
    cells = deeploc.read_deeploc(shared_data("deeploc-yeast-36", "Schuldiner_test_set.hdf5"))
    assert len(cells) == 36 and cells.image_shape == (64, 64, 2)
    assert cells.metadata["label"].nunique() == 9
    assert cells.metadata["label"].value_counts()["Cytosol"] == 5
    from scipy.stats import skew

    images = cells.images[:]
    # Fluorescence (bright spots on a dark background) is right-skewed; DIC is not.
    protein = np.median([skew(image[..., 0].ravel()) for image in images])
    brightfield = np.median([skew(image[..., 1].ravel()) for image in images])
    assert protein > 1.5 * brightfield > 0
    # Row-major blocks keep images smooth: neighbouring pixels along a row correlate strongly
    # (a wrong reshape, e.g. interleaved channels, breaks this).
    dic = images[..., 1]
    rows = np.corrcoef(dic[:, :, :-1].ravel(), dic[:, :, 1:].ravel())[0, 1]
    assert rows > 0.5
