import numpy as np
import pytest

from statcell_tf.cytoself import feature_spectrum as fsm
from statcell_tf.cytoself.feature_spectrum import FeatureSpectrum, build_feature_spectrum
from statcell_tf.errors import UserError

FAMILIES = 5
BLOCK = 8  # codes owned by each family
UNUSED = 6  # codes no image ever uses
CODES = FAMILIES * BLOCK + UNUSED


def synthetic_histograms(seed=0, proteins_per_family=4, images_per_protein=12, positions=625):
    """Per-image local-index histograms drawn from family-specific code distributions.

    Family f puts most of its mass on codes [f*BLOCK, (f+1)*BLOCK), the rest spread over all
    used codes; each protein perturbs its family's distribution.
    """
    rng = np.random.default_rng(seed)
    hist, proteins, families = [], [], []
    used = FAMILIES * BLOCK
    for family in range(FAMILIES):
        base = np.full(used, 0.3 / used)
        base[family * BLOCK : (family + 1) * BLOCK] += 0.7 / BLOCK
        for p in range(proteins_per_family):
            probs = base * rng.uniform(0.7, 1.3, size=used)
            probs /= probs.sum()
            for _ in range(images_per_protein):
                counts = rng.multinomial(positions, probs)
                hist.append(np.concatenate([counts, np.zeros(UNUSED, dtype=int)]))
                proteins.append(f"P{family}{p}")
                families.append(f"fam{family}")
    return np.array(hist), np.array(proteins), np.array(families)


@pytest.fixture(scope="module")
def data():
    return synthetic_histograms()


@pytest.fixture(scope="module")
def spectrum(data):
    hist, proteins, families = data
    return build_feature_spectrum(hist, proteins, families, n_clusters=FAMILIES)


def test_protein_histograms_and_correlation_hand_values():
    hist = np.array([[1, 0, 2], [3, 0, 2], [5, 0, 2], [0, 0, 2]])
    names, means, counts = fsm.protein_histograms(hist, ["b", "b", "a", "a"])
    assert list(names) == ["a", "b"]
    np.testing.assert_allclose(means, [[2.5, 0, 2], [2, 0, 2]])
    np.testing.assert_array_equal(counts, [2, 2])
    matrix = np.array([[1.0, 2.0, 0.0, 5.0], [2.0, 4.0, 0.0, 5.0], [4.0, 1.0, 0.0, 5.0]])
    corr, informative = fsm.code_correlation(matrix)
    np.testing.assert_array_equal(informative, [True, True, False, False])
    np.testing.assert_allclose(corr[:2, :2], np.corrcoef(matrix[:, :2].T))
    assert np.all(np.isfinite(corr))
    np.testing.assert_array_equal(corr[2:, :2], 0.0)
    np.testing.assert_array_equal(np.diag(corr), 1.0)


def test_roman():
    assert [fsm.roman(i) for i in (0, 1, 4, 5, 9, 11, 14)] == ["-", "i", "iv", "v", "ix", "xi", "xiv"]


def test_same_family_spectra_correlate_more(spectrum):
    spectra = np.array([spectrum.spectrum(p) for p in spectrum.proteins])
    r = np.corrcoef(spectra)
    same = spectrum.families[:, None] == spectrum.families[None, :]
    off_diagonal = ~np.eye(len(r), dtype=bool)
    assert r[same & off_diagonal].min() > r[~same].max()


def test_consensus_ranking_puts_own_family_first(spectrum):
    for protein, family in zip(spectrum.proteins, spectrum.families):
        table = spectrum.family_correlations(protein)
        assert table.loc[0, "family"] == family
        assert bool(table.loc[0, "is_own_family"])
        assert list(table["pearson_r"]) == sorted(table["pearson_r"], reverse=True)
        # the protein is left out of its own family's consensus
        assert table.set_index("family").loc[family, "n_proteins"] == 3
        assert table.set_index("family").loc["fam0" if family != "fam0" else "fam1", "n_proteins"] == 4


def test_clusters_recover_family_code_blocks_and_unused_codes_go_last(spectrum):
    assert spectrum.cluster_numbers == list(range(1, FAMILIES + 1))
    unused = np.arange(FAMILIES * BLOCK, CODES)
    assert not spectrum.informative[unused].any()
    np.testing.assert_array_equal(spectrum.clusters[unused], 0)
    assert set(spectrum.order[-UNUSED:]) == set(unused)
    assert sorted(spectrum.order) == list(range(CODES))
    for family in range(FAMILIES):
        block = spectrum.clusters[family * BLOCK : (family + 1) * BLOCK]
        assert len(set(block)) == 1, block
    assert len({spectrum.clusters[f * BLOCK] for f in range(FAMILIES)}) == FAMILIES
    # clusters are contiguous in feature order and numbered i, ii, ... along it
    ranges = spectrum.cluster_ranges()
    assert [c for c, _, _ in ranges] == [1, 2, 3, 4, 5, 0]
    assert ranges[0][1] == 0 and ranges[-1][2] == CODES
    assert np.all(np.isfinite(spectrum.correlation))


def test_with_clusters_recuts_the_same_tree(spectrum):
    again = spectrum.with_clusters(FAMILIES)
    np.testing.assert_array_equal(again.clusters, spectrum.clusters)
    two = spectrum.with_clusters(2)
    assert two.cluster_numbers == [1, 2]
    # a coarser cut merges whole finer clusters
    for cluster in spectrum.cluster_numbers:
        assert len(set(two.clusters[spectrum.clusters == cluster])) == 1


def test_correlation_distance_option(data):
    hist, proteins, families = data
    alt = build_feature_spectrum(hist, proteins, families, n_clusters=FAMILIES, distance="correlation")
    for family in range(FAMILIES):
        assert len(set(alt.clusters[family * BLOCK : (family + 1) * BLOCK])) == 1
    with pytest.raises(UserError, match="distance"):
        build_feature_spectrum(hist, proteins, families, distance="cosine")


def test_unknown_protein_lists_closest_names(spectrum):
    with pytest.raises(UserError, match=r"closest: P01") as info:
        spectrum.spectrum("P01x")
    assert "Received: P01x" in str(info.value)
    with pytest.raises(UserError, match="known proteins include"):
        spectrum.family_correlations("zzzzzzzz")


def test_cache_round_trip(spectrum, tmp_path):
    spectrum.info["source"] = "embeddings.h5"
    spectrum.save(tmp_path)
    assert FeatureSpectrum.exists(tmp_path)
    loaded = FeatureSpectrum.load(tmp_path)
    for name in FeatureSpectrum._ARRAYS:
        original, back = getattr(spectrum, name), getattr(loaded, name)
        if name == "correlation":
            np.testing.assert_allclose(back, original, atol=1e-7)
        else:
            np.testing.assert_array_equal(back, original)
    assert loaded.info == {"source": "embeddings.h5"}
    assert (loaded.n_clusters, loaded.distance) == (FAMILIES, "euclidean")
    with pytest.raises(FileNotFoundError):
        FeatureSpectrum.load(tmp_path / "missing")


def test_cluster_examples_pick_images_of_the_owning_family(data, spectrum):
    hist, proteins, families = data
    examples = fsm.cluster_examples(hist, spectrum, proteins, top=4)
    assert sorted(examples) == spectrum.cluster_numbers
    for cluster, images in examples.items():
        assert len(images) == 4
        assert len(set(proteins[images])) == 4  # four different proteins
        owner = np.unique(np.flatnonzero(spectrum.clusters == cluster) // BLOCK)
        assert len(owner) == 1
        assert set(families[images]) == {f"fam{owner[0]}"}


@pytest.mark.slow
def test_spectrum_table_and_figures(data, spectrum, tmp_path):
    hist, proteins, _ = data
    table = spectrum.spectrum_table("P00")
    assert list(table.columns) == ["protein", "position", "code", "cluster", "cluster_name", "occurrence"]
    assert table["occurrence"].sum() == pytest.approx(625.0)
    np.testing.assert_allclose(table["occurrence"], hist[proteins == "P00"].mean(axis=0)[spectrum.order])
    fsm.plot_spectrum(spectrum, "P00", tmp_path / "spectrum.png")
    fsm.plot_correlation_heatmap(spectrum, tmp_path / "heatmap.png")
    fsm.plot_family_spectra(spectrum, tmp_path / "families.png")
    images = {c: np.random.default_rng(c).random((4, 16, 16, 2)) for c in spectrum.cluster_numbers}
    fsm.plot_cluster_examples(images, tmp_path / "examples.png", {c: ["a", "b", "c", "d"] for c in images})
    for name in ("spectrum", "heatmap", "families", "examples"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*"))


def test_needs_two_proteins_and_some_variation():
    with pytest.raises(UserError, match="at least 2 proteins"):
        build_feature_spectrum(np.ones((3, 4)), ["a"] * 3)
    # names the run and the likely cause (a barely trained quantiser)
    with pytest.raises(UserError, match=r"^feature-spectrum RUN runs/x: no codebook feature is used differently .*"
                                        r"all 2 proteins.*barely trained"):
        build_feature_spectrum(np.ones((4, 4)), ["a", "a", "b", "b"], where="feature-spectrum RUN runs/x")
