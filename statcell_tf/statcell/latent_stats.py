"""Latent-space statistics of Statistical Cell models (Donovan-Maiye et al. 2022, §4.2, Fig. 2, S1–S3, S6).

Dimensions are ranked by mean |μ| over test cells (the paper's "mean absolute deviation from
0"). Per dimension: mean KL to the prior (Fig. S6). The top dimensions are correlated
(Spearman) with cell features measured by regionprops (Fig. S3a, features hierarchically
clustered), with each other (Pearson, Fig. S3d), shown pairwise coloured by a feature or by
cell-cycle phase (Fig. 2a/b, S1) and walked in nine steps from −2 to +2 SD (Fig. 2c, S2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic

# Display colours (RGB) per channel count: membrane magenta, DNA blue, structure yellow.
# ----- embedding and ranking --------------------------------------------------------------
def embed(model, data, rows, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(μ, log σ²) of the posterior of every row, each (N, latent_dim)."""
    mus, log_vars = [], []
    for _, batch in data.iterate(rows, batch_size):
        mu, log_var = model.encode(batch)
        mus.append(np.asarray(mu))
        log_vars.append(np.asarray(log_var))
    if not mus:
        return np.zeros((0, model.latent_dim), "float32"), np.zeros((0, model.latent_dim), "float32")
    return np.concatenate(mus), np.concatenate(log_vars)


def rank_dimensions(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dimension indices sorted by mean |μ| (descending), and those means."""
    score = np.mean(np.abs(mu), axis=0)
    order = np.argsort(-score, kind="stable")
    return order, score[order]


def parse_dims_spec(spec: str) -> int | list[int]:
    """K of ``top:K``, or the dimension indices of a comma list (syntax only: checked before
    any model is loaded; `parse_dims` checks the range)."""
    from statcell_tf.errors import UserError

    spec = spec.strip()
    if spec.startswith("top:"):
        try:
            k = int(spec[4:])
        except ValueError:
            raise UserError(f"--dims must be top:K or a comma list of ints. Received: {spec!r}") from None
        if k < 1:
            raise UserError(f"--dims top:K needs K >= 1. Received: {spec!r}")
        return k
    try:
        dims = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--dims must be top:K or a comma list of ints. Received: {spec!r}") from None
    if not dims:
        raise UserError(f"--dims names no dimension. Received: {spec!r}")
    return dims


def parse_dims(spec: str, mu: np.ndarray) -> list[int]:
    """``top:K`` (the K highest-ranked dims) or a comma list of dimension indices."""
    from statcell_tf.errors import UserError

    dims = parse_dims_spec(spec)
    if isinstance(dims, int):
        return [int(d) for d in rank_dimensions(mu)[0][:dims]]
    bad = [d for d in dims if not 0 <= d < mu.shape[1]]
    if not dims or bad:
        raise UserError(f"--dims must name dimensions in [0, {mu.shape[1] - 1}]. Received: {spec!r}")
    return dims


def kld_per_dimension(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """Mean over cells of KL(q(z_j|x) ‖ N(0, 1)) for every dimension j (Fig. S6)."""
    return np.mean(0.5 * (mu**2 + np.exp(log_var) - log_var - 1.0), axis=0)


# ----- cell features (regionprops) ----------------------------------------------------------
def _mask(channel: np.ndarray, fill: bool = True) -> np.ndarray:
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    channel = np.asarray(channel, "float32")
    if float(channel.max()) <= float(channel.min()):
        return np.zeros(channel.shape, bool)
    mask = channel > threshold_otsu(channel)
    if fill:
        mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count > 1:  # the largest component is the cell / nucleus
        sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return mask


def cell_features(images: np.ndarray, channel_names: Sequence[str] = ("membrane", "dna")) -> pd.DataFrame:
    """Per-cell features from the membrane and DNA channels, measured with regionprops.

    Masks are the largest filled Otsu component of each channel. Features: cell and
    nuclear area (2D) or volume (3D), major/minor axis lengths, cell height (3D: extent
    along z), nucleus-to-cell size ratio, distance between the centroids, and the integrated
    and mean intensities of both channels inside the cell.

    Args:
        images: (N, *spatial, C) array, raw intensities; membrane and DNA channels named by
            `channel_names`.
        channel_names: names of the channels of `images`.

    Returns:
        DataFrame with one row per cell.
    """
    from skimage.measure import regionprops

    images = np.asarray(images)
    rank = images.ndim - 2
    size_name = "area" if rank == 2 else "volume"
    membrane_index = list(channel_names).index("membrane")
    dna_index = list(channel_names).index("dna")
    rows = []
    for image in images:
        membrane = image[..., membrane_index].astype("float32")
        dna = image[..., dna_index].astype("float32")
        cell = _mask(membrane)
        nucleus = _mask(dna)
        row = {}
        for name, mask in (("cell", cell), ("nuclear", nucleus)):
            props = regionprops(mask.astype("uint8"))
            if props:
                p = props[0]
                row[f"{name}_{size_name}"] = float(p.area)
                row[f"{name}_major_axis"] = float(p.axis_major_length)
                row[f"{name}_minor_axis"] = float(p.axis_minor_length)
                if rank == 3:
                    zs = np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim))))
                    row[f"{name}_height"] = float(zs.max() - zs.min() + 1)
                row[f"_{name}_centroid"] = np.asarray(p.centroid)
            else:
                row[f"{name}_{size_name}"] = 0.0
                row[f"{name}_major_axis"] = 0.0
                row[f"{name}_minor_axis"] = 0.0
                if rank == 3:
                    row[f"{name}_height"] = 0.0
                row[f"_{name}_centroid"] = None
        row["nuclear_to_cell_ratio"] = row[f"nuclear_{size_name}"] / max(row[f"cell_{size_name}"], 1.0)
        a, b = row.pop("_cell_centroid"), row.pop("_nuclear_centroid")
        row["nucleus_offset"] = float(np.linalg.norm(a - b)) if a is not None and b is not None else 0.0
        region = cell | nucleus
        for name, channel in (("membrane", membrane), ("dna", dna)):
            row[f"{name}_integrated_intensity"] = float(channel[region].sum())
            row[f"{name}_mean_intensity"] = float(channel[region].mean()) if region.any() else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


# ----- correlations ------------------------------------------------------------------------
def spearman_table(mu_dims: np.ndarray, features: pd.DataFrame, dim_names: Sequence[str]) -> pd.DataFrame:
    """Spearman ρ of every latent dimension (rows) with every feature (columns)."""
    from scipy.stats import spearmanr

    table = pd.DataFrame(index=list(dim_names), columns=list(features.columns), dtype=float)
    for i, name in enumerate(dim_names):
        for column in features.columns:
            values = features[column].to_numpy(float)
            if np.ptp(values) == 0 or np.ptp(mu_dims[:, i]) == 0:
                table.loc[name, column] = 0.0
            else:
                table.loc[name, column] = float(spearmanr(mu_dims[:, i], values).statistic)
    return table


def cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of the columns of `matrix` (correlation distance)."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    matrix = np.asarray(matrix, float)
    if matrix.shape[1] < 3:
        return np.arange(matrix.shape[1])
    columns = matrix.T
    columns = np.nan_to_num(columns - columns.mean(axis=1, keepdims=True))
    return leaves_list(linkage(columns, method="average", metric="euclidean"))


def pearson_among(mu_dims: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of the given dimensions (Fig. S3d)."""
    if mu_dims.shape[0] < 2:
        return np.eye(mu_dims.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.corrcoef(mu_dims, rowvar=False)
    return np.nan_to_num(np.atleast_2d(matrix))


# ----- images ------------------------------------------------------------------------------
def channel_names(count: int) -> tuple[str, ...]:
    """Names of the first `count` channels of a Statistical Cell image (membrane, DNA, structure)."""
    from statcell_tf.statcell.data import REFERENCE_CHANNELS, STRUCTURE_CHANNEL

    return (tuple(REFERENCE_CHANNELS) + (STRUCTURE_CHANNEL,))[:count]


def most_correlated_feature(spearman: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """Per row (latent dimension) of a Spearman table: (feature, ρ) with the largest |ρ|."""
    named = {}
    for dimension, row in spearman.iterrows():
        values = row.astype(float).fillna(0.0)
        if values.empty:
            continue
        feature = values.abs().idxmax()
        named[str(dimension)] = (str(feature), float(values[feature]))
    return named


def walk_figure(images: np.ndarray, dims: Sequence[int], steps_sd: Sequence[float], channel_names: Sequence[str],
                features: dict | None = None, title: str = "", walked: Sequence[int] | None = None):
    """Latent walk (Fig. 2c, S2): one row per dimension, one column per step, all images on one
    display range (so intensity changes along a walk stay visible), the cell feature most
    correlated with each dimension named beside its row.

    Args:
        images: (len(dims), steps, *spatial, C) decoded images.
        dims: the walked dimensions.
        steps_sd: step offsets in SD of each dimension.
        channel_names: names of the C channels.
        features: optional {"mu_<d>": (feature, ρ)} from `most_correlated_feature`.
        walked: channels the range is computed from [all].
    """
    from statcell_tf import figures

    images = np.asarray(images)
    scale = figures.display_range(images.reshape(-1, *images.shape[2:]), channel_names, of="all images of the walk")
    labels = []
    for d in dims:
        label = f"μ{d}"
        if features and f"mu_{d}" in features:
            feature, rho = features[f"mu_{d}"]
            label += f"\n{feature.replace('_', ' ')}\nρ = {rho:+.2f}"
        labels.append(label)
    columns = [f"{v:+.1f} SD" for v in steps_sd]
    return figures.image_grid([list(row) for row in images], scale, labels, columns, title=title)


def imputed_figure(reference: np.ndarray, draws: dict, channel_names: Sequence[str], observed=None,
                   observed_name: str | None = None, title: str = ""):
    """Imputed structures in one cell (Fig. 4b): per structure, the cell (membrane + DNA), the
    real structure when the cell has it, each draw of the structure as its own channel, and
    draw 1 over the cell. Every image is on one display range per channel (of the cell, the
    real structure and all draws).

    Args:
        reference: (*spatial, 2) membrane and DNA of the cell.
        draws: {structure name: (n, *spatial, 1) imputed structure channel}.
        channel_names: the three channel names (membrane, DNA, structure).
        observed: (*spatial, 1) the cell's real structure, or None.
        observed_name: the structure `observed` shows.
    """
    from statcell_tf import figures

    reference = np.asarray(reference, "float32")
    stacks = [np.concatenate([reference[None].repeat(len(d), 0), np.asarray(d, "float32")], axis=-1)
              for d in draws.values()]
    shown = list(np.concatenate(stacks)) if stacks else []
    if observed is not None:
        shown.append(np.concatenate([reference, np.asarray(observed, "float32")], axis=-1))
    scale = figures.display_range(shown, channel_names, of="this cell's channels, real and imputed")
    count = max((len(d) for d in draws.values()), default=0)
    real = [] if observed is None else ["real structure"]
    rows, channels = [], []
    for name, stack in zip(draws, stacks):
        own = observed is not None and name == observed_name
        cell = np.concatenate([reference, observed], axis=-1) if own else stack[0]
        rows.append([cell] + ([cell if own else None] if real else []) + list(stack) + [stack[0]])
        channels.append([(0, 1)] + ([(2,)] if real else []) + [(2,)] * len(stack) + [(0, 1, 2)])
    columns = ["cell: membrane + DNA"] + real + [f"draw {i + 1}" for i in range(count)] + ["draw 1 on cell"]
    return figures.image_grid(rows, scale, [n.replace("_", " ") for n in draws], columns, title=title,
                              channels=channels)


def latent_walk(model, mu: np.ndarray, dims: Sequence[int], steps: int = 9, span: float = 2.0, batch=None):
    """Decoded images along each dimension, others 0 (Fig. 2c, S2).

    Step values run from −span to +span standard deviations of that dimension's μ over
    the given cells. Target models decode in the reference of `batch` (one cell).

    Returns:
        (images (len(dims), steps, *spatial, C), offsets (len(dims), steps)).
    """
    dims = list(dims)
    grid = np.linspace(-span, span, steps)
    images, offsets = [], []
    for d in dims:
        sd = float(np.std(mu[:, d])) if len(mu) > 1 else 1.0
        z = np.zeros((steps, mu.shape[1]), "float32")
        z[:, d] = grid * sd
        condition = None
        if batch is not None:
            condition = {key: np.repeat(np.asarray(value)[:1], steps, axis=0) for key, value in batch.items()}
        images.append(np.asarray(model.decode(z, condition)))
        offsets.append(grid * sd)
    return np.stack(images), np.stack(offsets)


# ----- figures ------------------------------------------------------------------------------
def kld_figure(kld_ranked: np.ndarray, title: str = ""):
    from statcell_tf import figures

    figure, axes = figures.new_figure(panel=(4.5, 3.0))
    ax = axes[0, 0]
    ax.plot(np.arange(1, len(kld_ranked) + 1), kld_ranked, marker=".", lw=1, color="k")
    ax.set_xlabel("dimension rank (by mean |μ| over the cells)")
    ax.set_ylabel("mean KL divergence per dimension (nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title or "KL divergence per latent dimension (Fig. S6)")
    return figure


def heatmap_figure(table: pd.DataFrame, title: str = ""):
    """Spearman heatmap, features clustered (Fig. S3a)."""
    from statcell_tf import figures

    order = cluster_order(table.to_numpy(float))
    table = table.iloc[:, order]
    figure, axes = figures.new_figure(figsize=(0.22 * table.shape[1] + 3.2, 0.2 * table.shape[0] + 2.6))
    ax = axes[0, 0]
    image = ax.imshow(table.to_numpy(float), cmap=figures.SIGNED, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c).replace("_", " ") for c in table.columns], rotation=90)
    ax.set_yticks(range(table.shape[0]), [str(i).replace("mu_", "μ") for i in table.index])
    ax.set_xlabel("cell feature (clustered)")
    ax.set_ylabel("latent dimension (by rank)")
    figure.colorbar(image, ax=ax, label="Spearman ρ", shrink=0.8)
    ax.set_title(title or "latent dimensions vs cell features")
    return figure


def matrix_figure(matrix: np.ndarray, names: Sequence[str], title: str):
    from statcell_tf import figures

    size = 0.2 * len(names) + 2.8
    figure, axes = figures.new_figure(figsize=(size + 0.8, size))
    ax = axes[0, 0]
    names = [str(n).replace("mu_", "μ") for n in names]
    image = ax.imshow(matrix, cmap=figures.SIGNED, vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("latent dimension")
    figure.colorbar(image, ax=ax, label="Pearson r", shrink=0.8)
    ax.set_title(title)
    return figure


def pairwise_figure(mu_dims: np.ndarray, dim_names: Sequence[str], colour: pd.Series | None = None, title: str = ""):
    """Pairwise scatter of the given dimensions, marginals on the diagonal (Fig. 2a/b, S1).

    Off-diagonal panels share their x axis per column and their y axis per row; the diagonal
    histograms keep their own count axes (labelled "cells", never μ).
    """
    from statcell_tf import figures

    k = mu_dims.shape[1]
    names = [str(n).replace("mu_", "μ") for n in dim_names]
    figure, axes = figures.new_figure(k, k, panel=(1.9, 1.8))
    categorical = colour is not None and not pd.api.types.is_numeric_dtype(colour)
    colours = figures.category_colours(colour.astype(str)) if categorical else {}
    mappable = None
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                ax.hist(mu_dims[:, i], bins=20, color="0.5")
                ax.set_ylabel("cells")
                ax.yaxis.set_label_position("right")
                ax.yaxis.tick_right()
                ax.locator_params(axis="y", nbins=3)
            else:
                if colour is None:
                    ax.scatter(mu_dims[:, j], mu_dims[:, i], s=6, color="k", alpha=0.6)
                elif categorical:
                    for value, tone in colours.items():
                        keep = colour.astype(str).to_numpy() == value
                        ax.scatter(mu_dims[keep, j], mu_dims[keep, i], s=6, alpha=0.7, color=tone,
                                   label=value if (i, j) == (1, 0) else None)
                else:
                    mappable = ax.scatter(mu_dims[:, j], mu_dims[:, i], s=6, c=colour.to_numpy(float),
                                          cmap=figures.MAGNITUDE)
                if j == 0:
                    ax.set_ylabel(names[i])
                else:
                    ax.tick_params(labelleft=False)
            if i == k - 1:
                ax.set_xlabel(names[j])
            else:
                ax.tick_params(labelbottom=False)
            ax.locator_params(axis="x", nbins=3)
            if i != j:
                ax.locator_params(axis="y", nbins=3)
    if categorical and k > 1:
        handles, labels = axes[1, 0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right center", title=str(colour.name).replace("_", " "),
                      markerscale=2, frameon=False)
    if mappable is not None:
        figure.colorbar(mappable, ax=axes, label=str(colour.name).replace("_", " "), shrink=0.6)
    figures.suptitle(figure, f"{title or 'top latent dimensions'}; n = {len(mu_dims)} cells")
    return figure


# ----- the whole analysis -------------------------------------------------------------------
def latent_stats(
    model,
    data,
    rows: np.ndarray,
    out_dir: Path,
    top: int = 32,
    colour_by: Sequence[str] = ("cell_cycle_phase",),
    batch_size: int = 32,
) -> dict:
    """Write every latent statistic of the reference (or target) model for `rows` into `out_dir`.

    Files: ``kld_per_dimension.csv`` + ``.png`` (sorted by rank), ``cell_features.csv``,
    ``spearman_top_dims.csv`` + ``spearman_heatmap.png``, ``pearson_top_dims.csv`` + ``.png``,
    ``embedding.csv`` (μ of the top dims per cell) and ``pairwise_top4_<colour>.png`` per
    colouring (a feature column, a metadata column, or ``none``).

    Returns:
        dict with ``order`` (ranked dims), ``kld`` (ranked), ``spearman`` (DataFrame),
        ``pearson`` (array) and ``features`` (DataFrame).
    """
    from statcell_tf.errors import UserError

    out_dir = Path(out_dir)
    rows = np.asarray(rows, "int64")
    if len(rows) < 3:
        raise UserError(f"latent statistics need at least 3 cells; the selected split has {len(rows)}")
    mu, log_var = embed(model, data, rows, batch_size)
    order, score = rank_dimensions(mu)
    kld = kld_per_dimension(mu, log_var)
    ranked = pd.DataFrame(
        {"rank": np.arange(1, len(order) + 1), "dimension": order, "mean_abs_mu": score, "kld": kld[order]}
    )
    atomic.write_csv(out_dir / "kld_per_dimension.csv", ranked)
    atomic.save_figure(out_dir / "kld_per_dimension.png", kld_figure(kld[order]))

    top = min(top, mu.shape[1])
    dims = order[:top]
    names = [f"mu_{d}" for d in dims]
    raw = data.raw_images(rows)
    features = cell_features(raw, ("membrane", "dna"))
    metadata = data.cells.metadata.iloc[rows].reset_index(drop=True)
    keep_columns = [c for c in ("CellId", "structure_name", "cell_cycle_phase") if c in metadata]
    atomic.write_csv(out_dir / "cell_features.csv", pd.concat([metadata[keep_columns], features], axis=1))
    spearman = spearman_table(mu[:, dims], features, names)
    atomic.write_csv(out_dir / "spearman_top_dims.csv", spearman.reset_index(names="dimension"))
    atomic.save_figure(out_dir / "spearman_heatmap.png", heatmap_figure(spearman, f"Spearman ρ, top {top} dims (Fig. S3a)"))
    pearson = pearson_among(mu[:, dims])
    atomic.write_csv(out_dir / "pearson_top_dims.csv", pd.DataFrame(pearson, index=names, columns=names).reset_index(names="dimension"))
    atomic.save_figure(out_dir / "pearson_top_dims.png", matrix_figure(pearson, names, "Pearson r among top dims (Fig. S3d)"))
    embedding = pd.concat([metadata[keep_columns], pd.DataFrame(mu[:, dims], columns=names)], axis=1)
    atomic.write_csv(out_dir / "embedding.csv", embedding)

    four = dims[:4]
    for column in colour_by:
        if column == "none":
            colour = None
        elif column in features.columns:
            colour = features[column].rename(column)
        elif column in metadata.columns:
            colour = metadata[column].rename(column)
        else:
            raise UserError(
                f"--color-by {column!r} is neither a cell feature nor a metadata column; features: "
                f"{', '.join(features.columns)}; metadata: {', '.join(map(str, metadata.columns))}"
            )
        figure = pairwise_figure(mu[:, four], [f"mu_{d}" for d in four], colour, f"top {len(four)} latent dimensions coloured by {column.replace('_', ' ')} (Fig. 2a/b, S1)")
        atomic.save_figure(out_dir / f"pairwise_top4_{column}.png", figure)
    return {"order": order, "kld": kld[order], "spearman": spearman, "pearson": pearson, "features": features}
