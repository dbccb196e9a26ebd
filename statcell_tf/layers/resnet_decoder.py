"""`ResNetDecoder`: residual-unit stacks with bilinear upsampling (cytoself decoders)."""

from __future__ import annotations

import math

from statcell_tf.backend import keras
from statcell_tf.layers import activations
from statcell_tf.layers.fused_batch_normalization import FusedBatchNormalization


class _ResidualUnit(keras.layers.Layer):
    """3×3 conv → BN → activation → 3×3 conv → BN → add input → activation (width kept)."""

    def __init__(self, filters, activation="swish", batchnorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        policy = self.dtype_policy
        bn = dict(momentum=batchnorm_momentum, dtype=policy)
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=policy, name="conv1")
        self.bn1 = FusedBatchNormalization(name="bn1", **bn)
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=policy, name="conv2")
        self.bn2 = FusedBatchNormalization(name="bn2", **bn)
        self.activation_fn = activations.get(activation)

    def build(self, input_shape):
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            layer.build(input_shape)

    def call(self, inputs, training=False):
        x = self.activation_fn(self.bn1(self.conv1(inputs), training=training))
        x = self.bn2(self.conv2(x), training=training)
        return self.activation_fn(x + inputs)


@keras.saving.register_keras_serializable(package="statcell_tf")
class ResNetDecoder(keras.layers.Layer):
    """Decoder of stacked residual units with bilinear upsampling (cytoself, Supp. Fig. 9d–e).

    3×3 conv → BN → activation to `filters`; then `num_blocks` blocks, each: bilinear resize
    to ``ceil(output_size / 2^(blocks left))`` (≈ 2× per block, landing exactly on the output
    size: 4 → 7 → 13 → 25 and 25 → 50 → 100), `units_per_block` residual units (3×3 conv-BN-
    activation, 3×3 conv-BN, add, activation), and a 3×3 conv (BN, activation) halving the
    width down to `min_filters`. The last block's conv is the output conv: linear with a bias
    (``output_activation=None``, decoder1: image) or BN + `output_activation` (decoder2:
    reconstructs encoder1's swish output).

    Args:
        input_filters: int. Channels of the input.
        output_shape: (height, width, channels). Shape of one output.
        num_blocks: int. Upsampling blocks.
        filters: int. Width of the first block. Defaults to 64.
        min_filters: int. Floor of the halved widths. Defaults to 32.
        units_per_block: int. Residual units per block. Defaults to 2.
        output_activation: str or None. None = linear output conv. Defaults to None.
        activation: str. Hidden activation. Defaults to "swish".
        batchnorm_momentum: float. Momentum of every batch norm. Defaults to 0.99.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor (B, h, w, input_filters).
        training: bool. Batch-norm mode.

    Returns:
        Tensor (B, *output_shape).
    """

    def __init__(
        self,
        input_filters: int,
        output_shape,
        num_blocks: int,
        filters: int = 64,
        min_filters: int = 32,
        units_per_block: int = 2,
        output_activation: str | None = None,
        activation: str = "swish",
        batchnorm_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_filters = int(input_filters)
        self.output_shape_ = tuple(int(v) for v in output_shape)
        if len(self.output_shape_) != 3:
            raise ValueError(f"`output_shape` must be (height, width, channels). Received: output_shape={output_shape}")
        if num_blocks < 1 or units_per_block < 0 or filters < 1 or min_filters < 1:
            raise ValueError(
                "`num_blocks`, `filters` and `min_filters` must be >= 1 and `units_per_block` >= 0. "
                f"Received: num_blocks={num_blocks}, filters={filters}, min_filters={min_filters}, "
                f"units_per_block={units_per_block}"
            )
        self.num_blocks = int(num_blocks)
        self.filters = int(filters)
        self.min_filters = int(min_filters)
        self.units_per_block = int(units_per_block)
        self.output_activation = output_activation
        self.activation = activation
        self.batchnorm_momentum = float(batchnorm_momentum)
        self.activation_fn = activations.get(activation)

        policy = self.dtype_policy
        bn = dict(momentum=self.batchnorm_momentum, dtype=policy)
        height, width, channels = self.output_shape_
        self.sizes = [
            (math.ceil(height / 2 ** (self.num_blocks - i - 1)), math.ceil(width / 2 ** (self.num_blocks - i - 1)))
            for i in range(self.num_blocks)
        ]
        self.first_conv = keras.layers.Conv2D(
            self.filters, 3, padding="same", use_bias=False, dtype=policy, name="first"
        )
        self.first_bn = FusedBatchNormalization(name="first_bn", **bn)
        self.widths = [self.filters]
        self.units, self.block_convs, self.block_bns = [], [], []
        for i in range(self.num_blocks):
            self.units.append(
                [_ResidualUnit(self.widths[i], activation, self.batchnorm_momentum, dtype=policy,
                               name=f"block{i + 1}_unit{u + 1}")
                 for u in range(self.units_per_block)]
            )
            last = i == self.num_blocks - 1
            out = channels if last else max(self.widths[i] // 2, self.min_filters)
            linear = last and output_activation is None
            self.block_convs.append(
                keras.layers.Conv2D(out, 3, padding="same", use_bias=linear, dtype=policy,
                                    name="output" if last else f"block{i + 1}_conv")
            )
            self.block_bns.append(
                None if linear else FusedBatchNormalization(
                    name="output_bn" if last else f"block{i + 1}_bn", **bn)
            )
            self.widths.append(out)
        self.output_activation_fn = (
            activations.get(output_activation) if output_activation is not None else None
        )

    def build(self, input_shape):
        if input_shape[-1] != self.input_filters:
            raise ValueError(
                f"`ResNetDecoder` expects {self.input_filters} input channels. Received: input_shape={input_shape}"
            )
        batch = input_shape[0]
        self.first_conv.build(tuple(input_shape))
        self.first_bn.build(tuple(input_shape[:-1]) + (self.filters,))
        for i, (height, width) in enumerate(self.sizes):
            shape = (batch, height, width, self.widths[i])
            for unit in self.units[i]:
                unit.build(shape)
            self.block_convs[i].build(shape)
            if self.block_bns[i] is not None:
                self.block_bns[i].build((batch, height, width, self.widths[i + 1]))

    def call(self, inputs, training=False):
        x = self.activation_fn(self.first_bn(self.first_conv(inputs), training=training))
        for i, size in enumerate(self.sizes):
            x = keras.ops.image.resize(x, size, interpolation="bilinear")
            for unit in self.units[i]:
                x = unit(x, training=training)
            x = self.block_convs[i](x)
            last = i == self.num_blocks - 1
            if self.block_bns[i] is not None:
                x = self.block_bns[i](x, training=training)
                x = self.output_activation_fn(x) if last else self.activation_fn(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.output_shape_

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_filters": self.input_filters,
                "output_shape": list(self.output_shape_),
                "num_blocks": self.num_blocks,
                "filters": self.filters,
                "min_filters": self.min_filters,
                "units_per_block": self.units_per_block,
                "output_activation": self.output_activation,
                "activation": self.activation,
                "batchnorm_momentum": self.batchnorm_momentum,
            }
        )
        return config
