import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.integrated_cell.model import OPTIMIZERS, IntegratedCellConditional, IntegratedCellReference
from statcell_tf.integrated_cell.networks import encoder_filters, num_stages
from statcell_tf.losses import adversarial

SIZE = (32, 32)
K = 3


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.random((n, *SIZE, 3)).astype("float32"), "label": (np.arange(n) % K).astype("int32")}


def _reference(**kw):
    keras.utils.set_random_seed(0)
    model = IntegratedCellReference(image_size=SIZE, filters=4, **kw)
    model.prepare(_batch())
    return model


def _conditional(reference=None, **kw):
    keras.utils.set_random_seed(1)
    model = IntegratedCellConditional(K, image_size=SIZE, filters=4, class_names=["a", "b", "c"], **kw)
    if reference is not None:
        model.load_reference_encoder(reference)
    model.prepare(_batch())
    return model


def _snapshot(variables):
    return {id(v): np.array(v.numpy()) for v in variables}


def _changed(model, before):
    return {id(v) for v in model.weights if id(v) in before and not np.array_equal(before[id(v)], v.numpy())}


# ----- architecture ---------------------------------------------------------------------------


def test_stages_follow_image_size():
    assert num_stages((256, 256)) == 6 and num_stages((32, 32)) == 3 and num_stages((64, 96)) == 4
    assert encoder_filters(64, 6) == [64, 128, 256, 512, 1024, 1024]  # Table S1
    with pytest.raises(ValueError, match="power of two"):
        num_stages((24, 24))
    with pytest.raises(ValueError, match="divisible by 8"):
        num_stages((32, 36))


def test_paper_size_layer_trace():
    # 256×256 (paper): 6 stride-2 convs down to 4×4, 6 transposed convs back, DecD with 5 convs.
    model = IntegratedCellConditional(10, image_size=(256, 256), filters=1)
    convs = [layer for layer in model.encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 6 and tuple(convs[-1].output.shape[1:]) == (4, 4, 16)
    ups = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [u.filters for u in ups] == [16, 8, 4, 2, 1, 3]
    assert tuple(model.decoder.output.shape) == (None, 256, 256, 3)
    d_convs = [layer for layer in model.image_discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in d_convs] == [1, 2, 4, 8, 8]  # Table S7: 64,128,256,512,512 at filters=64
    assert tuple(model.image_discriminator.output.shape) == (None, 11)  # K + 1
    dense = [layer.units for layer in model.latent_discriminator.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [16, 16, 8, 1]  # Table S3: 1024, 1024, 512, 1 at filters=64


def test_output_batchnorm_option():
    # Tables S2/S6 end with BN before the sigmoid; the authors' code ends with a biased conv.
    def last_layers(model):
        layers = [layer for layer in model.decoder.layers if not isinstance(layer, keras.layers.Activation)]
        return layers[-2:]

    paper = IntegratedCellReference(image_size=SIZE, filters=2)
    conv, bn = last_layers(paper)
    assert isinstance(bn, keras.layers.BatchNormalization) and not conv.use_bias
    code = IntegratedCellReference(image_size=SIZE, filters=2, output_batchnorm=False)
    prelu, conv = last_layers(code)
    assert isinstance(conv, keras.layers.Conv2DTranspose) and conv.use_bias and conv.filters == 2


@pytest.mark.slow
def test_shape_traces():
    ref = _reference()
    cond = _conditional(ref)
    images = _batch()["image"]
    assert tuple(ref(images).shape) == (4, *SIZE, 2)
    assert tuple(ref.encode(images[..., :2]).shape) == (4, 16)
    out = cond(images)
    assert tuple(out["reconstruction"].shape) == (4, *SIZE, 3)
    assert tuple(out["probabilities"].shape) == (4, K)
    np.testing.assert_allclose(np.asarray(out["probabilities"]).sum(-1), 1.0, rtol=1e-5)
    assert tuple(out["z_r"].shape) == (4, 16) and tuple(out["z_s"].shape) == (4, 16)
    assert tuple(cond.integrate(images[..., :2]).shape) == (4, K, *SIZE, 1)
    forward = cond.forward(_batch(), training=False)
    assert tuple(forward["image_score_real"].shape) == (4, K + 1)
    assert tuple(forward["latent_score_prior"].shape) == (4, 1)


# ----- updates (Eq. 15–18) ----------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["reference", "conditional"])
def test_optimizer_variables_partition_the_networks(stage):
    model = _reference() if stage == "reference" else _conditional(_reference())
    seen = set()
    for name, network in model.networks().items():
        ids = {id(v) for v in model.optimizer_variables(name)}
        assert ids == {id(v) for v in network.trainable_variables} and ids
        assert not ids & seen
        seen |= ids
    assert seen == {id(v) for v in model.trainable_variables}
    if stage == "conditional":
        assert not {id(v) for v in model.reference_encoder.weights} & seen
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.optimizer_variables("generator")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["reference", "conditional"])
def test_each_optimizer_updates_exactly_its_network(stage):
    reference = _reference()
    model = reference if stage == "reference" else _conditional(reference)
    batch = _batch()
    frozen = _snapshot(model.reference_encoder.weights) if stage == "conditional" else {}
    for active in OPTIMIZERS:
        for name, optimizer in model.optimizers_by_name.items():
            optimizer.learning_rate.assign(1e-3 if name == active else 0.0)
        trainable = _snapshot(model.trainable_variables)
        model.train_step_fn(batch)
        changed = _changed(model, trainable)
        assert changed == {id(v) for v in model.networks()[active].trainable_variables}, active
    # The frozen reference encoder (weights and BN statistics) never moves.
    for v in getattr(model, "reference_encoder", keras.Model()).weights:
        np.testing.assert_array_equal(v.numpy(), frozen[id(v)])


def _objective_gradients(model, batch, name):
    """Gradient of optimizer `name`'s objective w.r.t. its variables, same prior draw each call."""
    state = np.array(model.seed_generator.state.numpy())
    model.seed_generator.state.assign(state)
    with tf.GradientTape() as tape:
        losses = model.compute_losses(batch, training=False)
    grads = tape.gradient(model.objectives(losses)[name], model.optimizer_variables(name))
    model.seed_generator.state.assign(state)
    return [np.asarray(g) for g in grads]


def _perturb(network, seed):
    rng = np.random.default_rng(seed)
    for v in network.trainable_variables:
        v.assign(v.numpy() + rng.normal(0, 0.5, v.shape).astype("float32"))


def _same(a, b):
    return all(np.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["reference", "conditional"])
def test_discriminator_gradients_reach_only_their_networks(stage):
    # γ = 1 so the adversarial terms are visible next to the reconstruction in the gradients.
    gammas = {"gamma_enc": 1.0, "gamma_dec": 1.0}
    model = _reference(**gammas) if stage == "reference" else _conditional(_reference(), **gammas)
    batch = _batch()
    enc, dec = _objective_gradients(model, batch, "enc"), _objective_gradients(model, batch, "dec")
    assert _same(enc, _objective_gradients(model, batch, "enc"))  # deterministic helper
    # DecD enters only the decoder's update (Eq. 16/18) ...
    _perturb(model.image_discriminator, 0)
    enc2, dec2 = _objective_gradients(model, batch, "enc"), _objective_gradients(model, batch, "dec")
    assert _same(enc, enc2) and not _same(dec, dec2)
    # ... and EncD only the encoder's (Eq. 15/17).
    _perturb(model.latent_discriminator, 1)
    enc3, dec3 = _objective_gradients(model, batch, "enc"), _objective_gradients(model, batch, "dec")
    assert not _same(enc2, enc3) and _same(dec2, dec3)


@pytest.mark.slow
def test_conditional_objectives_and_k_plus_one_labels():
    model = _conditional(_reference())
    batch = _batch()
    state = np.array(model.seed_generator.state.numpy())
    out = model.forward(batch, training=False)
    model.seed_generator.state.assign(state)
    losses = model.compute_losses(batch, training=False)

    def nll(scores, targets):
        scores = np.asarray(scores, "float64")
        log_p = scores - np.log(np.exp(scores).sum(-1, keepdims=True))
        return -log_p[np.arange(len(targets)), targets].mean()

    labels = batch["label"]
    fake = np.full(len(labels), K)  # the (K+1)-th slot: "generated"
    expected_d = nll(out["image_score_real"], labels) + nll(out["image_score_generated"], fake)
    assert float(losses["image_discriminator"]) == pytest.approx(expected_d, rel=1e-5)
    expected_g = nll(out["image_score_generated"], labels) + nll(out["image_score_reconstruction"], labels)
    assert float(losses["decoder_adversarial"]) == pytest.approx(expected_g, rel=1e-5)
    mse = np.mean((np.asarray(out["z_r_target"]) - np.asarray(out["z_r"])) ** 2)
    assert float(losses["reference_latent_mse"]) == pytest.approx(mse, rel=1e-5)
    # The MSE target is the frozen reference encoder's z_r (Algorithm 2).
    np.testing.assert_allclose(out["z_r_target"], model.reference_latent(batch["image"][..., :2]), rtol=1e-5)
    supervised = float(losses["reconstruction"] + losses["reference_latent_mse"] + losses["classification"])
    assert float(losses["loss"]) == pytest.approx(supervised, rel=1e-6)
    assert float(losses["encoder_objective"]) == pytest.approx(
        supervised + 1e-4 * float(losses["encoder_adversarial"]), rel=1e-6
    )
    assert float(losses["decoder_objective"]) == pytest.approx(
        float(losses["reconstruction"]) + 1e-5 * float(losses["decoder_adversarial"]), rel=1e-6
    )
    for key in ("accuracy", "latent_discriminator", "encoder_adversarial"):
        assert np.isfinite(float(losses[key]))


# ----- noise ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["reference", "conditional"])
def test_noise_only_on_image_discriminator_inputs_during_training(stage):
    model = _reference() if stage == "reference" else _conditional(_reference())
    x = model.image_discriminator.inputs[0]
    images = np.random.default_rng(0).random((4, *SIZE, x.shape[-1])).astype("float32")
    d = model.image_discriminator
    np.testing.assert_array_equal(d(images, training=False), d(images, training=False))
    assert not np.allclose(d(images, training=True), d(images, training=True))
    # The noise is the discriminator's first layer and has σ = 0.05.
    noise_layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.GaussianNoise)]
    assert noise_layers == [d.layers[1]]
    delta = np.asarray(noise_layers[0](images, training=True)) - images
    assert delta.std() == pytest.approx(0.05, rel=0.05) and abs(delta.mean()) < 0.005
    # Everything else is deterministic in training mode.
    z = np.random.default_rng(1).normal(size=(4, 16)).astype("float32")
    np.testing.assert_array_equal(model.latent_discriminator(z, training=True), model.latent_discriminator(z, training=True))
    enc_in = images if stage == "reference" else np.concatenate([images[..., :2], images[..., 2:]], -1)
    a, b = model.encoder(enc_in, training=True), model.encoder(enc_in, training=True)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    dec_in = np.zeros((4, model.decoder.inputs[0].shape[-1]), "float32")
    np.testing.assert_array_equal(model.decoder(dec_in, training=True), model.decoder(dec_in, training=True))


# ----- Algorithm 3 ----------------------------------------------------------------------------


@pytest.mark.slow
def test_integrate_decodes_every_structure_at_the_prior_mode():
    model = _conditional(_reference())
    reference_images = _batch(2)["image"][..., :2]
    out = np.asarray(model.integrate(reference_images))
    z_r = model.reference_latent(reference_images)
    for k in range(K):
        y = np.zeros((2, K), "float32")
        y[:, k] = 1
        expected = keras.ops.sigmoid(model.decode_logits(z_r, y, np.zeros((2, 16), "float32")))[..., 2:]
        np.testing.assert_allclose(out[:, k], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_one_structure_is_a_model():
    """K = 1 (Algorithm 3 needs no second structure): ŷ ≡ 1 so L_y = 0, DecD_{r,s} is a 2-way
    observed-vs-generated discriminator, integration returns the one structure."""
    keras.utils.set_random_seed(1)
    model = IntegratedCellConditional(1, image_size=SIZE, filters=4, class_names=["tubulin"])
    batch = {"image": _batch()["image"], "label": np.zeros(4, "int32")}
    model.prepare(batch)
    losses = model.train_step_fn(batch)
    assert float(losses["classification"]) == 0 and float(losses["accuracy"]) == 1
    assert model.image_discriminator.outputs[0].shape[-1] == 2
    np.testing.assert_array_equal(model.classify(batch["image"]), np.ones((4, 1)))
    assert np.asarray(model.integrate(batch["image"][..., :2])).shape == (4, 1, *SIZE, 1)
    with pytest.raises(ValueError, match="num_classes"):
        IntegratedCellConditional(0, image_size=SIZE, filters=4)


# ----- config and persistence -----------------------------------------------------------------


@pytest.mark.slow
def test_config_round_trip_and_errors():
    model = IntegratedCellConditional(K, image_size=SIZE, filters=4, decoder_condition="one_hot", class_names=list("abc"))
    clone = IntegratedCellConditional.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    ref = IntegratedCellReference(image_size=SIZE, filters=4, gamma_enc=0.5)
    assert IntegratedCellReference.from_config(ref.get_config()).get_config() == ref.get_config()
    with pytest.raises(ValueError, match="decoder_condition"):
        IntegratedCellConditional(K, image_size=SIZE, filters=4, decoder_condition="logits")
    with pytest.raises(ValueError, match="class_names"):
        IntegratedCellConditional(K, image_size=SIZE, filters=4, class_names=["a"])
    with pytest.raises(ValueError, match="structure_channel"):
        IntegratedCellConditional(K, image_size=SIZE, filters=4, structure_channel=1)
    with pytest.raises(ValueError, match="reference model does not match"):
        model.load_reference_encoder(IntegratedCellReference(image_size=SIZE, filters=2))


@pytest.mark.slow
def test_keras_save_load_and_saved_model_endpoints(tmp_path):
    from statcell_tf.training import export

    model = _conditional(_reference())
    model.train_step_fn(_batch())
    images = _batch(2, seed=3)["image"]
    path = export.save_keras(model, tmp_path / "model.keras")
    loaded = export.load_keras(path)
    assert isinstance(loaded, IntegratedCellConditional) and loaded.class_names == ["a", "b", "c"]
    np.testing.assert_allclose(loaded(images)["reconstruction"], model(images)["reconstruction"], atol=1e-6)
    np.testing.assert_allclose(loaded.integrate(images[..., :2]), model.integrate(images[..., :2]), atol=1e-6)

    export.export_saved_model(model, tmp_path / "saved_model")
    restored = tf.saved_model.load(str(tmp_path / "saved_model"))
    # Endpoints take images as they are on disk and apply the model's section 3.1 normalisation.
    np.testing.assert_allclose(restored.classify(images), model.classify(model.preprocessing(images)), atol=1e-6)
    integrated = restored.integrate(images[..., :2])
    assert tuple(integrated.shape) == (2, K, *SIZE, 1)
    encoded = restored.encode(images)
    assert set(encoded) == {"z_r", "probabilities", "z_s"}


@pytest.mark.slow
def test_losses_are_batch_means_of_adversarial_terms():
    # The reference model's discriminator loss is Eq. 6 on (observed, decoded prior draws).
    model = _reference()
    batch = _batch()
    state = np.array(model.seed_generator.state.numpy())
    out = model.forward(batch, training=False)
    model.seed_generator.state.assign(state)
    losses = model.compute_losses(batch, training=False)
    expected = adversarial.binary_discriminator_loss(out["image_score_real"], out["image_score_generated"])
    assert float(losses["image_discriminator"]) == pytest.approx(float(expected), rel=1e-6)
    expected = adversarial.binary_generator_loss(out["image_score_generated"], out["image_score_reconstruction"])
    assert float(losses["decoder_adversarial"]) == pytest.approx(float(expected), rel=1e-6)
    bce = adversarial.image_binary_cross_entropy(batch["image"][..., :2], out["reconstruction_logits"])
    assert float(losses["reconstruction"]) == pytest.approx(float(np.mean(bce)), rel=1e-6)
