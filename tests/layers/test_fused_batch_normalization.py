"""FusedBatchNormalization: the Keras batch norm's maths (outputs, gradients, moving statistics)."""

import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.layers.fused_batch_normalization import FusedBatchNormalization


def _pair(shape, **kwargs):
    reference, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    reference.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(0)
    channels = shape[-1]
    values = [rng.normal(1.0, 0.3, channels), rng.normal(0.0, 0.3, channels),
              rng.normal(0.5, 0.3, channels), rng.uniform(0.5, 2.0, channels)]
    for layer in (reference, fused):
        for variable, value in zip((layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance), values):
            variable.assign(value.astype("float32"))
    return reference, fused


@pytest.mark.parametrize("training", [True, False])
def test_same_outputs_gradients_and_moving_statistics_as_keras(training):
    shape = (4, 6, 5, 3)
    reference, fused = _pair(shape, momentum=0.9)
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, shape).astype("float32"))
    upstream = tf.constant(np.random.default_rng(2).normal(size=shape).astype("float32"))
    results = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_without_scale_and_center_and_fallback_for_other_ranks():
    reference, fused = keras.layers.BatchNormalization(scale=False, center=False), FusedBatchNormalization(
        scale=False, center=False)
    x = tf.constant(np.random.default_rng(3).normal(size=(3, 4, 4, 2)).astype("float32"))
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-5)
    flat = tf.constant(np.random.default_rng(4).normal(size=(8, 5)).astype("float32"))  # rank 2: Keras path
    np.testing.assert_allclose(FusedBatchNormalization()(flat, training=True),
                               keras.layers.BatchNormalization()(flat, training=True), atol=1e-6)


def test_bfloat16_policy_output_dtype_and_config_round_trip():
    layer = FusedBatchNormalization(momentum=0.8, epsilon=1e-4, dtype="mixed_bfloat16")
    y = layer(tf.ones((2, 3, 3, 4)), training=True)
    assert y.dtype == tf.bfloat16 and layer.moving_mean.dtype == "float32"
    clone = FusedBatchNormalization.from_config(layer.get_config())
    assert isinstance(clone, FusedBatchNormalization) and clone.momentum == 0.8 and clone.epsilon == 1e-4
