"""The one run lifecycle: validate → lock → create/resume → train → export, on a tiny model."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from statcell_tf.errors import UserError
from statcell_tf.training import lifecycle, trainer
from statcell_tf.training.run_dir import RunDirectory, make_config, upgrade_config
from tests._support.processes import python_env
from tests.training.tiny import TinyModel, tiny_dataset


def recipe(epochs=4, fail=None, lr=1e-2):
    """A recipe for TinyModel: shuffled training data positioned by epoch, fixed validation."""

    def prepare(saved, run):
        if fail == "prepare":
            raise UserError("--data broken: expected images")
        config = make_config("cytoself", "tiny", "demo", {"epochs": epochs, "learning_rate": lr})
        if saved is not None:
            config = {**saved, "settings": {**saved["settings"], "epochs": epochs}}
        splits = pd.DataFrame({"row": [0, 1], "cell_id": ["a", "b"], "group": ["a", "b"], "split": ["train", "val"]})

        def train_data(epoch):
            if fail == "data" and epoch == 1:
                raise UserError("image 3 is truncated")
            return tiny_dataset(seed=epoch, shuffle=True)

        return lifecycle.RunPlan(
            config=config, splits=splits, train_data=train_data, val_data=tiny_dataset(32, seed=99),
            build_model=lambda: TinyModel(learning_rate=config["settings"]["learning_rate"], batch_norm=True),
            fit_settings=trainer.TrainSettings(epochs=config["settings"]["epochs"], verbose=0),
        )

    return prepare


def train(out, epochs=4, resume=False, **kw):
    return lifecycle.train_run("cytoself", out, recipe(epochs, **kw), resume=resume, verbose=0)


@pytest.mark.slow
def test_new_run_writes_the_one_schema_and_refuses_reuse(tmp_path):
    run, history, _ = train(tmp_path / "run", 2)
    config = json.loads(run.config.read_text())
    assert {config[k] for k in ("paper", "role", "preset")} == {"cytoself", "tiny", "demo"}
    assert config["format"] == 2 and config["settings"]["epochs"] == 2
    assert list(run.read_splits().columns) == ["row", "cell_id", "group", "split"]
    assert not run.lock_file.exists()
    with pytest.raises(UserError, match="already holds a run; pass --resume"):
        train(tmp_path / "run", 2)
    _, longer, _ = train(tmp_path / "run", 3, resume=True)
    assert list(longer["epoch"]) == [1, 2, 3]
    assert json.loads(run.config.read_text())["settings"]["epochs"] == 3


def test_a_failed_new_run_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="broken"):
        train(tmp_path / "a", fail="prepare")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserError, match="truncated"):
        train(tmp_path / "b", fail="data")
    assert not (tmp_path / "b").exists()  # no config.json/splits.csv: a retry just works
    empty = tmp_path / "c"
    empty.mkdir()
    with pytest.raises(UserError, match="truncated"):
        train(empty, fail="data")
    assert empty.is_dir() and not any(empty.iterdir())


@pytest.mark.parametrize("out", ["file/run", "input", "input/run"])
def test_out_is_checked_before_anything_is_read(tmp_path, out):
    (tmp_path / "file").write_text("x")
    (tmp_path / "input").mkdir()
    with pytest.raises(UserError, match="--out"):
        lifecycle.train_run("cytoself", tmp_path / out, recipe(), inputs=[tmp_path / "input"], verbose=0)


@pytest.mark.slow
def test_failed_resume_changes_nothing(tmp_path):
    run, _, _ = train(tmp_path / "run", 2)
    before = run.config.read_text()
    shutil_copy = {p.name: p.read_bytes() for p in run.checkpoints.iterdir()}
    for p in run.checkpoints.glob("ckpt-*.data*"):
        p.write_bytes(b"garbage")
    with pytest.raises(UserError, match="no intact checkpoint"):
        train(tmp_path / "run", 5, resume=True)
    assert run.config.read_text() == before  # epochs not rewritten by a failed resume
    assert shutil_copy.keys() == {p.name for p in run.checkpoints.iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("content", ["null", "[1, 2]", "{}", '{"format": 2, "paper": "cytoself"}', "{not json"])
def test_damaged_config_is_one_line_naming_config_json(tmp_path, content):
    run, _, _ = train(tmp_path / "run", 1)
    run.config.write_text(content)
    with pytest.raises(UserError, match="config.json") as error:
        train(tmp_path / "run", 2, resume=True)
    assert "\n" not in str(error.value) and "--preset" not in str(error.value)


@pytest.mark.slow
def test_missing_checkpoints_never_restart_silently(tmp_path):
    run, _, _ = train(tmp_path / "run", 2)
    history = run.history.read_text()
    import shutil

    shutil.rmtree(run.checkpoints)
    with pytest.raises(UserError, match="holds no checkpoint"):
        train(tmp_path / "run", 3, resume=True)
    assert run.history.read_text() == history and run.best_model.exists()


@pytest.mark.slow
def test_missing_state_file_and_damaged_newest_checkpoint_fall_back(tmp_path, capsys):
    _, straight, straight_model = train(tmp_path / "straight", 4)
    run, _, _ = train(tmp_path / "run", 3)
    (run.checkpoints / "checkpoint").unlink(missing_ok=True)  # TF's state file is not needed
    for p in run.checkpoints.glob("ckpt-3.data*"):
        p.write_bytes(p.read_bytes()[:10])
    _, history, model = train(tmp_path / "run", 4, resume=True)
    assert "ckpt-3" in capsys.readouterr().err  # said so
    np.testing.assert_allclose(history["val_loss"], straight["val_loss"], rtol=1e-5)
    for a, b in zip(model.weights, straight_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_stale_temporaries_are_removed_on_resume(tmp_path):
    run, _, _ = train(tmp_path / "run", 1)
    stale = [run.path / ".best.keras.abc.tmp.keras", run.path / ".history.csv.x.tmp.csv",
             run.figures / ".f.png.y.tmp.png", run.checkpoints / "ckpt-9_temp"]
    for path in stale[:3]:
        path.write_text("half")
    stale[3].mkdir()
    (run.path / ".saved_model.q.tmp").mkdir()
    train(tmp_path / "run", 2, resume=True)
    assert not any(p.exists() for p in stale) and not (run.path / ".saved_model.q.tmp").exists()


HOLDER = """
import sys, time
from statcell_tf.training.lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_second_process_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    run, _, _ = train(tmp_path / "run", 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.lock_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"another process \\(pid {holder.pid} "):
            train(tmp_path / "run", 2, resume=True)
        assert len(pd.read_csv(run.history)) == 1
    finally:
        holder.kill()
        holder.wait()
    assert run.lock_file.exists()  # the killed holder could not clean up
    lifecycle.train_run("cytoself", tmp_path / "run", recipe(2), resume=True, verbose=1)
    assert f"left by a process that ended (pid {holder.pid}" in capsys.readouterr().out
    assert not run.lock_file.exists()


KILLED = """
from tests.training.test_lifecycle import train
train({run!r}, 4, resume=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("instant", ["before_commit:2", "mid_commit:2", "after_commit:2", "after_history:2",
                                     "after_publish:2", "after_commit:1"])
def test_killed_anywhere_resumes_to_the_uninterrupted_run(tmp_path, instant):
    _, straight, straight_model = train(tmp_path / "straight", 4)
    run = tmp_path / "run"
    env = python_env(STATCELL_TF_KILL_AT=instant)
    killed = subprocess.run([sys.executable, "-c", KILLED.format(run=str(run))], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-1500:]
    _, history, model = train(run, 4, resume=True)
    columns = [c for c in straight.columns if c != "time_s"]
    pd.testing.assert_frame_equal(history[columns], straight[columns], rtol=1e-5)
    on_disk = pd.read_csv(run / "history.csv")
    pd.testing.assert_frame_equal(on_disk[columns], straight[columns], rtol=1e-5)
    for a, b in zip(model.weights, straight_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    leftovers = [p for p in run.rglob("*") if ".tmp" in p.name or "_temp" in p.name or p.name == ".lock"]
    assert not leftovers
    best = RunDirectory(run).load()[1]
    straight_best = RunDirectory(tmp_path / "straight").load()[1]
    for a, b in zip(best.weights, straight_best.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_legacy_configs_upgrade():
    cytoself = upgrade_config({"model": "cytoself", "train": {"preset": "demo", "epochs": 2}, "epochs": 3,
                               "channels": ["pro"]})
    assert (cytoself["paper"], cytoself["settings"]["epochs"], cytoself["data"]["channels"]) == ("cytoself", 3, ["pro"])
    statcell = upgrade_config({"model": "target", "beta": 0.5, "structure_types": ["a"], "preset": "tiny"})
    assert (statcell["paper"], statcell["role"], statcell["data"]["structure_types"]) == ("statcell", "target", ["a"])
    ic = upgrade_config({"kind": "integrated_cell", "stage": "reference", "class_names": None})
    assert (ic["paper"], ic["role"]) == ("integrated_cell", "reference")
    vaeplus = upgrade_config({"variant": "vae", "iterations": 10, "epochs": 2, "steps_per_epoch": 5})
    assert (vaeplus["paper"], vaeplus["role"], vaeplus["settings"]["steps_per_epoch"]) == ("vaeplus", "vae", 5)


@pytest.mark.slow
def test_bit_flipped_checkpoint_falls_back_quietly(tmp_path, capfd):
    """A flipped byte in the newest checkpoint: one line says so, no TensorFlow warning lines."""
    run, _, _ = train(tmp_path / "run", 3)
    data = next(run.checkpoints.glob("ckpt-3.data*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    capfd.readouterr()
    train(tmp_path / "run", 4, resume=True)
    import gc

    gc.collect()  # TensorFlow warns about unrestored objects when a checkpoint is collected
    out, err = capfd.readouterr()
    assert "ckpt-3" in err
    assert "WARNING" not in out + err and "Traceback" not in out + err, err
