"""`InputNormalization`: a model's input preprocessing as a layer saved with the model."""

from __future__ import annotations

from statcell_tf.backend import keras, tf

METHODS = ("none", "affine", "max", "minmax", "mode")


@keras.saving.register_keras_serializable(package="statcell_tf")
class InputNormalization(keras.layers.Layer):
    """Turn images as they are on disk into what the model was trained on.

    The model owns this layer (it is saved in ``.keras`` and applied by every SavedModel
    endpoint), and the training pipeline applies the same layer to whole batches, so images
    are normalised by one implementation everywhere. Statistics are per image and channel,
    over every spatial axis (2D and 3D).

    Args:
        method: str. ``"none"``; ``"affine"``: ``(x − offset) · scale`` per channel (cytoself:
            fixed on the training split); ``"max"``: divide by max(|min|, |max|) (VAE+, Sect.
            4.1); ``"minmax"``: to [0, 1]; ``"mode"``: subtract the histogram mode (the
            background), clip at 0, divide by the maximum (Statistical Cell §6.1.2). Constant
            channels become zeros. Same results as `statcell_tf.data.preprocess`.
        offset: list of float or None. Per-channel offsets (``"affine"``).
        scale: list of float or None. Per-channel scales (``"affine"``).
        bins: int. Histogram bins of ``"mode"``. Defaults to 256.

    Call arguments:
        images: tensor (B, ..., C) of any real dtype (e.g. raw uint16 crops).

    Returns:
        float32 tensor of the same shape.
    """

    def __init__(self, method: str = "none", offset=None, scale=None, bins: int = 256, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")
        if method == "affine" and (offset is None or scale is None or len(offset) != len(scale)):
            raise ValueError(f"`affine` needs `offset` and `scale` of one length. Received: offset={offset}, scale={scale}")
        self.method = method
        self.offset = None if offset is None else [float(v) for v in offset]
        self.scale = None if scale is None else [float(v) for v in scale]
        self.bins = int(bins)

    def call(self, images):
        x = tf.cast(images, tf.float32)
        if self.method == "none":
            return x
        if self.method == "affine":
            return (x - tf.constant(self.offset, tf.float32)) * tf.constant(self.scale, tf.float32)
        rows = _Rows(x)
        lo, hi = rows.reduce(tf.reduce_min), rows.reduce(tf.reduce_max)  # (B, C)
        if self.method == "max":
            out = _safe_divide(rows.values, rows.spread(tf.maximum(tf.abs(lo), tf.abs(hi))), rows.spread(hi > lo))
        elif self.method == "minmax":
            out = _safe_divide(rows.values - rows.spread(lo), rows.spread(hi - lo), rows.spread(hi > lo))
        else:
            mode = _histogram_mode(x, rows.keep(lo), rows.keep(hi), self.bins)  # (B, 1, ..., 1, C)
            shifted = _Rows(tf.nn.relu(x - mode))
            peak = shifted.reduce(tf.reduce_max)
            out = _safe_divide(shifted.values, shifted.spread(peak), shifted.spread((peak > 0) & (hi > lo)))
        return rows.restore(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "method": self.method, "offset": self.offset, "scale": self.scale,
                "bins": self.bins}


def _safe_divide(numerator, denominator, valid):
    """numerator / denominator where `valid`, else 0: one pass (`divide_no_nan` gives 0 for a
    0 denominator), ~3× cheaper than selecting between two divided copies."""
    return tf.math.divide_no_nan(numerator, tf.where(valid, denominator, tf.zeros_like(denominator)))


class _Rows:
    """(B, ..., W, C) images seen as rows of W·C contiguous values, (B, D·H, W·C).

    Per image-channel reductions and broadcasts are done on rows: reduce over the rows and
    then over W, and spread a (B, C) value over a row (tiled W times) before broadcasting it
    over the rows. Same values as reducing over the spatial axes and broadcasting (B, 1, 1, C)
    directly, 2–3.5× faster on a CPU (reductions and broadcasts whose innermost axis is
    C = 2 wide do not vectorise).
    """

    def __init__(self, x):
        self.shape = tf.shape(x)
        self.static_shape = x.shape
        self.n, self.width, self.channels = self.shape[0], self.shape[-2], self.shape[-1]
        self.rank = tf.rank(x)
        self.values = tf.reshape(x, [self.n, -1, self.width * self.channels])

    def reduce(self, fn):
        """(B, C) reduction of every image-channel with `fn` (tf.reduce_min / tf.reduce_max)."""
        return fn(tf.reshape(fn(self.values, axis=1), [self.n, self.width, self.channels]), axis=1)

    def spread(self, value):
        """(B, C) → (B, 1, W·C): broadcastable against `values`."""
        return tf.reshape(tf.tile(value[:, None, :], [1, self.width, 1]), [self.n, 1, -1])

    def keep(self, value):
        """(B, C) → (B, 1, ..., 1, C): broadcastable against the images."""
        return tf.reshape(value, tf.concat([[self.n], tf.ones([self.rank - 2], tf.int32), [self.channels]], 0))

    def restore(self, rows):
        out = tf.reshape(rows, self.shape)
        out.set_shape(self.static_shape)
        return out


def _histogram_mode(x, lo, hi, bins: int):
    """Per image-channel mean of the values in the fullest of `bins` bins over [lo, hi]."""
    shape = tf.shape(x)
    n, channels = shape[0], shape[-1]
    values = tf.reshape(x, [n, -1, channels])  # (B, P, C)
    lo, hi = tf.reshape(lo, [n, 1, channels]), tf.reshape(hi, [n, 1, channels])
    width = tf.where(hi > lo, (hi - lo) / bins, tf.ones_like(hi))
    index = tf.minimum(tf.cast(tf.math.floor((values - lo) / width), tf.int32), bins - 1)
    offsets = (tf.range(n)[:, None, None] * channels + tf.range(channels)[None, None, :]) * bins
    keys = tf.reshape(index + offsets, [-1])
    size = n * channels * bins
    counts = tf.math.unsorted_segment_sum(tf.ones_like(keys, tf.float64), keys, size)
    sums = tf.math.unsorted_segment_sum(tf.cast(tf.reshape(values, [-1]), tf.float64), keys, size)
    counts, sums = tf.reshape(counts, [n, channels, bins]), tf.reshape(sums, [n, channels, bins])
    fullest = tf.argmax(counts, axis=2, output_type=tf.int32)[..., None]
    mode = tf.gather(sums, fullest, batch_dims=2) / tf.gather(counts, fullest, batch_dims=2)  # (B, C, 1)
    mode = tf.cast(tf.transpose(mode, [0, 2, 1]), tf.float32)  # (B, 1, C)
    return tf.reshape(mode, tf.concat([[n], tf.ones([tf.rank(x) - 2], tf.int32), [channels]], 0))
