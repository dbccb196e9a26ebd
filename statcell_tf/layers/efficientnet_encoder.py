"""`EfficientNetEncoder`: a run of EfficientNet MBConv stages with optional stem and 1×1 head."""

from __future__ import annotations

from statcell_tf.backend import keras
from statcell_tf.layers import activations
from statcell_tf.layers.fused_batch_normalization import FusedBatchNormalization
from statcell_tf.layers.mbconv import MBConvBlock

# EfficientNet-B0 stages as (expand_ratio, kernel_size, strides, filters, repeats), split as in
# cytoself (REFERENCE-NOTES): stage 3 has stride 1 and stage 5 stride 2 (stock B0: 2 and 1).
CYTOSELF_ENCODER1_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 1, 40, 2))
CYTOSELF_ENCODER2_STAGES = ((6, 3, 2, 80, 3), (6, 5, 2, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


@keras.saving.register_keras_serializable(package="statcell_tf")
class EfficientNetEncoder(keras.layers.Layer):
    """EfficientNet-style encoder: [stem] → MBConv stages → 1×1 head conv (BN, activation).

    cytoself splits EfficientNet-B0 in two (Kobayashi et al. 2022, Supp. Fig. 9; strides from
    the authors' TF code): encoder1 = stem (3×3, stride 2, 32) + stages 1–3 + head 64,
    100×100 → 50 → 50 → 25 → 25×25×64; encoder2 = stages 4–7 + head 576,
    25 → 13 → 7 → 4 → 4×4×576. Only the first block of a stage has the stage's stride and
    input width; the others are stride 1 and keep the width (with the residual shortcut).

    Args:
        input_filters: int. Channels of the input.
        stages: sequence of (expand_ratio, kernel_size, strides, filters, repeats).
        output_filters: int. Channels of the 1×1 head conv.
        stem_filters: int or None. Filters of a 3×3 stride-2 stem conv (BN, activation)
            applied first; None for no stem. Defaults to None.
        se_ratio: float. Squeeze-excitation ratio of every block. Defaults to 0.25.
        activation: str. Defaults to "swish".
        batchnorm_momentum: float. Momentum of every batch norm. Defaults to 0.99
            (EfficientNet's); lower it for short runs so the inference statistics settle.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor (B, H, W, input_filters).
        training: bool. Batch-norm mode.

    Returns:
        Tensor (B, H', W', output_filters).
    """

    def __init__(
        self,
        input_filters: int,
        stages,
        output_filters: int,
        stem_filters: int | None = None,
        se_ratio: float = 0.25,
        activation: str = "swish",
        batchnorm_momentum: float = 0.99,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_filters = int(input_filters)
        self.stages = [tuple(int(v) for v in stage) for stage in stages]
        for stage in self.stages:
            if len(stage) != 5 or min(stage) < 1:
                raise ValueError(
                    "Each stage must be (expand_ratio, kernel_size, strides, filters, repeats) of "
                    f"positive ints. Received: stages={stages}"
                )
        self.output_filters = int(output_filters)
        self.stem_filters = None if stem_filters is None else int(stem_filters)
        self.se_ratio = float(se_ratio)
        self.activation = activation
        self.batchnorm_momentum = float(batchnorm_momentum)
        self.activation_fn = activations.get(activation)

        policy = self.dtype_policy
        width = self.input_filters
        if self.stem_filters is not None:
            self.stem_conv = keras.layers.Conv2D(
                self.stem_filters, 3, strides=2, padding="same", use_bias=False, dtype=policy, name="stem"
            )
            self.stem_bn = FusedBatchNormalization(
                momentum=self.batchnorm_momentum, dtype=policy, name="stem_bn"
            )
            width = self.stem_filters
        self.blocks = []
        for s, (expand, kernel, strides, filters, repeats) in enumerate(self.stages):
            for r in range(repeats):
                self.blocks.append(
                    MBConvBlock(
                        width, filters, expand_ratio=expand, kernel_size=kernel,
                        strides=strides if r == 0 else 1, se_ratio=self.se_ratio,
                        activation=activation, batchnorm_momentum=self.batchnorm_momentum, dtype=policy,
                        name=f"stage{s + 1}_block{r + 1}",
                    )
                )
                width = filters
        self.head_conv = keras.layers.Conv2D(self.output_filters, 1, use_bias=False, dtype=policy, name="head")
        self.head_bn = FusedBatchNormalization(
            momentum=self.batchnorm_momentum, dtype=policy, name="head_bn"
        )

    def build(self, input_shape):
        if input_shape[-1] != self.input_filters:
            raise ValueError(
                f"`EfficientNetEncoder` expects {self.input_filters} input channels. "
                f"Received: input_shape={input_shape}"
            )
        shape = tuple(input_shape)
        if self.stem_filters is not None:
            self.stem_conv.build(shape)
            shape = self.stem_conv.compute_output_shape(shape)
            self.stem_bn.build(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.head_conv.build(shape)
        self.head_bn.build(shape[:-1] + (self.output_filters,))

    def call(self, inputs, training=False):
        x = inputs
        if self.stem_filters is not None:
            x = self.activation_fn(self.stem_bn(self.stem_conv(x), training=training))
        for block in self.blocks:
            x = block(x, training=training)
        return self.activation_fn(self.head_bn(self.head_conv(x), training=training))

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.stem_filters is not None:
            shape = self.stem_conv.compute_output_shape(shape)
        for block in self.blocks:
            shape = block.compute_output_shape(shape)
        return shape[:-1] + (self.output_filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_filters": self.input_filters,
                "stages": [list(stage) for stage in self.stages],
                "output_filters": self.output_filters,
                "stem_filters": self.stem_filters,
                "se_ratio": self.se_ratio,
                "activation": self.activation,
                "batchnorm_momentum": self.batchnorm_momentum,
            }
        )
        return config
