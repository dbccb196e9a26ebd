"""VectorQuantizer: nearest codes, loss terms, straight-through gradient, split quantisation."""

import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.layers.vector_quantizer import VectorQuantizer

CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype="float32")  # K=3, D=2


def _layer(num_splits=1):
    layer = VectorQuantizer(3, 2, commitment_cost=0.25, num_splits=num_splits)
    layer.build((None, 1, 2, 2 * num_splits))
    layer.embeddings.assign(CODEBOOK)
    return layer


def test_nearest_codes_losses_histogram_and_perplexity_hand_values():
    layer = _layer()
    z = np.array([[[[0.9, 0.1], [0.2, 1.5]]]], dtype="float32")  # (1, 1, 2, 2): nearest 1 and 2
    out = layer(z)
    np.testing.assert_array_equal(out["indices"], [[[1, 2]]])
    np.testing.assert_allclose(out["quantized"], [[[[1.0, 0.0], [0.0, 2.0]]]])
    # squared errors: (0.1² + 0.1²) + (0.2² + 0.5²) = 0.02 + 0.29 = 0.31 over 4 values
    np.testing.assert_allclose(out["codebook_loss"], 0.31 / 4, rtol=1e-5)
    np.testing.assert_allclose(out["commitment_loss"], 0.31 / 4, rtol=1e-5)
    np.testing.assert_allclose(out["loss"], 1.25 * 0.31 / 4, rtol=1e-5)
    np.testing.assert_array_equal(out["histogram"], [[0, 1, 1]])
    np.testing.assert_allclose(out["perplexity"], 2.0, rtol=1e-6)


def test_straight_through_gradient_and_codebook_gradient():
    layer = _layer()
    z = tf.Variable([[[[0.9, 0.1], [0.2, 1.5]]]])
    weights = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])
    with tf.GradientTape(persistent=True) as tape:
        out = layer(z)
        downstream = tf.reduce_sum(out["quantized"] * weights)
        vq_loss = out["loss"]
    # decoder gradient passes unchanged to the encoder output; none reaches the codebook
    np.testing.assert_allclose(tape.gradient(downstream, z), weights)
    assert tape.gradient(downstream, layer.embeddings) is None
    # codebook term: d/de mean((z-e)^2) = -2(z-e)/4 for the used codes only
    grad = tf.convert_to_tensor(tape.gradient(vq_loss, layer.embeddings))
    expected = np.zeros((3, 2), "float32")
    expected[1] = -2 * (np.array([0.9, 0.1]) - [1.0, 0.0]) / 4
    expected[2] = -2 * (np.array([0.2, 1.5]) - [0.0, 2.0]) / 4
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_split_quantisation_shapes_histogram_and_round_trip():
    # The codebook's initializer is unseeded: seed here so the codebook does not depend on the
    # global state the tests before this one left (the straight-through sum z + (q - z) rounds
    # differently per codebook, and some codebooks exceed rtol=1e-6 below).
    keras.utils.set_random_seed(0)
    layer = VectorQuantizer(16, 8, num_splits=9)
    z = np.random.default_rng(0).normal(size=(2, 4, 4, 72)).astype("float32")
    np.testing.assert_array_equal(layer.merge(layer.split(z)), z)
    np.testing.assert_array_equal(layer.split(z)[0, 1, 2, 3], z[0, 1, 2, 24:32])
    out = layer(z)
    assert out["indices"].shape == (2, 4, 4, 9)
    assert out["histogram"].shape == (2, 16)
    np.testing.assert_array_equal(np.sum(out["histogram"], axis=1), [144, 144])
    # quantised sub-vector (0,1,2,3) is the code its index names
    code = int(out["indices"][0, 1, 2, 3])
    # z + (e − z) (straight-through) equals e up to float32 rounding
    np.testing.assert_allclose(out["quantized"][0, 1, 2, 24:32], layer.embeddings.numpy()[code], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.lookup(out["indices"]), out["quantized"], rtol=1e-6, atol=1e-6)


def test_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = VectorQuantizer(4, 2)
        out = layer(tf.cast(tf.ones((1, 2, 2, 2)), "bfloat16"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert layer.embeddings.dtype == "float32"
    assert out["quantized"].dtype == "float32" and out["loss"].dtype == "float32"


def test_config_round_trip_and_errors():
    layer = VectorQuantizer(32, 4, commitment_cost=0.5, num_splits=3, name="vq")
    clone = VectorQuantizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    layer.build((None, 2, 2, 12))
    assert len(layer.weights) == 1 and layer.embeddings.shape == (32, 4)
    with pytest.raises(ValueError, match="num_splits \\* embedding_dim"):
        VectorQuantizer(8, 4, num_splits=2).build((None, 2, 2, 6))
    with pytest.raises(ValueError, match="num_embeddings"):
        VectorQuantizer(0, 4)


@pytest.mark.parametrize("num_splits", [1, 3])
def test_nearest_indices_equal_the_textbook_distance_formula(num_splits):
    # argmin ‖e‖² − 2 z·e (one fused matmul) picks the codes of argmin ‖z‖² − 2 z·e + ‖e‖².
    layer = VectorQuantizer(64, 8, num_splits=num_splits)
    layer.build((None, 5, 6, 8 * num_splits))
    z = np.random.default_rng(0).normal(size=(4, 5, 6, 8 * num_splits)).astype("float32")
    fast = np.asarray(layer.nearest_indices(z))
    np.testing.assert_array_equal(fast, np.asarray(layer.reference_nearest_indices(z)))
    # ... and the true nearest codes, by brute force in float64.
    vectors = z.reshape(-1, 8).astype("float64")
    codes = np.asarray(layer.embeddings).astype("float64")
    brute = ((vectors[:, None, :] - codes[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(fast.reshape(-1), brute)
