"""VAE+ (Lafarge et al. 2019, MIDL): a VAE whose reconstructions are also compared in the
feature space of a discriminator, switched on layer by layer (progressive training).

Three variants of one network (paper Sect. 4.1): ``"vaeplus"`` (β = 2 and the discriminator
terms), ``"vae"`` (β = 1) and ``"ae"`` (β = 0), the last two without discriminator.
"""

from __future__ import annotations

from statcell_tf.backend import keras, tf
from statcell_tf.losses import elbo
from statcell_tf.losses import vaeplus as terms
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.training.model import TrainableModel

VARIANTS = {"vaeplus": 2.0, "vae": 1.0, "ae": 0.0}
FEATURE_REDUCTIONS = ("scaled_mean", "sum")
IMAGE_SIZE = 68  # 5×5 valid convs and three 2×2 pools reach exactly 1×1 only from 68 px
NUM_FEATURE_LAYERS = 4  # discriminator hidden layers used as observations (Sect. 3.3)
LEAK = 0.01


def _conv_block(h, filters, bn_momentum, name, pool=True, activation=True, kernel_size=5):
    # 5×5 valid conv → BN → 2×2 max-pool → LeakyReLU(0.01), the authors' order.
    h = keras.layers.Conv2D(filters, kernel_size, padding="valid", use_bias=False, name=f"{name}_conv")(h)
    h = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(h)
    if pool:
        h = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(h)
    if activation:
        h = keras.layers.LeakyReLU(LEAK, name=f"{name}_act")(h)
    return h


def build_encoder(image_shape, filters, latent_dim, bn_momentum=0.9, name="encoder"):
    """Encoder CNN: (B, 68, 68, C) → μ, log σ² (B, latent_dim) each.

    Spatial trace: 68 → conv 64 → pool 32 → conv 28 → pool 14 → conv 10 → pool 5 → 5×5
    conv → 1×1×(2·latent_dim), batch-normalised ("re-centred", authors' code) and split.
    """
    image = keras.Input(image_shape, name="image")
    h = image
    for k in range(3):
        h = _conv_block(h, filters, bn_momentum, f"block{k + 1}")
    h = _conv_block(h, 2 * latent_dim, bn_momentum, "posterior", pool=False, activation=False)
    h = keras.layers.Reshape((2 * latent_dim,), name="flatten")(h)  # (B, 1, 1, 2L) -> (B, 2L)
    return keras.Model(image, [h[:, :latent_dim], h[:, latent_dim:]], name=name)  # μ, log σ²


def build_decoder(latent_dim, filters, channels, bn_momentum=0.9, name="decoder"):
    """Decoder CNN, the mirror of the encoder: z (B, latent_dim) → (B, 68, 68, channels).

    Four 5×5 stride-1 transposed convs (= zero padding 4 + valid conv) each → BN →
    LeakyReLU, the first three followed by 2× nearest upsampling: 1 → 5 → 10 → 14 → 28 → 32
    → 64 → 68; then a 1×1 conv → BN → LeakyReLU to the image channels (paper Sect. 3.4:
    BN and LeakyReLU throughout; authors' code: the same for the output layer).
    """
    z = keras.Input((latent_dim,), name="z")
    h = keras.layers.Reshape((1, 1, latent_dim), name="grid")(z)
    for k in range(4):
        h = keras.layers.Conv2DTranspose(filters, 5, padding="valid", use_bias=False, name=f"block{k + 1}_deconv")(h)
        h = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"block{k + 1}_bn")(h)
        h = keras.layers.LeakyReLU(LEAK, name=f"block{k + 1}_act")(h)
        if k < 3:
            h = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"block{k + 1}_up")(h)
    h = keras.layers.Conv2D(channels, 1, use_bias=False, name="output_conv")(h)
    h = keras.layers.BatchNormalization(momentum=bn_momentum, name="output_bn")(h)
    h = keras.layers.LeakyReLU(LEAK, name="output_act")(h)
    return keras.Model(z, h, name=name)


def build_discriminator(image_shape, filters, top_filters, bn_momentum=0.9, name="discriminator"):
    """Discriminator CNN: (B, 68, 68, C) → [φ_1, φ_2, φ_3, φ_4, logit (B,)].

    φ_1..φ_3: the encoder's three conv blocks (32×32, 14×14, 5×5 × `filters`); φ_4: 5×5
    conv → BN → LeakyReLU (1×1×`top_filters`); then the "fully connected" 1×1 conv → BN
    → one logit (the sigmoid is folded into the loss).
    """
    image = keras.Input(image_shape, name="image")
    h = image
    features = []
    for k in range(3):
        h = _conv_block(h, filters, bn_momentum, f"block{k + 1}")
        features.append(h)
    h = _conv_block(h, top_filters, bn_momentum, "block4", pool=False)
    features.append(h)
    h = _conv_block(h, 1, bn_momentum, "logit", pool=False, activation=False, kernel_size=1)
    logit = keras.layers.Reshape((), name="flatten")(h)  # (B, 1, 1, 1) -> (B,)
    return keras.Model(image, [*features, logit], name=name)


def max_normalize(images):
    """Divide every channel of every image by its maximum (paper Sect. 4.1); idempotent."""
    images = keras.ops.cast(images, "float32")
    peak = keras.ops.max(images, axis=(1, 2), keepdims=True)
    return images / keras.ops.maximum(peak, 1e-12)


ADVERSARIAL_VARIANTS = ("vaeplus",)  # the variant with the discriminator-feature loss


@keras.saving.register_keras_serializable(package="statcell_tf")
class VAEPlus(TrainableModel):
    """VAE+ and its AE / VAE baselines (Lafarge et al. 2019, Sect. 3–4.1, Fig. 1).

    Objective of the encoder and decoder, a batch mean of (`statcell_tf.losses.vaeplus`)::

        0.5·‖x − x̂‖² + β·KL + Σ_{i=1..4} γ_i(t)·L_i^D,   γ_i(t) = min(1, max(0, t/T − i))

    with L_i^D the Gaussian term on the discriminator's hidden layer φ_i (scaled mean,
    authors' code, or the paper's sum). The discriminator minimises the binary
    cross-entropy of independent real images (label 1) vs reconstructions (label 0).

    Each step uses two independent minibatches (Sect. 4.1): ``batch["image"]`` (B1) goes
    through the autoencoder; ``batch["image_d"]`` (B2, real images) is paired with the
    reconstructions of B1 to train the discriminator; B1 and its reconstructions give
    L^D. Batch-norm moments of the discriminator always come from balanced batches
    (half real, half reconstructed, Sect. 3.4): one pass on [B2, x̂] for its own loss and
    one on [B1, x̂] for L^D. Both updates use the gradients at the same parameters.
    Without ``"image_d"`` (validation) B1 serves as the real batch.

    The step counter t is a model variable (``schedule_step``), so checkpoints and
    `.keras` files keep it and a resumed run continues the schedule.

    Optimisers (paper Sect. 4.1; the authors' code swaps the two learning rates, we follow
    the paper): ``"autoencoder"`` Adam(lr 1e-3, β1 0.9) on encoder + decoder;
    ``"discriminator"`` SGD(lr 0.01, momentum 0.9). Weight decay 1e-4 acts on the conv
    kernels only, as the authors' code does it: decoupled, each step multiplies every kernel
    by (1 − 1e-4). It is the optimisers' decoupled ``weight_decay`` set to
    ``weight_decay / learning_rate`` (Keras multiplies it by the learning rate), with
    batch-norm parameters excluded. Not an L2 term in the loss: under Adam an L2 gradient is
    rescaled per parameter (it is no longer a decay), and next to a per-image pixel *sum*
    (~10³) a 1e-4 L2 term would be negligible; the optimiser decay is also applied in the
    optimiser's cross-replica update, so it is correct under every distribution strategy.

    Logged terms: ``loss``, ``reconstruction`` (0.5·SSE), ``kl``, ``mse`` (pixel MSE); with
    the discriminator also ``disc_feature_1..4`` (unweighted L_i^D), ``gamma_1..4``,
    ``d_loss`` and ``d_accuracy``.

    Args:
        variant: str. ``"vaeplus"``, ``"vae"`` or ``"ae"``. Defaults to ``"vaeplus"``.
        latent_dim: int. Embedding size. Defaults to 256.
        filters: int. Channels of every conv block. Defaults to 32.
        discriminator_filters: int. Channels of the discriminator's 4th layer. Defaults to 64.
        channels: int. Image channels. Defaults to 3.
        beta: float or None. KL weight; None = the variant's (2, 1, 0).
        schedule_period: float. T of the γ schedule, in iterations. Defaults to 2500.
        feature_reduction: str. ``"scaled_mean"`` (authors' code: 0.5·(68·68·C)·mean) or
            ``"sum"`` (paper: 0.5·Σ). Defaults to ``"scaled_mean"``.
        learning_rate: float. Adam learning rate (encoder, decoder). Defaults to 1e-3.
        discriminator_learning_rate: float. SGD learning rate. Defaults to 0.01.
        momentum: float. Adam β1 and SGD momentum. Defaults to 0.9.
        weight_decay: float. Per-step multiplicative decay of conv kernels. Defaults to 1e-4.
        bn_momentum: float. Batch-norm moving-average momentum. Defaults to 0.9.
        seed: int or None. Seed of the posterior sampling. Defaults to None.
        **kwargs: `keras.Model` arguments.
    """

    def __init__(
        self,
        variant: str = "vaeplus",
        latent_dim: int = 256,
        filters: int = 32,
        discriminator_filters: int = 64,
        channels: int = 3,
        beta: float | None = None,
        schedule_period: float = 2500.0,
        feature_reduction: str = "scaled_mean",
        learning_rate: float = 1e-3,
        discriminator_learning_rate: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        bn_momentum: float = 0.9,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        # The paper's input normalisation (Sect. 4.1: per image and channel, by the maximum) is
        # the model's own layer: the pipeline applies it to batches, the SavedModel endpoints
        # to images as they are on disk (idempotent on already normalised images).
        self.preprocessing = InputNormalization("max")
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {', '.join(VARIANTS)}. Received: variant={variant!r}")
        if feature_reduction not in FEATURE_REDUCTIONS:
            raise ValueError(
                f"`feature_reduction` must be one of {', '.join(FEATURE_REDUCTIONS)}. "
                f"Received: feature_reduction={feature_reduction!r}"
            )
        for name, value in (("latent_dim", latent_dim), ("filters", filters),
                            ("discriminator_filters", discriminator_filters), ("channels", channels)):
            if int(value) < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
        if float(schedule_period) <= 0:
            raise ValueError(f"`schedule_period` must be > 0. Received: schedule_period={schedule_period}")
        if beta is not None and float(beta) < 0:
            raise ValueError(f"`beta` must be >= 0. Received: beta={beta}")
        if not 0.0 <= float(weight_decay) < 1.0:
            raise ValueError(f"`weight_decay` must be in [0, 1). Received: weight_decay={weight_decay}")
        self.variant = variant
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.discriminator_filters = int(discriminator_filters)
        self.channels = int(channels)
        self.beta = None if beta is None else float(beta)
        self.schedule_period = float(schedule_period)
        self.feature_reduction = feature_reduction
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.bn_momentum = float(bn_momentum)
        self.seed = seed
        self.adversarial = variant in ADVERSARIAL_VARIANTS
        self.image_shape = (IMAGE_SIZE, IMAGE_SIZE, self.channels)
        self.seed_generator = keras.random.SeedGenerator(seed)

        self.encoder = build_encoder(self.image_shape, self.filters, self.latent_dim, self.bn_momentum)
        self.decoder = build_decoder(self.latent_dim, self.filters, self.channels, self.bn_momentum)
        self.discriminator = (
            build_discriminator(self.image_shape, self.filters, self.discriminator_filters, self.bn_momentum)
            if self.adversarial
            else None
        )
        # t of the γ schedule: updates done so far. ONLY_FIRST_REPLICA: every replica adds 1.
        self.schedule_step = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False,
            aggregation="only_first_replica", name="schedule_step",
        )
        self.built = True  # every sub-network is built from its Input above

    @property
    def effective_beta(self) -> float:
        return VARIANTS[self.variant] if self.beta is None else self.beta

    # ----- networks -----------------------------------------------------------------------
    def call(self, images, training=False):
        mu, _ = self.encoder(images, training=training)
        return self.decoder(mu, training=training)

    def encode(self, images):
        """Posterior means (B, latent_dim) of images (raw or max-normalised: normalised here)."""
        mu, _ = self.encoder(max_normalize(images), training=False)
        return keras.ops.cast(mu, "float32")

    def decode(self, z):
        """Images (B, 68, 68, C) decoded from embeddings (B, latent_dim)."""
        return keras.ops.cast(self.decoder(z, training=False), "float32")

    def reconstruct(self, images):
        """Reconstructions of images from their posterior means (max-normalised scale)."""
        return self.decode(self.encode(images))

    # ----- training contract --------------------------------------------------------------
    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        x = keras.ops.cast(batch["image"], "float32")
        mu, log_var = self.encoder(x, training=training)
        mu = keras.ops.cast(mu, "float32")
        log_var = keras.ops.cast(log_var, "float32")
        z = elbo.sample_gaussian(mu, log_var, seed=self.seed_generator)
        x_hat = keras.ops.cast(self.decoder(z, training=training), "float32")
        _, reconstruction, kl = terms.vae_loss(x, x_hat, mu, log_var, self.effective_beta)
        reconstruction = keras.ops.mean(reconstruction)
        kl = keras.ops.mean(kl)
        total = reconstruction + self.effective_beta * kl
        losses = {
            "loss": total,
            "reconstruction": reconstruction,
            "kl": kl,
            "mse": keras.ops.mean(elbo.mean_squared_error(x, x_hat)),
        }
        if not self.adversarial:
            return losses

        real = keras.ops.cast(batch.get("image_d", x), "float32")
        n_real = keras.ops.shape(real)[0]
        n = keras.ops.shape(x)[0]
        # Discriminator's own pass on a balanced batch [B2 real, reconstructions of B1].
        logits = self.discriminator(
            keras.ops.concatenate([real, keras.ops.stop_gradient(x_hat)], axis=0), training=training
        )[-1]
        losses["d_loss"] = terms.discriminator_loss(logits[:n_real], logits[n_real:])
        losses["d_accuracy"] = terms.discriminator_accuracy(logits[:n_real], logits[n_real:])
        # Feature pass on [B1, reconstructions of B1] (also balanced): L_i^D.
        features = self.discriminator(keras.ops.concatenate([x, x_hat], axis=0), training=training)
        gammas = terms.gamma_schedule(self.schedule_step, NUM_FEATURE_LAYERS, self.schedule_period)
        scale = None if self.feature_reduction == "sum" else float(IMAGE_SIZE * IMAGE_SIZE * self.channels)
        for i in range(NUM_FEATURE_LAYERS):
            phi = features[i]
            term = keras.ops.mean(terms.discriminator_feature_loss(phi[:n], phi[n:], scale))
            losses[f"disc_feature_{i + 1}"] = term
            losses[f"gamma_{i + 1}"] = gammas[i]
            total = total + gammas[i] * term
        losses["loss"] = total
        return losses

    def make_optimizers(self) -> dict:
        optimizers = {
            "autoencoder": keras.optimizers.Adam(
                self.learning_rate, beta_1=self.momentum, weight_decay=self._decay(self.learning_rate)
            )
        }
        if self.adversarial:
            optimizers["discriminator"] = keras.optimizers.SGD(
                self.discriminator_learning_rate,
                momentum=self.momentum,
                weight_decay=self._decay(self.discriminator_learning_rate),
            )
        for name, optimizer in optimizers.items():
            if optimizer.weight_decay is not None:
                kernels = {id(v) for v in self.kernel_variables(name)}
                optimizer.exclude_from_weight_decay(
                    var_list=[v for v in self.optimizer_variables(name) if id(v) not in kernels]
                )
        return optimizers

    def _decay(self, learning_rate: float):
        # Keras' decoupled decay is v -= lr·wd·v; we want v *= (1 − weight_decay) per step.
        if self.weight_decay == 0.0 or learning_rate == 0.0:
            return None
        return self.weight_decay / learning_rate

    def optimizer_variables(self, name: str) -> list:
        if name == "autoencoder":
            return list(self.encoder.trainable_variables) + list(self.decoder.trainable_variables)
        if name == "discriminator" and self.adversarial:
            return list(self.discriminator.trainable_variables)
        raise ValueError(f"unknown optimizer {name!r} for variant {self.variant!r}")

    def kernel_variables(self, name: str) -> list:
        """The conv kernels updated by optimizer `name` (the weight-decayed variables)."""
        networks = [self.encoder, self.decoder] if name == "autoencoder" else [self.discriminator]
        return [
            layer.kernel
            for network in networks
            for layer in network.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
        ]

    def train_step_fn(self, batch: dict) -> dict:
        """One iteration: an autoencoder update and (VAE+) a discriminator update."""
        with tf.GradientTape() as autoencoder_tape, tf.GradientTape() as discriminator_tape:
            losses = self.compute_losses(batch, training=True)
        self.apply_loss(autoencoder_tape, losses["loss"], "autoencoder")
        if self.adversarial:
            self.apply_loss(discriminator_tape, losses["d_loss"], "discriminator")
        self.schedule_step.assign_add(1)
        return losses

    def export_endpoints(self) -> dict:
        images = [tf.TensorSpec([None, *self.image_shape], tf.float32)]
        latent = [tf.TensorSpec([None, self.latent_dim], tf.float32)]
        return {
            "encode": (lambda x: self.encode(self.preprocessing(x)), images),
            "decode": (self.decode, latent),
            "reconstruct": (lambda x: self.reconstruct(self.preprocessing(x)), images),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "latent_dim": self.latent_dim,
                "filters": self.filters,
                "discriminator_filters": self.discriminator_filters,
                "channels": self.channels,
                "beta": self.beta,
                "schedule_period": self.schedule_period,
                "feature_reduction": self.feature_reduction,
                "discriminator_learning_rate": self.discriminator_learning_rate,
                "momentum": self.momentum,
                "weight_decay": self.weight_decay,
                "bn_momentum": self.bn_momentum,
                "seed": self.seed,
            }
        )
        return config
