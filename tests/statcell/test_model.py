import numpy as np
import pytest

from statcell_tf.backend import tf
from statcell_tf.losses import statcell as objective
from statcell_tf.statcell.data import StatcellData, toy_cells
from statcell_tf.statcell.model import ConditionalBetaVAE
from statcell_tf.training import export, trainer


def _tiny(role="reference", rank=2, shape=(16, 16), **kwargs):
    kwargs.setdefault("filters", (4, 8))
    kwargs.setdefault("latent_dim", 6)
    kwargs.setdefault("eval_samples", 2)
    return ConditionalBetaVAE(role, rank, shape, num_types=3, **kwargs)


def _batch(model, n=2, seed=0):
    rng = np.random.default_rng(seed)
    batch = model.example_batch(n)
    batch["image"] = rng.random(batch["image"].shape).astype("float32")
    if model.role == "target":
        batch["reference"] = rng.random(batch["reference"].shape).astype("float32")
        batch["target_type"] = rng.integers(0, model.num_types, n).astype("int32")
    return batch


def test_objective_hand_values():
    recon = np.array([10.0, 2.0], "float32")
    kl = np.array([4.0, 6.0], "float32")
    # Eq. 3: (1 - 0.25)·D + 0.25·R
    np.testing.assert_allclose(objective.beta_vae_loss(recon, kl, 0.25), [8.5, 3.0])
    np.testing.assert_allclose(objective.beta_vae_loss(recon, kl, 0.25, "classic"), [11.0, 3.5])
    np.testing.assert_allclose(objective.elbo(recon, kl), [-14.0, -8.0])
    np.testing.assert_allclose(objective.weighted_elbo(recon, kl, 1.0), [-4.0, -6.0])
    np.testing.assert_allclose(objective.beta_vae_loss(recon, kl, 0.0), recon)
    with pytest.raises(ValueError, match="beta"):
        objective.beta_vae_loss(recon, kl, 1.5)
    with pytest.raises(ValueError, match="objective"):
        objective.beta_vae_loss(recon, kl, 0.5, "other")


def _pin_posterior(model, mu_bias, log_var_bias):
    """Make q(z|x) = N(mu_bias, exp(log_var_bias)) for every input."""
    for head, bias in ((model.mu_head, mu_bias), (model.log_var_head, log_var_bias)):
        kernel, b = head.layer.kernel, head.layer.bias
        kernel.assign(np.zeros(kernel.shape, "float32"))
        b.assign(np.full(b.shape, bias, "float32"))


def test_kl_of_standard_normal_posterior_is_zero_and_elbo_is_minus_distortion():
    model = _tiny()
    batch = _batch(model)
    model.build()
    _pin_posterior(model, 0.0, 0.0)
    terms = model.per_cell_terms(batch, n_samples=3)
    np.testing.assert_allclose(np.asarray(terms["kl"]), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(model.elbo_per_cell(batch, n_samples=3)), -np.asarray(terms["reconstruction"]), rtol=0.2
    )


@pytest.mark.slow
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_terms_match_hand_computation(reduction):
    model = _tiny(beta=0.3, reconstruction_reduction=reduction)
    batch = _batch(model)
    model.build()
    mu_value, log_var_value = 0.5, -30.0  # σ ≈ 3e-7: every sample is μ
    _pin_posterior(model, mu_value, log_var_value)
    z = np.full((2, model.latent_dim), mu_value, "float32")
    x_hat = np.asarray(model.decode(z))
    squared = (batch["image"] - x_hat) ** 2
    distortion = squared.reshape(2, -1).sum(1) if reduction == "sum" else squared.reshape(2, -1).mean(1)
    rate = 0.5 * model.latent_dim * (mu_value**2 + np.exp(log_var_value) - log_var_value - 1.0)
    losses = {k: float(v) for k, v in model.compute_losses(batch).items()}
    np.testing.assert_allclose(losses["reconstruction"], distortion.mean(), rtol=1e-4)
    np.testing.assert_allclose(losses["kl"], rate, rtol=1e-5)
    np.testing.assert_allclose(losses["loss"], 0.7 * distortion.mean() + 0.3 * rate, rtol=1e-4)
    np.testing.assert_allclose(losses["elbo"], -(distortion.mean() + rate), rtol=1e-4)
    classic = _tiny(beta=0.3, objective="classic", reconstruction_reduction=reduction)
    classic.build()
    classic.set_weights(model.get_weights())
    np.testing.assert_allclose(float(classic.compute_losses(batch)["loss"]), distortion.mean() + 0.3 * rate, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "role,rank,shape",
    [("reference", 2, (16, 12)), ("target", 2, (16, 12)), ("reference", 3, (8, 8, 4)), ("target", 3, (8, 8, 4))],
)
def test_shape_traces(role, rank, shape):
    model = _tiny(role, rank, shape)
    batch = _batch(model, n=3)
    mu, log_var = model.encode(batch)
    assert tuple(mu.shape) == (3, 6) and tuple(log_var.shape) == (3, 6)
    assert model.grid == tuple(s // 4 for s in shape)
    x_hat = model.decode(mu, batch)
    channels = 2 if role == "reference" else 1
    assert tuple(x_hat.shape) == (3, *shape, channels)
    assert float(np.min(x_hat)) >= 0.0  # softplus output
    assert tuple(model.elbo_per_cell(batch).shape) == (3,)
    assert tuple(model.sample_prior(4, batch).shape) == ((4 if role == "reference" else 3), *shape, channels)
    losses = model.compute_losses(batch, training=True)
    assert set(losses) == {"loss", "reconstruction", "kl", "elbo"}
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_paper_defaults():
    model = ConditionalBetaVAE("reference", 3)
    assert model.image_shape == (64, 128, 96) and model.latent_dim == 512  # (Z, Y, X)
    assert model.filters == (32, 64, 128, 256, 512) and model.grid == (2, 4, 3)
    optimizer = model.make_optimizers()["main"]
    assert np.isclose(float(optimizer.learning_rate), 2e-4) and optimizer.beta_1 == 0.9 and optimizer.beta_2 == 0.999
    assert ConditionalBetaVAE("target", 2).image_shape == (128, 96)
    with pytest.raises(ValueError, match="divisible"):
        ConditionalBetaVAE("reference", 2, (20, 16), filters=(4, 8, 16))
    with pytest.raises(ValueError, match="beta"):
        ConditionalBetaVAE("reference", 2, beta=2.0)


@pytest.mark.slow
def test_config_round_trip_save_load_and_saved_model(tmp_path):
    model = _tiny("target", 2, (16, 16), beta=0.2)
    batch = _batch(model)
    model.prepare(batch)
    model.train_step_fn(batch)
    clone = ConditionalBetaVAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    export.save_keras(model, tmp_path / "m.keras")
    loaded = export.load_keras(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded.encode(batch)[0]), np.asarray(model.encode(batch)[0]), atol=1e-6)
    z = np.zeros((2, 6), "float32")
    np.testing.assert_allclose(np.asarray(loaded.decode(z, batch)), np.asarray(model.decode(z, batch)), atol=1e-6)

    export.export_saved_model(model, tmp_path / "saved")
    served = tf.saved_model.load(str(tmp_path / "saved"))
    cond = (tf.constant(batch["reference"]), tf.constant(batch["target_type"]))
    encoded = served.encode(tf.constant(batch["image"]), *cond)
    # Endpoints take images as they are on disk and apply the model's preprocessing layer.
    normalised = {**batch, "image": np.asarray(model.preprocessing(batch["image"])),
                  "reference": np.asarray(model.preprocessing(batch["reference"]))}
    np.testing.assert_allclose(encoded["mu"].numpy(), np.asarray(model.encode(normalised)[0]), atol=1e-5)
    assert tuple(served.decode(tf.constant(z), *cond).shape) == (2, 16, 16, 1)
    assert tuple(served.sample(*cond).shape) == (2, 16, 16, 1)
    imputed = served.impute(*cond)
    assert tuple(imputed["image"].shape) == (2, 16, 16, 3)
    np.testing.assert_allclose(imputed["image"].numpy()[..., :2], normalised["reference"], rtol=1e-6)  # model space
    assert tuple(served.elbo(tf.constant(batch["image"]), *cond).shape) == (2,)


@pytest.mark.slow
def test_tiny_3d_model_trains_and_validation_elbo_improves(tmp_path):
    cells = toy_cells(48, (16, 16, 8), seed=0)
    data = StatcellData(cells, "reference", (16, 16, 8))
    model = ConditionalBetaVAE(
        "reference", 3, (16, 16, 8), filters=(4, 8), latent_dim=8, beta=0.01, eval_samples=2, learning_rate=2e-3
    )
    # 80 steps: enough for the batch-norm moving statistics to follow training (20 steps are not).
    settings = trainer.TrainSettings(epochs=8, monitor="val_elbo", mode="max", verbose=0)
    history = trainer.fit(
        model,
        data.dataset(np.arange(40), 4, shuffle=True, drop_remainder=True),
        data.dataset(np.arange(40, 48), 8),
        tmp_path / "run",
        settings,
    )
    assert np.isfinite(history[["loss", "kl", "val_elbo"]].to_numpy()).all()
    # The ELBO is negative; improving means at least a third closer to zero than after epoch 1.
    assert history["val_elbo"].iloc[-1] > 0.67 * history["val_elbo"].iloc[0]
    assert (tmp_path / "run" / "best.keras").exists()
