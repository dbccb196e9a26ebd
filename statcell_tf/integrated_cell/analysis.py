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
    from statcell_tf import figures

    k = len(class_names)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = matrix / np.maximum(rows, 1)
    size = 0.42 * k + 2.2
    figure, axes = figures.new_figure(figsize=(size + 1.0, size))
    axis = axes[0, 0]
    image = axis.imshow(fractions, cmap=figures.FRACTION, vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                colour = "white" if fractions[i, j] > 0.5 else "black"
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6, color=colour)
    names = [str(n).replace("_", " ") for n in class_names]
    axis.set_xticks(range(k), names, rotation=60, ha="right", rotation_mode="anchor")
    axis.set_yticks(range(k), names)
    axis.set_xlabel("predicted structure")
    axis.set_ylabel("true structure")
    figure.colorbar(image, ax=axis, label="fraction of the true structure's cells", shrink=0.8)
    figures.suptitle(figure, (title + "; " if title else "") + "numbers: cells (Table 1)")
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
    from statcell_tf import figures

    integrated = np.asarray(integrated)
    if integrated.ndim == 4:
        integrated = integrated[..., 0]
    reference = np.asarray(reference, "float32")
    panels = [(name, integrated[k]) for k, name in enumerate(class_names)]
    if observed is not None:
        panels.append((f"observed: {observed_name}" if observed_name else "observed", np.asarray(observed)))
    images = [np.concatenate([reference, structure[..., None]], axis=-1) for _, structure in panels]
    scale = figures.display_range(images, ("membrane", "dna", "structure"), of="this cell and its predicted structures")
    rows = [images, images]
    subsets = [[(0, 1, 2)] * len(images), [(2,)] * len(images)]
    figure = figures.image_grid(rows, scale, ["on the cell", "structure alone"],
                                [name.replace("_", " ") for name, _ in panels], channels=subsets,
                                title=(title + " " if title else "") + "(Fig. 3, S6b)")
    return figure


def reconstruction_figure(images: np.ndarray, reconstructions: np.ndarray, title: str = ""):
    """Fig. S1/S2: inputs (top) and reconstructions (bottom) as composites, one column per cell."""
    from statcell_tf import figures

    images, reconstructions = np.asarray(images, "float32"), np.asarray(reconstructions, "float32")
    names = ("membrane", "dna", "structure")[: images.shape[-1]]
    scale = figures.display_range(list(images), names, of="the input cells")
    return figures.image_grid([list(images), list(reconstructions)], scale, ["input", "reconstruction"],
                              title=(title + " " if title else "") + "(Fig. S1/S2)")
