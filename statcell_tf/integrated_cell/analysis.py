"""Read-outs of a trained Integrated Cell: structure classification (Table S9) and the
compartments of integrated structures (Fig. 3, Algorithm 3).

Pure NumPy / scikit-image / matplotlib; the model runs in the commands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


# ----- classification (Table S9) -----------------------------------------------------------


def confusion_matrix(true_labels, predicted_labels, num_classes: int) -> np.ndarray:
    """(K, K) counts; rows are true structures, columns predictions."""
    true_labels = np.asarray(true_labels, "int64")
    predicted_labels = np.asarray(predicted_labels, "int64")
    matrix = np.zeros((num_classes, num_classes), "int64")
    np.add.at(matrix, (true_labels, predicted_labels), 1)
    return matrix


def confusion_frame(matrix: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """The confusion matrix as a table with structure names on both axes."""
    frame = pd.DataFrame(matrix, index=list(class_names), columns=list(class_names))
    frame.index.name = "true \\ predicted"
    return frame


def per_class_accuracy(matrix: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Per structure: cells, correctly classified cells, accuracy (recall); NaN without cells."""
    cells = matrix.sum(axis=1)
    correct = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(cells > 0, correct / np.maximum(cells, 1), np.nan)
    return pd.DataFrame({"structure": list(class_names), "cells": cells, "correct": correct, "accuracy": accuracy})


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], title: str = ""):
    """Heat map of the row-normalised confusion matrix with the counts written in."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = len(class_names)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = matrix / np.maximum(rows, 1)
    figure, axis = plt.subplots(figsize=(1.0 + 0.55 * k, 1.0 + 0.5 * k))
    axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                colour = "white" if fractions[i, j] > 0.5 else "black"
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    axis.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(k), class_names, fontsize=7)
    axis.set_xlabel("predicted structure")
    axis.set_ylabel("true structure")
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


# ----- compartments of integrated structures ------------------------------------------------


def _otsu_mask(channel: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu

    channel = np.asarray(channel, "float32")
    if float(channel.max()) <= float(channel.min()):
        return np.zeros(channel.shape, bool)
    return channel > threshold_otsu(channel)


def compartment_masks(membrane: np.ndarray, dna: np.ndarray, boundary_width: int | None = None) -> dict:
    """Masks of one cell from its reference channels (H, W), by Otsu thresholds.

    Args:
        membrane: (H, W) membrane channel.
        dna: (H, W) DNA channel.
        boundary_width: int or None. Pixels by which the membrane mask is dilated; None =
            round(min(H, W) / 64) (0 at 32 px, 1 at 64 px, 4 at the paper's 256 px).

    Returns:
        dict with ``nucleus`` (DNA above threshold, holes filled), ``boundary`` (membrane
        above threshold, dilated: the plasma membrane) and ``cell`` (the filled membrane
        outline, or the boundary where it does not close, plus the nucleus).
    """
    from scipy import ndimage

    if boundary_width is None:
        boundary_width = int(round(min(np.shape(membrane)) / 64))

    nucleus = ndimage.binary_fill_holes(_otsu_mask(dna))
    membrane_mask = _otsu_mask(membrane)
    boundary = ndimage.binary_dilation(membrane_mask, iterations=boundary_width) if boundary_width else membrane_mask
    cell = ndimage.binary_fill_holes(boundary) | nucleus
    return {"nucleus": nucleus, "boundary": boundary, "cell": cell}


def intensity_fractions(structure: np.ndarray, masks: dict) -> dict:
    """Fraction of the structure channel's total intensity inside each mask, and each mask's
    share of the image area (the fraction a spatially uniform structure would get)."""
    structure = np.clip(np.asarray(structure, "float64"), 0, None)
    total = structure.sum()
    out = {}
    for name, mask in masks.items():
        out[f"{name}_fraction"] = float(structure[mask].sum() / total) if total > 0 else float("nan")
        out[f"{name}_area"] = float(mask.mean())
    return out


def integration_compartments(reference: np.ndarray, integrated: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Compartment fractions of every integrated structure of one cell.

    Args:
        reference: (H, W, 2) membrane and DNA of the cell.
        integrated: (K, H, W) or (K, H, W, 1) predicted structure channels (Algorithm 3).
        class_names: K structure names.

    Returns:
        One row per structure: nucleus/boundary/cell intensity fractions and mask areas.
    """
    masks = compartment_masks(reference[..., 0], reference[..., 1])
    integrated = np.asarray(integrated)
    if integrated.ndim == 4:
        integrated = integrated[..., 0]
    rows = [{"structure": name, **intensity_fractions(integrated[k], masks)} for k, name in enumerate(class_names)]
    return pd.DataFrame(rows)


def composite(membrane, dna, structure, reference_gain: float = 0.6) -> np.ndarray:
    """RGB image as in Fig. 3: membrane magenta, DNA cyan, structure yellow; (H, W, 3) in [0, 1]."""
    membrane, dna, structure = (np.clip(np.asarray(c, "float32"), 0, 1) for c in (membrane, dna, structure))
    rgb = reference_gain * (membrane[..., None] * [1, 0, 1] + dna[..., None] * [0, 1, 1])
    rgb = rgb + structure[..., None] * [1, 1, 0]
    return np.clip(rgb, 0, 1).astype("float32")


def integration_montage(
    reference: np.ndarray,
    integrated: np.ndarray,
    class_names: Sequence[str],
    observed: np.ndarray | None = None,
    observed_name: str | None = None,
    title: str = "",
):
    """Fig. 3 / S6b for one cell: top row composites of each predicted structure on the
    cell's reference channels (last column: the observed cell), bottom row the structure
    channels alone."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    integrated = np.asarray(integrated)
    if integrated.ndim == 4:
        integrated = integrated[..., 0]
    panels = [(name, integrated[k]) for k, name in enumerate(class_names)]
    if observed is not None:
        panels.append((f"observed: {observed_name}" if observed_name else "observed", observed))
    n = len(panels)
    figure, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.5), squeeze=False)
    for j, (name, structure) in enumerate(panels):
        axes[0, j].imshow(composite(reference[..., 0], reference[..., 1], structure))
        axes[1, j].imshow(structure, cmap="gray", vmin=0, vmax=max(float(structure.max()), 1e-6))
        axes[0, j].set_title(name, fontsize=7)
        for axis in axes[:, j]:
            axis.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def reconstruction_figure(images: np.ndarray, reconstructions: np.ndarray, title: str = ""):
    """Fig. S1/S2: inputs (top) and reconstructions (bottom) as composites, one column per cell."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def rgb(image):
        zero = np.zeros(image.shape[:2], "float32")
        structure = image[..., 2] if image.shape[-1] > 2 else zero
        return composite(image[..., 0], image[..., 1], structure)

    n = len(images)
    figure, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(rgb(images[j]))
        axes[1, j].imshow(rgb(reconstructions[j]))
        for axis in axes[:, j]:
            axis.set_axis_off()
    axes[0, 0].set_title("input", fontsize=7, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=7, loc="left")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
