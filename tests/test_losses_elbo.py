import numpy as np

from statcell_tf.losses import elbo


def test_kl_of_standard_normal_is_zero():
    kl = elbo.kl_standard_normal(np.zeros((3, 5), "float32"), np.zeros((3, 5), "float32"))
    np.testing.assert_allclose(np.asarray(kl), 0.0, atol=1e-7)


def test_kl_hand_value():
    # mu = [1, 2], sigma^2 = [e, 1]: 0.5 * ((1 + e - 1 - 1) + (4 + 1 - 0 - 1)) = 0.5 * (e - 1 + 4)
    kl = elbo.kl_standard_normal(np.array([[1.0, 2.0]], "float32"), np.array([[1.0, 0.0]], "float32"))
    np.testing.assert_allclose(np.asarray(kl), [0.5 * (np.e - 1 + 4)], rtol=1e-6)


def test_squared_errors_hand_values():
    x = np.zeros((2, 2, 2, 1), "float32")
    x_hat = np.array([[[[1.0], [2.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[1.0], [1.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(elbo.sum_squared_error(x, x_hat)), [5.0, 4.0])
    np.testing.assert_allclose(np.asarray(elbo.mean_squared_error(x, x_hat)), [1.25, 1.0])


def test_sample_gaussian_moments():
    import keras

    mu = np.full((20000, 1), 3.0, "float32")
    log_var = np.full((20000, 1), np.log(4.0), "float32")
    z = np.asarray(elbo.sample_gaussian(mu, log_var, seed=keras.random.SeedGenerator(1)))
    assert abs(z.mean() - 3.0) < 0.05 and abs(z.std() - 2.0) < 0.05
