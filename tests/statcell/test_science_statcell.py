"""Statistical Cell known answers (Donovan-Maiye et al. 2022).

§4.4: the coupling statistic (Eq. 4–5) must find each synthetic control coupled only to what
it copies: the DNA copy to the DNA channel, the membrane copy to the membrane, the blank to
neither; on synthetic cells and on real BBBC021 crops (DNA as nucleus, F-actin as membrane).
§4.3: along a β sweep the rate falls and the distortion rises.

The small versions run in CI (marked slow; they train with a bare compiled step loop); the larger ones are `science` experiments
(`make science`), printing the numbers they assert on.
"""

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data.controls import CONTROL_NAMES, control_images
from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.statcell import coupling
from statcell_tf.statcell.data import StatcellData, toy_cells
from tests._support.bbbc021 import bbbc021_reference

KINDS = ("dna", "membrane", "blank")


def _control_cells(reference: np.ndarray, phases=None, kinds=KINDS, seed=0) -> tuple[CellImages, np.ndarray]:
    """Controls built from (N, H, W, 2) [membrane, dna] images, or (N, H, W, 3) with a real
    structure channel (the "random" control moves it to another cell); returns cells and
    source index."""
    images = reference if reference.shape[-1] == 3 else np.concatenate(
        [reference, np.zeros_like(reference[..., :1])], axis=-1
    )
    controls, kind, source = control_images(images, kinds, seed=seed)
    metadata = pd.DataFrame({
        "CellId": [f"cell{s}_{k}" for s, k in zip(source, kind)],
        "source_CellId": [f"cell{s}" for s in source],
        "structure_name": [CONTROL_NAMES[k] for k in kind],
        "cell_cycle_phase": np.asarray(phases)[source] if phases is not None else "interphase",
    })
    return CellImages(ArrayImages(controls), metadata, ("membrane", "dna", "structure")), source


def _fit(model, batch: dict, steps: int, batch_size: int, seed: int = 0):
    """`steps` Adam steps on random minibatches of the in-memory `batch` (no run folder)."""
    from statcell_tf.backend import tf

    n = len(batch["image"])
    model.prepare({k: v[:batch_size] for k, v in batch.items()})
    step = tf.function(model.train_step_fn)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.choice(n, min(batch_size, n), replace=False)
        step({k: tf.constant(v[rows]) for k, v in batch.items()})
    return model


def _train_and_couple(cells, source, size, steps, filters=(8, 16), latent_dim=16, permutations=4, samples=4):
    """Train a target model (β = 0.9) on the first 75% of the source cells; couple the rest."""
    from statcell_tf.backend import keras
    from statcell_tf.statcell.model import ConditionalBetaVAE

    keras.utils.set_random_seed(0)
    n = int(source.max()) + 1
    train = np.flatnonzero(source < int(0.75 * n))
    test = np.flatnonzero(source >= int(0.75 * n))
    data = StatcellData(cells, "target", size)
    model = ConditionalBetaVAE(
        "target", len(size), size, num_types=len(data.types), filters=filters, latent_dim=latent_dim,
        beta=0.9, eval_samples=2, learning_rate=5e-3,
    )
    _fit(model, data.batch(train), steps, 16)
    return coupling.per_cell_coupling(model, data, test, n_permutations=permutations, n_samples=samples)


def _assert_controls_couple_to_what_they_copy(per_cell, label):
    summary = coupling.summarise(per_cell, by_phase=False).set_index("structure_name")
    print(f"\n{label}: coupling strengths 1 − Eq. 4 and Eq. 5 per control")
    print(summary[["n_cells", "coupling_membrane", "coupling_dna", "ratio_membrane", "ratio_dna",
                   "differential"]].round(3).to_string())
    dna = summary.loc[CONTROL_NAMES["dna"]]
    memb = summary.loc[CONTROL_NAMES["membrane"]]
    blank = summary.loc[CONTROL_NAMES["blank"]]
    coupled = min(dna["coupling_dna"], memb["coupling_membrane"])
    uncoupled = [dna["coupling_membrane"], memb["coupling_dna"], blank["coupling_membrane"], blank["coupling_dna"]]
    assert coupled >= 0.15, f"{label}: the copies are not coupled to their channel ({coupled:.3f})"
    assert max(abs(v) for v in uncoupled) <= 0.35 * coupled, f"{label}: off-channel or blank coupling {uncoupled}"
    assert dna["differential"] < 0 < memb["differential"], "Eq. 5: DNA copy → nucleus side, membrane copy → membrane side"
    return summary


@pytest.mark.slow
def test_synthetic_controls_couple_only_to_what_they_copy():
    base = toy_cells(40, (16, 16), seed=1)
    reference = base.images[np.arange(40)][..., :2]
    cells, source = _control_cells(reference, base.metadata["cell_cycle_phase"].to_numpy())
    per_cell = _train_and_couple(cells, source, (16, 16), steps=200)
    _assert_controls_couple_to_what_they_copy(per_cell, "synthetic 16×16")


@pytest.mark.slow
def test_bbbc021_controls_couple_only_to_what_they_copy(shared_data):
    reference = bbbc021_reference(shared_data("bbbc021-dmso-cycloheximide"), 40, 16)
    cells, source = _control_cells(reference)
    per_cell = _train_and_couple(cells, source, (16, 16), steps=200)
    _assert_controls_couple_to_what_they_copy(per_cell, "BBBC021 16×16 (F-actin = membrane)")


@pytest.mark.slow
def test_beta_sweep_rate_falls_and_distortion_rises():
    from statcell_tf.backend import keras
    from statcell_tf.statcell.beta_sweep import rate_distortion
    from statcell_tf.statcell.model import ConditionalBetaVAE

    cells = toy_cells(80, (16, 16), seed=2)
    data = StatcellData(cells, "reference", (16, 16))
    train, test = data.batch(np.arange(64)), np.arange(64, 80)
    rows = []
    for beta in (0.05, 0.25, 0.9):
        keras.utils.set_random_seed(0)
        model = ConditionalBetaVAE("reference", 2, (16, 16), filters=(8, 16), latent_dim=16, beta=beta,
                                   learning_rate=5e-3, eval_samples=2)
        _fit(model, train, steps=200, batch_size=8)
        rows.append({"beta": beta, **rate_distortion(model, data, test, n_samples=4)})
    frame = pd.DataFrame(rows)
    print("\nβ sweep (toy 16×16, held-out cells):\n" + frame[["beta", "rate", "distortion", "elbo"]].round(3).to_string())
    assert (np.diff(frame["rate"]) < 0).all(), "rate must fall with β"
    assert (np.diff(frame["distortion"]) > 0).all(), "distortion must rise with β"
    assert frame["rate"].iloc[0] > 5 * frame["rate"].iloc[-1]


# ----- longer experiments (make science) -------------------------------------------------------
@pytest.mark.science
def test_synthetic_allen_controls_via_commands(tmp_path):
    """The whole path a user takes: synthetic Allen data (with a mitotic subset) → all five
    controls → reference + target training → `coupling` (Eq. 4 per cell, Eq. 5 per phase)."""
    from statcell_tf.cli import run_command
    from statcell_tf.data.synthetic import write_allencell

    write_allencell(tmp_path / "data", n_families=3, cells_per_structure=60, dims=2, size=(32, 32),
                    mitotic_fraction=0.15, seed=0)
    assert run_command("add-control-structures", [str(tmp_path / "data"), "--out", str(tmp_path / "ctrl"),
                                                  "--cells", "60"]) == 0
    data = str(tmp_path / "ctrl" / "manifest.csv")
    common = ["--data", data, "--beta", "0.9", "--epochs", "40", "--batch-size", "16", "--preset", "tiny",
              "--learning-rate", "5e-3", "--eval-samples", "2", "--background", "mode"]
    assert run_command("train-statcell", [*common, "--model", "reference", "--out", str(tmp_path / "ref")]) == 0
    assert run_command("train-statcell", [*common, "--model", "target", "--out", str(tmp_path / "tgt")]) == 0
    assert run_command("coupling", [str(tmp_path / "ref"), str(tmp_path / "tgt"), "--data", data,
                                    "--permutations", "8", "--samples", "4"]) == 0
    per_cell = pd.read_csv(tmp_path / "tgt" / "coupling" / "per_cell.csv")
    print("\nEq. 5 per structure and phase:\n" + pd.read_csv(tmp_path / "tgt" / "coupling" / "summary.csv")
          .round(3).to_string())
    _assert_controls_couple_to_what_they_copy(per_cell, "synthetic Allen 32×32 via commands")


@pytest.mark.science
def test_bbbc021_controls_32px_all_five_controls(shared_data):
    reference = bbbc021_reference(shared_data("bbbc021-dmso-cycloheximide"), 120, 32, seed=1, structure=True)
    cells, source = _control_cells(reference, kinds=("dna", "membrane", "blank", "noise", "random"))
    per_cell = _train_and_couple(cells, source, (32, 32), steps=1500, filters=(8, 16, 32), latent_dim=32,
                                 permutations=8)
    summary = _assert_controls_couple_to_what_they_copy(per_cell, "BBBC021 32×32, five controls")
    # Another cell's β-tubulin says nothing about this cell's membrane or DNA.
    random = summary.loc[CONTROL_NAMES["random"], ["coupling_membrane", "coupling_dna"]].abs().max()
    assert random <= 0.35 * summary.loc[CONTROL_NAMES["membrane"], "coupling_membrane"], random


@pytest.mark.science
def test_beta_sweep_seven_betas(tmp_path):
    from statcell_tf.statcell.beta_sweep import sweep
    from statcell_tf.statcell.training import StatcellTrainConfig

    cells = toy_cells(200, (32, 32), seed=3)
    base = StatcellTrainConfig(data="toy", model="reference", dims=2, preset="tiny", size=[32, 32], epochs=25,
                               batch_size=32, learning_rate=3e-3, eval_samples=4, seed=0)
    betas = list(np.linspace(0.05, 0.95, 7).round(3))
    frame = sweep(base, cells, betas, tmp_path, verbose=0, n_samples=4, log=lambda *_: None)
    print("\nβ sweep (toy 32×32, test split):\n" + frame[["beta", "rate", "distortion", "elbo", "active_dims"]]
          .round(3).to_string())
    # Monotone up to small fluctuations between neighbours; strictly across the range.
    assert frame["rate"].iloc[0] > 3 * frame["rate"].iloc[-1]
    assert frame["distortion"].iloc[-1] > frame["distortion"].iloc[0]
    assert pd.Series(frame["rate"]).is_monotonic_decreasing or (np.diff(frame["rate"]) < 0).mean() >= 0.8
