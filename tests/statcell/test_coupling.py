import numpy as np
import pandas as pd
import pytest

from statcell_tf.backend import keras
from statcell_tf.data.controls import CONTROL_NAMES, control_images
from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.statcell import coupling
from statcell_tf.statcell.data import StatcellData, toy_cells


def test_eq4_ratio_and_strength_hand_values():
    real = np.array([-10.0, -20.0, -5.0])
    permuted = np.array([[-20.0, -20.0], [-20.0, -20.0], [-4.0, -6.0]])
    np.testing.assert_allclose(coupling.coupling_ratio(real, permuted), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(coupling.coupling_strength(real, permuted), [0.5, 0.0, 0.0])
    np.testing.assert_allclose(coupling.coupling_ratio(real, permuted.mean(1)), [0.5, 1.0, 1.0])


def test_eq5_differential_hand_values():
    d = coupling.differential_coupling([0.5, 0.0, 0.2, 0.3, 0.0], [0.0, 0.5, 0.2, 0.1, 0.0])
    np.testing.assert_allclose(d[:4], [1.0, -1.0, 0.0, 0.5])
    assert np.isnan(d[4])


def test_eq5_weakly_coupled_cells_stay_in_range_or_undefined():
    # Strengths 1 − c of weakly coupled cells are noise around 0: (0.010, −0.009) used to give 19.
    d = coupling.differential_coupling([0.010, -0.5, 1e-4, 0.3, 0.2], [-0.009, 0.2, -2e-4, np.nan, 0.6])
    np.testing.assert_allclose(d[[0, 1, 4]], [1.0, -1.0, -0.5])
    assert np.isnan(d[2]) and np.isnan(d[3])  # coupled to neither channel / not measured
    rng = np.random.default_rng(0)
    noise = coupling.differential_coupling(rng.normal(0, 0.01, 1000), rng.normal(0, 0.01, 1000))
    finite = noise[np.isfinite(noise)]
    assert len(finite) > 500 and finite.min() >= -1 and finite.max() <= 1


def test_summary_skips_and_counts_undefined_cells():
    frame = pd.DataFrame({
        "structure_name": ["A", "A", "A", "B"],
        "cell_cycle_phase": "interphase",
        "elbo": -1.0,
        "coupling_membrane": [0.010, 0.0, 0.4, -0.001],
        "coupling_dna": [-0.009, 0.0, 0.0, 0.0],
        "ratio_membrane": [0.990, 1.0, 0.6, 1.001],
        "ratio_dna": [1.009, 1.0, 1.0, 1.0],
        "differential": [19.0, np.nan, 1.0, 0.0],  # as written by the old formula: recomputed
    })
    summary = coupling.summarise(frame).set_index("structure_name")
    assert summary.loc["A", "n_cells"] == 3 and summary.loc["A", "n_undefined"] == 1
    np.testing.assert_allclose(summary.loc["A", "differential"], 1.0)
    assert summary.loc["B", "n_undefined"] == 1 and np.isnan(summary.loc["B", "differential"])
    ratio = coupling.summarise(frame, differential_from="ratio").set_index("structure_name")
    assert (ratio["n_undefined"] == 0).all() and (ratio["differential"].abs() <= 1).all()
    with pytest.raises(ValueError, match="differential_from"):
        coupling.summarise(frame, differential_from="plain")


def test_summary_groups_by_structure_and_phase():
    frame = pd.DataFrame({
        "structure_name": ["A", "A", "A", "B"],
        "cell_cycle_phase": ["interphase", "interphase", "mitosis", "interphase"],
        "elbo": [-1.0, -1.0, -1.0, -1.0],
        "coupling_membrane": [0.5, 0.3, 0.0, 0.1],
        "coupling_dna": [0.0, 0.1, 0.5, 0.1],
        "ratio_membrane": [0.5, 0.7, 1.0, 0.9],
        "ratio_dna": [1.0, 0.9, 0.5, 0.9],
    })
    frame["differential"] = coupling.differential_coupling(frame["coupling_membrane"], frame["coupling_dna"])
    summary = coupling.summarise(frame).set_index(["structure_name", "cell_cycle_phase"])
    assert summary.loc[("A", "interphase"), "n_cells"] == 2
    np.testing.assert_allclose(summary.loc[("A", "interphase"), "differential"], (1.0 + 0.5) / 2)
    np.testing.assert_allclose(summary.loc[("A", "mitosis"), "differential"], -1.0)
    np.testing.assert_allclose(summary.loc[("B", "interphase"), "differential"], 0.0)
    ratio_based = coupling.summarise(frame, differential_from="ratio").set_index(["structure_name", "cell_cycle_phase"])
    assert ratio_based.loc[("A", "mitosis"), "differential"] > 0  # Eq. 4 ratios flip the sign
    assert list(coupling.summarise(frame, by_phase=False)["structure_name"]) == ["A", "B"]


def test_derangement_never_picks_the_cell_itself():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10):
        donors = coupling.derangement(n, rng)
        assert (donors != np.arange(n)).all() and ((0 <= donors) & (donors < n)).all()
    with pytest.raises(ValueError):
        coupling.derangement(1, rng)


class _CopyModel:
    """Stand-in target model whose decoder copies DNA (type 1), membrane (type 2) or nothing (0)."""

    def elbo_per_cell(self, batch, n_samples=1, weighted=False):
        ref = keras.ops.convert_to_tensor(batch["reference"])
        kind = keras.ops.cast(batch["target_type"], "int32")[:, None, None, None]
        zeros = keras.ops.zeros_like(ref[..., 1:2])
        predicted = keras.ops.where(kind == 1, ref[..., 1:2], keras.ops.where(kind == 2, ref[..., 0:1], zeros))
        error = keras.ops.sum(keras.ops.square(batch["image"] - predicted), axis=(1, 2, 3))
        return -(1.0 + error)


def test_per_cell_coupling_finds_the_copied_channel():
    base = toy_cells(8, (16, 16), seed=3)
    images, kind, source = control_images(base.images[np.arange(8)], ("blank", "dna", "membrane"), seed=0)
    metadata = pd.DataFrame({
        "CellId": [f"{s}-{k}" for s, k in zip(source, kind)],
        "structure_name": [CONTROL_NAMES[k] for k in kind],
        "cell_cycle_phase": "interphase",
    })
    cells = CellImages(ArrayImages(images), metadata, ("membrane", "dna", "structure"))
    data = StatcellData(cells, "target", (16, 16), types=[CONTROL_NAMES["blank"], CONTROL_NAMES["dna"],
                                                           CONTROL_NAMES["membrane"]])
    per_cell = coupling.per_cell_coupling(_CopyModel(), data, np.arange(len(cells)), n_permutations=3, n_samples=1)
    summary = coupling.summarise(per_cell, by_phase=False).set_index("structure_name")
    dna, memb, blank = (summary.loc[CONTROL_NAMES[k]] for k in ("dna", "membrane", "blank"))
    assert dna["coupling_dna"] > 0.5 and abs(dna["coupling_membrane"]) < 1e-6
    assert memb["coupling_membrane"] > 0.5 and abs(memb["coupling_dna"]) < 1e-6
    assert abs(blank["coupling_dna"]) < 1e-6 and abs(blank["coupling_membrane"]) < 1e-6
    assert dna["differential"] == pytest.approx(-1.0) and memb["differential"] == pytest.approx(1.0)
    assert len(per_cell) == len(cells)


def test_write_coupling_files(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "CellId": [str(i) for i in range(6)],
        "structure_name": ["A"] * 3 + ["B"] * 3,
        "cell_cycle_phase": ["interphase", "mitosis", "interphase"] * 2,
        "elbo": -rng.random(6) - 1,
        "coupling_membrane": rng.random(6),
        "coupling_dna": rng.random(6),
    })
    frame["ratio_membrane"] = 1 - frame["coupling_membrane"]
    frame["ratio_dna"] = 1 - frame["coupling_dna"]
    frame["differential"] = coupling.differential_coupling(frame["coupling_membrane"], frame["coupling_dna"])
    summary = coupling.write_coupling(frame, tmp_path)
    for name in ("per_cell.csv", "summary.csv", "fig5a_scatter.png", "fig5b_differential.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(summary) == 4
