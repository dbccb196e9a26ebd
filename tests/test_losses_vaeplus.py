import math

import numpy as np
import pytest

from statcell_tf.losses import vaeplus as terms


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, [0, 0, 0, 0]),
        (2500, [0, 0, 0, 0]),  # layer 1 starts at t = T
        (3750, [0.5, 0, 0, 0]),
        (5000, [1, 0, 0, 0]),
        (6250, [1, 0.5, 0, 0]),
        (11250, [1, 1, 1, 0.5]),
        (12500, [1, 1, 1, 1]),
        (40000, [1, 1, 1, 1]),
    ],
)
def test_gamma_schedule_paper_values(step, expected):
    np.testing.assert_allclose(np.asarray(terms.gamma_schedule(step, 4, 2500.0)), expected, atol=1e-6)


def test_gamma_schedule_other_period_and_bad_period():
    np.testing.assert_allclose(np.asarray(terms.gamma_schedule(25, 2, 10.0)), [1.0, 0.5])
    with pytest.raises(ValueError, match="period"):
        terms.gamma_schedule(1, 4, 0.0)


def test_vae_loss_hand_values():
    x = np.array([[[[1.0, 2.0]]], [[[0.0, 0.0]]]], dtype="float32")  # (2, 1, 1, 2)
    x_hat = np.array([[[[0.0, 0.0]]], [[[0.0, 3.0]]]], dtype="float32")
    mu = np.array([[1.0, 0.0], [0.0, 0.0]], dtype="float32")
    log_var = np.array([[0.0, math.log(2.0)], [0.0, 0.0]], dtype="float32")
    total, reconstruction, kl = terms.vae_loss(x, x_hat, mu, log_var, beta=2.0)
    # 0.5·SSE: 0.5·(1 + 4) and 0.5·9
    np.testing.assert_allclose(np.asarray(reconstruction), [2.5, 4.5], rtol=1e-6)
    # KL = 0.5·Σ(μ² + σ² − log σ² − 1): 0.5·((1+1−0−1) + (0+2−log2−1)) and 0
    kl_0 = 0.5 * (1.0 + (2.0 - math.log(2.0) - 1.0))
    np.testing.assert_allclose(np.asarray(kl), [kl_0, 0.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(total), [2.5 + 2 * kl_0, 4.5], rtol=1e-6)


def test_discriminator_feature_loss_hand_values_and_zero_for_identical():
    real = np.zeros((2, 2, 2, 1), dtype="float32")
    fake = np.zeros((2, 2, 2, 1), dtype="float32")
    fake[0] = 1.0  # every unit of example 0 differs by 1
    fake[1, 0, 0, 0] = 2.0  # one unit of example 1 differs by 2
    scaled = np.asarray(terms.discriminator_feature_loss(real, fake, scale=68 * 68 * 3))
    np.testing.assert_allclose(scaled, [0.5 * 13872 * 1.0, 0.5 * 13872 * 4.0 / 4], rtol=1e-6)
    summed = np.asarray(terms.discriminator_feature_loss(real, fake, scale=None))
    np.testing.assert_allclose(summed, [0.5 * 4, 0.5 * 4], rtol=1e-6)
    same = np.random.default_rng(0).normal(size=(3, 5, 5, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(terms.discriminator_feature_loss(same, same.copy())), 0.0)


def test_discriminator_bce_and_accuracy():
    zero = np.zeros(3, dtype="float32")
    assert float(terms.discriminator_loss(zero, zero)) == pytest.approx(math.log(2.0), rel=1e-6)
    real = np.array([10.0, -1.0], dtype="float32")
    fake = np.array([-10.0, 2.0], dtype="float32")
    expected = np.mean([math.log1p(math.exp(-10)), math.log1p(math.exp(1)),
                        math.log1p(math.exp(-10)), math.log1p(math.exp(2))])
    assert float(terms.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)
    assert float(terms.discriminator_accuracy(real, fake)) == pytest.approx(0.5)
    # Extreme logits stay finite (overflow-free form).
    assert np.isfinite(float(terms.discriminator_loss(np.array([-1e4], "float32"), np.array([1e4], "float32"))))
