import numpy as np
import pytest

from statcell_tf.cytoself.clustering_score import class_centroids_and_sizes, clustering_score
from statcell_tf.errors import UserError


def test_hand_computed_example():
    # Class a: median centre (0, 0), distances 0, 2, 2 -> size 2.
    # Class b: median centre (10, 0), distances 0, 1, 1 -> size 1.
    coords = np.array([[0, 0], [2, 0], [0, 2], [10, 0], [10, 1], [10, -1]], dtype=float)
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    classes, centroids, sizes = class_centroids_and_sizes(coords, labels)
    assert list(classes) == ["a", "b"]
    np.testing.assert_allclose(centroids, [[0, 0], [10, 0]])
    np.testing.assert_allclose(sizes, [2, 1])
    # Pooled centre coordinates [0, 0, 10, 0]: population std = sqrt(75 / 4); median size 1.5.
    assert clustering_score(coords, labels) == pytest.approx(np.sqrt(75 / 4) / 1.5)
    # Robust numerator: median 0, |deviations| [0, 0, 10, 0] -> MAD 0 -> score 0.
    assert clustering_score(coords, labels, spread="robust") == 0.0


def test_separated_clusters_score_high_random_labels_low():
    rng = np.random.default_rng(0)
    centres = rng.uniform(-20, 20, size=(8, 2))
    labels = np.repeat(np.arange(8), 50)
    coords = centres[labels] + rng.normal(scale=0.5, size=(400, 2))
    good = clustering_score(coords, labels)
    shuffled = clustering_score(coords, rng.permutation(labels))
    assert good > 10.0
    assert shuffled < 1.0
    assert clustering_score(coords, labels, spread="robust") > 10.0


def test_score_is_scale_invariant_and_excludes_others():
    rng = np.random.default_rng(1)
    labels = np.repeat(["x", "y", "z"], 20)
    coords = np.array([[0, 0], [5, 5], [10, 0]])[np.searchsorted(["x", "y", "z"], labels)]
    coords = coords + rng.normal(size=coords.shape)
    base = clustering_score(coords, labels)
    assert clustering_score(coords * 7.0, labels) == pytest.approx(base)
    extra = np.vstack([coords, rng.uniform(-50, 50, size=(20, 2))])
    extra_labels = np.concatenate([labels, ["others"] * 20])
    assert clustering_score(extra, extra_labels, exclude=["others"]) == pytest.approx(base)
    assert clustering_score(extra, extra_labels) != pytest.approx(base)


def test_errors():
    with pytest.raises(UserError, match="at least 2 classes"):
        clustering_score(np.zeros((4, 2)), ["a"] * 4)
    with pytest.raises(UserError, match="one label per point"):
        clustering_score(np.zeros((4, 2)), ["a", "b"])
    with pytest.raises(UserError, match="spread"):
        clustering_score(np.zeros((4, 2)), ["a", "a", "b", "b"], spread="mad")
