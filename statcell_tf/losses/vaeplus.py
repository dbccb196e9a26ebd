"""Loss terms of VAE+ (Lafarge et al. 2019, MIDL, sections 3.2–3.3).

Encoder/decoder objective (minimised), per example::

    L = 0.5·‖x − x̂‖² + β·KL(q(z|x) ‖ N(0, I)) + Σ_i γ_i(t) · L_i^D

- ``0.5·SSE``: the negative Gaussian log-likelihood of the pixels with identity covariance
  (paper Sect. 3.2, E_q[log p(x|z)] up to a constant); `statcell_tf.losses.elbo`.
- ``L_i^D``: the same Gaussian term on the hidden activations φ_i of the discriminator
  (Sect. 3.3, "synthetic Gaussian observations ... with means D_i(x̃) and identity
  covariances"). The paper's formula is 0.5·Σ_units (φ_i(x) − φ_i(x̂))²; the authors' code
  (REFERENCE-NOTES) averages over the layer's units and rescales by the number of input
  pixels, 0.5·(68·68·3)·mean(...), so every layer weighs like the pixel term whatever its
  size. We follow the code (``scale`` = pixels of the input); ``scale=None`` gives the
  paper's plain sum.
- ``γ_i(t) = min(1, max(0, t/T − i))`` for the hidden layers i = 1..4 (T = 2500): layer i
  starts to contribute at t = i·T and has full weight from t = (i + 1)·T (Sect. 3.3; the
  code's delays are T·(k + 1) for k = 0..3, i.e. i starts at 1).
- Discriminator: binary cross-entropy, independent real images labelled 1 and
  reconstructions labelled 0 (Sect. 3.3).

Per-example functions return shape (B,); callers take the batch mean.
"""

from __future__ import annotations

from statcell_tf.backend import keras
from statcell_tf.losses import elbo

ops = keras.ops


def gamma_schedule(step, num_layers: int = 4, period: float = 2500.0):
    """Progressive weights γ_i(t) = min(1, max(0, t/T − i)) for i = 1..num_layers.

    Args:
        step: scalar tensor or number. Training iteration t (0-based: updates done so far).
        num_layers: int. Number of discriminator layers used as observations. Defaults to 4.
        period: float. T, the iterations between two layers starting to contribute.
            Defaults to 2500 (paper Sect. 4.1).

    Returns:
        float32 tensor of shape (num_layers,).
    """
    if period <= 0:
        raise ValueError(f"`period` must be > 0. Received: period={period}")
    t = ops.cast(step, "float32") / float(period)
    layers = ops.arange(1, num_layers + 1, dtype="float32")
    return ops.clip(t - layers, 0.0, 1.0)


def vae_loss(x, x_hat, mu, log_var, beta: float):
    """L^VAE to minimise: 0.5·SSE(x, x̂) + β·KL, per example (Sect. 3.2).

    Returns:
        tuple (total, reconstruction, kl) of (B,) tensors; reconstruction = 0.5·SSE.
    """
    reconstruction = 0.5 * elbo.sum_squared_error(x, x_hat)
    kl = elbo.kl_standard_normal(mu, log_var)
    return reconstruction + float(beta) * kl, reconstruction, kl


def discriminator_feature_loss(features_real, features_fake, scale: float | None = 68 * 68 * 3):
    """L_i^D: Gaussian reconstruction term on one discriminator layer, per example.

    ``0.5 · scale · mean_units((φ(x) − φ(x̂))²)`` with `scale` the number of input pixels
    (authors' code; 68·68·3 = 13872 for BBBC021 crops), or the paper's plain
    ``0.5 · Σ_units (φ(x) − φ(x̂))²`` when `scale` is None.

    Args:
        features_real: (B, ...) activations φ_i of the original images.
        features_fake: (B, ...) activations φ_i of their reconstructions.
        scale: float or None. See above.

    Returns:
        (B,) tensor.
    """
    diff = ops.square(ops.cast(features_real, "float32") - ops.cast(features_fake, "float32"))
    diff = ops.reshape(diff, (ops.shape(diff)[0], -1))
    if scale is None:
        return 0.5 * ops.sum(diff, axis=-1)
    return 0.5 * float(scale) * ops.mean(diff, axis=-1)


def sigmoid_cross_entropy(targets, logits):
    """Elementwise −t·log σ(x) − (1 − t)·log(1 − σ(x)), overflow-free."""
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "float32")
    return ops.maximum(logits, 0.0) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of the discriminator over a balanced batch (scalar).

    Mean over the 2B examples of H(σ(D(x_real)), 1) and H(σ(D(x̂)), 0), as in the authors'
    code (one mean over the concatenated batch).
    """
    real = sigmoid_cross_entropy(ops.ones_like(real_logits, dtype="float32"), real_logits)
    fake = sigmoid_cross_entropy(ops.zeros_like(fake_logits, dtype="float32"), fake_logits)
    return ops.mean(ops.concatenate([ops.reshape(real, (-1,)), ops.reshape(fake, (-1,))]))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of the balanced batch the discriminator labels correctly (logit 0 = p 0.5)."""
    real = ops.cast(ops.reshape(real_logits, (-1,)) > 0.0, "float32")
    fake = ops.cast(ops.reshape(fake_logits, (-1,)) <= 0.0, "float32")
    return ops.mean(ops.concatenate([real, fake]))
