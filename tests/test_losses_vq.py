"""VQ loss terms and perplexity against hand-computed values."""

import math

import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.losses import vq


def test_codebook_and_commitment_terms_hand_values():
    z = np.array([[[1.0, 2.0], [0.0, 0.0]], [[3.0, -1.0], [1.0, 1.0]]], dtype="float32")  # (2, 2, 2)
    e = np.array([[[1.0, 1.0], [0.0, 2.0]], [[3.0, 1.0], [1.0, 1.0]]], dtype="float32")
    # example 0: squared diffs 0,1,0,4 → mean 1.25; example 1: 0,4,0,0 → mean 1.0
    np.testing.assert_allclose(vq.codebook_loss(z, e), [1.25, 1.0])
    np.testing.assert_allclose(vq.commitment_loss(z, e), [1.25, 1.0])
    np.testing.assert_allclose(vq.vq_loss(z, e, commitment_cost=0.25), [1.25 * 1.25, 1.25])


def test_gradients_go_to_codebook_and_encoder_separately():
    z = tf.Variable([[1.0, 2.0]])
    e = tf.Variable([[0.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        codebook = tf.reduce_sum(vq.codebook_loss(z, e))
        commitment = tf.reduce_sum(vq.commitment_loss(z, e))
    assert tape.gradient(codebook, z) is None  # sg(z)
    np.testing.assert_allclose(tape.gradient(codebook, e), [[-1.0, -2.0]])  # d/de mean((z-e)^2) = -(z-e)
    assert tape.gradient(commitment, e) is None  # sg(e)
    np.testing.assert_allclose(tape.gradient(commitment, z), [[1.0, 2.0]])


def test_straight_through_value_and_gradient():
    z = tf.Variable([[0.3, -0.2]])
    e = tf.constant([[1.0, 1.0]])
    with tf.GradientTape() as tape:
        out = vq.straight_through(z, e)
        loss = tf.reduce_sum(out * tf.constant([[2.0, 3.0]]))
    np.testing.assert_allclose(out, e)
    np.testing.assert_allclose(tape.gradient(loss, z), [[2.0, 3.0]])


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([2, 2, 0, 0], 2.0),  # two codes used equally
        ([5, 0, 0], 1.0),  # one code
        ([1, 1, 1, 1], 4.0),  # uniform over K
        ([3, 1], math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))),  # 1.7548
    ],
)
def test_perplexity_hand_values(counts, expected):
    assert float(vq.perplexity(np.array(counts, "float32"))) == pytest.approx(expected, rel=1e-6)


def test_perplexity_sums_leading_axes():
    # per-example histograms [[2,0],[0,2]] → batch usage [2,2] → perplexity 2
    assert float(vq.perplexity(np.array([[2, 0], [0, 2]]))) == pytest.approx(2.0)


def test_index_histogram_counts_per_example():
    indices = np.array([[[0, 1], [1, 3]], [[2, 2], [2, 2]]], dtype="int32")  # (2, 2, 2)
    hist = keras.ops.convert_to_numpy(vq.index_histogram(indices, 5))
    np.testing.assert_array_equal(hist, [[1, 2, 0, 1, 0], [0, 0, 4, 0, 0]])
    assert hist.shape == (2, 5)
