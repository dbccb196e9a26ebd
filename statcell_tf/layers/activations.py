"""Activations with cheaper gradients than Keras' defaults (same functions, same derivatives)."""

from __future__ import annotations

from statcell_tf.backend import keras, tf


@tf.custom_gradient
def swish(x):
    """swish(x) = x · σ(x) (SiLU; EfficientNet's activation).

    `tf.nn.silu` (what Keras calls) multiplies x by β = 1, and its gradient recomputes σ(x)
    from x; here σ(x) is kept from the forward pass and the derivative
    σ(x) + swish(x)·(1 − σ(x)) (= σ(x)·(1 + x·(1 − σ(x))), the same as TensorFlow's) is
    formed from it: two fewer passes over every activation map forward and backward.
    """
    s = tf.sigmoid(x)
    y = x * s

    def grad(dy):
        return dy * (s + y * (1.0 - s))

    return y, grad


def get(name):
    """`keras.activations.get(name)`, with ``"swish"`` / ``"silu"`` mapped to `swish`."""
    if name in ("swish", "silu"):
        return swish
    return keras.activations.get(name)
