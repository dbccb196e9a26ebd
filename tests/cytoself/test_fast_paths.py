"""The speed-ups of the cytoself step keep its maths: the model with its fast layers (fused
batch norm, swish with a stored sigmoid, VQ scores by one matmul, fused Adam) against the
same model, same weights, switched back to the Keras / textbook implementations."""

import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.cytoself.model import CytoselfModel
from statcell_tf.layers import activations
from statcell_tf.layers.fused_batch_normalization import FusedBatchNormalization
from statcell_tf.layers.vector_quantizer import VectorQuantizer
from statcell_tf.training.fused_adam import FusedAdam

from .test_model import TINY, _batch


def _to_reference(model):
    """Switch `model` in place to Keras' batch norm, tf.nn.silu and the textbook VQ distances."""
    switched = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is FusedBatchNormalization:  # noqa: E721
            layer.__class__ = keras.layers.BatchNormalization
            switched += 1
        for name in ("activation_fn", "output_activation_fn"):
            if getattr(layer, name, None) is activations.swish:
                object.__setattr__(layer, name, keras.activations.swish)
                switched += 1
        if isinstance(layer, VectorQuantizer):
            object.__setattr__(layer, "nearest_indices", layer.reference_nearest_indices)
            switched += 1
    return switched


def _losses_and_gradients(model, batch, compiled):
    def step(batch):
        with tf.GradientTape() as tape:
            losses = model.compute_losses(batch, training=True)
        return losses, tape.gradient(losses["loss"], model.trainable_variables)

    losses, grads = (tf.function(step) if compiled else step)(batch)
    stats = [v for v in model.non_trainable_variables if "moving" in v.path]
    return ({k: float(v) for k, v in losses.items()}, [np.asarray(tf.convert_to_tensor(g)) for g in grads],
            [np.asarray(v) for v in stats])


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [False, True])
def test_forward_gradients_and_batch_statistics_match_the_reference_layers(compiled):
    batch = _batch(n=4)
    fast = CytoselfModel(**{**TINY, "dropout_rate": 0.0})
    fast.build((None,) + fast.image_shape)
    reference = CytoselfModel(**{**TINY, "dropout_rate": 0.0})
    reference.build((None,) + reference.image_shape)
    reference.set_weights(fast.get_weights())
    assert _to_reference(reference) > 10
    got = _losses_and_gradients(fast, batch, compiled)
    want = _losses_and_gradients(reference, batch, compiled)
    assert len(got[2]) > 10  # the moving statistics of every batch norm were updated alike
    assert got[0].keys() == want[0].keys()
    for key in want[0]:
        np.testing.assert_allclose(got[0][key], want[0][key], rtol=1e-4, atol=1e-5, err_msg=key)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-5)
    for g, w in zip(got[2], want[2]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # Inference (moving statistics) too, including the embedding pass.
    images = batch["image"]
    fast_out, ref_out = fast(images, training=False), reference(images, training=False)
    for key in ("local", "global", "reconstruction", "logits1", "logits2"):
        np.testing.assert_allclose(fast_out[key], ref_out[key], rtol=1e-4, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(fast_out["local_indices"], ref_out["local_indices"])


@pytest.mark.slow
def test_default_optimizer_is_fused_adam_and_one_step_matches_keras_adam():
    batch = _batch(n=4)
    models = []
    for optimizer_cls in (FusedAdam, keras.optimizers.Adam):
        model = CytoselfModel(**{**TINY, "dropout_rate": 0.0})
        model.build((None,) + model.image_shape)
        if models:
            model.set_weights(models[0].get_weights())
        model.make_optimizers = lambda cls=optimizer_cls, m=model: {"main": cls(m.learning_rate)}
        models.append(model)
    for model in models:
        model.prepare(batch)
        tf.function(model.train_step_fn)(batch)
    assert type(CytoselfModel(**TINY).make_optimizers()["main"]) is FusedAdam
    assert type(models[0].optimizers_by_name["main"]) is FusedAdam
    for a, b in zip(models[0].trainable_variables, models[1].trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_model_saved_with_the_keras_layers_loads_into_the_fast_ones(tmp_path):
    # Runs saved before the fast layers existed: Keras batch norm in every block.
    batch = _batch(n=4)
    old = CytoselfModel(**TINY)
    old.build((None,) + old.image_shape)
    _to_reference(old)
    old.save(tmp_path / "old.keras")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert type(loaded.decoder1.block_bns[0]) is FusedBatchNormalization
    want, got = old(batch["image"], training=False), loaded(batch["image"], training=False)
    for key in ("local", "global", "reconstruction", "logits2"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)
