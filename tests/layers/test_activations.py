"""statcell_tf.layers.activations: swish equals tf.nn.silu in value and gradient."""

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.layers import activations


def test_swish_value_and_gradient_equal_tf_silu():
    x = tf.constant(np.random.default_rng(0).normal(0.0, 4.0, (64, 7)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(1).normal(size=(64, 7)).astype("float32"))
    results = []
    for fn in (tf.nn.silu, activations.swish):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        results.append((y, tape.gradient(loss, x)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-6)


def test_get_maps_swish_and_silu_and_passes_others_to_keras():
    assert activations.get("swish") is activations.swish and activations.get("silu") is activations.swish
    assert activations.get("relu") is keras.activations.relu
