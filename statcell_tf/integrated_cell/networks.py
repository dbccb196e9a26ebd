"""The Integrated Cell's sub-networks (Johnson et al. 2017, Tables S1–S7), generalised to any
image size: encoders, decoders, latent and image discriminators, built from hyperparameters.

Stride-2 stages ``n = log2(min(H, W)) − 2``; encoder filters ``filters·2^i`` capped at
``16·filters``; decoders mirror the encoder from a dense layer onto the (H/2^n, W/2^n) grid;
image discriminators end with flatten + dense; latent discriminators ``16f-16f-8f-1``. The
two models that use them are in `statcell_tf.integrated_cell.model`.
"""

from __future__ import annotations

import math

from statcell_tf.backend import keras

# ----- shared sub-networks (Tables S1–S7) ---------------------------------------------------


def num_stages(image_size) -> int:
    """Stride-2 stages for an image of `image_size` = (H, W): log2(min(H, W)) − 2."""
    height, width = (int(s) for s in image_size)
    smallest = min(height, width)
    if smallest < 8 or smallest & (smallest - 1):
        raise ValueError(
            "`image_size` must have a smallest side that is a power of two >= 8 (the "
            f"encoder halves it down to 4). Received: image_size={list(image_size)}"
        )
    stages = int(math.log2(smallest)) - 2
    factor = 2**stages
    if height % factor or width % factor:
        raise ValueError(
            f"`image_size` sides must be divisible by {factor} ({stages} stride-2 stages). "
            f"Received: image_size={list(image_size)}"
        )
    return stages


def _conv_init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _bn(name):
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
    )


def _prelu(name, spatial=True):
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2] if spatial else None, name=name
    )


def _float32(name):
    # Outputs in float32 under mixed precision (losses and sigmoids need the range).
    return keras.layers.Activation("linear", dtype="float32", name=name)


def encoder_filters(filters: int, stages: int) -> list[int]:
    """Filters of the encoder stages: filters·2^i capped at 16·filters."""
    return [min(filters * 2**i, 16 * filters) for i in range(stages)]


def build_encoder(image_shape, filters: int, heads: dict, name: str) -> keras.Model:
    """Enc_r (Table S1) / Enc_{r,s} (Table S5): n × (4×4 stride-2 conv, BN, PReLU), then one
    FC + BN head per entry of `heads` ({output name: units}); outputs a dict of logits/latents."""
    stages = num_stages(image_shape[:2])
    inputs = keras.Input(tuple(image_shape), name="image")
    x = inputs
    for i, f in enumerate(encoder_filters(filters, stages)):
        x = keras.layers.Conv2D(
            f, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init(), name=f"conv{i}"
        )(x)
        x = _bn(f"bn{i}")(x)
        x = _prelu(f"prelu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # (B, h·w·16f)
    outputs = {}
    for head, units in heads.items():
        h = keras.layers.Dense(units, name=f"{head}_dense")(x)
        h = _bn(f"{head}_bn")(h)
        outputs[head] = _float32(head)(h)
    return keras.Model(inputs, outputs, name=name)


def build_decoder(input_dim: int, image_shape, filters: int, name: str, output_batchnorm: bool = True) -> keras.Model:
    """Dec_r (Table S2) / Dec_{r,s} (Table S6): FC → (h, w, 16f) grid → BN → PReLU, then n ×
    (4×4 stride-2 transposed conv, BN, PReLU) ending in C channels + BN (the tables; without
    that last BN, and with a bias instead, when `output_batchnorm` is False, as the authors'
    Torch code); outputs logits."""
    height, width, channels = (int(s) for s in image_shape)
    stages = num_stages((height, width))
    widths = encoder_filters(filters, stages)
    h0, w0 = height // 2**stages, width // 2**stages
    inputs = keras.Input((input_dim,), name="latent")
    x = keras.layers.Dense(h0 * w0 * widths[-1], name="fc")(inputs)
    x = keras.layers.Reshape((h0, w0, widths[-1]), name="grid")(x)  # (B, h0, w0, 16f)
    x = _bn("fc_bn")(x)
    x = _prelu("fc_prelu")(x)
    up = list(reversed(widths))[1:] + [channels]  # 1024, 512, 256, 128, 64, C at 256×256
    for i, f in enumerate(up):
        last = i == len(up) - 1
        normalise = output_batchnorm or not last
        x = keras.layers.Conv2DTranspose(
            f, 4, strides=2, padding="same", use_bias=not normalise, kernel_initializer=_conv_init(), name=f"upconv{i}"
        )(x)
        if normalise:
            x = _bn(f"up_bn{i}")(x)
        if not last:
            x = _prelu(f"up_prelu{i}")(x)
    outputs = _float32("logits")(x)  # the table's final sigmoid is applied by the caller
    return keras.Model(inputs, outputs, name=name)


def build_latent_discriminator(latent_dim: int, filters: int, name: str) -> keras.Model:
    """EncD_r / EncD_s (Table S3): FC 16f, LeakyReLU; FC 16f, BN, LeakyReLU; FC 8f, BN,
    LeakyReLU; FC 1 (logit)."""
    inputs = keras.Input((latent_dim,), name="latent")
    x = keras.layers.Dense(16 * filters, name="fc0")(inputs)
    x = keras.layers.LeakyReLU(0.2, name="lrelu0")(x)
    for i, units in enumerate((16 * filters, 8 * filters), start=1):
        x = keras.layers.Dense(units, name=f"fc{i}")(x)
        x = _bn(f"bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, _float32("score")(x), name=name)


def build_image_discriminator(
    image_shape, outputs: int, filters: int, noise_stddev: float, seed: int, name: str
) -> keras.Model:
    """DecD_r (Table S4) / DecD_{r,s} (Table S7): white noise σ on the input (training only),
    (n − 1) × (4×4 stride-2 conv, BN, LeakyReLU 0.2), flatten, FC `outputs` (logits)."""
    stages = num_stages(image_shape[:2])
    inputs = keras.Input(tuple(image_shape), name="image")
    x = keras.layers.GaussianNoise(noise_stddev, seed=seed, name="white_noise")(inputs)
    for i in range(stages - 1):
        f = min(filters * 2**i, 8 * filters)
        x = keras.layers.Conv2D(
            f, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init(), name=f"conv{i}"
        )(x)
        x = _bn(f"bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(outputs, name="logits")(x)
    return keras.Model(inputs, _float32("scores")(x), name=name)


# ----- shared model plumbing ----------------------------------------------------------------
