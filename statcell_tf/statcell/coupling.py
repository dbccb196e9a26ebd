"""Coupling of a structure to the membrane and the nucleus (Donovan-Maiye et al. 2022, §4.4, §6.5).

Eq. 4: for cell i of structure s and reference channel r (membrane or DNA), the ratio of the
cell's ELBO under the target model to the mean ELBO of the same cell with channel r replaced
by channel r of other cells of the same structure:

    c_i^{rs} = ELBO([x_i^r, x_i^{r'}, x_i^s]) / mean_j ELBO([x_j^r, x_i^{r'}, x_i^s])

ELBOs are negative, so a structure that depends on channel r has c < 1 (its permuted ELBO is
worse) and an independent one c ≈ 1. We therefore also report the coupling strength
1 − c (what the authors' notebook computes; REFERENCE-NOTES.md): 0 = uncoupled, towards 1 =
strongly coupled. Eq. 5 averages the normalised difference of membrane and nucleus
strengths per structure and cell-cycle phase:

    d_s^p = mean_i (k_i^{ms} − k_i^{ns}) / (k_i^{ms} + k_i^{ns}),  k = 1 − c

so d → +1 for membrane-coupled structures and d → −1 for nucleus-coupled ones (the plain
ratios of Eq. 4 in Eq. 5 give the opposite sign; ``differential_from="ratio"`` does that).

Eq. 5 is a ratio of difference over sum, which the paper leaves undefined where the sum is
near zero. The Eq. 4 ratios are positive (both ELBOs are negative), but the strengths 1 − c
of a weakly coupled cell are noise around 0 and may be negative, and then (k_m − k_n) /
(k_m + k_n) explodes (k = (0.010, −0.009) gives 19). We therefore clip each term at 0 before
Eq. 5 (a channel whose swap *improves* the ELBO shows no coupling) and leave d undefined
(NaN) where k_m + k_n < `MIN_TOTAL_COUPLING`: a cell coupled to neither channel (e.g. the
blank control) has no relative coupling. With the clip every defined d lies in [−1, 1]. The
per-structure mean of Eq. 5 is taken over the defined cells only; ``summarise`` reports how
many cells were undefined (``n_undefined``). The mean strengths and ratios it reports are
not clipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic

CHANNELS = {"membrane": 0, "dna": 1}
DIFFERENTIAL_FROM = ("strength", "ratio")
# Eq. 5 is left undefined (NaN) where the clipped couplings sum to less than this.
MIN_TOTAL_COUPLING = 1e-3


# ----- the statistic -----------------------------------------------------------------------
def coupling_ratio(elbo_real, elbo_permuted) -> np.ndarray:
    """Eq. 4: ELBO(x_i) / mean over permutations of ELBO(x_i with channel r swapped).

    Args:
        elbo_real: (N,) ELBO of each unperturbed cell.
        elbo_permuted: (N,) mean permuted ELBO, or (N, P) one column per permutation.
    """
    elbo_real = np.asarray(elbo_real, "float64")
    elbo_permuted = np.asarray(elbo_permuted, "float64")
    if elbo_permuted.ndim == 2:
        elbo_permuted = elbo_permuted.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return elbo_real / elbo_permuted


def coupling_strength(elbo_real, elbo_permuted) -> np.ndarray:
    """1 − Eq. 4 (authors' notebook): 0 when swapping channel r changes nothing."""
    return 1.0 - coupling_ratio(elbo_real, elbo_permuted)


def differential_coupling(membrane, nucleus, tolerance: float = MIN_TOTAL_COUPLING) -> np.ndarray:
    """Per-cell normalised difference (m − n) / (m + n) of Eq. 5, always in [−1, 1] or NaN.

    Both terms are clipped at 0 first (a negative coupling strength is noise: swapping the
    channel did not lower the ELBO), and the result is NaN where the clipped m + n is below
    `tolerance` (coupled to neither channel: no relative coupling) or a term is not finite.

    Args:
        membrane: (N,) coupling of each cell to the membrane (strength 1 − c or ratio c).
        nucleus: (N,) coupling of each cell to the nucleus, same kind.
        tolerance: float. Smallest clipped m + n for which d is defined. Defaults to
            `MIN_TOTAL_COUPLING`.
    """
    membrane = np.clip(np.asarray(membrane, "float64"), 0.0, None)
    nucleus = np.clip(np.asarray(nucleus, "float64"), 0.0, None)
    total = membrane + nucleus
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total >= tolerance, (membrane - nucleus) / total, np.nan)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random donor index for each of n cells, never the cell itself (n >= 2)."""
    if n < 2:
        raise ValueError(f"a permutation needs at least 2 cells. Received: n={n}")
    shift = rng.integers(1, n, size=n)
    return (np.arange(n) + shift) % n


# ----- evaluation --------------------------------------------------------------------------
def elbo_function(model, n_samples: int = 10, weighted: bool = False):
    """A compiled ``batch -> (B,) ELBO`` of `model` averaged over `n_samples` posterior samples."""
    from statcell_tf.backend import tf

    @tf.function(reduce_retracing=True)
    def evaluate(batch):
        return model.elbo_per_cell(batch, n_samples=n_samples, weighted=weighted)

    return evaluate


def _elbo_of_images(evaluate, data, images, types, batch_size, evaluate_reference=None):
    out = []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        batch = data.batch_from_images(images[start:stop], types[start:stop])
        value = np.asarray(evaluate(batch))
        if evaluate_reference is not None:  # Eq. 2: ELBO(x_t | x_r, t) + ELBO(x_r)
            value = value + np.asarray(evaluate_reference({"image": batch["reference"]}))
        out.append(value)
    return np.concatenate(out)


def per_cell_coupling(
    model,
    data,
    rows,
    n_permutations: int = 10,
    n_samples: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    weighted: bool = False,
    progress=None,
    reference_model=None,
) -> pd.DataFrame:
    """Eq. 4 for every cell in `rows` and both reference channels.

    Donor cells are drawn among the evaluated cells of the same structure (a random
    derangement per permutation). Per cell and channel the ELBO of the cell and the mean of
    `n_permutations` permuted ELBOs are kept.

    Args:
        model: target `ConditionalBetaVAE`.
        data: `StatcellData` of the target role.
        rows: row indices to evaluate (typically the test split).
        n_permutations: permutations per cell and channel (the notebook used 100).
        n_samples: posterior samples per ELBO (paper: 10).
        batch_size: evaluation batch size.
        seed: random seed of the donors.
        weighted: use the trained objective's ELBO (Eq. 3) instead of the unweighted one.
        progress: callable(iterable) -> iterable (progress bar) or None.
        reference_model: reference `ConditionalBetaVAE` or None. When given, the ELBO is the
            joint bound ELBO(x_t | x_r, t) + ELBO(x_r) of Eq. 2; by default it is the target
            model's conditional ELBO only, which leaves a structure that ignores the reference
            (the blank control) uncoupled: a chimeric reference lowers ELBO(x_r) for every
            structure alike.

    Returns:
        DataFrame: CellId, structure_name, cell_cycle_phase, elbo, elbo_permuted_<r>,
        ratio_<r> (Eq. 4), coupling_<r> (1 − Eq. 4) for r in membrane, dna, and
        differential (per-cell term of Eq. 5).
    """
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows, "int64")
    metadata = data.cells.metadata.iloc[rows].reset_index(drop=True)
    structures = metadata["structure_name"].astype(str).to_numpy()
    evaluate = elbo_function(model, n_samples, weighted)
    evaluate_reference = None
    if reference_model is not None:
        if tuple(reference_model.image_shape) != tuple(model.image_shape):
            raise ValueError(
                "the reference and target models must share an image shape. Received: "
                f"{tuple(reference_model.image_shape)} and {tuple(model.image_shape)}"
            )
        evaluate_reference = elbo_function(reference_model, n_samples, weighted)
    frames = []
    groups = sorted(set(structures))
    for structure in progress(groups) if progress else groups:
        local = np.flatnonzero(structures == structure)
        group_rows = rows[local]
        images = data.images(group_rows)
        types = data.type_index[group_rows]
        frame = metadata.iloc[local][[c for c in ("CellId", "structure_name", "cell_cycle_phase") if c in metadata]]
        frame = frame.reset_index(drop=True)
        real = _elbo_of_images(evaluate, data, images, types, batch_size, evaluate_reference)
        frame["elbo"] = real
        for name, channel in CHANNELS.items():
            if len(local) < 2:
                frame[f"elbo_permuted_{name}"] = np.nan
                continue
            permuted = np.zeros((len(local), n_permutations))
            for k in range(n_permutations):
                donors = derangement(len(local), rng)
                swapped = images.copy()
                swapped[..., channel] = images[donors][..., channel]
                permuted[:, k] = _elbo_of_images(evaluate, data, swapped, types, batch_size, evaluate_reference)
            frame[f"elbo_permuted_{name}"] = permuted.mean(axis=1)
        for name in CHANNELS:
            frame[f"ratio_{name}"] = coupling_ratio(real, frame[f"elbo_permuted_{name}"])
            frame[f"coupling_{name}"] = 1.0 - frame[f"ratio_{name}"]
        frame["differential"] = differential_coupling(frame["coupling_membrane"], frame["coupling_dna"])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def with_differential(per_cell: pd.DataFrame, differential_from: str = "strength") -> pd.DataFrame:
    """A copy of `per_cell` whose ``differential`` column is Eq. 5 of the strengths 1 − c
    (``"strength"``) or of the Eq. 4 ratios c (``"ratio"``), when those columns exist."""
    if differential_from not in DIFFERENTIAL_FROM:
        raise ValueError(f"`differential_from` must be 'strength' or 'ratio'. Received: {differential_from!r}")
    frame = per_cell.copy()
    prefix = "coupling" if differential_from == "strength" else "ratio"
    if {f"{prefix}_membrane", f"{prefix}_dna"} <= set(frame.columns):
        frame["differential"] = differential_coupling(frame[f"{prefix}_membrane"], frame[f"{prefix}_dna"])
    return frame


def summarise(per_cell: pd.DataFrame, by_phase: bool = True, differential_from: str = "strength") -> pd.DataFrame:
    """Eq. 5 per structure (and cell-cycle phase): mean differential coupling d_s^p, plus
    the mean strengths and Eq. 4 ratios of both channels and the cell count.

    The per-cell d is recomputed with `differential_coupling` (clipped at 0, NaN where
    neither channel is coupled) and averaged over the cells where it is defined;
    ``n_undefined`` counts the others.

    Args:
        per_cell: output of `per_cell_coupling`.
        by_phase: group by ``cell_cycle_phase`` too (when the column exists).
        differential_from: ``"strength"`` (1 − c, default, the authors' notebook) or
            ``"ratio"`` (the Eq. 4 ratios c, as Eq. 5 is printed).

    Returns:
        DataFrame: structure_name[, cell_cycle_phase], n_cells, n_undefined, coupling_membrane,
        coupling_dna, ratio_membrane, ratio_dna, differential, differential_sem.
    """
    frame = with_differential(per_cell, differential_from)
    keys = ["structure_name"] + (["cell_cycle_phase"] if by_phase and "cell_cycle_phase" in frame else [])
    frame["_undefined"] = ~np.isfinite(frame["differential"].to_numpy("float64"))
    summary = frame.groupby(keys, sort=True).agg(
        n_cells=("elbo", "size"),
        n_undefined=("_undefined", "sum"),
        coupling_membrane=("coupling_membrane", _nanmean),
        coupling_dna=("coupling_dna", _nanmean),
        ratio_membrane=("ratio_membrane", _nanmean),
        ratio_dna=("ratio_dna", _nanmean),
        differential=("differential", _nanmean),
        differential_sem=("differential", _sem),
    )
    summary["n_undefined"] = summary["n_undefined"].astype("int64")
    return summary.reset_index()


def _nanmean(values) -> float:
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def _sem(values) -> float:
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    return float(values.std() / np.sqrt(len(values))) if len(values) > 1 else float("nan")


# ----- figures -----------------------------------------------------------------------------
def _phases(frame: pd.DataFrame) -> pd.Series:
    if "cell_cycle_phase" in frame:
        return frame["cell_cycle_phase"].astype(str)
    return pd.Series(["all cells"] * len(frame), index=frame.index)


def scatter_figure(per_cell: pd.DataFrame, structures=None):
    """Fig. 5a: per structure, each cell's membrane (x) vs nucleus (y) coupling by phase.

    Panels share both axes (one label each for the grid); every phase keeps its colour
    (interphase brown, mitotic phases blue) in every panel; one legend beside the grid.
    """
    from statcell_tf import figures

    structures = list(structures or sorted(per_cell["structure_name"].astype(str).unique()))
    figure, axes = figures.panel_grid(len(structures), panel=(2.2, 2.1),
                                      xlabel="coupling to the cell membrane (1 − Eq. 4)",
                                      ylabel="coupling to the nucleus (1 − Eq. 4)")
    values = per_cell[["coupling_membrane", "coupling_dna"]].to_numpy(float)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.05 * (high - low + 1e-9)
    phases = _phases(per_cell)
    colours = figures.category_colours(phases)
    for ax, structure in zip(axes, structures):
        keep_structure = (per_cell["structure_name"].astype(str) == structure).to_numpy()
        part, part_phases = per_cell[keep_structure], phases[keep_structure]
        for phase, colour in colours.items():
            keep = (part_phases == phase).to_numpy()
            ax.scatter(part["coupling_membrane"][keep], part["coupling_dna"][keep], s=10, alpha=0.7,
                       color=colour, label=phase)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.7", lw=0.8)
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"{structure.replace('_', ' ')} (n = {len(part)})", fontsize=8)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=p) for p, c in colours.items()]
    figure.legend(handles=handles, loc="outside right center", title="cell-cycle phase", frameon=False)
    figures.suptitle(figure, "coupling of each structure to membrane and nucleus, one point per cell (Fig. 5a)")
    return figure


def differential_figure(summary: pd.DataFrame, differential_from: str = "strength"):
    """Fig. 5b: Eq. 5 per structure, one marker per cell-cycle phase (from the ratios c the
    membrane side is negative, from the strengths 1 − c positive). Error bars: SEM over cells."""
    from statcell_tf import figures

    structures = sorted(summary["structure_name"].astype(str).unique())
    figure, axes = figures.new_figure(figsize=(6.0, 0.3 * len(structures) + 1.8))
    ax = axes[0, 0]
    phases = _phases(summary)
    colours = figures.category_colours(phases)
    offsets = np.linspace(-0.2, 0.2, len(colours)) if len(colours) > 1 else [0.0]
    for offset, (phase, colour) in zip(offsets, colours.items()):
        part = summary[(phases == phase).to_numpy()]
        y = np.array([structures.index(s) for s in part["structure_name"].astype(str)]) + offset
        n = f", n = {int(part['n_cells'].sum())} cells" if "n_cells" in part else ""
        ax.errorbar(part["differential"], y, xerr=part["differential_sem"], fmt="o", ms=4, capsize=2,
                    color=colour, label=f"{phase}{n}")
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(structures)), [s.replace("_", " ") for s in structures])
    ax.set_ylim(len(structures) - 0.5, -0.5)
    ax.set_xlim(-1.05, 1.05)
    left, right = ("nucleus", "membrane") if differential_from == "strength" else ("membrane", "nucleus")
    ax.set_xlabel(f"differential coupling d (Eq. 5): ← {left}   {right} →")
    ax.set_ylabel("structure")
    figure.legend(loc="outside lower center", ncols=min(2, len(colours)), frameon=False,
                  title="cell-cycle phase; error bars: SEM over cells")
    figures.suptitle(figure, "differential coupling per structure and phase (Fig. 5b)")
    return figure


def write_coupling(per_cell: pd.DataFrame, out_dir: Path, differential_from: str = "strength") -> pd.DataFrame:
    """Write per_cell.csv, summary.csv (Eq. 5), fig5a_scatter.png and fig5b_differential.png.

    Args:
        per_cell: output of `per_cell_coupling`.
        out_dir: folder to write into.
        differential_from: ``"strength"`` or ``"ratio"``; see `summarise`.
    """
    out_dir = Path(out_dir)
    per_cell = with_differential(per_cell, differential_from)
    summary = summarise(per_cell, differential_from=differential_from)
    atomic.write_csv(out_dir / "per_cell.csv", per_cell)
    atomic.write_csv(out_dir / "summary.csv", summary)
    atomic.save_figure(out_dir / "fig5a_scatter.png", scatter_figure(per_cell))
    atomic.save_figure(out_dir / "fig5b_differential.png", differential_figure(summary, differential_from))
    return summary
