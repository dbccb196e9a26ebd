"""Preprocessing: hand-checked normalisations, distance maps, crops, alignment, and one real field of view."""

import numpy as np
import pytest
from skimage.draw import ellipse
from skimage.measure import regionprops

from statcell_tf.data.preprocess import (
    align_cell,
    crop_cells,
    fov_to_opencell_crops,
    histogram_mode,
    max_projection,
    normalize_max,
    normalize_minmax,
    normalize_mode,
    segment_nuclei,
    signed_distance,
)

REAL_DNA = ("cellprofiler-examplehuman", "images", "AS_09125_050116030001_D03f00d0.tif")


def _batch(*channels):
    """(1, N, 1, C) batch from 1-D channel value lists."""
    return np.stack([np.asarray(c, np.float64) for c in channels], axis=-1)[None, :, None, :]


def test_normalize_mode_hand_values():
    # Mode 1 (three pixels): [1,1,1,2,5,3] - 1 = [0,0,0,1,4,2], / 4.
    out = normalize_mode(_batch([1, 1, 1, 2, 5, 3], [0.5, 0.2, 0.2, 0.2, 0.9, 0.0]))
    np.testing.assert_allclose(out[0, :, 0, 0], [0, 0, 0, 0.25, 1, 0.5])
    # Mode 0.2; below the mode clips to 0: [0.3,0,0,0,0.7,0] / 0.7.
    np.testing.assert_allclose(out[0, :, 0, 1], [0.3 / 0.7, 0, 0, 0, 1, 0], rtol=1e-6)
    ints = normalize_mode(np.array([7, 7, 9, 11], np.uint16).reshape(1, 4, 1, 1))
    np.testing.assert_allclose(ints.ravel(), [0, 0, 0.5, 1])
    assert histogram_mode(np.array([3, 3, 4], np.uint8)) == 3


def test_normalize_max_and_minmax_hand_values():
    batch = _batch([2, 4, 8, 6], [5, 5, 5, 5])
    np.testing.assert_allclose(normalize_max(batch)[0, :, 0, 0], [0.25, 0.5, 1, 0.75])
    np.testing.assert_allclose(normalize_minmax(batch)[0, :, 0, 0], [0, 1 / 3, 1, 2 / 3])
    for fn in (normalize_mode, normalize_max, normalize_minmax):
        out = fn(batch)
        assert out.dtype == np.float32 and out.shape == batch.shape
        assert not np.isnan(out).any() and (out[..., 1] == 0).all(), fn.__name__  # constant channel → zeros
    # Each image of a batch is scaled on its own.
    two = np.stack([np.arange(4.0), 10 * np.arange(4.0)]).reshape(2, 2, 2, 1)
    np.testing.assert_allclose(normalize_minmax(two)[0], normalize_minmax(two)[1])
    with pytest.raises(ValueError, match="channel-last"):
        normalize_max(np.ones((4, 4)))


def test_signed_distance_sign_and_range():
    mask = np.zeros((40, 50), bool)
    rr, cc = ellipse(20, 25, 10, 14, shape=mask.shape)
    mask[rr, cc] = True
    d = signed_distance(mask)
    assert d.dtype == np.float32 and d.shape == mask.shape
    assert d.min() == -1 and d.max() == 1
    assert (d[mask] > 0).all() and (d[~mask] < 0).all()
    assert d[20, 25] == 1  # the centre is the deepest point
    assert d[0, 0] == -1 or d[39, 49] == -1  # a far corner is the farthest point
    pixels = signed_distance(mask, normalize=False)
    left = np.flatnonzero(mask[20])[0]  # the tip of the major axis
    assert pixels[20, 25] == pytest.approx(10, abs=1)
    assert pixels[20, left] == 1 and pixels[20, left - 1] == -1 and pixels[20, left - 3] == -3
    assert (signed_distance(np.ones((5, 5), bool)) == 1).all() and (signed_distance(np.zeros((5, 5), bool)) == -1).all()
    volume = np.zeros((9, 20, 20), bool)
    volume[2:7, 5:15, 5:15] = True
    d3 = signed_distance(volume)
    assert d3.shape == volume.shape and (d3[volume] > 0).all() and (d3[~volume] < 0).all()


def test_crop_cells_skips_the_border():
    labels = np.zeros((60, 60), np.int32)
    labels[28:33, 28:33] = 1  # centre: fits
    labels[1:4, 1:4] = 2  # corner: a 20-px crop would cross the border
    labels[50:54, 40:44] = 3  # centroid (51.5, 41.5): rows 41..61 cross the bottom
    image = np.random.default_rng(0).random((60, 60, 2)).astype(np.float32)
    crops, table = crop_cells(image, labels, size=20)
    assert crops.shape == (1, 20, 20, 2) and list(table["label"]) == [1]
    assert table.loc[0, "start_y"] == 20 and table.loc[0, "area"] == 25
    np.testing.assert_array_equal(crops[0], image[20:40, 20:40])
    none, empty = crop_cells(image, labels, size=70)
    assert none.shape == (0, 70, 70, 2) and len(empty) == 0


def test_max_projection():
    volume = np.zeros((3, 4, 4))
    volume[2, 1, 1] = 5
    volume[0, 2, 3] = 2
    out = max_projection(volume)
    assert out.shape == (4, 4) and out[1, 1] == 5 and out[2, 3] == 2


@pytest.mark.parametrize("rotation", [0.4, -1.0, 1.3])
def test_align_cell_turns_an_ellipse_horizontal(rotation):
    mask = np.zeros((64, 64), bool)
    rr, cc = ellipse(28, 36, 22, 9, shape=mask.shape, rotation=rotation)
    mask[rr, cc] = True
    nucleus = np.zeros_like(mask)
    rr, cc = ellipse(26, 38, 4, 4, shape=mask.shape)
    nucleus[rr, cc] = True
    # Intensity heavier at one end of the major axis.
    image = mask * (1.0 + np.arange(64)[None, :] / 64.0 + np.arange(64)[:, None] / 32.0)
    out, out_mask, out_nucleus = align_cell(np.stack([image, image], -1), mask, nucleus)
    assert out.shape == (64, 64, 2)
    region = regionprops(out_mask.astype(np.uint8))[0]
    assert abs(abs(region.orientation) - np.pi / 2) < 0.05  # major axis along x
    assert region.major_axis_length > 2 * region.minor_axis_length
    np.testing.assert_allclose(regionprops(out_nucleus.astype(np.uint8))[0].centroid, (31.5, 31.5), atol=1.0)
    # Flipped so the intensity-weighted skewness of x is positive.
    w = out[..., 0] * out_mask
    x = np.arange(64)[None, :]
    mean = (w * x).sum() / w.sum()
    assert (w * (x - mean) ** 3).sum() > 0


def test_align_cell_3d_applies_one_transform_per_slice():
    mask2 = np.zeros((48, 48), bool)
    rr, cc = ellipse(24, 24, 18, 7, shape=mask2.shape, rotation=0.8)
    mask2[rr, cc] = True
    mask = np.stack([mask2] * 5)
    out, out_mask = align_cell(mask.astype(np.float32), mask)
    assert out.shape == (5, 48, 48)
    for z in range(5):
        np.testing.assert_array_equal(out_mask[z], out_mask[0])
    assert abs(abs(regionprops(out_mask[2].astype(np.uint8))[0].orientation) - np.pi / 2) < 0.05
    with pytest.raises(ValueError, match="empty"):
        align_cell(np.zeros((8, 8)), np.zeros((8, 8), bool))


def test_segment_nuclei_splits_touching_discs():
    dna = np.zeros((60, 80))
    for cy, cx in ((30, 24), (30, 44), (10, 70)):  # two touching discs, one alone
        rr, cc = ellipse(cy, cx, 10, 10, shape=dna.shape)
        dna[rr, cc] = 100
    dna += np.random.default_rng(0).normal(5, 1, dna.shape)
    labels = segment_nuclei(dna, sigma=1.0, min_distance=5)
    assert labels.max() == 3
    assert labels[30, 24] != labels[30, 44] and labels[30, 24] > 0 and labels[30, 44] > 0
    assert segment_nuclei(np.zeros((20, 20))).max() == 0


def test_real_fov_segmentation_distance_and_crops(shared_data):
    import tifffile

    dna = tifffile.imread(shared_data(*REAL_DNA))
    assert dna.shape == (512, 512) and dna.dtype == np.uint8
    labels = segment_nuclei(dna)
    # Counted by eye once on the raw image (zoomed 128×128 tiles): about 87 nuclei have their
    # centre in the bottom-left 256×256 quadrant. The watershed merges a few tightly touching
    # pairs (76 with the defaults), so the asserted range is 87 ± 20 %.
    quadrant = [r for r in regionprops(labels) if r.centroid[0] >= 256 and r.centroid[1] < 256]
    assert 70 <= len(quadrant) <= 105, len(quadrant)
    assert 220 <= labels.max() <= 400  # whole field (the other quadrants were not counted one by one)
    areas = np.array([r.area for r in regionprops(labels)])
    assert 80 < np.median(areas) < 400  # HT29 nuclei ~15 px across at this magnification
    # Foreground is bright: mean DNA intensity inside nuclei far above the background.
    assert dna[labels > 0].mean() > 4 * dna[labels == 0].mean()
    out = fov_to_opencell_crops(dna, dna, size=48)
    n = len(out["table"])
    assert out["pro"].shape == out["nuc"].shape == out["nucdist"].shape == (n, 48, 48)
    assert 150 < n <= labels.max()  # border nuclei skipped
    assert out["nucdist"].min() == -1 and out["nucdist"].max() == 1
    # The crop centre lies inside its nucleus, and the DNA is bright where the distance is positive.
    assert (out["nucdist"][:, 24, 24] > 0).mean() > 0.95
    inside = out["nucdist"] > 0
    assert out["nuc"][inside].mean() > 2 * out["nuc"][~inside].mean()
    assert 0 <= out["pro"].min() and out["pro"].max() <= 1
