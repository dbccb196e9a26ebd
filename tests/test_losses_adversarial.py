import math

import numpy as np
import pytest

from statcell_tf.losses import adversarial


def _np(x):
    return np.asarray(x)


def test_bce_with_logits_hand_values():
    # σ(0) = 0.5: −log 0.5 whatever the target; σ(2) = 0.8808: t=1 → −log σ(2), t=0 → −log(1 − σ(2)).
    logits = np.array([0.0, 2.0, 2.0, -3.0], "float32")
    targets = np.array([1.0, 1.0, 0.0, 0.25], "float32")
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [
        math.log(2),
        -math.log(sig(2)),
        -math.log(1 - sig(2)),
        -(0.25 * math.log(sig(-3)) + 0.75 * math.log(1 - sig(-3))),
    ]
    np.testing.assert_allclose(_np(adversarial.binary_cross_entropy_with_logits(targets, logits)), expected, rtol=1e-6)


def test_bce_with_logits_is_stable_for_large_logits():
    out = _np(adversarial.binary_cross_entropy_with_logits(np.array([1.0, 0.0]), np.array([200.0, -200.0])))
    np.testing.assert_allclose(out, [0.0, 0.0], atol=1e-6)
    out = _np(adversarial.binary_cross_entropy_with_logits(np.array([0.0]), np.array([200.0])))
    np.testing.assert_allclose(out, [200.0], rtol=1e-6)


def test_image_bce_is_a_per_image_mean_over_pixels_and_channels():
    # Image 0: all logits 0 → log 2 everywhere. Image 1: one pixel logit 2 with target 1, rest 0.
    images = np.ones((2, 2, 1, 2), "float32")
    logits = np.zeros((2, 2, 1, 2), "float32")
    logits[1, 0, 0, 1] = 2.0
    expected_1 = (3 * math.log(2) + math.log(1 + math.exp(-2))) / 4
    np.testing.assert_allclose(
        _np(adversarial.image_binary_cross_entropy(images, logits)), [math.log(2), expected_1], rtol=1e-6
    )


def test_sparse_nll_hand_value():
    logits = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], "float32")
    labels = np.array([1, 0])
    lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    np.testing.assert_allclose(_np(adversarial.sparse_nll(logits, labels)), [math.log(3), lse - 1.0], rtol=1e-6)


def test_mean_squared_error_hand_value():
    z = np.array([[1.0, 2.0], [0.0, 0.0]], "float32")
    z_hat = np.array([[0.0, 0.0], [3.0, -1.0]], "float32")
    np.testing.assert_allclose(_np(adversarial.mean_squared_error(z, z_hat)), [2.5, 5.0])


def test_binary_discriminator_and_generator_losses():
    real = np.array([[0.0], [2.0]], "float32")  # labelled 1
    fake = np.array([[0.0], [-1.0], [1.0]], "float32")  # labelled 0
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731  H(σ(x),1) = softplus(−x), H(σ(x),0) = softplus(x)
    d_expected = (softplus(0) + softplus(-2)) / 2 + (softplus(0) + softplus(-1) + softplus(1)) / 3
    assert float(adversarial.binary_discriminator_loss(real, fake)) == pytest.approx(d_expected, rel=1e-6)
    g_expected = (softplus(-0) + softplus(1) + softplus(-1)) / 3
    assert float(adversarial.binary_generator_loss(fake)) == pytest.approx(g_expected, rel=1e-6)
    # Several fake sets: sum of batch means (Algorithm 1, decoder: prior draws + reconstructions).
    two = float(adversarial.binary_generator_loss(fake, real))
    assert two == pytest.approx(g_expected + (softplus(0) + softplus(-2)) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        adversarial.binary_generator_loss()


def test_k_plus_one_targets():
    labels = np.array([2, 0, 1], "int32")
    np.testing.assert_array_equal(_np(adversarial.class_discriminator_targets(labels, 3, generated=False)), [2, 0, 1])
    np.testing.assert_array_equal(_np(adversarial.class_discriminator_targets(labels, 3, generated=True)), [3, 3, 3])
    np.testing.assert_array_equal(_np(adversarial.generated_class_targets(2, 5)), [5, 5])


def test_class_discriminator_loss_hand_value():
    # K = 2 → 3 outputs. Real image of class 1 with uniform scores: log 3.
    # Generated image with scores [0, 0, ln 2]: p(gen) = 2/4 → −log 0.5.
    real = np.array([[0.0, 0.0, 0.0]], "float32")
    fake = np.array([[0.0, 0.0, math.log(2.0)]], "float32")
    loss = float(adversarial.class_discriminator_loss(real, np.array([1]), fake))
    assert loss == pytest.approx(math.log(3) + math.log(2), rel=1e-6)
    # Decoder side: the generated image should be scored as class 1: p = 1/4.
    g = float(adversarial.class_generator_loss(np.array([1]), fake))
    assert g == pytest.approx(math.log(4), rel=1e-6)
    g2 = float(adversarial.class_generator_loss(np.array([1]), fake, real))
    assert g2 == pytest.approx(math.log(4) + math.log(3), rel=1e-6)


def test_class_discriminator_loss_prefers_correct_slots():
    labels = np.array([0, 1])
    good_real = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]], "float32")
    good_fake = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]], "float32")
    bad_fake = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]], "float32")
    good = float(adversarial.class_discriminator_loss(good_real, labels, good_fake))
    bad = float(adversarial.class_discriminator_loss(good_real, labels, bad_fake))
    assert good < 0.05 < 4.0 < bad
