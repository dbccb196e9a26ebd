"""Embedding perturbed cells in trained Statistical Cell latent spaces (Donovan-Maiye et al. 2022, §4.5, Fig. 6).

Treated and untreated cells are embedded (posterior means) in the reference latent space
and, per structure, in the conditional target latent space. Per group the centroid shift
(treated − untreated) is tested with a label-permutation test of the centroid distance,
Bonferroni-corrected over all tests. Figures: the two top dimensions (ranked by mean |μ| of
the untreated cells) with the shift as an arrow (Fig. 6b), and cells sampled at fixed
intervals along the shift direction (Fig. 6c).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.naming import file_stem


def centroid_shift(untreated: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """mean(treated) − mean(untreated), (latent_dim,)."""
    return np.mean(treated, axis=0) - np.mean(untreated, axis=0)


def permutation_test(untreated: np.ndarray, treated: np.ndarray, n_permutations: int = 1000, seed: int = 0):
    """Centroid distance and its permutation p-value (labels shuffled; add-one estimate).

    Returns:
        (distance, p_value) with p = (1 + #{permuted distance >= observed}) / (1 + n).
    """
    untreated = np.asarray(untreated, "float64")
    treated = np.asarray(treated, "float64")
    observed = float(np.linalg.norm(centroid_shift(untreated, treated)))
    pooled = np.concatenate([untreated, treated])
    n_a = len(untreated)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(int(n_permutations)):
        order = rng.permutation(len(pooled))
        a, b = pooled[order[:n_a]], pooled[order[n_a:]]
        if np.linalg.norm(b.mean(0) - a.mean(0)) >= observed - 1e-12:
            exceed += 1
    return observed, (1 + exceed) / (1 + int(n_permutations))


def bonferroni(p_values) -> np.ndarray:
    """Bonferroni-adjusted p-values: min(1, p · m)."""
    p_values = np.asarray(p_values, "float64")
    return np.minimum(1.0, p_values * max(1, p_values.size))


def project(z: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Scalar position of each row of `z` along `direction` from `origin` (unit = |direction|)."""
    norm2 = float(np.dot(direction, direction))
    if norm2 == 0:
        return np.zeros(len(z))
    return (np.asarray(z) - origin) @ direction / norm2


def cells_along_shift(positions: np.ndarray, n: int = 12) -> np.ndarray:
    """Indices of cells nearest to `n` evenly spaced points between the 5th and 95th
    percentile of their positions along the shift (Fig. 6c), without repeats."""
    positions = np.asarray(positions, "float64")
    if len(positions) == 0:
        return np.zeros(0, int)
    targets = np.linspace(np.percentile(positions, 5), np.percentile(positions, 95), min(n, len(positions)))
    chosen: list[int] = []
    for t in targets:
        order = np.argsort(np.abs(positions - t), kind="stable")
        for candidate in order:
            if int(candidate) not in chosen:
                chosen.append(int(candidate))
                break
    return np.asarray(chosen)


def _scatter(ax, z_u, z_t, dims, shift):
    from statcell_tf import figures

    ax.scatter(z_u[:, dims[0]], z_u[:, dims[1]], s=8, color=figures.fixed_colour("untreated"), alpha=0.5)
    ax.scatter(z_t[:, dims[0]], z_t[:, dims[1]], s=8, color=figures.TREATED, alpha=0.7)
    start = z_u.mean(0)
    ax.annotate("", xy=(start[dims[0]] + shift[dims[0]], start[dims[1]] + shift[dims[1]]),
                xytext=(start[dims[0]], start[dims[1]]), arrowprops={"color": "red", "width": 1.5, "headwidth": 6})
    ax.set_xlabel(f"μ{dims[0]}")
    ax.set_ylabel(f"μ{dims[1]}")


def perturbation_tests(groups: list[dict], n_permutations: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Permutation test per group, Bonferroni over all groups.

    Args:
        groups: dicts with keys ``space`` (reference/target), ``structure``, ``treatment``,
            ``untreated`` (n, d) and ``treated`` (m, d) embeddings.

    Returns:
        DataFrame: space, structure, treatment, n_untreated, n_treated, shift_norm, p_value,
        p_bonferroni, significant (p_bonferroni < 0.05).
    """
    rows = []
    for i, group in enumerate(groups):
        distance, p = permutation_test(group["untreated"], group["treated"], n_permutations, seed + i)
        rows.append({
            "space": group["space"],
            "structure": group["structure"],
            "treatment": group["treatment"],
            "n_untreated": len(group["untreated"]),
            "n_treated": len(group["treated"]),
            "shift_norm": distance,
            "p_value": p,
        })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_bonferroni"] = bonferroni(frame["p_value"].to_numpy())
        frame["significant"] = frame["p_bonferroni"] < 0.05
    return frame


def write_perturbation(
    groups: list[dict],
    out_dir: Path,
    n_permutations: int = 1000,
    seed: int = 0,
    n_images: int = 12,
) -> pd.DataFrame:
    """Tests (``perturbation_tests.csv``), embeddings (``embedding_<space>.csv``), Fig. 6b
    scatter (``fig6b_embedding.png``) and Fig. 6c strips (``fig6c_<space>_<structure>_<treatment>.png``).

    Each group may also carry ``images_untreated`` / ``images_treated`` (n, *spatial, C) and
    ``ids_untreated`` / ``ids_treated`` for the strips and the embedding tables.
    """
    from statcell_tf import figures
    from statcell_tf.statcell.latent_stats import channel_names, rank_dimensions

    out_dir = Path(out_dir)
    frame = perturbation_tests(groups, n_permutations, seed)
    atomic.write_csv(out_dir / "perturbation_tests.csv", frame)
    if not groups:
        return frame
    figure, axes = figures.panel_grid(len(groups), panel=(2.8, 2.6), share=False)
    tables = {}
    for ax, group, (_, result) in zip(axes, groups, frame.iterrows()):
        z_u, z_t = np.asarray(group["untreated"]), np.asarray(group["treated"])
        dims = list(rank_dimensions(z_u)[0][:2]) if z_u.shape[1] > 1 else [0, 0]
        shift = centroid_shift(z_u, z_t)
        _scatter(ax, z_u, z_t, dims, shift)
        ax.set_title(f"{group['space']}: {str(group['structure']).replace('_', ' ')}, {group['treatment']}\n"
                     f"n = {len(z_u)} + {len(z_t)}, p (Bonferroni) = {result['p_bonferroni']:.3g}", fontsize=8)
        for kind, z in (("untreated", z_u), ("treated", z_t)):
            ids = group.get(f"ids_{kind}", np.arange(len(z)))
            table = pd.DataFrame(z, columns=[f"mu_{d}" for d in range(z.shape[1])])
            table.insert(0, "CellId", list(ids))
            table.insert(1, "structure", group["structure"])
            table.insert(2, "treatment", "untreated" if kind == "untreated" else group["treatment"])
            tables.setdefault(group["space"], []).append(table)
        if "images_untreated" in group and "images_treated" in group:
            images = np.concatenate([group["images_untreated"], group["images_treated"]])
            positions = project(np.concatenate([z_u, z_t]), z_u.mean(0), shift)
            chosen = cells_along_shift(positions, n_images)
            labels = ["U" if i < len(z_u) else "T" for i in chosen]
            names = group.get("channel_names") or channel_names(images.shape[-1])
            scale = figures.display_range(images[chosen], names, of="the cells shown")
            strip = figures.image_grid(
                [[images[i] for i in chosen]], scale,
                col_labels=[f"{'untreated' if lab == 'U' else 'treated'}\n{positions[i]:.2f}" for lab, i in zip(labels, chosen)],
                title=f"{group['space']} {group['structure']}: cells along the shift untreated → {group['treatment']}; "
                      "column: group, position along the red arrow (Fig. 6c)",
            )
            name = f"fig6c_{group['space']}_{file_stem(group['structure'])}_{file_stem(group['treatment'])}.png"
            atomic.save_figure(out_dir / name, strip)
    from matplotlib.lines import Line2D

    figure.legend(handles=[Line2D([], [], ls="", marker="o", color=figures.fixed_colour("untreated"), label="untreated"),
                           Line2D([], [], ls="", marker="o", color=figures.TREATED, label="treated"),
                           Line2D([], [], color="red", label="centroid shift")],
                  loc="outside lower center", ncols=3, frameon=False)
    figures.suptitle(figure, "cells in each latent space (Fig. 6b); axes: the two top-ranked dimensions of each "
                    "panel's untreated cells (they differ per panel)")
    atomic.save_figure(out_dir / "fig6b_embedding.png", figure)
    for space, parts in tables.items():
        atomic.write_csv(out_dir / f"embedding_{space}.csv", pd.concat(parts, ignore_index=True))
    return frame
