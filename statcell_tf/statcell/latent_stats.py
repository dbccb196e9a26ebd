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
_COLOURS = {
    1: [(1.0, 1.0, 1.0)],
    2: [(1.0, 0.0, 1.0), (0.0, 0.6, 1.0)],
    3: [(1.0, 0.0, 1.0), (0.0, 0.6, 1.0), (1.0, 1.0, 0.0)],
}


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
def to_rgb(image: np.ndarray) -> np.ndarray:
    """(…spatial, C) channel image → (H, W, 3) RGB in [0, 1]; 3D is max-projected along z."""
    image = np.asarray(image, "float32")
    if image.ndim == 4:
        image = image.max(axis=0)
    channels = image.shape[-1]
    colours = _COLOURS.get(channels, _COLOURS[1] * channels)
    rgb = np.zeros((*image.shape[:2], 3), "float32")
    for c in range(channels):
        channel = image[..., c]
        peak = float(channel.max())
        if peak > 0:
            channel = channel / peak
        rgb += channel[..., None] * np.asarray(colours[c], "float32")
    return np.clip(rgb, 0.0, 1.0)


def image_grid_figure(rows: Sequence[Sequence[np.ndarray]], row_labels=None, col_labels=None, title=None):
    """A matplotlib figure with one image (`to_rgb`) per cell of a grid of rows."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n_rows = len(rows)
    n_cols = max(len(r) for r in rows) if rows else 1
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(1.4 * n_cols + 0.8, 1.4 * n_rows + 0.4), squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(rows[i]):
                ax.imshow(to_rgb(rows[i][j]), interpolation="nearest")
            if j == 0 and row_labels is not None:
                ax.set_ylabel(str(row_labels[i]), fontsize=8)
            if i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(str(col_labels[j]), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


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
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 3))
    ax.plot(np.arange(1, len(kld_ranked) + 1), kld_ranked, marker=".", lw=1)
    ax.set_xlabel("dimension rank (mean |μ|)")
    ax.set_ylabel("mean KLD per dimension")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title or "KLD per latent dimension (Fig. S6)")
    return figure


def heatmap_figure(table: pd.DataFrame, title: str = ""):
    """Spearman heatmap, features clustered (Fig. S3a)."""
    import matplotlib.pyplot as plt

    order = cluster_order(table.to_numpy(float))
    table = table.iloc[:, order]
    figure, ax = plt.subplots(figsize=(0.45 * table.shape[1] + 2.5, 0.3 * table.shape[0] + 2))
    image = ax.imshow(table.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    figure.colorbar(image, ax=ax, label="Spearman ρ")
    ax.set_title(title or "latent dimensions vs cell features")
    return figure


def matrix_figure(matrix: np.ndarray, names: Sequence[str], title: str):
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(0.3 * len(names) + 2.5, 0.3 * len(names) + 2))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    figure.colorbar(image, ax=ax, label="Pearson r")
    ax.set_title(title)
    return figure


def pairwise_figure(mu_dims: np.ndarray, dim_names: Sequence[str], colour: pd.Series | None = None, title: str = ""):
    """Pairwise scatter of the given dimensions, marginals on the diagonal (Fig. 2a/b, S1)."""
    import matplotlib.pyplot as plt

    k = mu_dims.shape[1]
    figure, axes = plt.subplots(k, k, figsize=(2.1 * k + 1, 2.1 * k), squeeze=False)
    categorical = colour is not None and not pd.api.types.is_numeric_dtype(colour)
    mappable = None
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                ax.hist(mu_dims[:, i], bins=20, color="0.5")
            elif colour is None:
                ax.scatter(mu_dims[:, j], mu_dims[:, i], s=6, color="k", alpha=0.6)
            elif categorical:
                for n, value in enumerate(sorted(colour.astype(str).unique())):
                    keep = colour.astype(str).to_numpy() == value
                    ax.scatter(mu_dims[keep, j], mu_dims[keep, i], s=6, alpha=0.7, color=f"C{n}",
                               label=value if (i, j) == (1, 0) else None)
            else:
                mappable = ax.scatter(mu_dims[:, j], mu_dims[:, i], s=6, c=colour.to_numpy(float), cmap="viridis")
            if i == k - 1:
                ax.set_xlabel(dim_names[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(dim_names[i], fontsize=8)
            ax.tick_params(labelsize=6)
    if categorical and k > 1:
        axes[1, 0].legend(fontsize=7, markerscale=2)
    if mappable is not None:
        figure.colorbar(mappable, ax=axes, label=str(colour.name), shrink=0.6)
    figure.suptitle(title or "top latent dimensions", fontsize=9)
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
        figure = pairwise_figure(mu[:, four], [f"mu_{d}" for d in four], colour, f"top 4 dims coloured by {column}")
        atomic.save_figure(out_dir / f"pairwise_top4_{column}.png", figure)
    return {"order": order, "kld": kld[order], "spearman": spearman, "pearson": pearson, "features": features}
