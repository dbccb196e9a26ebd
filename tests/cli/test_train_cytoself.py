"""train-cytoself and embed-cytoself end to end on a tiny synthetic OpenCell folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import run_command

EXPECTED_COLUMNS = {
    "loss", "reconstruction", "mse_lyr1", "vq1", "vq2", "perplexity1", "perplexity2", "classification1",
    "classification2", "accuracy1", "accuracy2", "val_loss", "val_reconstruction", "val_perplexity1", "lr",
}


# The module fixture trains runs through the commands (with test_statcell_commands.py: 30 min on a loaded machine).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from statcell_tf.data.synthetic import write_opencell

    root = tmp_path_factory.mktemp("cytoself")
    data = write_opencell(root / "data", n_families=2, proteins_per_family=2, cells_per_protein=10, seed=0)
    run = root / "run"
    code = run_command(
        "train-cytoself",
        ["--data", str(data), "--preset", "demo", "--epochs", "1", "--batch-size", "16", "--out", str(run)],
    )
    assert code == 0
    return data, run


def test_train_writes_the_run_folder(trained):
    data, run = trained
    config = json.loads((run / "config.json").read_text())
    assert (config["paper"], config["role"], config["preset"]) == ("cytoself", "cytoself", "demo")
    facts = config["data"]
    assert facts["channels"] == ["pro", "nucdist"] and facts["model_config"]["local_num_embeddings"] == 128
    proteins = pd.concat(pd.read_csv(p) for p in data.glob("*_label.csv"))["protein"].unique()
    assert facts["label_values"] == sorted(proteins)
    assert facts["model_config"]["num_classes"] == 4 and facts["data_variance"] > 0
    history = pd.read_csv(run / "history.csv")
    assert EXPECTED_COLUMNS <= set(history.columns) and len(history) == 1
    assert np.isfinite(history[sorted(EXPECTED_COLUMNS)].to_numpy(float)).all()
    splits = pd.read_csv(run / "splits.csv")
    assert len(splits) == 40 and splits.groupby("group")["split"].nunique().max() == 1  # no fov in two splits
    assert (run / "best.keras").exists() and (run / "saved_model" / "saved_model.pb").exists()
    assert (run / "figures" / "reconstruction_epoch001.png").stat().st_size > 0


def test_existing_run_needs_resume(trained, capsys):
    data, run = trained
    code = run_command("train-cytoself", ["--data", str(data), "--preset", "demo", "--out", str(run)])
    assert code == 2 and "already holds a run" in capsys.readouterr().err


def test_embed_and_fresh_process_savedmodel_agree(trained, tmp_path):
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.data.readers import read_cells

    data, run = trained
    out = tmp_path / "emb.h5"
    assert run_command("embed-cytoself", [str(run), "--data", str(data), "--out", str(out), "--split", "test"]) == 0
    arrays, metadata = load_embeddings(out)
    splits = pd.read_csv(run / "splits.csv")
    test_rows = splits.loc[splits["split"] == "test", "row"].to_numpy()
    assert arrays["index"].tolist() == sorted(test_rows.tolist())
    assert arrays["global"].shape == (len(test_rows), 4, 4, 144) and arrays["local"].shape[1:] == (25, 25, 16)
    np.testing.assert_array_equal(arrays["local_hist"].sum(axis=1), 625)
    np.testing.assert_array_equal(arrays["global_hist"].sum(axis=1), 144)
    assert (arrays["label"] >= 0).all() and set(metadata["protein"]) <= set(json.loads(metadata.attrs["label_values"]))

    # A process that never imports statcell_tf reproduces the embeddings from the SavedModel.
    cells = read_cells(data).select_channels(["pro", "nucdist"])
    np.save(tmp_path / "images.npy", cells.images[arrays["index"]].astype("float32"))
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(run / 'saved_model')!r})\n"
        f"x = tf.constant(np.load({str(tmp_path / 'images.npy')!r}))\n"
        f"np.savez({str(tmp_path / 'sm.npz')!r}, g=m.embed_global(x).numpy(), "
        "h=m.index_histogram(x)['local_hist'].numpy(), p=m.classify(x)['global'].numpy())\n"
        "assert 'statcell_tf' not in sys.modules\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    got = np.load(tmp_path / "sm.npz")
    np.testing.assert_allclose(got["g"], arrays["global"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["h"], arrays["local_hist"])
    np.testing.assert_allclose(got["p"], arrays["probabilities"], rtol=1e-5, atol=1e-6)


def test_interrupted_run_resumes_with_more_epochs(trained, tmp_path, monkeypatch):
    from statcell_tf.backend import tf
    from statcell_tf.cytoself import training as cytoself_training

    data, _ = trained
    run = tmp_path / "run"
    args = ["--data", str(data), "--preset", "demo", "--batch-size", "16", "--steps-per-epoch", "1", "--out", str(run)]
    panel = cytoself_training.reconstruction_panel
    panels, interrupt_at = [], [2]  # the panel is drawn once per epoch, after its checkpoint

    def record_and_interrupt(*a, **kw):
        panels.append(1)
        if len(panels) == interrupt_at[0]:
            raise KeyboardInterrupt  # as if killed after epoch 2
        return panel(*a, **kw)

    monkeypatch.setattr(cytoself_training, "reconstruction_panel", record_and_interrupt)
    assert run_command("train-cytoself", [*args, "--epochs", "3"]) == 130
    before = pd.read_csv(run / "history.csv")
    assert list(before["epoch"]) == [1, 2] and not (run / "saved_model").exists()

    def counters():  # the trainer's step counter and the optimizer's iteration count
        reader = tf.train.load_checkpoint(str(run / "checkpoints"))
        keys = reader.get_variable_to_shape_map()
        (iterations,) = [k for k in keys if k.startswith("optimizer_") and "iterations" in k]
        return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")), int(reader.get_tensor(iterations))

    assert counters() == (2, 2)

    panels.clear()
    interrupt_at[0] = None
    assert run_command("train-cytoself", [*args, "--epochs", "4", "--resume"]) == 0
    assert len(panels) == 3  # epoch 2's panel (interrupted) drawn again on resume, then epochs 3 and 4
    after = pd.read_csv(run / "history.csv")
    assert list(after["epoch"]) == [1, 2, 3, 4]  # continued, not restarted or repeated
    assert list(after["step"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(after.iloc[:2], before)  # the rows before the interruption are kept
    assert counters() == (4, 4)
    assert json.loads((run / "config.json").read_text())["settings"]["epochs"] == 4
    figures = sorted(p.name for p in (run / "figures").glob("reconstruction_epoch*.png"))
    assert figures == [f"reconstruction_epoch00{k}.png" for k in (1, 2, 3, 4)]
    assert (run / "saved_model" / "saved_model.pb").exists()


def test_non_chief_worker_writes_nothing_to_the_run_folder(trained, tmp_path, monkeypatch):
    # A multi-worker run on a shared file system: the chief already created --out; another
    # worker trains alongside it but must neither refuse the folder nor write (or export) into it.
    import shutil

    from statcell_tf.training import runtime

    data, run = trained
    shared = shutil.copytree(run, tmp_path / "shared")
    files = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in shared.rglob("*")}
    monkeypatch.setattr(runtime, "is_chief", lambda strategy=None: False)
    args = ["--data", str(data), "--preset", "demo", "--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "1"]
    assert run_command("train-cytoself", [*args, "--out", str(shared)]) == 0
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in shared.rglob("*")} == files
