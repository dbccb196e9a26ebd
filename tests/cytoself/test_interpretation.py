import numpy as np
import pytest

from statcell_tf.cytoself import interpretation as fi
from statcell_tf.cytoself.feature_spectrum import build_feature_spectrum
from statcell_tf.errors import UserError


def code_map(images):
    """A toy 'quantiser': each 4x4 patch gets code = brightness bin of its mean (0..7)."""
    patches = images[..., 0].reshape(len(images), 4, 4, 4, 4).mean(axis=(2, 4))  # (n, 4, 4)
    return np.minimum((patches * 8).astype(int), 7)


def toy_reconstruct(images, codes):
    """Decoder of the toy model: each patch painted with its code's value; removed codes -> 0."""
    indices = code_map(images)
    values = (indices + 0.5) / 8.0
    values[np.isin(indices, codes)] = 0.0
    up = np.repeat(np.repeat(values, 4, axis=1), 4, axis=2)
    return up[..., None].astype(np.float32)


def test_difference_is_exactly_where_removed_codes_are(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16, 1)).astype(np.float32)
    images[:, :8] *= 0.3  # top half dim: low codes
    removal = fi.remove_feature(images, toy_reconstruct, [0, 1, 2])
    indices = np.repeat(np.repeat(code_map(images), 4, axis=1), 4, axis=2)
    expected = np.isin(indices, [0, 1, 2])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(removal.difference[..., 0] != 0, expected)
    np.testing.assert_allclose(removal.reconstructions, toy_reconstruct(images, []))
    assert np.all(removal.mean_abs_difference() > 0)
    fi.plot_feature_removal(removal, tmp_path / "diff.png", title="toy", captions=["a", "b", "c"])
    assert (tmp_path / "diff.png").stat().st_size > 1000


def test_difference_overlay_is_red_where_different():
    base = np.full((4, 4), 0.5)
    base[0, 0] = 1.0
    diff = np.zeros((4, 4))
    diff[2, 3] = -2.0
    rgb = fi.difference_overlay(base, diff)
    assert rgb.shape == (4, 4, 3)
    np.testing.assert_allclose(rgb[2, 3], [1.0, 0.0, 0.0])
    untouched = rgb[1, 1]
    assert untouched[0] == untouched[1] == untouched[2]


def test_feature_codes_from_cluster_or_single_code():
    rng = np.random.default_rng(0)
    hist = np.zeros((20, 12))
    for i in range(20):
        block = i % 2
        hist[i, block * 6 : block * 6 + 6] = rng.multinomial(100, np.full(6, 1 / 6))
    spectrum = build_feature_spectrum(hist, [f"p{i % 4}" for i in range(20)], n_clusters=2)
    codes = {tuple(sorted(fi.feature_codes(spectrum, feature=k))) for k in (1, 2)}
    assert codes == {tuple(range(6)), tuple(range(6, 12))}
    np.testing.assert_array_equal(fi.feature_codes(spectrum, code=5), [5])
    np.testing.assert_array_equal(fi.feature_codes(None, code=5), [5])
    with pytest.raises(UserError, match="exactly one"):
        fi.feature_codes(spectrum, feature=1, code=2)
    with pytest.raises(UserError, match="--feature must be a feature cluster number in 1..2"):
        fi.feature_codes(spectrum, feature=3)
    with pytest.raises(UserError, match="--code must be a code index in 0..11"):
        fi.feature_codes(spectrum, code=12)
    assert fi.feature_title(2, None, np.arange(6), "P") == "P: without feature cluster ii (6 codes)"
