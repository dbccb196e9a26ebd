import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from statcell_tf.data.synthetic import write_bbbc021
from statcell_tf.training import export

TINY = ["--batch-size", "4", "--latent-dim", "4", "--filters", "2", "--quiet"]


@pytest.mark.slow
def test_train_vaeplus_writes_a_run_and_resume_continues_the_schedule(tmp_path):
    data = write_bbbc021(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train-vaeplus", "--data", str(data), "--variant", "vaeplus", "--iterations", "4",
            "--steps-per-epoch", "2", "--schedule-period", "1", "--validation-fraction", "0.25", "--out", str(out), *TINY]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "history.csv", "best.keras", "saved_model/saved_model.pb",
                 "figures/reconstructions.png", "figures/reconstruction_epoch002.png"):
        assert (out / name).exists(), name
    history = pd.read_csv(out / "history.csv")
    assert list(history["step"]) == [2, 4]
    for key in ("loss", "reconstruction", "kl", "mse", "d_loss", "d_accuracy", "val_loss", "val_mse",
                *(f"disc_feature_{i}" for i in range(1, 5)), *(f"gamma_{i}" for i in range(1, 5))):
        assert np.isfinite(history[key]).all(), key
    # T = 1: epoch 2 runs t = 2, 3 -> γ_1 = 1, γ_2 = (0 + 1) / 2
    assert history["gamma_1"].iloc[-1] == 1.0 and history["gamma_2"].iloc[-1] == 0.5

    resumed = CliRunner().invoke(cli, [*args[:6], "6", *args[7:], "--resume"])
    assert resumed.exit_code == 0, resumed.output
    history = pd.read_csv(out / "history.csv")
    assert list(history["step"]) == [2, 4, 6]
    # t = 4, 5 continue the schedule (a restart at t = 0 would give γ_3 = γ_4 = 0)
    assert history["gamma_3"].iloc[-1] == 1.0 and history["gamma_4"].iloc[-1] == 0.5
    assert int(export.load_keras(out / "best.keras").schedule_step.numpy()) == 6

    import tensorflow as tf

    loaded = tf.saved_model.load(str(out / "saved_model"))
    crops = np.random.default_rng(0).random((2, 68, 68, 3)).astype("float32")
    assert loaded.encode(tf.constant(crops)).shape == (2, 4)
    assert loaded.reconstruct(tf.constant(crops)).shape == (2, 68, 68, 3)


@pytest.mark.slow
def test_train_vaeplus_baseline_has_no_discriminator_terms(tmp_path):
    data = write_bbbc021(tmp_path / "data")
    out = tmp_path / "ae"
    result = CliRunner().invoke(cli, ["train-vaeplus", "--data", str(data), "--variant", "ae", "--iterations", "2",
                                      "--validation-fraction", "0", "--sampling", "uniform", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    history = pd.read_csv(out / "history.csv")
    assert "d_loss" not in history and "gamma_1" not in history and "val_loss" not in history
    assert list(history["step"]) == [2]


def test_train_vaeplus_user_errors(tmp_path, capsys):
    data = write_bbbc021(tmp_path / "data")
    assert run_command("train-vaeplus", ["--data", str(data), "--iterations", "4", "--steps-per-epoch", "3",
                                         "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "--steps-per-epoch must divide --iterations 4. Received: 3" in capsys.readouterr().err
    small = write_bbbc021(tmp_path / "small", size=32)
    assert run_command("train-vaeplus", ["--data", str(small), "--iterations", "2", "--out", str(tmp_path / "y"),
                                         *TINY]) == 2
    assert "VAE+ needs 68×68 crops" in capsys.readouterr().err


def test_feature_reduction_reaches_the_model_and_old_configs_keep_the_default():
    from statcell_tf.errors import UserError
    from statcell_tf.vaeplus.training import VAEPlusTrainConfig, build_model

    assert build_model(VAEPlusTrainConfig(data="d", feature_reduction="sum")).feature_reduction == "sum"
    old = {k: v for k, v in VAEPlusTrainConfig(data="d").to_dict().items() if k != "feature_reduction"}
    assert VAEPlusTrainConfig.from_dict(old).feature_reduction == "scaled_mean"
    with pytest.raises(UserError, match="--feature-reduction"):
        VAEPlusTrainConfig(data="d", feature_reduction="mean")
