import numpy as np
import pytest

from statcell_tf.backend import tf
from statcell_tf.training import export
from statcell_tf.vaeplus.model import VAEPlus

TINY = {"latent_dim": 6, "filters": 3, "discriminator_filters": 4, "seed": 0}


def _batch(n=2, n_d=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.random((n, 68, 68, 3)).astype("float32"),
        "image_d": rng.random((n_d, 68, 68, 3)).astype("float32"),
    }


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_shape_trace_68_32_14_5_and_back_to_68():
    model = VAEPlus("vaeplus", **TINY)
    encoder, decoder, discriminator = model.encoder, model.decoder, model.discriminator
    assert [encoder.get_layer(f"block{k}_act").output.shape[1] for k in (1, 2, 3)] == [32, 14, 5]
    assert encoder.get_layer("posterior_conv").output.shape == (None, 1, 1, 12)
    assert [o.shape for o in encoder.outputs] == [(None, 6), (None, 6)]
    sizes = [decoder.get_layer(f"block{k}_deconv").output.shape[1] for k in (1, 2, 3, 4)]
    ups = [decoder.get_layer(f"block{k}_up").output.shape[1] for k in (1, 2, 3)]
    assert sizes == [5, 14, 32, 68] and ups == [10, 28, 64]
    assert decoder.output.shape == (None, 68, 68, 3)
    assert [o.shape for o in discriminator.outputs] == [
        (None, 32, 32, 3), (None, 14, 14, 3), (None, 5, 5, 3), (None, 1, 1, 4), (None,)
    ]
    x = _batch()["image"]
    assert model(x).shape == (2, 68, 68, 3)
    assert model.encode(x).shape == (2, 6) and model.decode(np.zeros((4, 6), "float32")).shape == (4, 68, 68, 3)


@pytest.mark.slow
def test_losses_logged_per_variant():
    batch = _batch()
    full = VAEPlus("vaeplus", **TINY).compute_losses(batch)
    expected = {"loss", "reconstruction", "kl", "mse", "d_loss", "d_accuracy",
                *(f"disc_feature_{i}" for i in range(1, 5)), *(f"gamma_{i}" for i in range(1, 5))}
    assert set(full) == expected
    assert all(np.isfinite(float(v)) for v in full.values())
    # t = 0: every γ is 0, so the objective is the VAE's with β = 2.
    assert float(full["loss"]) == pytest.approx(float(full["reconstruction"]) + 2 * float(full["kl"]), rel=1e-5)
    for variant, beta in (("vae", 1.0), ("ae", 0.0)):
        model = VAEPlus(variant, **TINY)
        assert model.discriminator is None and set(model.make_optimizers()) == {"autoencoder"}
        losses = model.compute_losses(batch)
        assert set(losses) == {"loss", "reconstruction", "kl", "mse"}
        assert float(losses["loss"]) == pytest.approx(
            float(losses["reconstruction"]) + beta * float(losses["kl"]), rel=1e-5
        )


def test_discriminator_terms_enter_the_loss_with_gamma():
    model = VAEPlus("vaeplus", schedule_period=10.0, **TINY)
    batch = _batch()
    model.schedule_step.assign(25)  # γ = (1, 0.5, 0, 0)
    losses = model.compute_losses(batch)
    assert [float(losses[f"gamma_{i}"]) for i in range(1, 5)] == [1.0, 0.5, 0.0, 0.0]
    # the total is the sum of its logged parts, weighted by γ
    expected = (float(losses["reconstruction"]) + 2 * float(losses["kl"])
                + float(losses["disc_feature_1"]) + 0.5 * float(losses["disc_feature_2"]))
    assert float(losses["loss"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_each_optimizer_updates_only_its_network():
    model = VAEPlus("vaeplus", schedule_period=1.0, weight_decay=0.0, **TINY)
    batch = _batch()
    model.prepare(batch)
    model.schedule_step.assign(10)  # every γ = 1: the autoencoder loss depends on D too
    autoencoder = model.optimizer_variables("autoencoder")
    discriminator = model.optimizer_variables("discriminator")
    assert {id(v) for v in autoencoder}.isdisjoint({id(v) for v in discriminator})
    assert len(autoencoder) + len(discriminator) == len(model.trainable_variables)

    # autoencoder update alone: the discriminator's trainable weights do not move
    ae_before, d_before = _snapshot(autoencoder), _snapshot(discriminator)
    with tf.GradientTape() as tape:
        losses = model.compute_losses(batch, training=True)
    model.apply_loss(tape, losses["loss"], "autoencoder")
    assert all(_changed(ae_before, autoencoder)) and not any(_changed(d_before, discriminator))

    # discriminator update alone: encoder and decoder do not move
    ae_before, d_before = _snapshot(autoencoder), _snapshot(discriminator)
    with tf.GradientTape() as tape:
        losses = model.compute_losses(batch, training=True)
    model.apply_loss(tape, losses["d_loss"], "discriminator")
    assert all(_changed(d_before, discriminator)) and not any(_changed(ae_before, autoencoder))

    # a full step moves both and advances t
    before = _snapshot(model.trainable_variables)
    model.train_step_fn(batch)
    assert all(_changed(before, model.trainable_variables))
    assert int(model.schedule_step.numpy()) == 11


def test_weight_decay_shrinks_conv_kernels_only():
    model = VAEPlus("vaeplus", weight_decay=1e-2, **TINY)
    model.prepare(_batch())
    for name, optimizer in model.optimizers_by_name.items():
        variables = model.optimizer_variables(name)
        kernels = {id(v) for v in model.kernel_variables(name)}
        assert kernels and len(kernels) < len(variables)  # BN γ/β are not kernels
        before = _snapshot(variables)
        # zero gradients: Adam and momentum SGD make no step, only the decoupled decay acts
        optimizer.apply([tf.zeros_like(v) for v in variables], variables)
        for old, v in zip(before, variables):
            expected = old * (1 - 1e-2) if id(v) in kernels else old
            np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-8, err_msg=f"{name} {v.path}")


def test_config_round_trip_and_validation():
    model = VAEPlus("vae", beta=1.5, schedule_period=100.0, feature_reduction="sum", **TINY)
    clone = VAEPlus.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.effective_beta == 1.5 and clone.discriminator is None
    with pytest.raises(ValueError, match="variant"):
        VAEPlus("gan")
    with pytest.raises(ValueError, match="schedule_period"):
        VAEPlus(schedule_period=0)


@pytest.mark.slow
def test_keras_save_load_keeps_weights_and_schedule_step(tmp_path):
    model = VAEPlus("vaeplus", **TINY)
    batch = _batch()
    model.prepare(batch)
    model.train_step_fn(batch)
    model.train_step_fn(batch)
    path = export.save_keras(model, tmp_path / "model.keras")
    loaded = export.load_keras(path)
    assert isinstance(loaded, VAEPlus) and int(loaded.schedule_step.numpy()) == 2
    x = batch["image"]
    np.testing.assert_allclose(loaded.encode(x), model.encode(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(x), model.reconstruct(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_saved_model_endpoints_normalise_their_input(tmp_path):
    model = VAEPlus("ae", **TINY)
    x = _batch()["image"]
    export.export_saved_model(model, tmp_path / "saved")
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    mu = loaded.encode(tf.constant(x)).numpy()
    np.testing.assert_allclose(mu, model.encode(x), rtol=1e-5, atol=1e-6)
    # raw intensities (×1000) encode like their max-normalised image
    np.testing.assert_allclose(loaded.encode(tf.constant(x * 1000.0)).numpy(), mu, rtol=1e-4, atol=1e-5)
    assert loaded.reconstruct(tf.constant(x)).shape == (2, 68, 68, 3)
    assert loaded.decode(tf.constant(mu)).shape == (2, 68, 68, 3)


@pytest.mark.slow
def test_checkpoint_restores_the_schedule_step_and_optimizer_state(tmp_path):
    # The trainer checkpoints `model` and its optimizers: a resumed run continues t.
    batch = _batch()
    model = VAEPlus("vaeplus", schedule_period=2.0, **TINY)
    model.prepare(batch)
    for _ in range(3):
        model.train_step_fn(batch)
    optimizers = {f"optimizer_{k}": v for k, v in model.optimizers_by_name.items()}
    path = tf.train.Checkpoint(model=model, **optimizers).save(str(tmp_path / "ckpt"))
    fresh = VAEPlus("vaeplus", schedule_period=2.0, **TINY)
    fresh.prepare(batch)
    fresh_optimizers = {f"optimizer_{k}": v for k, v in fresh.optimizers_by_name.items()}
    tf.train.Checkpoint(model=fresh, **fresh_optimizers).restore(path).assert_existing_objects_matched()
    assert int(fresh.schedule_step.numpy()) == 3
    assert int(fresh.optimizers_by_name["discriminator"].iterations.numpy()) == 3
    np.testing.assert_allclose(float(fresh.compute_losses(batch)["gamma_1"]), 0.5)  # t = 3, T = 2
