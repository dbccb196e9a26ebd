"""cytoself (Kobayashi et al., Nature Methods 2022): a two-level VQ-VAE with split quantisation
and protein-identification pretext heads, learning localisation encodings of single cells.

Data flow for the ``paper`` preset (Supp. Fig. 9; shapes from the authors' TF code)::

    image (B,100,100,C) ─encoder1─▶ z1 (B,25,25,64) ─VQ1─▶ local (B,25,25,64)  625 codes
                                     └─encoder2─▶ z2 (B,4,4,576) ─VQ2 (9 splits)─▶ global  144 codes
    decoder2(global) ≈ z1                     ("mse_lyr1", encoder2/decoder2 autoencoder)
    decoder1(concat(resize(global, 25×25), local)) ≈ image
    fc1(local), fc2(global) → protein identity (softmax cross-entropy)

Loss (all weights 1 by default): MSE(x, x̂)/Var(training data) + VQ1 + VQ2 + mse_lyr1 + CE1 +
CE2, each VQ term = ‖sg(z) − e‖² + 0.25‖z − sg(e)‖². Perplexities are reported, not minimised.

Learning rate: the paper's text says Adam at 4e-4 (the ``paper`` preset); the authors' TF code
used 1e-4 (pass ``learning_rate=1e-4`` / ``--learning-rate 1e-4`` to match it).
The mid-level loss lets gradients reach both decoder2 and encoder1, as in the authors' code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.errors import UserError
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.layers.efficientnet_encoder import (
    CYTOSELF_ENCODER1_STAGES,
    CYTOSELF_ENCODER2_STAGES,
    EfficientNetEncoder,
)
from statcell_tf.layers.resnet_decoder import ResNetDecoder
from statcell_tf.layers.vector_quantizer import VectorQuantizer
from statcell_tf.losses.elbo import mean_squared_error
from statcell_tf.training.model import TrainableModel

LOSS_TERMS = ("reconstruction", "vq1", "vq2", "mse_lyr1", "classification1", "classification2")


class _ClassifierHead(keras.layers.Layer):
    """Flatten → Dense(units, relu) → Dropout → Dense(num_classes): protein-ID logits."""

    def __init__(self, units, num_classes, dropout_rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        policy = self.dtype_policy
        self.flatten = keras.layers.Flatten(dtype=policy)
        self.hidden = keras.layers.Dense(units, activation="relu", dtype=policy, name="hidden")
        self.dropout = keras.layers.Dropout(dropout_rate, seed=seed, dtype=policy)
        self.logits = keras.layers.Dense(num_classes, dtype=policy, name="logits")

    def build(self, input_shape):
        flat = (input_shape[0], int(np.prod(input_shape[1:])))
        self.hidden.build(flat)
        self.logits.build((input_shape[0], self.hidden.units))

    def call(self, inputs, training=False):
        x = self.dropout(self.hidden(self.flatten(inputs)), training=training)
        return keras.ops.cast(self.logits(x), "float32")


@keras.saving.register_keras_serializable(package="statcell_tf")
class CytoselfModel(TrainableModel):
    """cytoself: VQ-VAE-2 with split quantisation and protein-identification heads.

    Args:
        num_classes: int. Number of protein identities (labels 0..num_classes-1).
        image_shape: (height, width, channels). Defaults to (100, 100, 2).
        stem_filters: int. Encoder1 stem width. Defaults to 32.
        encoder1_stages: list of (expand, kernel, strides, filters, repeats). Defaults to
            EfficientNet-B0 stages 1–3 with stage 3 at stride 1.
        local_filters: int. Channels of the local level = local code length. Defaults to 64.
        encoder2_stages: list of stages. Defaults to B0 stages 4–7 with stage 5 at stride 2.
        global_filters: int. Channels of the global level. Defaults to 576.
        local_num_embeddings: int. Local codebook size. Defaults to 2048.
        global_num_embeddings: int. Global codebook size. Defaults to 2048.
        global_num_splits: int. Split quantisation of the global level: each of its vectors
            is cut into this many sub-vectors of ``global_filters / global_num_splits``
            values quantised with one shared codebook. Defaults to 9.
        commitment_cost: float. β of both quantisers. Defaults to 0.25.
        decoder_filters: int. Width of the first decoder block. Defaults to 64.
        decoder_min_filters: int. Floor of the halved decoder widths. Defaults to 32.
        decoder_units_per_block: int. Residual units per decoder block. Defaults to 2.
        classifier_units: int. Hidden units of the identification heads. Defaults to 1000.
        dropout_rate: float. Dropout of the identification heads. Defaults to 0.5.
        batchnorm_momentum: float. Momentum of every batch norm (moving statistics used at
            inference). Defaults to 0.99 (EfficientNet); the demo preset uses 0.9 so that a
            run of a few hundred steps has settled statistics.
        data_variance: float. Variance of the training images; the reconstruction MSE is
            divided by it. Defaults to 1.0.
        loss_weights: dict or None. Weights of ``reconstruction``, ``vq1``, ``vq2``,
            ``mse_lyr1``, ``classification1``, ``classification2``; missing keys weigh 1.
        use_vq: bool. False = "without vector quantization" ablation (the encoder outputs
            go straight on). Defaults to True.
        use_classifier: bool. False = "without identification pretext task". Defaults to True.
        split_quantization: bool. False = "without split quantization" (the global level is
            quantised as 16 vectors of 576 values). Defaults to True.
        use_decoder: bool. False = "without decoder" (no reconstruction, no mse_lyr1).
            Defaults to True.
        learning_rate: float. Adam learning rate. Defaults to 4e-4 (paper text).
        seed: int or None. Seed of the dropout layers. Defaults to None.
        **kwargs: `TrainableModel` arguments.

    Call arguments:
        images: float tensor (B, H, W, C).
        training: bool.

    Returns:
        dict: ``local_pre`` / ``global_pre`` (encoder outputs), ``local`` / ``global``
        (quantised), with VQ: ``local_indices`` (B,25,25), ``global_indices`` (B,4,4,9),
        ``local_hist`` / ``global_hist`` (B, K), ``vq1`` / ``vq2`` dicts of the quantisers'
        terms; with the decoder: ``reconstruction`` (B,H,W,C) and ``mid_reconstruction``
        (B,25,25,64); with the ID task: ``logits1`` / ``logits2`` (B, num_classes).
    """

    def __init__(
        self,
        num_classes: int,
        image_shape=(100, 100, 2),
        stem_filters: int = 32,
        encoder1_stages=CYTOSELF_ENCODER1_STAGES,
        local_filters: int = 64,
        encoder2_stages=CYTOSELF_ENCODER2_STAGES,
        global_filters: int = 576,
        local_num_embeddings: int = 2048,
        global_num_embeddings: int = 2048,
        global_num_splits: int = 9,
        commitment_cost: float = 0.25,
        decoder_filters: int = 64,
        decoder_min_filters: int = 32,
        decoder_units_per_block: int = 2,
        classifier_units: int = 1000,
        dropout_rate: float = 0.5,
        batchnorm_momentum: float = 0.99,
        data_variance: float = 1.0,
        loss_weights: dict | None = None,
        use_vq: bool = True,
        use_classifier: bool = True,
        split_quantization: bool = True,
        use_decoder: bool = True,
        learning_rate: float = 4e-4,
        seed: int | None = None,
        normalization: dict | None = None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.normalization = None if not normalization else {
            "offset": [float(v) for v in normalization["offset"]], "scale": [float(v) for v in normalization["scale"]]
        }
        # Images as they are on disk → the model's input: owned by the model, saved with it,
        # applied by `embed`, `reconstruct*` and every SavedModel endpoint (and, on whole
        # batches, by the training pipeline).
        self.preprocessing = (
            InputNormalization("affine", offset=self.normalization["offset"], scale=self.normalization["scale"])
            if self.normalization else InputNormalization("none")
        )
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(v) for v in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (height, width, channels). Received: image_shape={image_shape}")
        if self.num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={num_classes}")
        if data_variance <= 0:
            raise ValueError(f"`data_variance` must be > 0. Received: data_variance={data_variance}")
        self.stem_filters = int(stem_filters)
        self.encoder1_stages = [list(map(int, s)) for s in encoder1_stages]
        self.local_filters = int(local_filters)
        self.encoder2_stages = [list(map(int, s)) for s in encoder2_stages]
        self.global_filters = int(global_filters)
        self.local_num_embeddings = int(local_num_embeddings)
        self.global_num_embeddings = int(global_num_embeddings)
        self.global_num_splits = int(global_num_splits)
        self.commitment_cost = float(commitment_cost)
        self.decoder_filters = int(decoder_filters)
        self.decoder_min_filters = int(decoder_min_filters)
        self.decoder_units_per_block = int(decoder_units_per_block)
        self.classifier_units = int(classifier_units)
        self.dropout_rate = float(dropout_rate)
        self.batchnorm_momentum = float(batchnorm_momentum)
        self.data_variance = float(data_variance)
        unknown = sorted(set(loss_weights or {}) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(
                f"`loss_weights` keys must be among {', '.join(LOSS_TERMS)}. Received: {', '.join(unknown)}"
            )
        self.loss_weights = {term: float((loss_weights or {}).get(term, 1.0)) for term in LOSS_TERMS}
        self.use_vq = bool(use_vq)
        self.use_classifier = bool(use_classifier)
        self.split_quantization = bool(split_quantization)
        self.use_decoder = bool(use_decoder)
        if not (self.use_vq or self.use_classifier or self.use_decoder):
            raise ValueError("CytoselfModel needs at least one of use_vq, use_classifier, use_decoder: "
                             "with none there is nothing to learn. Received: all False")
        self.seed = seed

        splits = self.global_num_splits if self.split_quantization else 1
        if self.global_filters % splits:
            raise ValueError(
                "`global_filters` must be divisible by `global_num_splits`. "
                f"Received: global_filters={global_filters}, global_num_splits={global_num_splits}"
            )
        height, width, channels = self.image_shape
        policy = self.dtype_policy
        self.encoder1 = EfficientNetEncoder(
            channels, self.encoder1_stages, self.local_filters, stem_filters=self.stem_filters,
            batchnorm_momentum=self.batchnorm_momentum, dtype=policy, name="encoder1",
        )
        self.local_shape = self.encoder1.compute_output_shape((None,) + self.image_shape)[1:]
        self.encoder2 = EfficientNetEncoder(
            self.local_filters, self.encoder2_stages, self.global_filters,
            batchnorm_momentum=self.batchnorm_momentum, dtype=policy, name="encoder2",
        )
        self.global_shape = self.encoder2.compute_output_shape((None,) + self.local_shape)[1:]
        if self.use_vq:
            self.vq1 = VectorQuantizer(
                self.local_num_embeddings, self.local_filters, self.commitment_cost, name="vq1"
            )
            self.vq2 = VectorQuantizer(
                self.global_num_embeddings, self.global_filters // splits, self.commitment_cost,
                num_splits=splits, name="vq2",
            )
        if self.use_decoder:
            self.decoder1 = ResNetDecoder(
                self.local_filters + self.global_filters, self.image_shape,
                num_blocks=_upsampling_blocks(self.local_shape[0], height),
                filters=self.decoder_filters, min_filters=self.decoder_min_filters,
                units_per_block=self.decoder_units_per_block, batchnorm_momentum=self.batchnorm_momentum,
                dtype=policy, name="decoder1",
            )
            self.decoder2 = ResNetDecoder(
                self.global_filters, self.local_shape,
                num_blocks=_upsampling_blocks(self.global_shape[0], self.local_shape[0]),
                filters=self.decoder_filters, min_filters=self.decoder_min_filters,
                units_per_block=self.decoder_units_per_block, output_activation="swish",
                batchnorm_momentum=self.batchnorm_momentum, dtype=policy, name="decoder2",
            )
        if self.use_classifier:
            self.fc1 = _ClassifierHead(
                self.classifier_units, self.num_classes, self.dropout_rate, seed=seed, dtype=policy, name="fc1"
            )
            self.fc2 = _ClassifierHead(
                self.classifier_units, self.num_classes, self.dropout_rate,
                seed=None if seed is None else seed + 1, dtype=policy, name="fc2",
            )
        object.__setattr__(self, "_compiled", {})  # tf.function cache, kept out of tracking

    # ----- forward pieces ---------------------------------------------------------------
    def build(self, input_shape):
        shape = tuple(input_shape)
        if tuple(shape[1:]) != self.image_shape:
            raise ValueError(f"CytoselfModel expects images of shape {self.image_shape}. Received: {shape}")
        batch = shape[0]
        self.encoder1.build(shape)
        self.encoder2.build((batch,) + self.local_shape)
        if self.use_vq:
            self.vq1.build((batch,) + self.local_shape)
            self.vq2.build((batch,) + self.global_shape)
        if self.use_decoder:
            self.decoder1.build((batch,) + self.local_shape[:2] + (self.local_filters + self.global_filters,))
            self.decoder2.build((batch,) + self.global_shape)
        if self.use_classifier:
            self.fc1.build((batch,) + self.local_shape)
            self.fc2.build((batch,) + self.global_shape)
        self.built = True

    def encode(self, images, training=False):
        """Encoders and quantisers: every output of `call` but the decoders' and heads'."""
        images = keras.ops.cast(images, self.compute_dtype)
        z1 = self.encoder1(images, training=training)  # (B, 25, 25, 64)
        z2 = self.encoder2(z1, training=training)  # (B, 4, 4, 576)
        out = {"local_pre": z1, "global_pre": z2}
        if self.use_vq:
            q1, q2 = self.vq1(z1), self.vq2(z2)
            out["local"], out["global"] = q1["quantized"], q2["quantized"]
            out.update(
                local_indices=q1["indices"], global_indices=q2["indices"],
                local_hist=q1["histogram"], global_hist=q2["histogram"], vq1=q1, vq2=q2,
            )
        else:  # "without vector quantization": the encoder outputs are the representations
            out["local"], out["global"] = keras.ops.cast(z1, "float32"), keras.ops.cast(z2, "float32")
        return out

    def decode(self, local, global_, training=False):
        """decoder1(concat(resize(global, local size), local)) → (B, H, W, C) float32."""
        if not self.use_decoder:
            raise ValueError("This CytoselfModel was built with use_decoder=False: it cannot reconstruct.")
        upsampled = keras.ops.image.resize(global_, self.local_shape[:2], interpolation="bilinear")
        merged = keras.ops.concatenate([upsampled, local], axis=-1)  # (B, 25, 25, 640)
        return keras.ops.cast(self.decoder1(keras.ops.cast(merged, self.compute_dtype), training=training), "float32")

    def call(self, images, training=False):
        out = self.encode(images, training=training)
        if self.use_decoder:
            out["reconstruction"] = self.decode(out["local"], out["global"], training=training)
            mid = self.decoder2(keras.ops.cast(out["global"], self.compute_dtype), training=training)
            out["mid_reconstruction"] = keras.ops.cast(mid, "float32")
        if self.use_classifier:
            out["logits1"] = self.fc1(out["local"], training=training)
            out["logits2"] = self.fc2(out["global"], training=training)
        return out

    # ----- training contract --------------------------------------------------------------
    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        images = keras.ops.cast(batch["image"], "float32")
        out = self(images, training=training)
        w = self.loss_weights
        terms, weighted = {}, []
        if self.use_decoder:
            terms["reconstruction"] = keras.ops.mean(
                mean_squared_error(images, out["reconstruction"])
            ) / self.data_variance
            terms["mse_lyr1"] = keras.ops.mean(mean_squared_error(out["local_pre"], out["mid_reconstruction"]))
            weighted += [w["reconstruction"] * terms["reconstruction"], w["mse_lyr1"] * terms["mse_lyr1"]]
        if self.use_vq:
            for level in ("vq1", "vq2"):
                terms[level] = out[level]["loss"]
                terms[f"{level}_codebook"] = out[level]["codebook_loss"]
                terms[f"{level}_commitment"] = out[level]["commitment_loss"]
                weighted.append(w[level] * terms[level])
            terms["perplexity1"] = out["vq1"]["perplexity"]  # reported, not minimised
            terms["perplexity2"] = out["vq2"]["perplexity"]
        if self.use_classifier:
            labels = keras.ops.cast(keras.ops.reshape(batch["label"], (-1,)), "int32")
            for level in ("1", "2"):
                logits = out[f"logits{level}"]
                terms[f"classification{level}"] = keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
                )
                predicted = keras.ops.cast(keras.ops.argmax(logits, axis=-1), "int32")
                terms[f"accuracy{level}"] = keras.ops.mean(keras.ops.cast(predicted == labels, "float32"))
                weighted.append(w[f"classification{level}"] * terms[f"classification{level}"])
        total = keras.ops.cast(sum(weighted[1:], weighted[0]), "float32")
        return {"loss": total, **terms}

    # ----- analysis -------------------------------------------------------------------------
    def embed(self, images) -> dict:
        """Localisation encodings of one batch, as numpy arrays.

        Returns:
            dict: ``global`` (B,4,4,576) and ``local`` (B,25,25,64) quantised vectors; with VQ
            also ``global_indices`` (B,4,4,9), ``local_indices`` (B,25,25), ``global_hist`` and
            ``local_hist`` (B, K) int32 (rows sum to 144 and 625); with the ID task
            ``probabilities`` (B, num_classes) of the global head.
        """
        fn = self._function("embed", self._embed_graph)
        return {k: v.numpy() for k, v in fn(_as_batch(images, self.image_shape)).items()}

    def preprocess(self, images) -> np.ndarray:
        """Images as they are on disk → what the networks see (the run's normalisation)."""
        return np.asarray(self.preprocessing(_as_batch(images, self.image_shape)))

    def reconstruct(self, images) -> np.ndarray:
        """Decoded images (B, H, W, C) of one batch."""
        if not self.use_decoder:
            raise ValueError("This CytoselfModel was built with use_decoder=False: it cannot reconstruct.")
        fn = self._function("reconstruct", lambda x: self(self.preprocessing(x), training=False)["reconstruction"])
        return fn(_as_batch(images, self.image_shape)).numpy()

    def reconstruct_with_codes_removed(self, images, codes_to_zero) -> np.ndarray:
        """Decode after zeroing every local vector whose code is in `codes_to_zero` (Fig. 5).

        The global representation is kept; the local vectors quantised to one of the given
        codes are replaced by zeros before decoder1.

        Args:
            images: array (B, H, W, C).
            codes_to_zero: list of int. Local code indices in [0, local_num_embeddings).

        Returns:
            array (B, H, W, C).
        """
        if not self.use_vq:
            raise ValueError("This CytoselfModel was built with use_vq=False: it has no codes to remove.")
        codes = np.asarray(list(codes_to_zero), dtype=np.int32).reshape(-1)
        bad = codes[(codes < 0) | (codes >= self.local_num_embeddings)]
        if bad.size:
            raise ValueError(
                f"`codes_to_zero` must be in [0, {self.local_num_embeddings}). Received: {bad.tolist()}"
            )
        fn = self._function("zeroed", self._zeroed_graph)
        return fn(_as_batch(images, self.image_shape), tf.constant(codes)).numpy()

    def _embed_graph(self, images):
        out = self.encode(self.preprocessing(images), training=False)
        keys = ("global", "local", "global_indices", "local_indices", "global_hist", "local_hist")
        result = {k: out[k] for k in keys if k in out}
        if self.use_classifier:
            result["probabilities"] = keras.ops.softmax(self.fc2(out["global"], training=False))
        return result

    def _zeroed_graph(self, images, codes):
        out = self.encode(self.preprocessing(images), training=False)
        # (B, 25, 25, 1) == (K',) → (B, 25, 25, K') → any over K'
        removed = keras.ops.any(out["local_indices"][..., None] == codes, axis=-1)
        local = keras.ops.where(removed[..., None], 0.0, out["local"])
        return self.decode(local, out["global"], training=False)

    def _function(self, name, python_fn):
        if not self.built:  # create the variables eagerly, never inside a trace
            self.build((None,) + self.image_shape)
        if name not in self._compiled:
            self._compiled[name] = tf.function(python_fn, reduce_retracing=True)
        return self._compiled[name]

    def export_endpoints(self) -> dict:
        if not self.built:
            self.build((None,) + self.image_shape)
        spec = [tf.TensorSpec((None,) + self.image_shape, tf.float32, name="images")]
        # Two shared graphs (encoders + quantisers; the whole model) traced once each; every
        # endpoint selects its outputs (unused branches are pruned when the graph runs).
        # Endpoints take images as they are on disk: the preprocessing layer runs first.
        encode = tf.function(lambda x: self.encode(self.preprocessing(x), training=False), input_signature=spec)

        def pick(fn, *keys):
            if len(keys) == 1:
                return lambda x: fn(x)[keys[0]]
            return lambda x: {k: fn(x)[k] for k in keys}

        endpoints = {"embed_global": (pick(encode, "global"), spec), "embed_local": (pick(encode, "local"), spec)}
        if self.use_vq:
            endpoints["vq_indices"] = (pick(encode, "local_indices", "global_indices"), spec)
            endpoints["index_histogram"] = (pick(encode, "local_hist", "global_hist"), spec)
        if self.use_decoder or self.use_classifier:
            full = tf.function(lambda x: self(self.preprocessing(x), training=False), input_signature=spec)
        if self.use_decoder:
            endpoints["reconstruct"] = (pick(full, "reconstruction"), spec)
        if self.use_classifier:

            def classify(images):
                out = full(images)
                return {"global": keras.ops.softmax(out["logits2"]), "local": keras.ops.softmax(out["logits1"])}

            endpoints["classify"] = (classify, spec)
        return endpoints

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "image_shape": list(self.image_shape),
                "stem_filters": self.stem_filters,
                "encoder1_stages": self.encoder1_stages,
                "local_filters": self.local_filters,
                "encoder2_stages": self.encoder2_stages,
                "global_filters": self.global_filters,
                "local_num_embeddings": self.local_num_embeddings,
                "global_num_embeddings": self.global_num_embeddings,
                "global_num_splits": self.global_num_splits,
                "commitment_cost": self.commitment_cost,
                "decoder_filters": self.decoder_filters,
                "decoder_min_filters": self.decoder_min_filters,
                "decoder_units_per_block": self.decoder_units_per_block,
                "classifier_units": self.classifier_units,
                "dropout_rate": self.dropout_rate,
                "batchnorm_momentum": self.batchnorm_momentum,
                "data_variance": self.data_variance,
                "loss_weights": dict(self.loss_weights),
                "use_vq": self.use_vq,
                "use_classifier": self.use_classifier,
                "split_quantization": self.split_quantization,
                "use_decoder": self.use_decoder,
                "seed": self.seed,
                "normalization": self.normalization,
            }
        )
        return config


def _upsampling_blocks(size_in: int, size_out: int) -> int:
    """Decoder blocks of ≈2× upsampling from `size_in` to `size_out` (4→25: 3, 25→100: 2)."""
    blocks = 0
    while size_in * 2**blocks < size_out:
        blocks += 1
    return max(blocks, 1)


def _as_batch(images, image_shape):
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank == len(image_shape):
        images = images[None]
    if tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"Expected images of shape (B, {', '.join(map(str, image_shape))}). Received: {images.shape}")
    return images


def load_run(run_dir) -> tuple[CytoselfModel, dict]:
    """Load a cytoself training run: (model from ``best.keras``, the run's facts).

    The facts are the ``data`` block of config.json (channels, label_values, label_column,
    group_column, normalization, num_cells, ...) plus ``settings``.

    Raises:
        UserError: the folder is not a cytoself run or its model cannot be read.
    """
    from statcell_tf.training.run_dir import RunDirectory

    config, model = RunDirectory(run_dir).load("cytoself", flag="RUN")
    if not isinstance(model, CytoselfModel):
        raise UserError(f"{Path(run_dir) / 'best.keras'} does not hold a CytoselfModel. Received: {type(model).__name__}")
    facts = {**config["data"], "settings": config["settings"]}
    if model.normalization is None and facts.get("normalization"):
        # A run saved before the model owned its preprocessing: attach the recorded one.
        normalization = facts["normalization"]
        model.normalization = {"offset": list(normalization["offset"]), "scale": list(normalization["scale"])}
        layer = model.preprocessing  # weightless: becomes the recorded affine map in place
        layer.method, layer.offset, layer.scale = "affine", model.normalization["offset"], model.normalization["scale"]
        object.__setattr__(model, "_compiled", {})
    return model, facts
