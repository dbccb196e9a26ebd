"""Conditioned residual down/up block of the Statistical Cell (Donovan-Maiye et al. 2022, Fig. 7)."""

from __future__ import annotations

from statcell_tf.backend import keras

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_CONV_TRANSPOSE = {2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}
_POOL = {2: keras.layers.AveragePooling2D, 3: keras.layers.AveragePooling3D}
_UPSAMPLE = {2: keras.layers.UpSampling2D, 3: keras.layers.UpSampling3D}


@keras.saving.register_keras_serializable(package="statcell_tf")
class ConditionalResidualBlock(keras.layers.Layer):
    """Residual block that halves (``"down"``) or doubles (``"up"``) every spatial axis.

    Fig. 7 of the paper, as in the authors' code (REFERENCE-NOTES.md):

    - bypass: down = AvgPool(2) → 1×1 conv; up = 1×1 conv → nearest upsampling ×2 (a 1×1
      conv commutes with nearest upsampling, so this equals upsampling → 1×1 conv at a
      quarter (2D) or an eighth (3D) of the cost);
    - residual: 4×4 stride-2 conv (up: transposed conv) → BN → activation → 3×3 conv → BN;
    - sum of both, plus each condition: the reference image resized to the block's output
      resolution → 1×1 conv → BN → ReLU, and the one-hot target type → 1×1 conv → BN → ReLU
      broadcast over space;
    - then `activation`.

    Every convolution, transposed convolution and dense operation is wrapped in
    `keras.layers.SpectralNormalization` (Miyato et al. 2018) with `power_iterations`
    power iterations; kernels start from N(0, `init_stddev`).

    The reference is resized by average pooling over integer factors (area interpolation,
    i.e. anti-aliased linear downsampling; the paper says "linearly interpolated", the
    authors' code uses nearest). Its spatial size must therefore be an integer multiple of
    the block's output size on every axis.

    Args:
        filters: int. Output channels.
        direction: str. ``"down"`` (encoder) or ``"up"`` (decoder). Defaults to ``"down"``.
        rank: int. 2 for images (B, H, W, C), 3 for volumes (B, D, H, W, C). Defaults to 2.
        activation: str. Activation inside the residual path and after the sum.
            Defaults to ``"relu"``.
        output_activation: str or None. Activation after the sum when it differs from
            `activation` (e.g. ``"softplus"`` on the last decoder block). Defaults to None.
        reference_channels: int. Channels of the reference condition; 0 = no reference
            condition. Defaults to 0.
        num_types: int. Number of target types of the one-hot condition; 0 = none.
            Defaults to 0.
        power_iterations: int. Power iterations of spectral normalisation per training
            call. Defaults to 1.
        init_stddev: float. Standard deviation of the normal kernel initialiser.
            Defaults to 0.02.
        bn_momentum: float. Moving-average momentum of the batch norms; 0.9 = PyTorch's
            default (momentum 0.1) used by the authors. Defaults to 0.9.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, *spatial, C_in) tensor.
        reference: (B, *spatial_ref, reference_channels) tensor, required when
            `reference_channels` > 0.
        target_type: (B, num_types) one-hot tensor, required when `num_types` > 0.
        training: bool. Batch statistics and spectral-norm updates when True.

    Returns:
        (B, *spatial_out, filters) tensor with spatial_out = spatial / 2 (down; odd sizes
        round up) or spatial × 2 (up).
    """

    def __init__(
        self,
        filters: int,
        direction: str = "down",
        rank: int = 2,
        activation: str = "relu",
        output_activation: str | None = None,
        reference_channels: int = 0,
        num_types: int = 0,
        power_iterations: int = 1,
        init_stddev: float = 0.02,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if direction not in ("down", "up"):
            raise ValueError(f"`direction` must be 'down' or 'up'. Received: direction={direction!r}")
        if rank not in (2, 3):
            raise ValueError(f"`rank` must be 2 or 3. Received: rank={rank!r}")
        if int(filters) < 1:
            raise ValueError(f"`filters` must be >= 1. Received: filters={filters!r}")
        if reference_channels < 0 or num_types < 0:
            raise ValueError(
                "`reference_channels` and `num_types` must be >= 0. Received: "
                f"reference_channels={reference_channels}, num_types={num_types}"
            )
        self.filters = int(filters)
        self.direction = direction
        self.rank = int(rank)
        self.activation = activation
        self.output_activation = output_activation
        self.reference_channels = int(reference_channels)
        self.num_types = int(num_types)
        self.power_iterations = int(power_iterations)
        self.init_stddev = float(init_stddev)
        self.bn_momentum = float(bn_momentum)
        self._activation_fn = keras.activations.get(activation)
        self._output_fn = keras.activations.get(output_activation or activation)
        self.residual_conv1 = None  # created in build (needs the input channels)
        conv = _CONV[self.rank]
        self.bypass_conv = self._spectral(conv(self.filters, 1, name="bypass_conv"))
        if direction == "down":
            self.bypass_resample = _POOL[self.rank](2, padding="same", name="bypass_pool")
        else:
            self.bypass_resample = _UPSAMPLE[self.rank](2, name="bypass_upsample")
        self.residual_bn1 = self._batch_norm("residual_bn1")
        self.residual_conv2 = self._spectral(conv(self.filters, 3, padding="same", name="residual_conv2"))
        self.residual_bn2 = self._batch_norm("residual_bn2")
        if self.reference_channels:
            self.reference_conv = self._spectral(conv(self.filters, 1, name="reference_conv"))
            self.reference_bn = self._batch_norm("reference_bn")
        if self.num_types:
            self.type_conv = self._spectral(conv(self.filters, 1, name="type_conv"))
            self.type_bn = self._batch_norm("type_bn")

    def _batch_norm(self, name):
        return keras.layers.BatchNormalization(momentum=self.bn_momentum, epsilon=1e-5, name=name)

    def _spectral(self, layer):
        layer.kernel_initializer = keras.initializers.RandomNormal(0.0, self.init_stddev)
        return keras.layers.SpectralNormalization(
            layer, power_iterations=self.power_iterations, name=f"sn_{layer.name}"
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel axis must be known. Received: input_shape={input_shape}")
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{self.name}: rank={self.rank} expects inputs of {self.rank + 2} dims "
                f"(batch, spatial..., channels). Received: input_shape={input_shape}"
            )
        spatial_none = (None,) * self.rank
        if self.direction == "down":
            first = _CONV[self.rank](channels, 4, strides=2, padding="same", name="residual_conv1")
        else:
            first = _CONV_TRANSPOSE[self.rank](channels, 4, strides=2, padding="same", name="residual_conv1")
        self.residual_conv1 = self._spectral(first)
        self.residual_conv1.build(tuple(input_shape))
        self.residual_bn1.build((None, *spatial_none, channels))
        self.bypass_conv.build((None, *spatial_none, channels))
        self.residual_conv2.build((None, *spatial_none, channels))
        self.residual_bn2.build((None, *spatial_none, self.filters))
        if self.reference_channels:
            self.reference_conv.build((None, *spatial_none, self.reference_channels))
            self.reference_bn.build((None, *spatial_none, self.filters))
        if self.num_types:
            self.type_conv.build((None, *((1,) * self.rank), self.num_types))
            self.type_bn.build((None, *((1,) * self.rank), self.filters))
        self.built = True

    def call(self, inputs, reference=None, target_type=None, training=False):
        if self.direction == "down":
            bypass = self.bypass_conv(self.bypass_resample(inputs), training=training)
        else:
            bypass = self.bypass_resample(self.bypass_conv(inputs, training=training))
        residual = self.residual_conv1(inputs, training=training)
        residual = self._activation_fn(self.residual_bn1(residual, training=training))
        residual = self.residual_conv2(residual, training=training)
        residual = self.residual_bn2(residual, training=training)
        x = bypass + residual
        if self.reference_channels:
            if reference is None:
                raise ValueError(f"{self.name} was built with reference_channels > 0: pass `reference`")
            ref = self._resize_reference(reference, x.shape[1:-1])
            ref = self.reference_conv(ref, training=training)
            x = x + keras.ops.relu(self.reference_bn(ref, training=training))
        if self.num_types:
            if target_type is None:
                raise ValueError(f"{self.name} was built with num_types > 0: pass `target_type`")
            # (B, T) -> (B, 1, 1[, 1], T): a 1×1 conv on a one-pixel map, broadcast over space.
            one_hot = keras.ops.cast(target_type, self.compute_dtype)
            one_hot = keras.ops.reshape(one_hot, (-1, *((1,) * self.rank), self.num_types))
            kind = self.type_conv(one_hot, training=training)
            x = x + keras.ops.relu(self.type_bn(kind, training=training))
        return self._output_fn(x)

    def _resize_reference(self, reference, target_spatial):
        source = reference.shape[1:-1]
        factors = []
        for axis, (have, want) in enumerate(zip(source, target_spatial)):
            if have is None or want is None or have % want:
                raise ValueError(
                    f"{self.name}: the reference's spatial axis {axis} ({have}) must be an integer "
                    f"multiple of the block output ({want}). Received: reference shape={reference.shape}"
                )
            factors.append(have // want)
        reference = keras.ops.cast(reference, self.compute_dtype)
        if all(f == 1 for f in factors):
            return reference
        return keras.ops.average_pool(reference, tuple(factors), strides=tuple(factors), padding="valid")

    def compute_output_shape(self, input_shape):
        spatial = []
        for size in input_shape[1:-1]:
            if size is None:
                spatial.append(None)
            else:
                spatial.append(-(-size // 2) if self.direction == "down" else size * 2)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "direction": self.direction,
                "rank": self.rank,
                "activation": self.activation,
                "output_activation": self.output_activation,
                "reference_channels": self.reference_channels,
                "num_types": self.num_types,
                "power_iterations": self.power_iterations,
                "init_stddev": self.init_stddev,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
