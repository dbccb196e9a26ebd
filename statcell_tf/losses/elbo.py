"""Variational terms shared by the β-VAEs (Statistical Cell, VAE+).

All functions take batched tensors and return one value per example (shape (B,)); callers
take the batch mean. Shapes: ``mu``/``log_var`` are (B, latent_dim).
"""

from __future__ import annotations

from statcell_tf.backend import keras


def kl_standard_normal(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, I)) summed over latent dims, per example.

    KL = 0.5 · Σ_j (μ_j² + σ_j² − log σ_j² − 1)  (Kingma & Welling 2014, appendix B).
    """
    mu = keras.ops.cast(mu, "float32")
    log_var = keras.ops.cast(log_var, "float32")
    return 0.5 * keras.ops.sum(
        keras.ops.square(mu) + keras.ops.exp(log_var) - log_var - 1.0, axis=-1
    )


def sample_gaussian(mu, log_var, seed=None):
    """Reparameterised sample z = μ + σ·ε, ε ~ N(0, I); `seed` is a keras SeedGenerator."""
    epsilon = keras.random.normal(keras.ops.shape(mu), dtype=mu.dtype, seed=seed)
    return mu + keras.ops.exp(0.5 * log_var) * epsilon


def sum_squared_error(x, x_hat):
    """Σ over every non-batch axis of (x − x̂)², per example."""
    diff = keras.ops.square(keras.ops.cast(x, "float32") - keras.ops.cast(x_hat, "float32"))
    return keras.ops.sum(keras.ops.reshape(diff, (keras.ops.shape(diff)[0], -1)), axis=-1)


def mean_squared_error(x, x_hat):
    """Mean over every non-batch axis of (x − x̂)², per example (pixel-wise MSE)."""
    diff = keras.ops.square(keras.ops.cast(x, "float32") - keras.ops.cast(x_hat, "float32"))
    return keras.ops.mean(keras.ops.reshape(diff, (keras.ops.shape(diff)[0], -1)), axis=-1)
