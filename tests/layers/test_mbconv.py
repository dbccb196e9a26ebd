"""MBConvBlock: shapes, residual rule, squeeze-excitation width, weights, config."""

import numpy as np
import pytest

from statcell_tf.layers.mbconv import MBConvBlock


@pytest.mark.parametrize("strides, size_out", [(1, 7), (2, 4)])
def test_output_shape_with_same_padding(strides, size_out):
    block = MBConvBlock(4, 6, expand_ratio=2, kernel_size=3, strides=strides)
    out = block(np.zeros((2, 7, 7, 4), "float32"))
    assert out.shape == (2, size_out, size_out, 6)
    assert block.compute_output_shape((2, 7, 7, 4)) == (2, size_out, size_out, 6)


def test_weights_residual_and_squeeze_excitation():
    block = MBConvBlock(8, 8, expand_ratio=3, kernel_size=5, strides=1, se_ratio=0.25)
    block.build((None, 6, 6, 8))
    assert block.residual and block.squeeze_filters == 2  # 0.25 of the block *input* channels
    # expand conv+BN(4), depthwise+BN(4), SE 2 convs with biases, project+BN(4)
    assert len(block.weights) == 1 + 4 + 1 + 4 + 4 + 1 + 4
    no_expand = MBConvBlock(8, 16, expand_ratio=1, strides=2)
    no_expand.build((None, 6, 6, 8))
    assert not no_expand.residual and not hasattr(no_expand, "expand_conv")


def test_config_round_trip_and_errors():
    block = MBConvBlock(4, 8, expand_ratio=6, kernel_size=5, strides=2, se_ratio=0.25, name="b")
    assert MBConvBlock.from_config(block.get_config()).get_config() == block.get_config()
    with pytest.raises(ValueError, match="strides"):
        MBConvBlock(4, 4, strides=3)
    with pytest.raises(ValueError, match="input channels"):
        MBConvBlock(4, 4).build((None, 5, 5, 3))
