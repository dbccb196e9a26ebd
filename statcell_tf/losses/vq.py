"""Vector-quantisation terms (VQ-VAE, van den Oord et al. 2017, Eq. 3; cytoself Methods).

A quantiser maps each encoder vector z to its nearest codebook vector e. The encoder receives
the decoder's gradient through the straight-through estimator ``z + sg(e − z)``; the codebook
is trained by the codebook term ‖sg(z) − e‖² and the encoder kept close to its code by the
commitment term β‖z − sg(e)‖² (β = 0.25 in cytoself).

Loss functions return one value per example (shape (B,), the mean over every non-batch axis),
like `statcell_tf.losses.elbo`; callers take the batch mean.
"""

from __future__ import annotations

from statcell_tf.backend import keras, tf


def _per_example_mean(x):
    return keras.ops.mean(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)), axis=-1)


def codebook_loss(inputs, quantized):
    """‖sg(z) − e‖² averaged per example: moves the codes towards the encoder outputs.

    Args:
        inputs: tensor (B, ...). Encoder outputs z (treated as constants).
        quantized: tensor (B, ...). Their codebook vectors e (not straight-through).

    Returns:
        Tensor (B,).
    """
    z = keras.ops.stop_gradient(keras.ops.cast(inputs, "float32"))
    e = keras.ops.cast(quantized, "float32")
    return _per_example_mean(keras.ops.square(z - e))


def commitment_loss(inputs, quantized):
    """‖z − sg(e)‖² averaged per example: keeps the encoder committed to its codes.

    Args:
        inputs: tensor (B, ...). Encoder outputs z.
        quantized: tensor (B, ...). Their codebook vectors e (treated as constants).

    Returns:
        Tensor (B,).
    """
    z = keras.ops.cast(inputs, "float32")
    e = keras.ops.stop_gradient(keras.ops.cast(quantized, "float32"))
    return _per_example_mean(keras.ops.square(z - e))


def vq_loss(inputs, quantized, commitment_cost: float = 0.25):
    """VQ-VAE loss ‖sg(z) − e‖² + β‖z − sg(e)‖² per example (Eq. 3 without the likelihood)."""
    return codebook_loss(inputs, quantized) + commitment_cost * commitment_loss(inputs, quantized)


def straight_through(inputs, quantized):
    """``z + sg(e − z)``: the value of e with the gradient of z (straight-through estimator)."""
    return inputs + keras.ops.stop_gradient(quantized - inputs)


def index_histogram(indices, num_embeddings: int):
    """Hard code-usage histogram per example.

    Args:
        indices: int tensor (B, ...). Code index of every quantised vector.
        num_embeddings: int. Codebook size K.

    Returns:
        int32 tensor (B, K); row b sums to the number of vectors of example b.
    """
    flat = keras.ops.reshape(keras.ops.cast(indices, "int32"), (keras.ops.shape(indices)[0], -1))
    # Length fixed to K (indices < K): `keras.ops.bincount` sizes it max(indices) + 1, a
    # data-dependent shape that XLA (jit_compile) cannot compile.
    # (`tf.math.bincount(maxlength=K)` still computes the size from the data.)
    counts = tf.raw_ops.DenseBincount(input=flat, size=num_embeddings, weights=tf.zeros([0], tf.int32))
    return keras.ops.reshape(counts, (-1, num_embeddings))


def perplexity(counts):
    """exp(entropy) of the code-usage distribution given by `counts`.

    The usage distribution p is the mean one-hot code assignment over every vector counted
    (Sonnet's VQ perplexity); the value ranges from 1 (one code used) to K (uniform use).

    Args:
        counts: tensor (..., K). Code counts; every leading axis is summed (pass the
            per-example histograms of a batch to get the batch perplexity).

    Returns:
        Scalar tensor.
    """
    counts = keras.ops.cast(counts, "float32")
    k = keras.ops.shape(counts)[-1]
    totals = keras.ops.sum(keras.ops.reshape(counts, (-1, k)), axis=0)
    p = totals / keras.ops.maximum(keras.ops.sum(totals), 1.0)
    # p·log p is 0 for unused codes (the limit p → 0).
    entropy = -keras.ops.sum(p * keras.ops.log(keras.ops.where(p > 0, p, 1.0)))
    return keras.ops.exp(entropy)
