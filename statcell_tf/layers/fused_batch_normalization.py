"""`FusedBatchNormalization`: Keras batch norm computed by TensorFlow's fused kernel."""

from __future__ import annotations

from statcell_tf.backend import keras, tf


@keras.saving.register_keras_serializable(package="statcell_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the same maths, run by one fused kernel.

    Keras 3 computes a training-mode batch norm as separate ops (mean, squared difference,
    mean, then scale and shift) and differentiates each of them: on a 2-core CPU that was
    17 % of the cytoself training step. For channel-last 4-D inputs with the default
    settings this layer calls ``FusedBatchNormV3`` instead (one pass forward, one
    ``FusedBatchNormGradV3`` backward). The result is the Keras one up to float rounding:
    normalisation by the biased batch variance in training, moving statistics updated as
    ``moving · momentum + batch · (1 − momentum)`` with the biased variance (the fused kernel
    returns the Bessel-corrected one, which is scaled back), and the moving statistics at
    inference. Weights (gamma, beta, moving_mean, moving_variance) are the Keras layer's, so
    saved models load unchanged. Other cases (masks, renorm, synchronized, other ranks or
    axes) use the Keras implementation.

    The class keeps Keras' name on purpose: `.keras` files address a layer held in a list
    (e.g. `ResNetDecoder.block_bns`) by its class name in snake case, so another name would
    make the weights of runs saved with `keras.layers.BatchNormalization` unloadable. This
    package imports it as `FusedBatchNormalization`.

    Args:
        **kwargs: `keras.layers.BatchNormalization` arguments.
    """

    def _fused_ok(self, inputs, mask) -> bool:
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_ok(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # as Keras: statistics in float32 whatever the policy
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, corrected, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.zeros([0], tf.float32), variance=tf.zeros([0], tf.float32),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
            )
            # The kernel's batch variance is Bessel-corrected (n / (n − 1)); Keras averages the
            # biased one into the moving variance.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = corrected * ((n - 1.0) / tf.maximum(n, 1.0))
            momentum = self.momentum
            self.moving_mean.assign(
                tf.cast(self.moving_mean, tf.float32) * momentum + tf.stop_gradient(mean) * (1.0 - momentum)
            )
            self.moving_variance.assign(
                tf.cast(self.moving_variance, tf.float32) * momentum
                + tf.stop_gradient(variance) * (1.0 - momentum)
            )
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


FusedBatchNormalization = BatchNormalization
