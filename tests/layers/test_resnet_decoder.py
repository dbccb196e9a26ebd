"""ResNetDecoder: upsampling schedule, output heads, weights and config."""

import numpy as np
import pytest

from statcell_tf.layers.resnet_decoder import ResNetDecoder


def test_cytoself_decoder2_schedule_and_widths():
    decoder = ResNetDecoder(576, (25, 25, 64), num_blocks=3, filters=64, min_filters=32, output_activation="swish")
    assert decoder.sizes == [(7, 7), (13, 13), (25, 25)]  # 4 → 7 → 13 → 25
    assert decoder.widths == [64, 32, 32, 64]  # halved per block with a floor of 32


def test_forward_linear_output_and_weight_count():
    decoder = ResNetDecoder(6, (16, 16, 2), num_blocks=2, filters=8, min_filters=4, units_per_block=1)
    out = decoder(np.ones((2, 4, 4, 6), "float32"), training=True)
    assert out.shape == (2, 16, 16, 2)
    assert float(np.min(out)) < 0 < float(np.max(out))  # linear output, not an activation
    # first conv+BN (5); per block: unit 2 convs + 2 BN (10), conv (+BN on block 1): 10+1+4, 10+2
    assert len(decoder.weights) == 5 + 15 + 12


def test_config_round_trip_and_errors():
    decoder = ResNetDecoder(6, (16, 16, 2), num_blocks=2, filters=8, output_activation="swish", name="d")
    assert ResNetDecoder.from_config(decoder.get_config()).get_config() == decoder.get_config()
    with pytest.raises(ValueError, match="output_shape"):
        ResNetDecoder(6, (16, 16), num_blocks=2)
    with pytest.raises(ValueError, match="input channels"):
        decoder.build((None, 4, 4, 5))
