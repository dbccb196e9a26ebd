"""Adversarial-autoencoder terms of the Integrated Cell (Johnson et al. 2017, sections 2.1–2.3).

Every discriminator here returns *logits*; the sigmoid / softmax of the paper's tables is
folded into the loss (numerically stable). Conventions:

- Latent discriminators (Eq. 5, 11): samples of the prior are labelled 1, encodings 0; the
  encoder's adversarial term asks for its encodings to be labelled 1.
- Binary image discriminator of the reference model (Eq. 6): observed images 1, images
  decoded from prior draws 0; the decoder's adversarial term asks for 1.
- (K+1)-way image discriminator of the conditional model (Eq. 14): an observed image of
  structure y has target y ∈ [0, K), every generated image has target K; the decoder's
  adversarial term asks for the true structure y.

`binary_cross_entropy_with_logits`, `image_binary_cross_entropy`, `sparse_nll` and
`mean_squared_error` return one value per element / example; the `*_loss` functions return
scalar batch means (what the optimizers minimise).
"""

from __future__ import annotations

from statcell_tf.backend import keras

ops = keras.ops


def binary_cross_entropy_with_logits(targets, logits):
    """Elementwise H(σ(logits), targets) = −t·log σ(x) − (1 − t)·log(1 − σ(x)).

    Computed as max(x, 0) − x·t + log(1 + exp(−|x|)), which never overflows.
    """
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "float32")
    return ops.maximum(logits, 0.0) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def image_binary_cross_entropy(images, logits):
    """Eq. 4: pixel-wise binary cross-entropy averaged over every pixel and channel, per image.

    Args:
        images: (B, ..., C) targets in [0, 1].
        logits: (B, ..., C) decoder pre-sigmoid outputs (x̂ = σ(logits)).

    Returns:
        (B,) mean cross-entropy of each image.
    """
    elementwise = binary_cross_entropy_with_logits(images, logits)
    return ops.mean(ops.reshape(elementwise, (ops.shape(elementwise)[0], -1)), axis=-1)


def sparse_nll(logits, labels):
    """Eq. 10 / 14: −LogSoftMax(logits)[label], per example.

    Args:
        logits: (B, N) unnormalised scores.
        labels: (B,) integer classes in [0, N).
    """
    logits = ops.cast(logits, "float32")
    log_probs = ops.log_softmax(logits, axis=-1)
    one_hot = ops.one_hot(ops.cast(labels, "int32"), ops.shape(logits)[-1], dtype="float32")
    return -ops.sum(one_hot * log_probs, axis=-1)


def mean_squared_error(z, z_hat):
    """Eq. 8: (1/n)·‖z − ẑ‖² over the latent dimensions, per example."""
    diff = ops.cast(z, "float32") - ops.cast(z_hat, "float32")
    return ops.mean(ops.square(diff), axis=-1)


def _mean_bce(logits, target: float):
    return ops.mean(binary_cross_entropy_with_logits(ops.full(ops.shape(logits), target), logits))


def binary_discriminator_loss(real_logits, fake_logits):
    """Eq. 5 / 6 / 11: H(D(real), 1) + H(D(fake), 0), each a batch mean.

    For the latent discriminators `real` are prior draws and `fake` encodings; for the
    reference image discriminator `real` are observed images and `fake` decoded prior draws.
    """
    return _mean_bce(real_logits, 1.0) + _mean_bce(fake_logits, 0.0)


def binary_generator_loss(*fake_logits):
    """Adversarial term of an encoder / decoder: Σ_i H(D(fake_i), 1), each a batch mean.

    Algorithm 1: the encoder's term is H(EncD(z), prior label); the decoder's term sums the
    decoded prior draws and the reconstructions, both labelled observed.
    """
    if not fake_logits:
        raise ValueError("binary_generator_loss needs at least one logits tensor. Received: none")
    total = _mean_bce(fake_logits[0], 1.0)
    for logits in fake_logits[1:]:
        total = total + _mean_bce(logits, 1.0)
    return total


def generated_class_targets(batch_size, num_classes: int):
    """The (K+1)-way target of generated images: class index K for every example, (B,) int32."""
    return ops.full((batch_size,), num_classes, dtype="int32")


def class_discriminator_targets(labels, num_classes: int, generated: bool):
    """Targets of the (K+1)-way image discriminator (Eq. 14).

    Args:
        labels: (B,) int structure classes in [0, K).
        num_classes: int. K, the number of structures.
        generated: bool. True for generated images (target K), False for observed images
            (target = their structure).
    """
    labels = ops.cast(labels, "int32")
    if generated:
        return generated_class_targets(ops.shape(labels)[0], num_classes)
    return labels


def class_discriminator_loss(real_logits, labels, fake_logits):
    """Algorithm 2: −LogSoftMax(DecD(x), y) − LogSoftMax(DecD(x_gen), K), each a batch mean.

    Args:
        real_logits: (B, K+1) discriminator scores of observed images.
        labels: (B,) their structure classes in [0, K).
        fake_logits: (B', K+1) scores of generated images.
    """
    num_classes = ops.shape(real_logits)[-1] - 1
    real = ops.mean(sparse_nll(real_logits, class_discriminator_targets(labels, num_classes, False)))
    fake_targets = generated_class_targets(ops.shape(fake_logits)[0], num_classes)
    return real + ops.mean(sparse_nll(fake_logits, fake_targets))


def class_generator_loss(labels, *fake_logits):
    """Algorithm 2, decoder side: Σ_i −LogSoftMax(DecD(x_gen_i), y), each a batch mean.

    The decoder wants its images scored as *observed* images of the true structure y.
    """
    if not fake_logits:
        raise ValueError("class_generator_loss needs at least one logits tensor. Received: none")
    total = ops.mean(sparse_nll(fake_logits[0], labels))
    for logits in fake_logits[1:]:
        total = total + ops.mean(sparse_nll(logits, labels))
    return total
