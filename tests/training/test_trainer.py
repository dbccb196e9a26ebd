import sys

import numpy as np
import pandas as pd
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.training import export, trainer
from statcell_tf.training.run_dir import RunDirectory
from tests._support.processes import python_env
from tests.training.tiny import TinyModel, tiny_dataset


def _fit(run, epochs, callbacks=(), shuffle=False, **kw):
    keras.utils.set_random_seed(0)
    model = TinyModel(learning_rate=1e-2)
    settings = trainer.TrainSettings(epochs=epochs, verbose=0, **kw)
    train = tiny_dataset(shuffle=shuffle)
    history = trainer.fit(model, train, tiny_dataset(32, seed=1), run, settings, epoch_callbacks=callbacks)
    return model, history


@pytest.mark.slow
def test_fit_logs_every_term_and_loss_falls(tmp_path):
    model, history = _fit(tmp_path / "run", 6)
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "reconstruction", "classification", "val_loss", "val_classification", "lr"):
        assert np.isfinite(history[key]).all(), key
    assert history["loss"].iloc[-1] < 0.85 * history["loss"].iloc[0]
    assert list(history["step"]) == [4, 8, 12, 16, 20, 24]
    on_disk = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(on_disk) == 6 and (tmp_path / "run" / "best.keras").exists()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("shuffle", [False, True])
def test_interrupted_run_resumes_step_count_and_history(tmp_path, shuffle):
    run = tmp_path / "run"

    def crash(epoch, logs, model):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(run, 5, callbacks=[crash], shuffle=shuffle)
    # The crash came after epoch 2's checkpoint: resume continues at epoch 3.
    model, history = _fit(run, 5, shuffle=shuffle)
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert list(history["step"]) == [4, 8, 12, 16, 20]
    uninterrupted_model, uninterrupted = _fit(tmp_path / "straight", 5, shuffle=shuffle)
    # Same data order (a reshuffled dataset replays the finished epochs' orders) and seeds:
    # the resumed run ends where an uninterrupted one does.
    np.testing.assert_allclose(history["loss"], uninterrupted["loss"], rtol=1e-4)
    for resumed, straight in zip(model.weights, uninterrupted_model.weights):
        np.testing.assert_allclose(resumed.numpy(), straight.numpy(), rtol=1e-5, atol=1e-6)


KILLED_WORKER = """
import os, signal, sys
from tests.training.tiny import TinyModel, tiny_dataset
from statcell_tf.backend import keras
from statcell_tf.training import trainer

def kill(epoch, logs, model):
    if epoch == 2:  # after epoch 2's checkpoint and history row; no clean-up runs after SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)

keras.utils.set_random_seed(0)
settings = trainer.TrainSettings(epochs=5, verbose=0)
trainer.fit(TinyModel(learning_rate=1e-2), tiny_dataset(), tiny_dataset(32, seed=1), {run!r}, settings,
            epoch_callbacks=[kill])
"""


@pytest.mark.slow
def test_run_killed_by_sigkill_resumes_where_it_stopped(tmp_path):
    import signal
    import subprocess

    run = tmp_path / "run"
    code = KILLED_WORKER.format(run=str(run))
    killed = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2]
    trained = []
    model, history = _fit(run, 5, callbacks=[lambda epoch, logs, model: trained.append(epoch)])
    # Resumed after epoch 2, not started over; epoch 2's callbacks (figures) run again because
    # the kill came before they finished.
    assert trained == [2, 3, 4, 5]
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert list(history["step"]) == [4, 8, 12, 16, 20]
    straight_model, straight = _fit(tmp_path / "straight", 5)
    np.testing.assert_allclose(history["loss"], straight["loss"], rtol=1e-4)
    for resumed, reference in zip(model.weights, straight_model.weights):
        np.testing.assert_allclose(resumed.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_plateau_and_early_stopping(tmp_path):
    # lr 0 never improves val_loss after epoch 1: plateau every 2 epochs, stop after 3.
    keras.utils.set_random_seed(0)
    model = TinyModel(learning_rate=0.0)
    settings = trainer.TrainSettings(
        epochs=20, plateau_patience=2, early_stopping_patience=3, min_lr=1e-9, verbose=0, min_delta=1e-3
    )
    history = trainer.fit(model, tiny_dataset(), tiny_dataset(32, seed=1), tmp_path / "r", settings)
    assert len(history) == 4  # best at 1, then 3 epochs without improvement
    assert history["lr"].iloc[-1] == pytest.approx(0.0)


def test_plateau_divides_learning_rate(tmp_path):
    keras.utils.set_random_seed(0)
    model = TinyModel(learning_rate=1e-3)
    # monitor "loss" in max mode: a falling loss never "improves", so every epoch waits.
    settings = trainer.TrainSettings(epochs=5, monitor="loss", mode="max", plateau_patience=2, verbose=0)
    history = trainer.fit(model, tiny_dataset(), None, tmp_path / "r", settings)
    np.testing.assert_allclose(history["lr"], [1e-3, 1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-5)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    from statcell_tf.errors import UserError

    run = tmp_path / "run"
    _fit(run, 1)
    for shard in (run / "checkpoints").glob("ckpt-1.data*"):
        shard.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot resume .*no intact checkpoint"):
        _fit(run, 2)


@pytest.mark.slow
def test_best_keras_and_saved_model_reload(tmp_path):
    model, _ = _fit(tmp_path / "run", 2)
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    path = export.export_saved_model(model, tmp_path / "run" / "saved_model")
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.classify(x).numpy(), model(x)[1].numpy(), rtol=1e-5, atol=1e-6)
    best = export.load_keras(RunDirectory(tmp_path / "run").best_model)
    assert isinstance(best, TinyModel)
    assert best(x)[0].shape == (2, 8, 8, 1)


@pytest.mark.slow
def test_saved_model_loads_in_a_process_without_statcell_tf(tmp_path):
    import subprocess

    model, _ = _fit(tmp_path / "run", 1)
    path = export.export_saved_model(model, tmp_path / "sm")
    x = np.linspace(0, 1, 2 * 8 * 8).reshape(2, 8, 8, 1).astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(path)!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, m.classify(np.load({str(tmp_path / 'x.npy')!r})).numpy())\n"
        "assert not any(k.startswith('statcell_tf') for k in sys.modules)\n"
    )
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, timeout=120)
    # Plain TensorFlow leaves oneDNN off on CPUs without AVX-512 where statcell_tf turns it on
    # (statcell_tf.backend): the same graph, kernels that round differently in the last bits.
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x)[1].numpy(), rtol=1e-5, atol=1e-6)
