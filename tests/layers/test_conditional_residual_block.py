import numpy as np
import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.layers.conditional_residual_block import ConditionalResidualBlock


def _inputs(rank, spatial, channels=3, ref_scale=2, types=4, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *spatial, channels)).astype("float32")
    ref = rng.random((batch, *[s * ref_scale for s in spatial], 2)).astype("float32")
    one_hot = np.eye(types, dtype="float32")[rng.integers(0, types, batch)]
    return x, ref, one_hot


def test_down_block_2d_shape_and_weights():
    x, ref, one_hot = _inputs(2, (16, 8))
    block = ConditionalResidualBlock(8, "down", rank=2, reference_channels=2, num_types=4)
    y = block(x, ref, one_hot, training=True)
    assert tuple(y.shape) == (2, 8, 4, 8)
    assert tuple(block.compute_output_shape(x.shape)) == (2, 8, 4, 8)
    # 5 spectrally normalised convs (kernel, bias, u) + 4 batch norms (4 each).
    assert len(block.weights) == 5 * 3 + 4 * 4
    plain = ConditionalResidualBlock(8, "down", rank=2)
    plain(x)
    assert len(plain.weights) == 3 * 3 + 2 * 4


def test_up_block_3d_shape_and_softplus_output():
    x, _, one_hot = _inputs(3, (2, 4, 3), channels=6, types=3)
    ref = np.random.default_rng(1).random((2, 4, 8, 6, 2)).astype("float32")  # = output size
    block = ConditionalResidualBlock(5, "up", rank=3, output_activation="softplus", reference_channels=2, num_types=3)
    y = block(x, ref, one_hot, training=False)
    assert tuple(y.shape) == (2, 4, 8, 6, 5)
    assert float(np.min(y)) > 0.0  # softplus


def test_encoder_stack_3d_resizes_the_reference_per_block():
    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 8, 8, 1)).astype("float32")
    ref = rng.random((1, 16, 8, 8, 2)).astype("float32")
    one_hot = np.ones((1, 1), "float32")
    shapes = []
    for filters in (4, 8, 16):
        x = ConditionalResidualBlock(filters, "down", rank=3, reference_channels=2, num_types=1)(x, ref, one_hot)
        shapes.append(tuple(x.shape))
    assert shapes == [(1, 8, 4, 4, 4), (1, 4, 2, 2, 8), (1, 2, 1, 1, 16)]


def test_conditions_change_the_output():
    x, ref, one_hot = _inputs(2, (8, 8))
    block = ConditionalResidualBlock(4, "down", rank=2, reference_channels=2, num_types=4)
    a = np.asarray(block(x, ref, one_hot, training=True))
    b = np.asarray(block(x, ref * 0.0, one_hot, training=True))
    c = np.asarray(block(x, ref, np.roll(one_hot, 1, axis=-1), training=True))
    assert np.abs(a - b).max() > 1e-4 and np.abs(a - c).max() > 1e-4


def _top_singular_value(kernel):
    matrix = np.reshape(np.asarray(kernel), (-1, kernel.shape[-1]))
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


@pytest.mark.slow
def test_spectral_norm_keeps_largest_singular_value_near_one():
    x, ref, one_hot = _inputs(2, (8, 8), types=3)
    target = np.random.default_rng(5).random((2, 16, 16, 4)).astype("float32") * 3
    block = ConditionalResidualBlock(4, "up", rank=2, reference_channels=2, num_types=3)
    block(x, np.random.default_rng(2).random((2, 16, 16, 2)).astype("float32"), one_hot)
    wrapped = [layer for layer in block._flatten_layers() if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 5
    before = [_top_singular_value(w.kernel) for w in wrapped]
    assert max(abs(s - 1.0) for s in before) > 0.3  # N(0, 0.02) init: not normalised yet
    optimizer = keras.optimizers.Adam(1e-3)
    ref_full = np.random.default_rng(2).random((2, 16, 16, 2)).astype("float32")
    for _ in range(25):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(block(x, ref_full, one_hot, training=True) - target))
        grads = tape.gradient(loss, block.trainable_variables)
        optimizer.apply(grads, block.trainable_variables)
    after = [_top_singular_value(w.kernel) for w in wrapped]
    np.testing.assert_allclose(after, 1.0, atol=0.1)


def test_config_round_trip_and_identical_outputs():
    x, ref, one_hot = _inputs(2, (8, 8))
    block = ConditionalResidualBlock(
        6, "down", rank=2, activation="relu", reference_channels=2, num_types=4, init_stddev=0.05, name="blk"
    )
    y = block(x, ref, one_hot)
    config = block.get_config()
    clone = ConditionalResidualBlock.from_config(config)
    clone(x, ref, one_hot)
    clone.set_weights(block.get_weights())
    assert clone.get_config() == config
    np.testing.assert_allclose(np.asarray(clone(x, ref, one_hot)), np.asarray(y), atol=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert isinstance(restored, ConditionalResidualBlock) and restored.num_types == 4


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="direction"):
        ConditionalResidualBlock(4, "sideways")
    with pytest.raises(ValueError, match="rank"):
        ConditionalResidualBlock(4, rank=1)
    block = ConditionalResidualBlock(4, reference_channels=2)
    with pytest.raises(ValueError, match="reference"):
        block(np.zeros((1, 8, 8, 1), "float32"))
    bad = ConditionalResidualBlock(4, reference_channels=2)
    with pytest.raises(ValueError, match="integer multiple"):
        bad(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 6, 6, 2), "float32"))
