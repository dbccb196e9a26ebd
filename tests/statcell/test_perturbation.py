import numpy as np
import pandas as pd

from statcell_tf.statcell import perturbation


def test_shift_projection_and_bonferroni_hand_values():
    a = np.array([[0.0, 0.0], [2.0, 0.0]])
    b = np.array([[1.0, 2.0], [1.0, 4.0]])
    np.testing.assert_allclose(perturbation.centroid_shift(a, b), [0.0, 3.0])
    np.testing.assert_allclose(perturbation.project(b, np.zeros(2), np.array([0.0, 3.0])), [2 / 3, 4 / 3])
    np.testing.assert_allclose(perturbation.bonferroni([0.01, 0.2, 0.5]), [0.03, 0.6, 1.0])


def test_permutation_test_separates_shifted_from_identical_populations():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 3))
    shifted = rng.normal(size=(40, 3)) + np.array([1.5, 0, 0])
    distance, p_shift = perturbation.permutation_test(base, shifted, 200, seed=1)
    assert distance > 1.0 and p_shift == 1 / 201
    # Under the null the p-value is ~uniform: about 5% of 40 replicates fall below 0.05.
    null = [perturbation.permutation_test(rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), 100, seed=i)[1]
            for i in range(40)]
    assert np.mean(np.array(null) < 0.05) <= 0.15 and 0.3 < np.median(null) < 0.7


def test_cells_along_shift_are_ordered_and_unique():
    positions = np.array([0.5, -1.0, 2.0, 0.0, 1.0, 1.5, -0.5])
    chosen = perturbation.cells_along_shift(positions, n=5)
    assert len(set(chosen)) == 5
    assert (np.diff(positions[chosen]) >= 0).all()


def test_write_perturbation_outputs(tmp_path):
    rng = np.random.default_rng(0)
    groups = []
    for structure, delta in (("Microtubules", 2.0), ("Golgi", 0.0)):
        groups.append({
            "space": "target", "structure": structure, "treatment": "paclitaxel",
            "untreated": rng.normal(size=(20, 4)), "treated": rng.normal(size=(15, 4)) + delta,
            "images_untreated": rng.random((20, 8, 8, 3)), "images_treated": rng.random((15, 8, 8, 3)),
        })
    frame = perturbation.write_perturbation(groups, tmp_path, n_permutations=100, n_images=6)
    table = pd.read_csv(tmp_path / "perturbation_tests.csv").set_index("structure")
    assert table.loc["Microtubules", "significant"] and not table.loc["Golgi", "significant"]
    np.testing.assert_allclose(frame["p_bonferroni"], np.minimum(1, frame["p_value"] * 2))
    assert (tmp_path / "fig6b_embedding.png").exists() and (tmp_path / "embedding_target.csv").exists()
    assert (tmp_path / "fig6c_target_Microtubules_paclitaxel.png").exists()
