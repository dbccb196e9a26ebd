"""Interpreting feature clusters by removing them before decoding (Kobayashi et al. 2022, Fig. 5).

For a set of local codes (one top-level feature cluster of the spectrum, or a single code),
the quantised local vectors that use those codes are zeroed before the decoder runs again;
the difference between the normal reconstruction and the one without the feature shows
where in the image that feature carries information (red in Fig. 5).

The zeroing itself is the model's job: this module takes a callable
``reconstruct_with_codes_removed(images, codes) -> reconstructions`` (the cytoself model
provides one), calls it once with no codes (the plain reconstruction) and once with the
feature's codes, and draws the panel.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from statcell_tf import atomic
from statcell_tf.cytoself.feature_spectrum import FeatureSpectrum, roman
from statcell_tf.errors import UserError

ReconstructFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def feature_codes(
    spectrum: FeatureSpectrum | None, feature: int | None = None, code: int | None = None
) -> np.ndarray:
    """The code indices one feature stands for.

    Args:
        spectrum: FeatureSpectrum or None. Needed for `feature`, and to range-check `code`.
        feature: int or None. Top-level feature cluster number (1..n, i..xi in the paper).
        code: int or None. A single code index.

    Returns:
        int64 array of code indices.
    """
    if (feature is None) == (code is None):
        raise UserError(f"give exactly one of --feature and --code. Received: feature={feature}, code={code}")
    if feature is not None:
        if spectrum is None:
            raise UserError("--feature needs the feature spectrum of the run. Received: none")
        return np.asarray(spectrum.cluster_codes(int(feature)), dtype=np.int64)
    if code < 0 or (spectrum is not None and code >= spectrum.num_codes):
        limit = "" if spectrum is None else f" in 0..{spectrum.num_codes - 1}"
        raise UserError(f"--code must be a code index{limit}. Received: {code}")
    return np.array([code], dtype=np.int64)


@dataclasses.dataclass
class FeatureRemoval:
    """Result of removing one feature from a batch of images.

    Attributes:
        images: array (n, H, W, C). Inputs.
        reconstructions: array (n, H, W, C). Plain reconstructions.
        without_feature: array (n, H, W, C). Reconstructions with the feature's codes zeroed.
        codes: int array. The codes removed.
    """

    images: np.ndarray
    reconstructions: np.ndarray
    without_feature: np.ndarray
    codes: np.ndarray

    @property
    def difference(self) -> np.ndarray:
        """``reconstruction - reconstruction without the feature`` (n, H, W, C)."""
        return self.reconstructions - self.without_feature

    def mean_abs_difference(self, channel: int = 0) -> np.ndarray:
        """Mean |difference| per image in one channel (n,)."""
        return np.abs(self.difference[..., channel]).mean(axis=(1, 2))


def remove_feature(
    images: np.ndarray, reconstruct_with_codes_removed: ReconstructFn, codes: Sequence[int]
) -> FeatureRemoval:
    """Reconstruct `images` with and without the given codes.

    Args:
        images: array (n, H, W, C).
        reconstruct_with_codes_removed: callable ``(images, codes) -> reconstructions``; an
            empty `codes` must give the plain reconstruction.
        codes: sequence of int. Codes to zero.

    Returns:
        FeatureRemoval.
    """
    images = np.asarray(images, dtype=np.float32)
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    plain = np.asarray(reconstruct_with_codes_removed(images, np.zeros(0, dtype=np.int64)), dtype=np.float32)
    ablated = np.asarray(reconstruct_with_codes_removed(images, codes), dtype=np.float32)
    if plain.shape != ablated.shape or plain.shape[0] != images.shape[0]:
        raise ValueError(
            f"reconstruct_with_codes_removed returned shapes {plain.shape} and {ablated.shape} "
            f"for {images.shape[0]} images"
        )
    return FeatureRemoval(images, plain, ablated, codes)


def _normalise(picture: np.ndarray) -> np.ndarray:
    low, high = np.percentile(picture, [0.5, 99.5])
    if high <= low:
        return np.zeros_like(picture)
    return np.clip((picture - low) / (high - low), 0.0, 1.0)


def difference_overlay(base: np.ndarray, difference: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Grey image with |difference| in red: RGB (H, W, 3) in [0, 1].

    Args:
        base: array (H, W). Image drawn in grey.
        difference: array (H, W). Signed difference; its magnitude sets the red intensity.
        scale: float or None. |difference| mapped to full red; None = its max over the image.
    """
    grey = _normalise(np.asarray(base, dtype=np.float64))
    magnitude = np.abs(np.asarray(difference, dtype=np.float64))
    scale = float(magnitude.max()) if scale is None else float(scale)
    alpha = magnitude / scale if scale > 0 else np.zeros_like(magnitude)
    alpha = np.clip(alpha, 0.0, 1.0)
    rgb = np.repeat(grey[..., None] * 0.7, 3, axis=-1)
    red = np.array([1.0, 0.0, 0.0])
    return np.clip(rgb * (1 - alpha[..., None]) + red * alpha[..., None], 0.0, 1.0)


def plot_feature_removal(
    removal: FeatureRemoval,
    path: str | os.PathLike,
    title: str = "",
    captions: Sequence[str] | None = None,
    channel: int = 0,
) -> None:
    """Panel per image: original, reconstruction, without feature, difference in red (Fig. 5).

    Args:
        removal: FeatureRemoval.
        path: str or PathLike. PNG destination.
        title: str. Figure title.
        captions: sequence of str or None. One caption per image (e.g. protein name).
        channel: int. Channel shown (0 = protein). Defaults to 0.
    """
    from statcell_tf import figures

    count = removal.images.shape[0]
    difference = removal.difference[..., channel]
    scale = float(np.abs(difference).max())  # one scale for the whole panel: rows compare
    headers = ["original", "reconstruction", "without feature", "difference (red)"]
    fig, axes = figures.new_figure(count, 4, panel=(1.6, 1.6), figsize=(6.8, 1.6 * count + 1.0))
    stacks = (removal.images, removal.reconstructions, removal.without_feature)
    low = min(float(np.min(stack[..., channel])) for stack in stacks)
    high = max(float(np.max(stack[..., channel])) for stack in stacks)
    for row in range(count):
        for column, stack in enumerate(stacks):  # one intensity range for every image of the figure
            axes[row, column].imshow(stack[row, ..., channel], cmap="gray", vmin=low, vmax=max(high, low + 1e-12))
        axes[row, 3].imshow(difference_overlay(removal.reconstructions[row, ..., channel], difference[row], scale))
        for column in range(4):
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if row == 0:
                axes[row, column].set_title(headers[column])
        if captions is not None:
            axes[row, 0].set_ylabel(str(captions[row]))
    fig.supxlabel(f"grey: intensity in [{low:.3g}, {high:.3g}] for all images; red: |difference| up to {scale:.3g}",
                  fontsize=7)
    figures.suptitle(fig, (title + " " if title else "") + "(Fig. 5)")
    atomic.save_figure(path, fig)


def feature_title(feature: int | None, code: int | None, codes: np.ndarray, protein: str = "") -> str:
    """Human-readable figure title for a removed feature."""
    what = f"feature cluster {roman(feature)} ({len(codes)} codes)" if feature is not None else f"code {code}"
    return f"{protein}: without {what}" if protein else f"without {what}"
