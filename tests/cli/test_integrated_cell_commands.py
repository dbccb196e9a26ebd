import json

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import run_command

pytestmark = pytest.mark.slow

TINY = ["--size", "32", "--filters", "2", "--batch-size", "8", "--quiet", "--latent-dim", "4"]


class Result:
    def __init__(self, exit_code, output):
        self.exit_code, self.output = exit_code, output


def _invoke(*args, capsys=None):
    """Run `bin/<args[0]> args[1:]` in-process; exit code and (with capsys) its output."""
    code = run_command(str(args[0]), [str(a) for a in args[1:]])
    captured = capsys.readouterr() if capsys is not None else None
    return Result(code, (captured.out + captured.err) if captured else "")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from statcell_tf.data.synthetic import write_allencell

    out = tmp_path_factory.mktemp("allen")
    write_allencell(out, n_families=4, cells_per_structure=8, dims=2, size=(32, 32), mitotic_fraction=0.0, seed=0)
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def runs(manifest, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    reference, conditional = root / "reference", root / "conditional"
    result = _invoke("train-integrated-cell", "--data", manifest, "--stage", "reference", "--epochs", 1, "--out", reference, *TINY)
    assert result.exit_code == 0, result.output
    result = _invoke(
        "train-integrated-cell", "--data", manifest, "--stage", "conditional", "--reference-run", reference,
        "--epochs", 1, "--out", conditional, "--filters", 2, "--batch-size", 8, "--quiet",
    )
    assert result.exit_code == 0, result.output
    return reference, conditional


def test_reference_run_folder(runs, manifest):
    reference, _ = runs
    for name in ("config.json", "best.keras", "history.csv", "splits.csv", "figures/reconstructions.png", "saved_model"):
        assert (reference / name).exists(), name
    history = pd.read_csv(reference / "history.csv")
    for key in ("loss", "reconstruction", "encoder_adversarial", "decoder_adversarial", "latent_discriminator",
                "image_discriminator", "val_loss", "lr_enc", "lr_dec", "lr_enc_d", "lr_dec_d"):
        assert key in history and np.isfinite(history[key]).all(), key
    config = json.loads((reference / "config.json").read_text())
    assert (config["paper"], config["role"]) == ("integrated_cell", "reference")
    config = config["settings"]
    assert config["stage"] == "reference" and config["image_size"] == [32, 32] and config["gamma_dec"] == 1e-5
    # Split by CellId: no cell in two splits, every cell somewhere.
    splits = pd.read_csv(reference / "splits.csv", dtype={"cell_id": str}).rename(columns={"cell_id": "CellId"})
    assert splits.groupby("CellId")["split"].nunique().max() == 1
    assert len(splits) == len(pd.read_csv(manifest))


def test_conditional_run_and_saved_model(runs):
    from statcell_tf.backend import tf

    _, conditional = runs
    saved = json.loads((conditional / "config.json").read_text())
    config = {**saved["settings"], **saved["data"]}
    assert config["stage"] == "conditional" and len(config["class_names"]) == 4
    assert config["image_size"] == [32, 32]  # taken from the reference run
    history = pd.read_csv(conditional / "history.csv")
    for key in ("reference_latent_mse", "classification", "accuracy", "val_accuracy", "image_discriminator"):
        assert np.isfinite(history[key]).all(), key
    loaded = tf.saved_model.load(str(conditional / "saved_model"))
    k = len(config["class_names"])
    out = loaded.integrate(tf.zeros([1, 32, 32, 2]))
    assert tuple(out.shape) == (1, k, 32, 32, 1)
    assert tuple(loaded.classify(tf.zeros([2, 32, 32, 3])).shape) == (2, k)


def test_resume_continues_the_run(runs, manifest, tmp_path, capsys):
    import shutil

    out = tmp_path / "ref"
    shutil.copytree(runs[0], out)
    again = _invoke("train-integrated-cell", "--data", manifest, "--stage", "reference", "--epochs", 1, "--out", out, *TINY, capsys=capsys)
    assert again.exit_code == 2 and "--resume" in again.output
    wrong = _invoke("train-integrated-cell", "--data", manifest, "--stage", "conditional", "--reference-run", runs[0],
                    "--out", out, "--resume", "--quiet", capsys=capsys)
    assert wrong.exit_code == 2 and "reference-stage run" in wrong.output
    result = _invoke("train-integrated-cell", "--data", manifest, "--stage", "reference", "--epochs", 2, "--out", out, "--resume", *TINY, capsys=capsys)
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]


def test_classify_structures(runs, manifest, capsys):
    _, conditional = runs
    result = _invoke("classify-structures", conditional, "--data", manifest, capsys=capsys)
    assert result.exit_code == 0, result.output
    out = conditional / "classification"
    summary = json.loads((out / "summary.json").read_text())
    test_cells = pd.read_csv(conditional / "splits.csv").query("split == 'test'")
    assert summary["cells"] == len(test_cells) and 0.0 <= summary["accuracy"] <= 1.0
    matrix = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    assert matrix.to_numpy().sum() == len(test_cells) and list(matrix.index) == list(matrix.columns)
    per_class = pd.read_csv(out / "per_class_accuracy.csv")
    assert per_class["cells"].sum() == len(test_cells)
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    predictions = pd.read_csv(out / "predictions.csv")
    assert np.isclose(summary["accuracy"], (predictions["structure_name"] == predictions["predicted"]).mean())


def test_integrate_structures(runs, manifest, capsys):
    import tifffile

    _, conditional = runs
    cell = str(pd.read_csv(manifest)["CellId"].iloc[0])
    result = _invoke("integrate-structures", conditional, "--cell", cell, capsys=capsys)
    assert result.exit_code == 0, result.output
    out = conditional / "integrated"
    names = json.loads((conditional / "config.json").read_text())["data"]["class_names"]
    stack = tifffile.imread(out / f"integrated_{cell}.tif")
    assert stack.shape == (len(names), 32, 32) and stack.dtype == np.float32
    assert 0.0 <= stack.min() and stack.max() <= 1.0
    table = pd.read_csv(out / f"compartments_{cell}.csv")
    assert list(table["structure"]) == names
    assert table[["nucleus_fraction", "boundary_fraction"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (out / f"integrated_{cell}.png").stat().st_size > 1000


def test_user_errors(runs, manifest, capsys):
    reference, conditional = runs
    result = _invoke("train-integrated-cell", "--data", manifest, "--stage", "conditional", "--epochs", 1, capsys=capsys)
    assert result.exit_code == 2 and "--reference-run" in result.output
    result = _invoke(
        "train-integrated-cell", "--data", manifest, "--stage", "conditional", "--reference-run", reference, "--size", "64",
        capsys=capsys,
    )
    assert result.exit_code == 2 and "--size" in result.output
    result = _invoke("integrate-structures", conditional, "--cell", "no-such-cell", capsys=capsys)
    assert result.exit_code == 2 and "no-such-cell" in result.output
    result = _invoke("classify-structures", reference, "--data", manifest, capsys=capsys)
    assert result.exit_code == 2 and "conditional" in result.output
    result = _invoke("train-integrated-cell", "--data", manifest, "--stage", "reference", "--size", "20x", capsys=capsys)
    assert result.exit_code == 2 and "--size" in result.output
