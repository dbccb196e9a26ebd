"""Integrated Cell (Johnson, Donovan-Maiye & Maleckar 2017): a two-stage conditional adversarial
autoencoder of cell/nuclear shape and structure localisation.

- `IntegratedCellReference` (section 2.1, Algorithm 1): Enc_r, Dec_r on the reference channels
  (membrane, DNA), a latent discriminator EncD_r (prior draws vs encodings) and an image
  discriminator DecD_r (white noise σ = 0.05 on its input, training only).
- `IntegratedCellConditional` (section 2.2, Algorithm 2): Enc_{r,s}(x^{r,s}) → (ẑ_r, ŷ, z_s),
  Dec_{r,s}(ẑ_r, ŷ, z_s), EncD_s on z_s and a (K+1)-way image discriminator DecD_{r,s}. ẑ_r is
  regressed (MSE, Eq. 8) on the z_r of the *frozen* reference encoder, which the model keeps
  inside itself (non-trainable) so that Algorithm 3 (`integrate`) runs from one saved model.

Updates (Eq. 15–18, with Larsen et al.'s rule that discriminator gradients reach only the
decoder): one optimizer per network, each differentiating its own objective with respect to
its own variables only —

- ``enc``: L_x + γ_Enc·L_adv(EncD)            (+ L_ẑr + L_y in the conditional model)
- ``dec``: L_x + γ_Dec·L_adv(DecD)
- ``enc_d``: Eq. 5 / 11, ``dec_d``: Eq. 6 / 14.

All four objectives are computed from one forward pass (Algorithms 1–2 compute every
discriminator score before any update). The images DecD sees as "generated" are decoded
prior draws (section 2.1.3: x_gen = Dec(z̃), z̃ ~ p(z)); in the conditional model the prior
draw replaces z_s while ẑ_r and ŷ come from the encoder (Algorithm 2). The decoder's
adversarial term covers both the decoded prior draws and the reconstructions (Algorithms 1–2).

Architecture (Tables S1–S7), generalised to any image size: the number of stride-2 stages is
``n = log2(min(H, W)) − 2`` (6 for the paper's 256×256, 3 for 32×32), encoder filters
``filters·2^i`` capped at ``16·filters`` (64 → 64,128,256,512,1024,1024), decoder mirrored from
a fully connected layer onto the (H/2^n, W/2^n) grid, image discriminators with ``n − 1``
4×4 stride-2 convolutions (filters capped at ``8·filters``), latent discriminators
``16f-16f-8f-1`` units (1024-1024-512-1). Choices where the tables are silent or do not fit
follow the authors' Torch7 code (REFERENCE-NOTES.md): PReLU (per channel here, initial slope
0.25), LeakyReLU 0.2, conv kernels N(0, 0.02) without bias, BN scales N(1, 0.02), the image
discriminator ends with flatten + dense (the tables' final 4×4 stride-2 conv would not reach
1×1 at 256×256), Adam β1 = 0.5 (the paper gives only the learning rate 2e-4).

Networks output logits; the tables' sigmoid / softmax live in `statcell_tf.losses.adversarial`.
Batches: ``{"image": (B, H, W, C) float32 in [0, 1] with channels membrane, DNA, structure,
"label": (B,) int32 structure class}`` (the reference stage needs no label).
"""

from __future__ import annotations

import contextlib

from statcell_tf.backend import keras, tf
from statcell_tf.integrated_cell.networks import (
    build_decoder,
    build_encoder,
    build_image_discriminator,
    build_latent_discriminator,
    num_stages,
)
from statcell_tf.losses import adversarial
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.training.model import TrainableModel

ops = keras.ops
OPTIMIZERS = ("enc", "dec", "enc_d", "dec_d")
DECODER_CONDITIONS = ("softmax", "one_hot")


class _AdversarialAutoencoder(TrainableModel):
    """Optimizers, the four-tape train step and config checks shared by both stages."""

    def _check_common(self):
        if self.latent_dim < 1:
            raise ValueError(f"`latent_dim` must be >= 1. Received: latent_dim={self.latent_dim}")
        if self.filters < 1:
            raise ValueError(f"`filters` must be >= 1. Received: filters={self.filters}")
        if self.noise_stddev < 0:
            raise ValueError(f"`noise_stddev` must be >= 0. Received: noise_stddev={self.noise_stddev}")
        if len(self.image_size) != 2:
            raise ValueError(f"`image_size` must be [height, width]. Received: image_size={self.image_size}")
        num_stages(self.image_size)

    def networks(self) -> dict:
        """The four trained networks by optimizer name."""
        return {
            "enc": self.encoder,
            "dec": self.decoder,
            "enc_d": self.latent_discriminator,
            "dec_d": self.image_discriminator,
        }

    def make_optimizers(self) -> dict:
        """One Adam per network (section 3.3: learning rate 2e-4 for every component)."""
        return {name: keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, name=name) for name in OPTIMIZERS}

    def optimizer_variables(self, name: str) -> list:
        networks = self.networks()
        if name not in networks:
            raise ValueError(f"unknown optimizer; expected one of {', '.join(OPTIMIZERS)}. Received: {name!r}")
        return list(networks[name].trainable_variables)

    def objectives(self, losses: dict) -> dict:
        """The loss each optimizer minimises (Eq. 15–18), from `compute_losses` terms."""
        return {
            "enc": losses["encoder_objective"],
            "dec": losses["decoder_objective"],
            "enc_d": losses["latent_discriminator"],
            "dec_d": losses["image_discriminator"],
        }

    def train_step_fn(self, batch: dict) -> dict:
        # One forward pass recorded on one tape per network; each optimizer differentiates its
        # own objective w.r.t. its own variables, so e.g. DecD terms never reach the encoder.
        with contextlib.ExitStack() as stack:
            tapes = {name: stack.enter_context(tf.GradientTape()) for name in OPTIMIZERS}
            losses = self.compute_losses(batch, training=True)
        objectives = self.objectives(losses)
        for name in ("enc_d", "dec_d", "enc", "dec"):  # Algorithm 1–2 order
            self.apply_loss(tapes[name], objectives[name], name, self.optimizer_variables(name))
        return losses

    def _prior(self, like):
        """Draws of the isotropic Gaussian prior, shaped like `like` (B, latent)."""
        return keras.random.normal(ops.shape(like), dtype="float32", seed=self.seed_generator)

    def _select(self, images, channels):
        images = ops.convert_to_tensor(images)
        return ops.take(images, ops.convert_to_tensor(list(channels), "int32"), axis=-1)

    def _common_config(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "latent_dim": self.latent_dim,
            "filters": self.filters,
            "noise_stddev": self.noise_stddev,
            "output_batchnorm": self.output_batchnorm,
            "gamma_enc": self.gamma_enc,
            "gamma_dec": self.gamma_dec,
            "beta_1": self.beta_1,
            "seed": self.seed,
        }


# ----- stage 1: the reference model ---------------------------------------------------------


@keras.saving.register_keras_serializable(package="statcell_tf")
class IntegratedCellReference(_AdversarialAutoencoder):
    """Adversarial autoencoder of the reference channels (cell membrane, DNA); section 2.1.

    Args:
        image_size: list of int. [H, W]; 256×256 in the paper. Sides divisible by 2^n with
            n = log2(min side) − 2 stride-2 stages.
        reference_channels: list of int. Channels of ``batch["image"]`` used as x^r.
            Defaults to [0, 1] (membrane, DNA).
        latent_dim: int. Size of z_r. Defaults to 16.
        filters: int. Width multiplier: first encoder stage filters (64 in the paper).
        noise_stddev: float. σ of the white noise on DecD_r's input (training only). Defaults to 0.05.
        output_batchnorm: bool. BN before the decoder's sigmoid (Table S2; the authors' code
            has none). Defaults to True.
        gamma_enc: float. γ_Enc, weight of the encoder's adversarial term. Defaults to 1e-4.
        gamma_dec: float. γ_Dec, weight of the decoder's adversarial term. Defaults to 1e-5.
        learning_rate: float. Adam learning rate of every network. Defaults to 2e-4.
        beta_1: float. Adam β1 (authors' code: 0.5). Defaults to 0.5.
        seed: int. Seed of the prior draws and the discriminator noise.

    Call: ``model(images)`` with (B, H, W, C) images (all channels) returns the reconstruction
    σ(Dec_r(Enc_r(x^r))) of shape (B, H, W, len(reference_channels)).
    """

    def __init__(
        self,
        image_size=(256, 256),
        reference_channels=(0, 1),
        latent_dim: int = 16,
        filters: int = 64,
        noise_stddev: float = 0.05,
        output_batchnorm: bool = True,
        gamma_enc: float = 1e-4,
        gamma_dec: float = 1e-5,
        learning_rate: float = 2e-4,
        beta_1: float = 0.5,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        # Section 3.1 normalisation (mode subtraction, [0, 1] per image and channel) owned by the
        # model: the data pipeline applies the same layer, every SavedModel endpoint applies it.
        self.preprocessing = InputNormalization("mode")
        self.image_size = [int(s) for s in image_size]
        self.reference_channels = [int(c) for c in reference_channels]
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.noise_stddev = float(noise_stddev)
        self.output_batchnorm = bool(output_batchnorm)
        self.gamma_enc = float(gamma_enc)
        self.gamma_dec = float(gamma_dec)
        self.beta_1 = float(beta_1)
        self.seed = int(seed)
        self._check_common()
        if not self.reference_channels:
            raise ValueError("`reference_channels` must name at least one channel. Received: []")
        shape = (*self.image_size, len(self.reference_channels))
        self.encoder = build_encoder(shape, self.filters, {"z": self.latent_dim}, name="enc_r")
        self.decoder = build_decoder(
            self.latent_dim, shape, self.filters, name="dec_r", output_batchnorm=self.output_batchnorm
        )
        self.latent_discriminator = build_latent_discriminator(self.latent_dim, self.filters, name="enc_d_r")
        self.image_discriminator = build_image_discriminator(
            shape, 1, self.filters, self.noise_stddev, self.seed + 1, name="dec_d_r"
        )
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.built = True  # every sub-network is built from its keras.Input

    def reference_images(self, images):
        """x^r: the reference channels of (B, H, W, C) images."""
        return self._select(images, self.reference_channels)

    def encode(self, reference_images, training=False):
        """z_r = Enc_r(x^r), (B, latent_dim); input holds only the reference channels."""
        return self.encoder(reference_images, training=training)["z"]

    def decode(self, z, training=False):
        """x̂^r = σ(Dec_r(z)), (B, H, W, len(reference_channels))."""
        return ops.sigmoid(self.decoder(z, training=training))

    def call(self, images, training=False):
        return self.decode(self.encode(self.reference_images(images), training), training)

    def forward(self, batch: dict, training: bool = False) -> dict:
        """Every tensor Algorithm 1 needs: encodings, prior draws, logits and scores."""
        x = ops.cast(self.reference_images(batch["image"]), "float32")
        z = self.encode(x, training)
        z_prior = self._prior(z)
        reconstruction_logits = self.decoder(z, training=training)
        generated = ops.sigmoid(self.decoder(z_prior, training=training))  # Dec_r(z̃)
        reconstruction = ops.sigmoid(reconstruction_logits)
        return {
            "images": x,
            "z": z,
            "z_prior": z_prior,
            "reconstruction_logits": reconstruction_logits,
            "latent_score_prior": self.latent_discriminator(z_prior, training=training),
            "latent_score_encoding": self.latent_discriminator(z, training=training),
            "image_score_real": self.image_discriminator(x, training=training),
            "image_score_generated": self.image_discriminator(generated, training=training),
            "image_score_reconstruction": self.image_discriminator(reconstruction, training=training),
        }

    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        out = self.forward(batch, training)
        reconstruction = ops.mean(adversarial.image_binary_cross_entropy(out["images"], out["reconstruction_logits"]))
        encoder_adversarial = adversarial.binary_generator_loss(out["latent_score_encoding"])
        decoder_adversarial = adversarial.binary_generator_loss(
            out["image_score_generated"], out["image_score_reconstruction"]
        )
        return {
            "loss": reconstruction,
            "reconstruction": reconstruction,
            "encoder_adversarial": encoder_adversarial,
            "decoder_adversarial": decoder_adversarial,
            "latent_discriminator": adversarial.binary_discriminator_loss(
                out["latent_score_prior"], out["latent_score_encoding"]
            ),
            "image_discriminator": adversarial.binary_discriminator_loss(
                out["image_score_real"], out["image_score_generated"]
            ),
            "encoder_objective": reconstruction + self.gamma_enc * encoder_adversarial,  # Eq. 15
            "decoder_objective": reconstruction + self.gamma_dec * decoder_adversarial,  # Eq. 16
        }

    def export_endpoints(self) -> dict:
        channels = len(self.reference_channels)
        image_spec = [tf.TensorSpec([None, *self.image_size, channels], tf.float32)]
        pre = self.preprocessing  # images as they are on disk (projected, model-sized)
        return {
            "encode": (lambda x: self.encode(pre(x)), image_spec),
            "decode": (lambda z: self.decode(z), [tf.TensorSpec([None, self.latent_dim], tf.float32)]),
            "reconstruct": (lambda x: self.decode(self.encode(pre(x))), image_spec),
        }

    def get_config(self):
        config = super().get_config()
        config.update(self._common_config())
        config["reference_channels"] = list(self.reference_channels)
        return config


# ----- stage 2: the conditional model -------------------------------------------------------


@keras.saving.register_keras_serializable(package="statcell_tf")
class IntegratedCellConditional(_AdversarialAutoencoder):
    """Conditional adversarial autoencoder of structure localisation; section 2.2.

    Holds a frozen copy of the reference encoder Enc_r (set its weights with
    `load_reference_encoder`): its z_r is the MSE target of ẑ_r (Eq. 8) and the input of
    Algorithm 3 (`integrate`).

    Args:
        num_classes: int. K >= 1, the number of labelled structures (with K = 1, ŷ is always 1,
            L_y is 0 and DecD_{r,s} tells observed from generated images: Algorithm 3 still
            predicts the one structure from x^r).
        image_size: list of int. [H, W] (256×256 in the paper).
        reference_channels: list of int. Channels of x^r in ``batch["image"]``. Defaults to [0, 1].
        structure_channel: int. Channel of x^s. Defaults to 2.
        latent_dim: int. Size of z_s. Defaults to 16.
        reference_latent_dim: int. Size of z_r (the reference model's). Defaults to 16.
        filters: int. Width multiplier of the conditional networks (64 in the paper).
        reference_filters: int or None. Width of the reference encoder; None = `filters`.
        noise_stddev: float. σ of the white noise on DecD_{r,s}'s input. Defaults to 0.05.
        output_batchnorm: bool. BN before the decoder's sigmoid (Table S6; the authors' code
            has none). Defaults to True.
        gamma_enc: float. γ_Enc. Defaults to 1e-4.
        gamma_dec: float. γ_Dec. Defaults to 1e-5.
        decoder_condition: str. What Dec_{r,s} receives for y during training: ``"softmax"``
            (the paper's Eq. 12, the encoder's ŷ) or ``"one_hot"`` (the true label).
            Algorithm 3 always decodes one-hot structures.
        class_names: list of str or None. Structure names in label order (for reports).
        learning_rate: float. Adam learning rate of every network. Defaults to 2e-4.
        beta_1: float. Adam β1. Defaults to 0.5.
        seed: int. Seed of the prior draws and the discriminator noise.

    Call: ``model(images)`` with (B, H, W, C) images returns a dict with ``reconstruction``
    (B, H, W, len(reference_channels) + 1; channels r…, s), ``probabilities`` (B, K),
    ``z_r`` (ẑ_r) and ``z_s``.
    """

    def __init__(
        self,
        num_classes: int,
        image_size=(256, 256),
        reference_channels=(0, 1),
        structure_channel: int = 2,
        latent_dim: int = 16,
        reference_latent_dim: int = 16,
        filters: int = 64,
        reference_filters: int | None = None,
        noise_stddev: float = 0.05,
        output_batchnorm: bool = True,
        gamma_enc: float = 1e-4,
        gamma_dec: float = 1e-5,
        decoder_condition: str = "softmax",
        class_names=None,
        learning_rate: float = 2e-4,
        beta_1: float = 0.5,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        # Section 3.1 normalisation (mode subtraction, [0, 1] per image and channel) owned by the
        # model: the data pipeline applies the same layer, every SavedModel endpoint applies it.
        self.preprocessing = InputNormalization("mode")
        self.num_classes = int(num_classes)
        self.image_size = [int(s) for s in image_size]
        self.reference_channels = [int(c) for c in reference_channels]
        self.structure_channel = int(structure_channel)
        self.latent_dim = int(latent_dim)
        self.reference_latent_dim = int(reference_latent_dim)
        self.filters = int(filters)
        self.reference_filters = int(reference_filters) if reference_filters is not None else self.filters
        self.noise_stddev = float(noise_stddev)
        self.output_batchnorm = bool(output_batchnorm)
        self.gamma_enc = float(gamma_enc)
        self.gamma_dec = float(gamma_dec)
        self.decoder_condition = str(decoder_condition)
        self.class_names = [str(n) for n in class_names] if class_names is not None else None
        self.beta_1 = float(beta_1)
        self.seed = int(seed)
        self._check_common()
        if self.num_classes < 1:  # one structure is a model too: ŷ ≡ 1, DecD real-vs-generated (K + 1 = 2)
            raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={self.num_classes}")
        if self.decoder_condition not in DECODER_CONDITIONS:
            raise ValueError(
                f"`decoder_condition` must be one of {DECODER_CONDITIONS}. "
                f"Received: decoder_condition={self.decoder_condition!r}"
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"`class_names` must have num_classes={self.num_classes} entries. "
                f"Received: {len(self.class_names)} names"
            )
        if self.structure_channel in self.reference_channels:
            raise ValueError(
                "`structure_channel` must differ from `reference_channels`. "
                f"Received: structure_channel={self.structure_channel}, reference_channels={self.reference_channels}"
            )
        self.image_channels = [*self.reference_channels, self.structure_channel]
        shape = (*self.image_size, len(self.image_channels))
        reference_shape = (*self.image_size, len(self.reference_channels))
        heads = {"y_logits": self.num_classes, "z_r": self.reference_latent_dim, "z_s": self.latent_dim}
        self.encoder = build_encoder(shape, self.filters, heads, name="enc_rs")
        self.decoder = build_decoder(
            self.reference_latent_dim + self.num_classes + self.latent_dim,
            shape,
            self.filters,
            name="dec_rs",
            output_batchnorm=self.output_batchnorm,
        )
        self.latent_discriminator = build_latent_discriminator(self.latent_dim, self.filters, name="enc_d_s")
        self.image_discriminator = build_image_discriminator(
            shape, self.num_classes + 1, self.filters, self.noise_stddev, self.seed + 1, name="dec_d_rs"
        )
        self.reference_encoder = build_encoder(
            reference_shape, self.reference_filters, {"z": self.reference_latent_dim}, name="enc_r"
        )
        self.reference_encoder.trainable = False
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.built = True  # every sub-network is built from its keras.Input

    # ----- reference encoder ------------------------------------------------------------------
    def load_reference_encoder(self, reference: IntegratedCellReference) -> None:
        """Copy the trained Enc_r of `reference` into the frozen reference encoder."""
        expected = (self.image_size, self.reference_latent_dim, self.reference_filters, self.reference_channels)
        received = (reference.image_size, reference.latent_dim, reference.filters, reference.reference_channels)
        if expected != received:
            raise ValueError(
                "the reference model does not match: expected (image_size, latent_dim, filters, "
                f"reference_channels) = {expected}. Received: {received}"
            )
        self.reference_encoder.set_weights(reference.encoder.get_weights())

    def reference_latent(self, reference_images):
        """z_r = Enc_r(x^r) from the frozen reference encoder (always inference mode)."""
        return ops.stop_gradient(self.reference_encoder(reference_images, training=False)["z"])

    # ----- encoder / decoder ------------------------------------------------------------------
    def images(self, images):
        """x^{r,s}: the reference channels then the structure channel of (B, H, W, C) images."""
        return self._select(images, self.image_channels)

    def encode(self, images, training=False) -> dict:
        """Eq. 7 on x^{r,s}: ``{"z_r": ẑ_r, "probabilities": ŷ, "z_s": z_s, "y_logits": ...}``."""
        out = self.encoder(images, training=training)
        return {
            "z_r": out["z_r"],
            # K = 1: ŷ ≡ 1 (Keras warns about a softmax over one class).
            "probabilities": (ops.ones_like(out["y_logits"]) if self.num_classes == 1
                              else ops.softmax(out["y_logits"], axis=-1)),
            "z_s": out["z_s"],
            "y_logits": out["y_logits"],
        }

    def decode_logits(self, z_r, y, z_s, training=False):
        """Eq. 12 before the sigmoid: Dec_{r,s}([z_r, y, z_s])."""
        latent = ops.concatenate([ops.cast(z_r, "float32"), ops.cast(y, "float32"), ops.cast(z_s, "float32")], -1)
        return self.decoder(latent, training=training)

    def call(self, images, training=False):
        encoded = self.encode(self.images(images), training)
        logits = self.decode_logits(encoded["z_r"], encoded["probabilities"], encoded["z_s"], training)
        return {
            "reconstruction": ops.sigmoid(logits),
            "probabilities": encoded["probabilities"],
            "z_r": encoded["z_r"],
            "z_s": encoded["z_s"],
        }

    def classify(self, images):
        """ŷ, (B, K) structure probabilities of x^{r,s} images (Table S9)."""
        return self.encode(images)["probabilities"]

    def integrate(self, reference_images):
        """Algorithm 3: the most likely structure channel of every structure for each cell.

        z_r = Enc_r(x^r), z_s = argmax p(z_s) = 0, decode every one-hot y.

        Args:
            reference_images: (B, H, W, len(reference_channels)) reference channels only.

        Returns:
            (B, K, H, W, 1) predicted structure channels.
        """
        z_r = self.reference_latent(reference_images)  # (B, Z_r)
        batch = ops.shape(z_r)[0]
        k = self.num_classes
        z_r = ops.reshape(ops.repeat(z_r[:, None, :], k, axis=1), (-1, self.reference_latent_dim))  # (B·K, Z_r)
        y = ops.reshape(ops.tile(ops.eye(k, dtype="float32")[None], (batch, 1, 1)), (-1, k))  # (B·K, K)
        z_s = ops.zeros((batch * k, self.latent_dim), "float32")
        decoded = ops.sigmoid(self.decode_logits(z_r, y, z_s))  # (B·K, H, W, C)
        structure = decoded[..., -1:]
        return ops.reshape(structure, (batch, k, *self.image_size, 1))

    # ----- training ---------------------------------------------------------------------------
    def forward(self, batch: dict, training: bool = False) -> dict:
        """Every tensor Algorithm 2 needs: encodings, targets, prior draws, logits and scores."""
        images = ops.cast(batch["image"], "float32")
        x = self.images(images)
        labels = ops.cast(batch["label"], "int32")
        z_r_target = self.reference_latent(self._select(images, self.reference_channels))
        encoded = self.encode(x, training)
        if self.decoder_condition == "softmax":
            condition = encoded["probabilities"]
        else:
            condition = ops.one_hot(labels, self.num_classes, dtype="float32")
        z_s_prior = self._prior(encoded["z_s"])
        reconstruction_logits = self.decode_logits(encoded["z_r"], condition, encoded["z_s"], training)
        generated = ops.sigmoid(self.decode_logits(encoded["z_r"], condition, z_s_prior, training))
        reconstruction = ops.sigmoid(reconstruction_logits)
        return {
            "images": x,
            "labels": labels,
            "z_r_target": z_r_target,
            "z_r": encoded["z_r"],
            "y_logits": encoded["y_logits"],
            "z_s": encoded["z_s"],
            "z_s_prior": z_s_prior,
            "reconstruction_logits": reconstruction_logits,
            "latent_score_prior": self.latent_discriminator(z_s_prior, training=training),
            "latent_score_encoding": self.latent_discriminator(encoded["z_s"], training=training),
            "image_score_real": self.image_discriminator(x, training=training),
            "image_score_generated": self.image_discriminator(generated, training=training),
            "image_score_reconstruction": self.image_discriminator(reconstruction, training=training),
        }

    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        out = self.forward(batch, training)
        labels = out["labels"]
        reconstruction = ops.mean(adversarial.image_binary_cross_entropy(out["images"], out["reconstruction_logits"]))
        latent_mse = ops.mean(adversarial.mean_squared_error(out["z_r_target"], out["z_r"]))  # Eq. 8
        classification = ops.mean(adversarial.sparse_nll(out["y_logits"], labels))  # Eq. 10
        accuracy = ops.mean(ops.cast(ops.equal(ops.argmax(out["y_logits"], axis=-1), labels), "float32"))
        encoder_adversarial = adversarial.binary_generator_loss(out["latent_score_encoding"])
        decoder_adversarial = adversarial.class_generator_loss(
            labels, out["image_score_generated"], out["image_score_reconstruction"]
        )
        supervised = reconstruction + latent_mse + classification
        return {
            "loss": supervised,
            "reconstruction": reconstruction,
            "reference_latent_mse": latent_mse,
            "classification": classification,
            "accuracy": accuracy,
            "encoder_adversarial": encoder_adversarial,
            "decoder_adversarial": decoder_adversarial,
            "latent_discriminator": adversarial.binary_discriminator_loss(  # Eq. 11
                out["latent_score_prior"], out["latent_score_encoding"]
            ),
            "image_discriminator": adversarial.class_discriminator_loss(  # Eq. 14
                out["image_score_real"], labels, out["image_score_generated"]
            ),
            "encoder_objective": supervised + self.gamma_enc * encoder_adversarial,  # Eq. 17
            "decoder_objective": reconstruction + self.gamma_dec * decoder_adversarial,  # Eq. 18
        }

    def export_endpoints(self) -> dict:
        channels = len(self.image_channels)
        image_spec = [tf.TensorSpec([None, *self.image_size, channels], tf.float32)]
        reference_spec = [tf.TensorSpec([None, *self.image_size, len(self.reference_channels)], tf.float32)]

        pre = self.preprocessing  # images as they are on disk (projected, model-sized)

        def encode(x):
            out = self.encode(pre(x))
            return {"z_r": out["z_r"], "probabilities": out["probabilities"], "z_s": out["z_s"]}

        return {
            "encode": (encode, image_spec),
            "classify": (lambda x: self.classify(pre(x)), image_spec),
            "integrate": (lambda x: self.integrate(pre(x)), reference_spec),
        }

    def get_config(self):
        config = super().get_config()
        config.update(self._common_config())
        config.update(
            {
                "num_classes": self.num_classes,
                "reference_channels": list(self.reference_channels),
                "structure_channel": self.structure_channel,
                "reference_latent_dim": self.reference_latent_dim,
                "reference_filters": self.reference_filters,
                "decoder_condition": self.decoder_condition,
                "class_names": self.class_names,
            }
        )
        return config

