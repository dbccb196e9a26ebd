"""Latent interpolation between phenotypes (Lafarge et al. 2019, Fig. 3): the ``interpolate`` command's math."""

from __future__ import annotations

import numpy as np


def closest_to_mean(embeddings: np.ndarray) -> int:
    """Index of the row closest (Euclidean) to the mean row: the compound's "typical" cell."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(embeddings) == 0:
        raise ValueError("no embeddings to choose from")
    return int(np.argmin(((embeddings - embeddings.mean(axis=0)) ** 2).sum(axis=1)))


def feature_shift_path(source: np.ndarray, target: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings that move `source` to `target` by shifting the most different features first.

    Features are ranked by |target − source| (largest first); frame k of ``steps + 1``
    takes the target's value for the first round(k·D/steps) of them and keeps the source's
    for the rest (Fig. 3: "each interpolation step is a shift of features with highest
    absolute difference w.r.t. the target features"). Frame 0 is the source, the last the
    target.

    Returns:
        (path (steps + 1, D), shifted (steps + 1,) number of features taken from the target).
    """
    source = np.asarray(source, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if source.shape != target.shape:
        raise ValueError(f"source and target differ in size: {source.shape} vs {target.shape}")
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1. Received: steps={steps}")
    order = np.argsort(-np.abs(target - source), kind="stable")
    counts = np.rint(np.arange(steps + 1) * len(source) / steps).astype(int)
    path = np.repeat(source[None], steps + 1, axis=0)
    for k, count in enumerate(counts):
        path[k, order[:count]] = target[order[:count]]
    return path, counts


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of `a` with the vector (or matching rows) `b`."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.asarray(b, dtype=np.float64)
    norm = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return (a * b).sum(axis=-1) / norm
