"""EfficientNetEncoder: cytoself's stride pattern, widths and config."""

import numpy as np
import pytest

from statcell_tf.layers.efficientnet_encoder import (
    CYTOSELF_ENCODER1_STAGES,
    CYTOSELF_ENCODER2_STAGES,
    EfficientNetEncoder,
)


def test_cytoself_stage_tables_follow_reference_strides():
    # stage 3 at stride 1 and stage 5 at stride 2 (stock EfficientNet-B0: 2 and 1)
    assert CYTOSELF_ENCODER1_STAGES[2][2] == 1 and CYTOSELF_ENCODER2_STAGES[1][2] == 2
    encoder1 = EfficientNetEncoder(2, CYTOSELF_ENCODER1_STAGES, 64, stem_filters=32)
    encoder2 = EfficientNetEncoder(64, CYTOSELF_ENCODER2_STAGES, 576)
    assert encoder1.compute_output_shape((None, 100, 100, 2)) == (None, 25, 25, 64)
    assert encoder2.compute_output_shape((None, 25, 25, 64)) == (None, 4, 4, 576)
    assert len(encoder1.blocks) == 5 and len(encoder2.blocks) == 11


def test_small_encoder_forward_and_config():
    encoder = EfficientNetEncoder(1, [[1, 3, 1, 4, 1], [2, 3, 2, 6, 2]], 8, stem_filters=4, name="enc")
    out = encoder(np.zeros((2, 16, 16, 1), "float32"))
    assert out.shape == (2, 4, 4, 8)
    clone = EfficientNetEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    with pytest.raises(ValueError, match="expand_ratio, kernel_size"):
        EfficientNetEncoder(1, [[1, 3, 1]], 8)
