"""UMAP localisation atlas (Kobayashi et al. 2022, Fig. 2 and methods "Dimensionality reduction").

The paper runs umap-learn with its defaults (Euclidean metric, 15 neighbours, min_dist 0.1) on
the flattened global representation of every test image. `compute_umap` does the same;
``pca_components`` optionally projects high-dimensional vectors onto their leading principal
components first (a speed-up for very large sets, off by default, not in the paper).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.errors import UserError

OTHERS = "others"
MAX_LEGEND_CLASSES = 30


def _pca(vectors: np.ndarray, components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    components = min(components, vectors.shape[0], vectors.shape[1])
    return PCA(n_components=components, random_state=seed).fit_transform(vectors)


def _import_umap():
    """Import umap-learn without letting it import TensorFlow.

    umap-learn's ``__init__`` imports TensorFlow for ParametricUMAP, which we never use; when
    TensorFlow is not loaded yet, that import is made to fail (umap-learn catches it), saving
    seconds for commands that only read an embeddings file.
    """
    import sys

    if "umap" in sys.modules or "tensorflow" in sys.modules:
        import umap

        return umap
    sys.modules["tensorflow"] = None  # makes `import tensorflow` raise ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import umap
    finally:
        del sys.modules["tensorflow"]
    return umap


def compute_umap(
    vectors: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int | None = 0,
    pca_components: int | None = None,
) -> np.ndarray:
    """2-D UMAP coordinates of one vector per row.

    Args:
        vectors: array (n, ...). Flattened to (n, d) (e.g. global embeddings 4×4×576).
        n_neighbors: int. UMAP neighbourhood size; capped at n - 1 for tiny sets.
            Defaults to 15 (paper).
        min_dist: float. Defaults to 0.1 (paper).
        metric: str. Defaults to ``"euclidean"`` (paper).
        seed: int or None. Random state; an int makes the result reproducible (and UMAP
            single-threaded). Defaults to 0.
        pca_components: int or None. Project onto this many principal components before UMAP
            when d is larger. Defaults to None (no PCA, as the paper).

    Returns:
        float32 array (n, 2).
    """
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    n = vectors.shape[0]
    if n < 3:
        raise UserError(f"UMAP needs at least 3 vectors. Received: {n}")
    if not np.all(np.isfinite(vectors)):
        raise UserError("UMAP input contains NaN or infinite values. Received: non-finite embeddings")
    if pca_components is not None and vectors.shape[1] > pca_components:
        vectors = _pca(vectors, pca_components, 0 if seed is None else seed)
    umap = _import_umap()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and friends
        reducer = umap.UMAP(
            n_neighbors=max(2, min(n_neighbors, n - 1)),
            min_dist=min_dist,
            metric=metric,
            random_state=seed,
            n_components=2,
        )
        coords = reducer.fit_transform(vectors)
    return np.asarray(coords, dtype=np.float32)


def mean_per_group(vectors: np.ndarray, keys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Average vectors over rows sharing a key (e.g. one vector per protein).

    Args:
        vectors: array (n, ...). Flattened to (n, d).
        keys: sequence of length n.

    Returns:
        ``(unique_keys (g,), means (g, d))`` in sorted key order.
    """
    vectors = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    keys = np.asarray(keys)
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(unique), vectors.shape[1]))
    np.add.at(sums, inverse, vectors)
    counts = np.bincount(inverse, minlength=len(unique))[:, None]
    return unique, (sums / counts).astype(np.float32)


def _label_strings(labels: Sequence) -> np.ndarray:
    series = pd.Series(list(labels), dtype=object)
    return series.where(series.notna() & (series.astype(str) != ""), OTHERS).astype(str).to_numpy()


def plot_umap(
    coords: np.ndarray,
    labels: Sequence,
    path: str | os.PathLike,
    title: str = "UMAP",
    point_size: float | None = None,
) -> None:
    """Scatter plot of UMAP coordinates coloured by class, written atomically to `path`.

    Missing/empty labels and ``"others"`` are drawn in light grey underneath. A legend is
    drawn for at most 30 classes.

    Args:
        coords: array (n, 2).
        labels: sequence of length n.
        path: str or PathLike. PNG destination.
        title: str. Defaults to ``"UMAP"``.
        point_size: float or None. Marker area; None picks one from n.
    """
    from statcell_tf import figures

    coords = np.asarray(coords)
    labels = _label_strings(labels)
    if len(labels) != len(coords):
        raise UserError(f"plot_umap: {len(labels)} labels for {len(coords)} points")
    classes = [c for c in np.unique(labels) if c != OTHERS]
    if point_size is None:
        point_size = float(np.clip(3000.0 / max(len(coords), 1), 1.0, 30.0))
    colours = figures.category_colours(classes)
    fig, axes = figures.new_figure(panel=(6.0, 5.2))
    ax = axes[0, 0]
    others = labels == OTHERS
    if others.any():
        ax.scatter(*coords[others].T, s=point_size, c=figures.OTHERS_COLOUR, label=OTHERS, linewidths=0, zorder=0)
    for name in classes:
        rows = labels == name
        ax.scatter(*coords[rows].T, s=point_size, color=colours[name], label=name, linewidths=0, alpha=0.8, zorder=1)
    ax.set_xlabel("UMAP 1 (a.u.)")
    ax.set_ylabel("UMAP 2 (a.u.)")
    ax.set_title(figures.wrap(f"{title}; n = {len(coords)} images (Fig. 2)", 5.5, figures.HOUSE["axes.titlesize"]))
    if len(classes) <= MAX_LEGEND_CLASSES:
        legend = fig.legend(
            loc="outside right upper",
            frameon=False,
            markerscale=max(1.0, 20.0 / point_size) ** 0.5,
            ncols=1 + len(classes) // 20,
        )
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)
    atomic.save_figure(path, fig)
