"""The cytoself clustering score (Kobayashi et al. 2022, methods "Clustering score", Fig. 6).

The paper defines, for points ``x_i`` partitioned into ground-truth classes ``C_j``::

    Γ = σ*({μ*(C_j)}_j) / μ*({σ*(C_j)}_j)

with ``μ*`` a robust mean (median) and ``σ*`` a "robust standard deviation (computed using
medians)": the spread of the class centres divided by the typical class spread. The paper
does not spell out ``σ*``; the authors' PyTorch port (royerlab/cytoself,
``analysis/utils/cluster_score.py`` and its callers) computes, on the 2-D UMAP:

* class centre = coordinate-wise median of the class's points;
* class size = median Euclidean distance of its points to that centre (this is ``σ*(C_j)``);
* numerator = plain (population) standard deviation of all centre coordinates pooled
  together (x and y of every class in one array);
* score = numerator / median of the class sizes.

We follow the port by default (``spread="std"``), because it is the only executable
definition and it is what reproduces scores on the paper's scale. ``spread="robust"``
replaces the numerator by a median-based robust standard deviation of the pooled centre
coordinates (1.4826 × median absolute deviation from their median, equal to the standard
deviation for Gaussian data), the literal reading of the paper's ``σ*``. The sizes are the
same in both. The port uses only the first two coordinates for the sizes; we use all ``m``
coordinates (identical for 2-D UMAPs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from statcell_tf.errors import UserError

_MAD_TO_STD = 1.482602218505602  # 1 / Φ⁻¹(3/4): MAD of a Gaussian × this = its σ


def class_centroids_and_sizes(
    coords: np.ndarray, labels: Sequence, exclude: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median centre and median distance-to-centre of each class.

    Args:
        coords: array (n, m). Points, e.g. UMAP coordinates.
        labels: sequence of length n. Ground-truth class of each point.
        exclude: sequence or None. Class names left out (e.g. ``["others"]`` for proteins
            without an exclusive annotation). Defaults to None.

    Returns:
        ``(classes (k,), centroids (k, m), sizes (k,))``, classes sorted.
    """
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels)
    if coords.ndim != 2:
        raise UserError(f"clustering score: coords must be (n, m). Received: shape={coords.shape}")
    if labels.shape != (coords.shape[0],):
        raise UserError(
            "clustering score: need one label per point. "
            f"Received: {labels.shape[0] if labels.ndim else 0} labels for {coords.shape[0]} points"
        )
    keep = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        keep &= ~np.isin(labels, np.asarray(list(exclude), dtype=labels.dtype))
    classes = np.unique(labels[keep])
    centroids = np.empty((len(classes), coords.shape[1]))
    sizes = np.empty(len(classes))
    for j, name in enumerate(classes):
        points = coords[labels == name]
        centroids[j] = np.median(points, axis=0)
        sizes[j] = np.median(np.linalg.norm(points - centroids[j], axis=1))
    return classes, centroids, sizes


def clustering_score(
    coords: np.ndarray,
    labels: Sequence,
    exclude: Sequence | None = None,
    spread: str = "std",
) -> float:
    """Spread of class centres ÷ median class size (higher = tighter, better separated).

    Args:
        coords: array (n, m). Points (the paper: 2-D UMAP of the embeddings).
        labels: sequence of length n. Ground-truth class per point.
        exclude: sequence or None. Class names ignored (e.g. ``["others"]``). Defaults to None.
        spread: str. ``"std"`` (authors' code: population std of all centre coordinates) or
            ``"robust"`` (1.4826 × MAD of the centre coordinates). Defaults to ``"std"``.

    Returns:
        float. The score; ``inf`` when every class collapses to a point.
    """
    if spread not in ("std", "robust"):
        raise UserError(f"clustering score: spread must be 'std' or 'robust'. Received: spread={spread!r}")
    classes, centroids, sizes = class_centroids_and_sizes(coords, labels, exclude)
    if len(classes) < 2:
        raise UserError(
            "clustering score needs at least 2 classes (after exclusions). "
            f"Received: classes={list(classes)}"
        )
    pooled = centroids.ravel()
    if spread == "std":
        between = float(np.std(pooled))
    else:
        between = float(_MAD_TO_STD * np.median(np.abs(pooled - np.median(pooled))))
    within = float(np.median(sizes))
    if within == 0.0:
        return float("inf")
    return between / within
