import numpy as np
import pytest

from statcell_tf.backend import keras
from statcell_tf.data import preprocess
from statcell_tf.layers.input_normalization import InputNormalization


def _raw(shape, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(90, 110, shape).astype("uint16")  # background around 100 ...
    images[:, 4:8, 4:8] += rng.integers(200, 4000, images[:, 4:8, 4:8].shape).astype("uint16")  # ... a cell
    images[1, ..., 0] = 7  # a constant channel becomes zeros
    return images


@pytest.mark.parametrize("method", ["max", "minmax", "mode"])
@pytest.mark.parametrize("shape", [(3, 12, 12, 2), (2, 3, 12, 12, 2)])
def test_same_as_the_numpy_preprocessing(method, shape):
    images = _raw(shape)
    expected = getattr(preprocess, f"normalize_{method}")(images)
    got = InputNormalization(method)(images).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32


def test_affine_and_config_round_trip():
    layer = InputNormalization("affine", offset=[100.0, 0.0], scale=[0.01, 1.0])
    images = _raw((2, 8, 8, 2))
    expected = (images.astype("float32") - [100.0, 0.0]) * [0.01, 1.0]
    np.testing.assert_allclose(layer(images).numpy(), expected, rtol=1e-6)
    clone = InputNormalization.from_config(layer.get_config())
    np.testing.assert_array_equal(clone(images).numpy(), layer(images).numpy())
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).scale == [0.01, 1.0]


def test_bad_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="Received: method='zscore'"):
        InputNormalization("zscore")
    with pytest.raises(ValueError, match="offset"):
        InputNormalization("affine", offset=[1.0])
