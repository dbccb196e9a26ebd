"""`MBConvBlock`: EfficientNet's mobile inverted bottleneck with squeeze-and-excitation."""

from __future__ import annotations

from statcell_tf.backend import keras
from statcell_tf.layers import activations
from statcell_tf.layers.fused_batch_normalization import FusedBatchNormalization


@keras.saving.register_keras_serializable(package="statcell_tf")
class MBConvBlock(keras.layers.Layer):
    """Mobile inverted bottleneck block (MobileNetV2 / EfficientNet-B0, Tan & Le 2019).

    1×1 expansion conv (skipped when ``expand_ratio == 1``) → BN → activation →
    k×k depthwise conv with `strides` → BN → activation → squeeze-and-excitation
    (global pool → 1×1 conv to ``max(1, int(input_filters * se_ratio))`` with the activation →
    1×1 conv back with a sigmoid gate) → 1×1 projection → BN, plus the identity shortcut when
    ``strides == 1`` and ``input_filters == output_filters``. "same" padding, so a stride-2
    block maps n pixels to ceil(n / 2) (cytoself: 25 → 13 → 7 → 4). No stochastic depth
    (the cytoself code has none).

    Args:
        input_filters: int. Channels of the input.
        output_filters: int. Channels of the output.
        expand_ratio: int. Expansion of the hidden width. Defaults to 6.
        kernel_size: int. Depthwise kernel size. Defaults to 3.
        strides: int. Depthwise stride (1 or 2). Defaults to 1.
        se_ratio: float. Squeeze width as a fraction of `input_filters`; 0 disables
            squeeze-and-excitation. Defaults to 0.25.
        activation: str. Defaults to "swish".
        batchnorm_momentum: float. Defaults to 0.99.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor (B, H, W, input_filters).
        training: bool. Batch-norm mode.

    Returns:
        Tensor (B, ceil(H / strides), ceil(W / strides), output_filters).
    """

    def __init__(
        self,
        input_filters: int,
        output_filters: int,
        expand_ratio: int = 6,
        kernel_size: int = 3,
        strides: int = 1,
        se_ratio: float = 0.25,
        activation: str = "swish",
        batchnorm_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides}")
        if expand_ratio < 1:
            raise ValueError(f"`expand_ratio` must be >= 1. Received: expand_ratio={expand_ratio}")
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"`se_ratio` must be in [0, 1]. Received: se_ratio={se_ratio}")
        self.input_filters = int(input_filters)
        self.output_filters = int(output_filters)
        self.expand_ratio = int(expand_ratio)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.se_ratio = float(se_ratio)
        self.activation = activation
        self.batchnorm_momentum = float(batchnorm_momentum)

        hidden = self.input_filters * self.expand_ratio
        bn = dict(momentum=self.batchnorm_momentum, dtype=self.dtype_policy)
        if self.expand_ratio != 1:
            self.expand_conv = keras.layers.Conv2D(hidden, 1, use_bias=False, dtype=self.dtype_policy, name="expand")
            self.expand_bn = FusedBatchNormalization(name="expand_bn", **bn)
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size, strides=self.strides, padding="same", use_bias=False,
            dtype=self.dtype_policy, name="depthwise",
        )
        self.depthwise_bn = FusedBatchNormalization(name="depthwise_bn", **bn)
        self.squeeze_filters = max(1, int(self.input_filters * self.se_ratio)) if self.se_ratio > 0 else 0
        if self.squeeze_filters:
            self.se_reduce = keras.layers.Conv2D(
                self.squeeze_filters, 1, activation=activation, dtype=self.dtype_policy, name="se_reduce"
            )
            self.se_expand = keras.layers.Conv2D(
                hidden, 1, activation="sigmoid", dtype=self.dtype_policy, name="se_expand"
            )
        self.project_conv = keras.layers.Conv2D(
            self.output_filters, 1, use_bias=False, dtype=self.dtype_policy, name="project"
        )
        self.project_bn = FusedBatchNormalization(name="project_bn", **bn)
        self.activation_fn = activations.get(activation)
        self.residual = self.strides == 1 and self.input_filters == self.output_filters

    def build(self, input_shape):
        if input_shape[-1] != self.input_filters:
            raise ValueError(
                f"`MBConvBlock` expects {self.input_filters} input channels. Received: input_shape={input_shape}"
            )
        shape = tuple(input_shape)
        hidden_shape = shape[:-1] + (self.input_filters * self.expand_ratio,)
        if self.expand_ratio != 1:
            self.expand_conv.build(shape)
            self.expand_bn.build(hidden_shape)
        self.depthwise.build(hidden_shape)
        out_shape = self.depthwise.compute_output_shape(hidden_shape)
        self.depthwise_bn.build(out_shape)
        if self.squeeze_filters:
            self.se_reduce.build((shape[0], 1, 1, hidden_shape[-1]))
            self.se_expand.build((shape[0], 1, 1, self.squeeze_filters))
        self.project_conv.build(out_shape)
        self.project_bn.build(out_shape[:-1] + (self.output_filters,))

    def call(self, inputs, training=False):
        x = inputs
        if self.expand_ratio != 1:
            x = self.activation_fn(self.expand_bn(self.expand_conv(x), training=training))
        x = self.activation_fn(self.depthwise_bn(self.depthwise(x), training=training))
        if self.squeeze_filters:
            squeezed = keras.ops.mean(x, axis=(1, 2), keepdims=True)  # (B, 1, 1, hidden)
            x = x * self.se_expand(self.se_reduce(squeezed))
        x = self.project_bn(self.project_conv(x), training=training)
        if self.residual:
            x = x + inputs
        return x

    def compute_output_shape(self, input_shape):
        return self.depthwise.compute_output_shape(tuple(input_shape)[:-1] + (1,))[:-1] + (self.output_filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_filters": self.input_filters,
                "output_filters": self.output_filters,
                "expand_ratio": self.expand_ratio,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "se_ratio": self.se_ratio,
                "activation": self.activation,
                "batchnorm_momentum": self.batchnorm_momentum,
            }
        )
        return config
