import numpy as np
import pytest

from statcell_tf.cytoself.clustering_score import clustering_score
from statcell_tf.cytoself.umap_atlas import compute_umap, mean_per_group, plot_umap
from statcell_tf.errors import UserError


@pytest.mark.slow
def test_umap_separates_known_clusters_and_keeps_their_score(tmp_path):
    # 4 classes of 15 vectors (4x4x2 "embeddings", flattened inside), well apart in 32-D.
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(4, 4, 4, 2))
    labels = np.repeat(np.array(["er", "golgi", "nucleolus", "mito"]), 15)
    vectors = centres[np.repeat(np.arange(4), 15)] + rng.normal(size=(60, 4, 4, 2))
    coords = compute_umap(vectors, seed=0, pca_components=8)
    assert coords.shape == (60, 2) and coords.dtype == np.float32
    assert np.all(np.isfinite(coords))
    assert clustering_score(coords, labels) > 3.0
    assert clustering_score(coords, rng.permutation(labels)) < 1.0
    labels_with_unknown = labels.astype(object)
    labels_with_unknown[:5] = None
    plot_umap(coords, labels_with_unknown, tmp_path / "umap.png", title="test")
    assert (tmp_path / "umap.png").stat().st_size > 1000


def test_mean_per_group_hand_values():
    keys, means = mean_per_group(np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]]), ["b", "b", "a"])
    assert list(keys) == ["a", "b"]
    np.testing.assert_allclose(means, [[10, 0], [2, 3]])


def test_umap_input_errors():
    with pytest.raises(UserError, match="at least 3"):
        compute_umap(np.zeros((2, 4)))
    with pytest.raises(UserError, match="non-finite"):
        compute_umap(np.full((5, 4), np.nan))


def test_plot_many_classes_without_legend(tmp_path):
    rng = np.random.default_rng(0)
    plot_umap(rng.normal(size=(80, 2)), [f"c{i}" for i in range(40)] * 2, tmp_path / "many.png")
    assert (tmp_path / "many.png").exists()
