"""`VectorQuantizer`: nearest-code quantisation with optional split quantisation (cytoself)."""

from __future__ import annotations

import math

from statcell_tf.backend import keras, tf
from statcell_tf.losses import vq as vq_losses


@keras.saving.register_keras_serializable(package="statcell_tf")
class VectorQuantizer(keras.layers.Layer):
    """Vector quantiser of VQ-VAE (Sonnet-style codebook, trained by gradient, not EMA).

    Each channel vector of the input is replaced by its nearest codebook vector (Euclidean);
    the encoder receives the decoder's gradient through the straight-through estimator. With
    ``num_splits > 1`` every channel vector of ``num_splits * embedding_dim`` values is split
    into `num_splits` sub-vectors quantised against one shared codebook: cytoself's *split
    quantisation* of the global level, (B, 4, 4, 576) → (B, 4, 4, 9, 64) → 144 codes per
    image (Kobayashi et al. 2022, Methods "Split quantization", Supp. Fig. 7).

    The layer computes in float32 whatever the global dtype policy (its inputs are cast):
    distances and the codebook loss lose too much precision in float16/bfloat16. It does not
    call `add_loss`: the loss terms are returned and the model adds them to its total.

    Args:
        num_embeddings: int. Codebook size K. Defaults to 2048 (cytoself).
        embedding_dim: int. Length D of one code vector. Defaults to 64.
        commitment_cost: float. Weight β of the commitment term. Defaults to 0.25.
        num_splits: int. Sub-vectors per input channel vector; the input must have
            ``num_splits * embedding_dim`` channels. Defaults to 1 (no split).
        embeddings_initializer: initializer or None. None = uniform in ±sqrt(3 / D)
            (Sonnet's unit-scaling default). Defaults to None.
        **kwargs: `keras.layers.Layer` arguments; `dtype` is forced to float32.

    Call arguments:
        inputs: float tensor (B, H, W, num_splits * embedding_dim).

    Returns:
        dict with ``quantized`` (B, H, W, C) float32 (straight-through), ``indices`` int32
        (B, H, W) or (B, H, W, num_splits), ``histogram`` int32 (B, K) summing to
        H·W·num_splits per example, scalar ``codebook_loss`` ‖sg(z) − e‖²,
        ``commitment_loss`` ‖z − sg(e)‖², ``loss`` = codebook + β·commitment, and the
        batch ``perplexity``.
    """

    def __init__(
        self,
        num_embeddings: int = 2048,
        embedding_dim: int = 64,
        commitment_cost: float = 0.25,
        num_splits: int = 1,
        embeddings_initializer=None,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim),
                            ("num_splits", num_splits)):
            if int(value) < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
        if commitment_cost < 0:
            raise ValueError(f"`commitment_cost` must be >= 0. Received: commitment_cost={commitment_cost}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.num_splits = int(num_splits)
        if embeddings_initializer is None:
            limit = math.sqrt(3.0 / self.embedding_dim)
            embeddings_initializer = keras.initializers.RandomUniform(-limit, limit)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels != self.num_splits * self.embedding_dim:
            raise ValueError(
                "`VectorQuantizer` input must have num_splits * embedding_dim = "
                f"{self.num_splits} * {self.embedding_dim} channels. Received: input_shape={input_shape}"
            )
        self.embeddings = self.add_weight(
            shape=(self.num_embeddings, self.embedding_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def split(self, inputs):
        """(B, H, W, S·D) → (B, H, W, S, D): the sub-vectors of split quantisation."""
        shape = keras.ops.shape(inputs)
        return keras.ops.reshape(inputs, (shape[0], shape[1], shape[2], self.num_splits, self.embedding_dim))

    def merge(self, vectors):
        """(B, H, W, S, D) → (B, H, W, S·D): inverse of `split`."""
        shape = keras.ops.shape(vectors)
        return keras.ops.reshape(vectors, (shape[0], shape[1], shape[2], self.num_splits * self.embedding_dim))

    def nearest_indices(self, inputs):
        """Index of the nearest code of every (sub-)vector: int32 (B, H, W[, S])."""
        inputs = keras.ops.cast(inputs, "float32")
        vectors = self.split(inputs)  # (B, H, W, S, D)
        flat = tf.reshape(vectors, (-1, self.embeddings.shape[-1]))  # (N, D)
        # argmin_k ‖z − e_k‖² = argmin_k (‖e_k‖² − 2 z·e_k): ‖z‖² is the same for every code.
        # One (N, K) matrix, made by one matmul with the bias fused in (the (N, K) matrix is
        # the layer's largest tensor: 20,000 × 2,048 for the local level of a batch of 32).
        # `tf.argmin`, not `keras.ops.argmin`: the latter makes 4 more passes over it to
        # order −0.0 before +0.0.
        embeddings = tf.convert_to_tensor(self.embeddings)
        scores = tf.nn.bias_add(
            tf.matmul(flat, embeddings * -2.0, transpose_b=True), tf.reduce_sum(tf.square(embeddings), axis=1)
        )
        indices = tf.argmin(scores, axis=1, output_type=tf.int32)
        indices = tf.reshape(indices, tf.shape(vectors)[:-1])
        return indices if self.num_splits > 1 else indices[..., 0]

    def reference_nearest_indices(self, inputs):
        """`nearest_indices` by the textbook formula argmin_k ‖z‖² − 2 z·e_k + ‖e_k‖² (tests)."""
        flat = keras.ops.reshape(self.split(keras.ops.cast(inputs, "float32")), (-1, self.embedding_dim))
        distances = (
            keras.ops.sum(keras.ops.square(flat), axis=1, keepdims=True)
            - 2.0 * keras.ops.matmul(flat, keras.ops.transpose(self.embeddings))
            + keras.ops.sum(keras.ops.square(self.embeddings), axis=1)[None, :]
        )
        indices = keras.ops.reshape(keras.ops.argmin(distances, axis=1), keras.ops.shape(inputs)[:3] + (-1,))
        return indices if self.num_splits > 1 else indices[..., 0]

    def lookup(self, indices):
        """Code vectors of `indices` (B, H, W[, S]) merged back to (B, H, W, S·D) float32."""
        indices = keras.ops.cast(indices, "int32")
        if self.num_splits == 1:
            # expand_dims, not `indices[..., None]`: TFLite has no int32 strided slice with a new axis.
            indices = keras.ops.expand_dims(indices, -1)
        return self.merge(keras.ops.take(self.embeddings, indices, axis=0))

    def call(self, inputs):
        inputs = keras.ops.cast(inputs, "float32")
        indices = self.nearest_indices(inputs)
        codes = self.lookup(indices)
        histogram = vq_losses.index_histogram(indices, self.num_embeddings)
        codebook = keras.ops.mean(vq_losses.codebook_loss(inputs, codes))
        commitment = keras.ops.mean(vq_losses.commitment_loss(inputs, codes))
        return {
            "quantized": vq_losses.straight_through(inputs, codes),
            "indices": indices,
            "histogram": histogram,
            "codebook_loss": codebook,
            "commitment_loss": commitment,
            "loss": codebook + self.commitment_cost * commitment,
            "perplexity": vq_losses.perplexity(histogram),
        }

    def compute_output_spec(self, inputs):
        batch, height, width, channels = inputs.shape
        index_shape = (batch, height, width) + ((self.num_splits,) if self.num_splits > 1 else ())
        scalar = keras.KerasTensor((), "float32")
        return {
            "quantized": keras.KerasTensor((batch, height, width, channels), "float32"),
            "indices": keras.KerasTensor(index_shape, "int32"),
            "histogram": keras.KerasTensor((batch, self.num_embeddings), "int32"),
            "codebook_loss": scalar,
            "commitment_loss": scalar,
            "loss": scalar,
            "perplexity": scalar,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "commitment_cost": self.commitment_cost,
                "num_splits": self.num_splits,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
