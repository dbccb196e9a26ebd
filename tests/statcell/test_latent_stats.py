import numpy as np
import pandas as pd
import pytest

from statcell_tf.errors import UserError
from statcell_tf.statcell import latent_stats
from statcell_tf.statcell.data import StatcellData, toy_cells
from statcell_tf.statcell.model import ConditionalBetaVAE


def test_rank_and_kld_hand_values():
    mu = np.array([[1.0, -3.0, 0.0], [-1.0, 1.0, 0.5]])
    order, score = latent_stats.rank_dimensions(mu)
    assert list(order) == [1, 0, 2]
    np.testing.assert_allclose(score, [2.0, 1.0, 0.25])
    # KL per dim: 0.5 (μ² + σ² − log σ² − 1); dim0: μ=±1, σ²=1 → 0.5; dim1: μ=−3,1 → (4.5 + 0.5)/2
    kld = latent_stats.kld_per_dimension(mu, np.zeros_like(mu))
    np.testing.assert_allclose(kld, [0.5, 2.5, 0.0625])
    assert latent_stats.kld_per_dimension(np.zeros((4, 2)), np.zeros((4, 2))).tolist() == [0.0, 0.0]


def test_parse_dims():
    mu = np.array([[0.1, 5.0, -2.0], [0.0, 4.0, 2.0]])
    assert latent_stats.parse_dims("top:2", mu) == [1, 2]
    assert latent_stats.parse_dims("0,2", mu) == [0, 2]
    for bad in ("top:x", "top:0", "7", "a,b"):
        with pytest.raises(UserError, match="--dims"):
            latent_stats.parse_dims(bad, mu)


def _discs(radii_cell, radii_nuc, size=32):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    images = []
    for rc, rn in zip(radii_cell, radii_nuc):
        images.append(np.stack([(r <= rc) * 1.0, (r <= rn) * 2.0], -1))
    return np.asarray(images, "float32")


def test_cell_features_measure_known_discs():
    images = _discs([10, 12, 14], [4, 5, 6])
    features = latent_stats.cell_features(images)
    np.testing.assert_allclose(features["cell_area"], np.pi * np.array([10, 12, 14]) ** 2, rtol=0.05)
    np.testing.assert_allclose(features["nuclear_area"], np.pi * np.array([4, 5, 6]) ** 2, rtol=0.1)
    np.testing.assert_allclose(features["dna_integrated_intensity"], 2 * features["nuclear_area"], rtol=1e-6)
    np.testing.assert_allclose(features["nucleus_offset"], 0.0, atol=1e-6)
    volume = np.repeat(images[:, None], 4, axis=1)
    volume[:, 0] = 0  # 3 of 4 slices
    features3d = latent_stats.cell_features(volume)
    assert (features3d["cell_height"] == 3).all() and "cell_volume" in features3d


def test_spearman_and_pearson():
    rng = np.random.default_rng(0)
    feature = rng.random(20)
    mu = np.stack([feature**3, -feature, rng.random(20)], axis=1)
    table = latent_stats.spearman_table(mu, pd.DataFrame({"size": feature}), ["a", "b", "c"])
    np.testing.assert_allclose(table["size"].to_numpy()[:2], [1.0, -1.0])
    pearson = latent_stats.pearson_among(mu[:, :2])
    assert pearson.shape == (2, 2) and pearson[0, 1] < -0.8
    assert len(latent_stats.cluster_order(rng.random((5, 6)))) == 6


@pytest.mark.slow
def test_latent_walk_and_full_analysis(tmp_path):
    cells = toy_cells(12, (16, 16), seed=0)
    data = StatcellData(cells, "reference", (16, 16))
    model = ConditionalBetaVAE("reference", 2, (16, 16), filters=(4, 8), latent_dim=6, eval_samples=1)
    mu, _ = latent_stats.embed(model, data, np.arange(12), batch_size=5)
    assert mu.shape == (12, 6)
    images, offsets = latent_stats.latent_walk(model, mu, [0, 3], steps=9, span=2.0)
    assert images.shape == (2, 9, 16, 16, 2)
    np.testing.assert_allclose(offsets[:, 0], -offsets[:, -1])
    np.testing.assert_allclose(offsets[1, -1], 2.0 * np.std(mu[:, 3]), rtol=1e-5)
    result = latent_stats.latent_stats(model, data, np.arange(12), tmp_path, top=4,
                                       colour_by=("cell_cycle_phase", "cell_area", "none"))
    for name in ("kld_per_dimension.csv", "kld_per_dimension.png", "cell_features.csv", "spearman_top_dims.csv",
                 "spearman_heatmap.png", "pearson_top_dims.csv", "pairwise_top4_cell_cycle_phase.png",
                 "pairwise_top4_cell_area.png", "pairwise_top4_none.png", "embedding.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    ranked = pd.read_csv(tmp_path / "kld_per_dimension.csv")
    assert (np.diff(ranked["mean_abs_mu"]) <= 1e-9).all() and result["spearman"].shape[0] == 4
    with pytest.raises(UserError, match="color-by"):
        latent_stats.latent_stats(model, data, np.arange(12), tmp_path, top=4, colour_by=("nonsense",))
