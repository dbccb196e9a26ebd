"""The Statistical Cell commands end to end on a tiny Allen-style manifest."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from statcell_tf.cli import run_command
from statcell_tf.data.synthetic import write_allencell
from statcell_tf.naming import file_stem
from statcell_tf.statcell import coupling

TRAIN = ["--beta", "0.5", "--epochs", "1", "--batch-size", "8", "--preset", "tiny", "--eval-samples", "1"]


def _invoke(name, *args):
    """Exit status of `name ARGS`, as from bin/<name>."""
    return run_command(name, [str(a) for a in args])


def _write_manifest(folder):
    """The project's synthetic Allen data (3 structures × 10 cells, 16×16) plus a treatment column."""
    write_allencell(folder, n_families=3, cells_per_structure=10, dims=2, size=(16, 16), seed=0)
    table = pd.read_csv(folder / "manifest.csv")
    table["treatment"] = np.where(np.arange(len(table)) % 2 == 1, "drug", "untreated")
    table.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


# The module fixture trains runs through the commands (with test_train_cytoself.py: 30 min on a loaded machine).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("statcell")
    manifest = _write_manifest(root / "data")
    assert _invoke("add-control-structures", manifest, "--out", root / "ctrl", "--cells", "6", "--kinds",
                   "blank,dna,membrane") == 0
    controls = root / "ctrl" / "manifest.csv"
    assert _invoke("train-statcell", "--data", manifest, "--model", "reference", *TRAIN, "--out",
                   root / "ref", "--background", "mode") == 0
    assert _invoke("train-statcell", "--data", controls, "--model", "target", *TRAIN, "--out", root / "tgt",
                   "--reference-run", root / "ref") == 0
    return {"root": root, "manifest": manifest, "controls": controls, "ref": root / "ref", "tgt": root / "tgt"}


def test_add_control_structures_writes_controls_and_keeps_originals(runs):
    table = pd.read_csv(runs["controls"])
    original = pd.read_csv(runs["manifest"])
    assert len(table) == len(original) + 3 * 6
    assert set(table["structure_name"]) >= {"Control - Blank", "Control - DNA", "Control - Memb"}
    dna = table[table["structure_name"] == "Control - DNA"].iloc[0]
    stack = tifffile.imread(runs["controls"].parent / dna["path"])
    np.testing.assert_array_equal(stack[2], stack[1])  # structure channel = DNA channel
    blank = table[table["structure_name"] == "Control - Blank"].iloc[0]
    assert tifffile.imread(runs["controls"].parent / blank["path"])[2].max() == 0
    assert (table["source_CellId"].astype(str).str.len() > 0).all()


def test_train_statcell_writes_a_complete_run(runs):
    for run in (runs["ref"], runs["tgt"]):
        for name in ("config.json", "best.keras", "history.csv", "splits.csv", "saved_model/saved_model.pb"):
            assert (run / name).exists(), (run, name)
        history = pd.read_csv(run / "history.csv")
        assert {"loss", "reconstruction", "kl", "elbo", "val_elbo"} <= set(history.columns)
    config = json.loads((runs["tgt"] / "config.json").read_text())
    assert (config["paper"], config["role"]) == ("statcell", "target")
    assert "Control - DNA" in config["data"]["structure_types"]
    assert config["settings"]["reference_run"] == str(runs["ref"])
    assert json.loads((runs["ref"] / "config.json").read_text())["settings"]["background"] == "mode"
    # --resume continues to a higher epoch count
    assert _invoke("train-statcell", "--data", runs["manifest"], "--model", "reference", *TRAIN[:2], "--epochs",
                   "2", "--batch-size", "8", "--preset", "tiny", "--eval-samples", "1", "--out", runs["ref"],
                   "--resume") == 0
    assert len(pd.read_csv(runs["ref"] / "history.csv")) == 2


def test_train_statcell_reconstruction_mean_reaches_the_model(runs, tmp_path):
    from statcell_tf.statcell.training import load_run

    out = tmp_path / "mean"
    assert _invoke("train-statcell", "--data", runs["manifest"], "--model", "reference", *TRAIN,
                   "--reconstruction", "mean", "--out", out) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["reconstruction_reduction"] == "mean"
    model, config, _ = load_run(out)
    assert config.reconstruction_reduction == "mean" and model.reconstruction_reduction == "mean"
    assert json.loads((runs["ref"] / "config.json").read_text())["settings"]["reconstruction_reduction"] == "sum"


def test_generate_impute_walk_and_stats(runs):
    assert _invoke("generate-cells", runs["ref"], "-n", "3") == 0
    assert tifffile.imread(runs["ref"] / "generated" / "generated.tiff").shape == (3, 2, 16, 16)
    cell = pd.read_csv(runs["controls"])["CellId"].iloc[0]
    assert _invoke("impute-structures", runs["ref"], runs["tgt"], "--cell", cell, "-n", "2") == 0
    folder = runs["tgt"] / "imputed" / file_stem(cell)
    assert tifffile.imread(folder / f"{file_stem('Control - DNA')}.tiff").shape == (2, 3, 16, 16)
    assert (folder / "imputed.png").exists()
    assert _invoke("latent-walk", runs["ref"], "--dims", "top:2", "--split", "all") == 0
    assert tifffile.imread(runs["ref"] / "latent_walk" / "latent_walk.tiff").shape == (18, 2, 16, 16)
    assert _invoke("latent-stats", runs["ref"], "--split", "all", "--top", "4") == 0
    assert (runs["ref"] / "latent_stats" / "spearman_heatmap.png").exists()
    assert (runs["ref"] / "latent_stats" / "pairwise_top4_cell_cycle_phase.png").exists()


def test_coupling_and_perturbation(runs):
    assert _invoke("coupling", runs["ref"], runs["tgt"], "--data", runs["controls"], "--split", "all",
                   "--permutations", "1", "--samples", "1") == 0
    summary = pd.read_csv(runs["tgt"] / "coupling" / "summary.csv")
    assert {"Control - DNA", "NUCLEOLUS"} <= set(summary["structure_name"])
    assert {"coupling_membrane", "coupling_dna", "differential", "n_undefined"} <= set(summary.columns)
    assert (summary["differential"].dropna().abs() <= 1).all()
    assert _invoke("coupling", runs["ref"], runs["tgt"], "--data", runs["controls"], "--split", "all",
                   "--permutations", "1", "--samples", "1", "--differential", "ratio",
                   "--out", runs["root"] / "coupling_ratio") == 0
    per_cell = pd.read_csv(runs["root"] / "coupling_ratio" / "per_cell.csv")
    np.testing.assert_allclose(per_cell["differential"],
                               coupling.differential_coupling(per_cell["ratio_membrane"], per_cell["ratio_dna"]))
    assert _invoke("perturbation-embed", runs["ref"], runs["tgt"], "--treated", runs["manifest"],
                   "--permutations", "20", "--images", "4") == 0
    tests = pd.read_csv(runs["ref"] / "perturbation" / "perturbation_tests.csv")
    assert set(tests["space"]) == {"reference", "target"} and (tests["p_bonferroni"] <= 1).all()


def test_beta_sweep_is_resumable(runs, tmp_path, capsys):
    args = ["beta-sweep", "--data", runs["manifest"], "--betas", "0.5", "--epochs", "1", "--batch-size", "8",
            "--preset", "tiny", "--eval-samples", "1", "--out", tmp_path / "sweep", "--reconstruction", "mean"]
    assert _invoke(*args) == 0
    assert json.loads((tmp_path / "sweep" / "beta_0.5000" / "config.json").read_text())["settings"][
        "reconstruction_reduction"] == "mean"
    table = pd.read_csv(tmp_path / "sweep" / "rate_distortion.csv")
    assert list(table["beta"]) == [0.5] and (tmp_path / "sweep" / "rate_distortion.png").exists()
    capsys.readouterr()
    assert _invoke(*args) == 0
    assert capsys.readouterr().out.count("done before") == 1
    assert _invoke(*args[:-1], "sum") == 2  # a finished β trained with another reconstruction
    assert "--reconstruction sum does not match" in capsys.readouterr().err


def test_user_errors_are_one_line(runs, capsys):
    def error(*args):
        capsys.readouterr()
        assert _invoke(*args) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1, err
        return err

    assert "target run" in error("generate-cells", runs["tgt"])
    assert "no-such-cell" in error("impute-structures", runs["ref"], runs["tgt"], "--cell", "no-such-cell")
    assert "--betas" in error("beta-sweep", "--data", runs["manifest"], "--betas", "0:1")
    assert "--beta" in error("train-statcell", "--data", runs["manifest"], "--model", "reference", "--beta", "1.5")
    assert "--resume" in error("train-statcell", "--data", runs["manifest"], "--model", "reference", *TRAIN,
                               "--out", runs["ref"])


def test_perturbation_counts_a_cell_and_its_control_copies_once():
    from statcell_tf.cli.perturbation_embed import _one_row_per_cell

    metadata = pd.DataFrame({
        "CellId": ["1", "2", "1_control_dna", "1_control_blank", "3", "2_control_dna"],
        "source_CellId": ["1", "2", "1", "1", None, "2"],
    })
    np.testing.assert_array_equal(_one_row_per_cell(metadata, np.arange(6)), [0, 1, 4])
    np.testing.assert_array_equal(_one_row_per_cell(metadata, np.array([2, 3, 5])), [2, 5])
    np.testing.assert_array_equal(_one_row_per_cell(metadata.drop(columns="source_CellId"), np.arange(3)), [0, 1, 2])
