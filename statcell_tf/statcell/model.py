"""Statistical Cell: conditional β-VAEs of cell/nuclear shape and of structure localisation.

Donovan-Maiye et al. 2022 (PLoS Comput Biol), section 6.2, Table 3, Fig. 7, Eq. 1–3. The
complete model p(x_r, x_t | t) = p(x_r) · p(x_t | x_r, t) is two `ConditionalBetaVAE`s trained
separately: the reference model M_R (``role="reference"``: membrane + DNA → z_r) and the
target model M_T (``role="target"``: structure | reference, target type → z_t).
"""

from __future__ import annotations

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.layers.conditional_residual_block import ConditionalResidualBlock
from statcell_tf.losses import elbo as elbo_terms
from statcell_tf.losses import statcell as objective_terms
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.training.model import TrainableModel

ROLES = ("reference", "target")
RECONSTRUCTION_REDUCTIONS = ("sum", "mean")

from statcell_tf.statcell.presets import DEFAULT_IMAGE_SHAPE, PRESETS  # noqa: E402,F401


@keras.saving.register_keras_serializable(package="statcell_tf")
class ConditionalBetaVAE(TrainableModel):
    """Conditional β-VAE of Table 3, 2D or 3D, as reference model M_R or target model M_T.

    Encoder: one `ConditionalResidualBlock` (down) per entry of `filters` (Table 3: 32, 64,
    128, 256, 512), flatten, two spectrally normalised dense heads → μ and log σ² of
    `latent_dim`. Decoder (as in the authors' code): spectrally normalised dense → the
    encoder's last grid × ``filters[-1]`` → BN → ReLU, then up blocks to ``filters[-2], …,
    filters[0]`` and a last up block to the image channels with a softplus output. The
    target model feeds the reference image (resized to each block's resolution) and the
    one-hot target type into every block of both encoder and decoder (Fig. 7).

    Objective per example (Eq. 3, `statcell_tf.losses.statcell`): ``"reparameterised"`` =
    (1 − β)·D + β·R with β in [0, 1]; ``"classic"`` = D + β·R. D is the squared error of the
    reconstruction from one posterior sample, summed over pixels (``"sum"``, the authors'
    code: a Gaussian log-likelihood up to constants) or averaged over them (``"mean"``,
    pixel-wise MSE). R is the KL to N(0, I) summed over latent dimensions. Validation and the
    per-cell ELBO average D over `eval_samples` posterior samples (section 6.3).

    Batches (dicts): reference model ``{"image": (B, *spatial, image_channels)}``; target
    model ``{"image": (B, *spatial, 1) structure, "reference": (B, *spatial,
    reference_channels), "target_type": (B,) int}``.

    Logged terms: ``loss``, ``reconstruction`` (distortion D), ``kl`` (rate R) and ``elbo``
    (unweighted ELBO −(D + R), the value to keep the best model by: ``val_elbo``, max).

    Args:
        role: str. ``"reference"`` (M_R) or ``"target"`` (M_T). Defaults to ``"reference"``.
        rank: int. 2 (images) or 3 (volumes). Defaults to 2.
        image_shape: tuple of int or None. Spatial size (H, W) or (D, H, W); each axis must be
            divisible by 2**len(filters). None = the paper's (128, 96) or (64, 128, 96) (Z, Y, X).
        image_channels: int or None. Channels modelled: None = 2 (membrane, DNA) for the
            reference model, 1 (structure) for the target model.
        reference_channels: int. Channels of the reference condition of the target model.
            Defaults to 2.
        num_types: int. Number of target (structure) types of the target model. Defaults to 1.
        latent_dim: int. Latent dimensions. Defaults to 512.
        filters: sequence of int. Encoder widths, one down block each. Defaults to
            (32, 64, 128, 256, 512).
        beta: float. β of the objective. Defaults to 0.5.
        objective: str. ``"reparameterised"`` (Eq. 3) or ``"classic"``.
        reconstruction_reduction: str. ``"sum"`` or ``"mean"`` over pixels. Defaults to "sum".
        eval_samples: int. Posterior samples averaged when evaluating. Defaults to 10.
        learning_rate: float. Adam learning rate. Defaults to 2e-4.
        beta_1: float. Adam β1. Defaults to 0.9.
        beta_2: float. Adam β2. Defaults to 0.999.
        activation: str. Block activation. Defaults to "relu".
        output_activation: str. Decoder output activation. Defaults to "softplus".
        power_iterations: int. Spectral-norm power iterations. Defaults to 1.
        init_stddev: float. Kernel initialiser N(0, init_stddev). Defaults to 0.02.
        seed: int. Seed of the posterior/prior sampling. Defaults to 0.
        **kwargs: `TrainableModel` / `keras.Model` arguments.
    """

    def __init__(
        self,
        role: str = "reference",
        rank: int = 2,
        image_shape=None,
        image_channels: int | None = None,
        reference_channels: int = 2,
        num_types: int = 1,
        latent_dim: int = 512,
        filters=(32, 64, 128, 256, 512),
        beta: float = 0.5,
        objective: str = "reparameterised",
        reconstruction_reduction: str = "sum",
        eval_samples: int = 10,
        learning_rate: float = 2e-4,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        activation: str = "relu",
        output_activation: str = "softplus",
        power_iterations: int = 1,
        init_stddev: float = 0.02,
        seed: int = 0,
        background: str = "none",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if background not in ("none", "mode"):
            raise ValueError(f"`background` must be 'none' or 'mode'. Received: background={background!r}")
        self.background = background
        # Images as they are on disk → the model's input (§6.1.2: mode subtraction when asked,
        # then per image and channel max scaling): the pipeline and every SavedModel endpoint
        # apply this one layer.
        self.preprocessing = InputNormalization("mode" if background == "mode" else "max")
        if role not in ROLES:
            raise ValueError(f"`role` must be 'reference' or 'target'. Received: role={role!r}")
        if rank not in (2, 3):
            raise ValueError(f"`rank` must be 2 or 3. Received: rank={rank!r}")
        image_shape = tuple(int(s) for s in (image_shape or DEFAULT_IMAGE_SHAPE[rank]))
        if len(image_shape) != rank:
            raise ValueError(
                f"`image_shape` needs {rank} spatial sizes for rank={rank}. Received: image_shape={image_shape}"
            )
        filters = tuple(int(f) for f in filters)
        if not filters or min(filters) < 1:
            raise ValueError(f"`filters` must be a non-empty list of positive ints. Received: filters={filters}")
        factor = 2 ** len(filters)
        if any(s % factor for s in image_shape):
            raise ValueError(
                f"every axis of `image_shape` must be divisible by 2**len(filters) = {factor}. "
                f"Received: image_shape={image_shape}, filters={filters}"
            )
        objective_terms.check_beta(float(beta), objective)
        if reconstruction_reduction not in RECONSTRUCTION_REDUCTIONS:
            raise ValueError(
                "`reconstruction_reduction` must be 'sum' or 'mean'. "
                f"Received: reconstruction_reduction={reconstruction_reduction!r}"
            )
        if int(eval_samples) < 1 or int(latent_dim) < 1:
            raise ValueError(
                f"`eval_samples` and `latent_dim` must be >= 1. Received: eval_samples={eval_samples}, "
                f"latent_dim={latent_dim}"
            )
        if role == "target" and (int(num_types) < 1 or int(reference_channels) < 1):
            raise ValueError(
                "the target model needs num_types >= 1 and reference_channels >= 1. "
                f"Received: num_types={num_types}, reference_channels={reference_channels}"
            )
        self.role = role
        self.rank = int(rank)
        self.image_shape = image_shape
        self.image_channels = int(image_channels or (2 if role == "reference" else 1))
        self.reference_channels = int(reference_channels)
        self.num_types = int(num_types)
        self.latent_dim = int(latent_dim)
        self.filters = filters
        self.beta = float(beta)
        self.objective = objective
        self.reconstruction_reduction = reconstruction_reduction
        self.eval_samples = int(eval_samples)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.activation = activation
        self.output_activation = output_activation
        self.power_iterations = int(power_iterations)
        self.init_stddev = float(init_stddev)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

        conditional = role == "target"
        cond = {
            "reference_channels": self.reference_channels if conditional else 0,
            "num_types": self.num_types if conditional else 0,
            "rank": self.rank,
            "activation": activation,
            "power_iterations": self.power_iterations,
            "init_stddev": self.init_stddev,
        }
        self.encoder_blocks = [
            ConditionalResidualBlock(f, "down", name=f"encoder_block_{i}", **cond) for i, f in enumerate(filters)
        ]
        self.grid = tuple(s // factor for s in image_shape)
        self.flatten = keras.layers.Flatten(name="flatten")
        self.mu_head = self._spectral_dense(self.latent_dim, "mu")
        self.log_var_head = self._spectral_dense(self.latent_dim, "log_var")
        self.decoder_input = self._spectral_dense(int(np.prod(self.grid)) * filters[-1], "decoder_fc")
        self.decoder_reshape = keras.layers.Reshape((*self.grid, filters[-1]), name="decoder_reshape")
        self.decoder_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="decoder_bn")
        widths = list(reversed(filters[:-1])) + [self.image_channels]
        self.decoder_blocks = [
            ConditionalResidualBlock(
                f,
                "up",
                output_activation=output_activation if i == len(widths) - 1 else None,
                name=f"decoder_block_{i}",
                **cond,
            )
            for i, f in enumerate(widths)
        ]

    def _spectral_dense(self, units: int, name: str):
        dense = keras.layers.Dense(
            units, kernel_initializer=keras.initializers.RandomNormal(0.0, self.init_stddev), name=name
        )
        return keras.layers.SpectralNormalization(dense, power_iterations=self.power_iterations, name=f"sn_{name}")

    # ----- building ------------------------------------------------------------------------
    def example_batch(self, batch_size: int = 1) -> dict:
        """A zero batch of the right shapes (builds variables; documents the batch format)."""
        batch = {"image": np.zeros((batch_size, *self.image_shape, self.image_channels), "float32")}
        if self.role == "target":
            batch["reference"] = np.zeros((batch_size, *self.image_shape, self.reference_channels), "float32")
            batch["target_type"] = np.zeros((batch_size,), "int32")
        return batch

    def build(self, input_shape=None):
        if self.built:
            return
        batch = self.example_batch(1)
        reference, target_type = self._conditions(batch)
        mu, _ = self._encode(batch["image"], reference, target_type, training=False)
        self._decode(mu, reference, target_type, training=False)
        self.built = True

    def get_build_config(self):
        return {"image_shape": list(self.image_shape)}

    def build_from_config(self, config):
        self.build()

    # ----- networks ------------------------------------------------------------------------
    def _conditions(self, batch: dict):
        if self.role == "reference":
            return None, None
        if "reference" not in batch or "target_type" not in batch:
            raise ValueError(
                "the target model needs batch keys 'image', 'reference' and 'target_type'. "
                f"Received: keys={sorted(batch)}"
            )
        reference = keras.ops.cast(batch["reference"], self.compute_dtype)
        one_hot = keras.ops.one_hot(keras.ops.cast(batch["target_type"], "int32"), self.num_types)
        return reference, keras.ops.cast(one_hot, self.compute_dtype)

    def _encode(self, image, reference, target_type, training):
        x = keras.ops.cast(image, self.compute_dtype)
        for block in self.encoder_blocks:
            x = block(x, reference, target_type, training=training)
        x = self.flatten(x)  # (B, prod(grid) * filters[-1])
        mu = self.mu_head(x, training=training)
        log_var = self.log_var_head(x, training=training)
        return keras.ops.cast(mu, "float32"), keras.ops.cast(log_var, "float32")

    def _decode(self, z, reference, target_type, training):
        x = self.decoder_input(keras.ops.cast(z, self.compute_dtype), training=training)
        x = keras.ops.relu(self.decoder_bn(self.decoder_reshape(x), training=training))
        for block in self.decoder_blocks:
            x = block(x, reference, target_type, training=training)
        return keras.ops.cast(x, "float32")

    def encode(self, batch: dict, training: bool = False):
        """(μ, log σ²) of q(z | x[, reference, type]), each (B, latent_dim) float32."""
        reference, target_type = self._conditions(batch)
        return self._encode(batch["image"], reference, target_type, training)

    def decode(self, z, batch: dict | None = None, training: bool = False):
        """Decoder output (the softplus mean image) for latent codes `z` (B, latent_dim).

        The target model reads the conditions from `batch` (``reference``, ``target_type``).
        """
        reference, target_type = self._conditions(batch or {})
        return self._decode(z, reference, target_type, training)

    def sample_prior(self, n: int | None = None, batch: dict | None = None, seed=None):
        """Images decoded from z ~ N(0, I): `n` of them (reference model) or one per row of
        `batch` (target model: imputation of the structure given reference and type)."""
        if self.role == "target":
            count = keras.ops.shape(batch["reference"])[0]
        else:
            count = n
        z = keras.random.normal((count, self.latent_dim), seed=seed if seed is not None else self.seed_generator)
        return self.decode(z, batch)

    def call(self, inputs, training=False):
        mu, log_var = self.encode(inputs, training=training)
        z = elbo_terms.sample_gaussian(mu, log_var, seed=self.seed_generator) if training else mu
        return self.decode(z, inputs, training=training)

    # ----- losses --------------------------------------------------------------------------
    def _reconstruction(self, x, x_hat):
        if self.reconstruction_reduction == "sum":
            return elbo_terms.sum_squared_error(x, x_hat)
        return elbo_terms.mean_squared_error(x, x_hat)

    def per_cell_terms(self, batch: dict, n_samples: int = 1, training: bool = False) -> dict:
        """Per-cell distortion (averaged over `n_samples` posterior samples), rate and μ.

        Returns ``{"reconstruction": (B,), "kl": (B,), "mu": (B, latent), "log_var": ...}``.
        """
        if not self.built:
            self.build()
        reference, target_type = self._conditions(batch)
        mu, log_var = self._encode(batch["image"], reference, target_type, training)
        kl = elbo_terms.kl_standard_normal(mu, log_var)
        reconstruction = 0.0
        for _ in range(int(n_samples)):
            z = elbo_terms.sample_gaussian(mu, log_var, seed=self.seed_generator)
            x_hat = self._decode(z, reference, target_type, training)
            reconstruction = reconstruction + self._reconstruction(batch["image"], x_hat)
        reconstruction = reconstruction / float(n_samples)
        return {"reconstruction": reconstruction, "kl": kl, "mu": mu, "log_var": log_var}

    def _loss_dict(self, terms: dict) -> dict:
        loss = objective_terms.beta_vae_loss(terms["reconstruction"], terms["kl"], self.beta, self.objective)
        return {
            "loss": keras.ops.mean(loss),
            "reconstruction": keras.ops.mean(terms["reconstruction"]),
            "kl": keras.ops.mean(terms["kl"]),
            "elbo": keras.ops.mean(objective_terms.elbo(terms["reconstruction"], terms["kl"])),
        }

    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        return self._loss_dict(self.per_cell_terms(batch, n_samples=1, training=training))

    def test_step_fn(self, batch: dict) -> dict:
        return self._loss_dict(self.per_cell_terms(batch, n_samples=self.eval_samples, training=False))

    def elbo_per_cell(self, batch: dict, n_samples: int | None = None, weighted: bool = False):
        """ELBO of each cell, (B,), with the distortion averaged over `n_samples` posterior
        samples (default `eval_samples`, 10 in the paper). `weighted` returns the trained
        objective's ELBO (Eq. 3) instead of the unweighted −(D + R)."""
        terms = self.per_cell_terms(batch, n_samples=n_samples or self.eval_samples)
        if weighted:
            return objective_terms.weighted_elbo(terms["reconstruction"], terms["kl"], self.beta, self.objective)
        return objective_terms.elbo(terms["reconstruction"], terms["kl"])

    def make_optimizers(self) -> dict:
        return {"main": keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2)}

    # ----- export --------------------------------------------------------------------------
    def input_specs(self) -> dict:
        """TensorSpecs of the batch keys."""
        specs = {"image": tf.TensorSpec([None, *self.image_shape, self.image_channels], tf.float32, name="image")}
        if self.role == "target":
            specs["reference"] = tf.TensorSpec(
                [None, *self.image_shape, self.reference_channels], tf.float32, name="reference"
            )
            specs["target_type"] = tf.TensorSpec([None], tf.int32, name="target_type")
        return specs

    def export_endpoints(self) -> dict:
        """SavedModel endpoints.

        Reference model: ``encode(image) -> {mu, log_var}``, ``decode(z) -> image``,
        ``sample(n) -> images`` from the prior, ``elbo(image) -> (B,)`` (10-sample ELBO).
        Target model: the same with ``reference`` and ``target_type`` after the first input
        (``sample(reference, target_type)``), plus ``impute(reference, target_type) ->
        {structure, image}`` where image = reference channels + imputed structure.
        """
        specs = self.input_specs()
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        n_samples = self.eval_samples
        if self.role == "reference":

            pre = self.preprocessing

            def encode(image):
                mu, log_var = self.encode({"image": pre(image)})
                return {"mu": mu, "log_var": log_var}

            def sample(n):
                z = tf.random.normal([n, self.latent_dim])
                return self.decode(z)

            return {
                "encode": (encode, [specs["image"]]),
                "decode": (lambda z: self.decode(z), [z_spec]),
                "sample": (sample, [tf.TensorSpec([], tf.int32, name="n")]),
                "elbo": (lambda image: self.elbo_per_cell({"image": pre(image)}, n_samples), [specs["image"]]),
            }

        cond = [specs["reference"], specs["target_type"]]
        pre = self.preprocessing  # images and reference channels as they are on disk

        def encode_t(image, reference, target_type):
            mu, log_var = self.encode({"image": pre(image), "reference": pre(reference), "target_type": target_type})
            return {"mu": mu, "log_var": log_var}

        def decode_t(z, reference, target_type):
            return self.decode(z, {"reference": pre(reference), "target_type": target_type})

        def sample_t(reference, target_type):
            z = tf.random.normal([tf.shape(reference)[0], self.latent_dim])
            return decode_t(z, reference, target_type)

        def impute_t(reference, target_type):
            structure = sample_t(reference, target_type)
            return {"structure": structure, "image": tf.concat([pre(reference), structure], axis=-1)}

        def elbo_t(image, reference, target_type):
            batch = {"image": pre(image), "reference": pre(reference), "target_type": target_type}
            return self.elbo_per_cell(batch, n_samples)

        return {
            "encode": (encode_t, [specs["image"], *cond]),
            "decode": (decode_t, [z_spec, *cond]),
            "sample": (sample_t, cond),
            "impute": (impute_t, cond),
            "elbo": (elbo_t, [specs["image"], *cond]),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "role": self.role,
                "rank": self.rank,
                "image_shape": list(self.image_shape),
                "image_channels": self.image_channels,
                "reference_channels": self.reference_channels,
                "num_types": self.num_types,
                "latent_dim": self.latent_dim,
                "filters": list(self.filters),
                "beta": self.beta,
                "objective": self.objective,
                "reconstruction_reduction": self.reconstruction_reduction,
                "eval_samples": self.eval_samples,
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "activation": self.activation,
                "output_activation": self.output_activation,
                "power_iterations": self.power_iterations,
                "init_stddev": self.init_stddev,
                "seed": self.seed,
                "background": self.background,
            }
        )
        return config
