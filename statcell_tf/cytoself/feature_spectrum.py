"""Feature spectra of the local codebook (Kobayashi et al. 2022, Fig. 4, Supp. Fig. 8 and 10).

Pipeline (methods "Feature spectrum"; authors' code in REFERENCE-NOTES):

1. per image, the hard histogram of LOCAL vector-quantiser indices (K codes, sums to 625);
2. mean per protein → matrix proteins × K (`protein_histograms`);
3. Pearson correlation between the code columns → K × K (`code_correlation`);
4. average-linkage hierarchical clustering → leaf order = feature order;
5. the top of the dendrogram cut into 11 feature clusters (``fcluster(..., "maxclust")``),
   numbered i..xi in feature order (the paper segments them by hand; this is the automatic
   equivalent);
6. a protein's spectrum = its mean histogram in feature order; family consensus spectra =
   mean over the proteins of a localisation family; a protein is ranked against every family
   by Pearson correlation with the consensus (Fig. 4e), leaving the protein itself out of its
   own family's consensus.

Choices documented here:

* Codes whose column is constant across proteins (never used, or used equally by every
  protein) have no defined correlation. They get correlation 0 with every other code
  (1 with themselves), are left out of the clustering, placed at the end of the feature order
  and given cluster number 0 ("uninformative"); they still appear in every spectrum.
  (The authors' code sets their NaN correlations to 0 and clusters them with the rest, which
  spends a top-level cluster on unused codes.)
* Distance between codes: by default, as the authors' code (``seaborn.clustermap`` on the
  correlation matrix), the Euclidean distance between the codes' rows of the correlation
  matrix; ``distance="correlation"`` uses 1 - r instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.errors import UserError

CACHE_NAME = "feature_spectrum"
_ROMAN = [(10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")]


def roman(number: int) -> str:
    """Lower-case Roman numeral (cluster names i..xi, as in the paper); 0 → ``"-"``."""
    if number <= 0:
        return "-"
    out = []
    for value, letters in _ROMAN:
        count, number = divmod(number, value)
        out.append(letters * count)
    return "".join(out)


def protein_histograms(
    histograms: np.ndarray, proteins: Sequence
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean index histogram per protein (Supp. Fig. 8b).

    Args:
        histograms: array (N, K). Per-image index histograms.
        proteins: sequence of length N. Protein of each image.

    Returns:
        ``(names (P,), means (P, K) float64, counts (P,))``, names sorted.
    """
    histograms = np.asarray(histograms, dtype=np.float64)
    proteins = np.asarray(proteins).astype(str)
    if histograms.ndim != 2 or len(histograms) != len(proteins):
        raise UserError(
            "feature spectrum: need histograms (N, K) and N protein names. "
            f"Received: histograms {histograms.shape}, {len(proteins)} names"
        )
    names, inverse = np.unique(proteins, return_inverse=True)
    sums = np.zeros((len(names), histograms.shape[1]))
    np.add.at(sums, inverse, histograms)
    counts = np.bincount(inverse, minlength=len(names))
    return names, sums / counts[:, None], counts


def code_correlation(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation between the columns (codes) of a proteins × K matrix.

    Args:
        matrix: array (P, K).

    Returns:
        ``(correlation (K, K) float64, informative (K,) bool)``. Constant columns are not
        informative: their correlation is 0 with other codes and 1 with themselves.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    centred = matrix - matrix.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    scale = np.maximum(np.abs(matrix).max(axis=0), 1.0)
    informative = norms > 1e-9 * scale * np.sqrt(max(len(matrix), 1))
    corr = np.zeros((matrix.shape[1], matrix.shape[1]))
    used = np.flatnonzero(informative)
    if used.size:
        unit = centred[:, used] / norms[used]
        corr[np.ix_(used, used)] = np.clip(unit.T @ unit, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return corr, informative


def cluster_codes(
    correlation: np.ndarray, codes: np.ndarray, distance: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """Average-linkage clustering of the given codes (Supp. Fig. 8d).

    Args:
        correlation: array (K, K). Code-code correlation.
        codes: int array (U,). The codes to cluster.
        distance: str. ``"euclidean"`` between correlation rows (authors' code) or
            ``"correlation"`` (1 - r). Defaults to ``"euclidean"``.

    Returns:
        ``(linkage (U-1, 4), leaf_order (U,))``; leaf_order indexes into `codes`.
    """
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import pdist, squareform

    if distance not in ("euclidean", "correlation"):
        raise UserError(
            f"feature spectrum: distance must be 'euclidean' or 'correlation'. Received: {distance!r}"
        )
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size < 2:
        return np.zeros((0, 4)), np.arange(codes.size)
    sub = correlation[np.ix_(codes, codes)]
    if distance == "euclidean":
        condensed = pdist(sub, "euclidean")
    else:
        dist = np.clip(1.0 - sub, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        condensed = squareform((dist + dist.T) / 2.0, checks=False)
    linkage = hierarchy.linkage(condensed, method="average")
    return linkage, hierarchy.leaves_list(linkage)


def top_level_clusters(linkage: np.ndarray, leaf_order: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cut the dendrogram into at most `n_clusters` clusters numbered 1.. in leaf order.

    Args:
        linkage: array (U-1, 4).
        leaf_order: int array (U,). Leaf order of the dendrogram.
        n_clusters: int. Number of top-level clusters (the paper: 11).

    Returns:
        int array (U,): cluster number of each clustered item (in item order, not leaf order).
    """
    from scipy.cluster import hierarchy

    count = len(leaf_order)
    if n_clusters < 1:
        raise UserError(f"--clusters must be >= 1. Received: {n_clusters}")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if count == 1:
        return np.ones(1, dtype=np.int64)
    raw = hierarchy.fcluster(linkage, t=min(n_clusters, count), criterion="maxclust")
    relabel: dict[int, int] = {}
    for item in leaf_order:  # first appearance in leaf order gets the next number
        relabel.setdefault(int(raw[item]), len(relabel) + 1)
    return np.array([relabel[int(r)] for r in raw], dtype=np.int64)


def _majority(values: pd.Series) -> str:
    values = values[values.astype(str) != ""]
    return "" if values.empty else str(values.value_counts().index[0])


@dataclasses.dataclass
class FeatureSpectrum:
    """Everything Fig. 4 needs, computed once per run and cached (npz + json, no pickle).

    Attributes:
        proteins: str array (P,). Protein names, sorted.
        families: str array (P,). Localisation family of each protein ("" when unknown).
        histograms: float array (P, K). Mean local-index histogram per protein, code order.
        n_images: int array (P,). Images per protein.
        correlation: float32 array (K, K). Code-code Pearson correlation, code order.
        informative: bool array (K,). Codes that vary across proteins (clustered).
        linkage: float array (U-1, 4). Average linkage over the informative codes.
        order: int array (K,). Feature order: code index at each spectrum position.
        clusters: int array (K,). Top-level cluster of each code (1..n, 0 = uninformative).
        n_clusters: int. Requested number of top-level clusters.
        distance: str. Clustering distance (see module docstring).
        info: dict. Provenance (e.g. the embeddings file it came from).
    """

    proteins: np.ndarray
    families: np.ndarray
    histograms: np.ndarray
    n_images: np.ndarray
    correlation: np.ndarray
    informative: np.ndarray
    linkage: np.ndarray
    order: np.ndarray
    clusters: np.ndarray
    n_clusters: int = 11
    distance: str = "euclidean"
    info: dict = dataclasses.field(default_factory=dict)

    _ARRAYS = (
        "proteins",
        "families",
        "histograms",
        "n_images",
        "correlation",
        "informative",
        "linkage",
        "order",
        "clusters",
    )

    @property
    def num_codes(self) -> int:
        return int(self.histograms.shape[1])

    @property
    def cluster_numbers(self) -> list[int]:
        """Top-level cluster numbers present (1..n), in feature order."""
        return sorted(int(c) for c in np.unique(self.clusters) if c > 0)

    def with_clusters(self, n_clusters: int) -> "FeatureSpectrum":
        """The same spectrum cut into a different number of top-level clusters."""
        used = np.flatnonzero(self.informative)
        position = {int(code): i for i, code in enumerate(used)}
        leaf_order = np.array([position[int(c)] for c in self.order[: used.size]], dtype=np.int64)
        clusters = np.zeros(self.num_codes, dtype=np.int64)
        clusters[used] = top_level_clusters(self.linkage, leaf_order, n_clusters)
        return dataclasses.replace(self, clusters=clusters, n_clusters=int(n_clusters))

    # ----- look-ups -------------------------------------------------------------------------
    def protein_index(self, name: str) -> int:
        """Row of `name`; an unknown name is a UserError listing the closest names."""
        matches = np.flatnonzero(self.proteins == name)
        if matches.size:
            return int(matches[0])
        close = difflib.get_close_matches(name, list(self.proteins), n=5, cutoff=0.4)
        hint = (
            f"closest: {', '.join(close)}"
            if close
            else f"known proteins include: {', '.join(list(self.proteins)[:5])}"
        )
        raise UserError(
            f"PROTEIN {name!r} is not in the embeddings ({len(self.proteins)} proteins); {hint}. "
            f"Received: {name}"
        )

    def spectrum(self, protein: str, ordered: bool = True) -> np.ndarray:
        """Mean local-index histogram of `protein`, in feature order (default) or code order."""
        row = self.histograms[self.protein_index(protein)]
        return row[self.order] if ordered else row.copy()

    def cluster_codes(self, cluster: int) -> np.ndarray:
        """Code indices of one top-level cluster, in feature order."""
        if cluster not in self.cluster_numbers:
            raise UserError(
                f"--feature must be a feature cluster number in 1..{max(self.cluster_numbers)}. "
                f"Received: {cluster}"
            )
        return self.order[self.clusters[self.order] == cluster]

    def cluster_ranges(self) -> list[tuple[int, int, int]]:
        """``(cluster, start, stop)`` spectrum positions of each cluster (0 = uninformative)."""
        ordered = self.clusters[self.order]
        ranges = []
        start = 0
        for position in range(1, len(ordered) + 1):
            if position == len(ordered) or ordered[position] != ordered[start]:
                ranges.append((int(ordered[start]), start, position))
                start = position
        return ranges

    def family_consensus(self, exclude_protein: str | None = None) -> pd.DataFrame:
        """Mean histogram per family (rows = families, columns = codes in code order).

        Args:
            exclude_protein: str or None. A protein left out of every consensus (Fig. 4e
                compares a protein with consensus spectra it did not contribute to).

        Returns:
            DataFrame indexed by family with K columns plus ``n_proteins``.
        """
        keep = self.families != ""
        if exclude_protein is not None:
            keep &= self.proteins != exclude_protein
        frame = pd.DataFrame(self.histograms[keep])
        families = pd.Series(self.families[keep], name="family")
        consensus = frame.groupby(families.to_numpy()).mean()
        consensus["n_proteins"] = families.value_counts().reindex(consensus.index).to_numpy()
        consensus.index.name = "family"
        return consensus

    def family_correlations(self, protein: str) -> pd.DataFrame:
        """Pearson r of `protein`'s spectrum with each family consensus, ranked (Fig. 4e).

        Returns:
            DataFrame with columns ``family, pearson_r, n_proteins, is_own_family`` sorted by
            decreasing r. Families whose consensus is constant are left out.
        """
        index = self.protein_index(protein)
        spectrum = self.histograms[index]
        consensus = self.family_consensus(exclude_protein=protein)
        rows = []
        for family, values in consensus.drop(columns="n_proteins").iterrows():
            values = values.to_numpy(dtype=np.float64)
            if np.std(values) == 0 or np.std(spectrum) == 0:
                continue
            r = float(np.corrcoef(spectrum, values)[0, 1])
            rows.append((family, r, int(consensus.loc[family, "n_proteins"]), family == self.families[index]))
        table = pd.DataFrame(rows, columns=["family", "pearson_r", "n_proteins", "is_own_family"])
        return table.sort_values("pearson_r", ascending=False, kind="stable").reset_index(drop=True)

    def spectrum_table(self, protein: str) -> pd.DataFrame:
        """Protein spectrum as a table: protein, position, code, cluster, cluster_name, occurrence."""
        ordered = self.spectrum(protein)
        clusters = self.clusters[self.order]
        return pd.DataFrame(
            {
                "protein": protein,
                "position": np.arange(self.num_codes),
                "code": self.order,
                "cluster": clusters,
                "cluster_name": [roman(int(c)) for c in clusters],
                "occurrence": ordered,
            }
        )

    # ----- cache ----------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``feature_spectrum.npz`` + ``feature_spectrum.json`` atomically into `directory`."""
        directory = Path(directory)
        arrays = {name: np.asarray(getattr(self, name)) for name in self._ARRAYS}
        arrays["proteins"] = arrays["proteins"].astype(str)
        arrays["families"] = arrays["families"].astype(str)
        arrays["correlation"] = arrays["correlation"].astype(np.float32)
        with atomic.atomic_path(directory / f"{CACHE_NAME}.npz") as tmp:
            np.savez(tmp, **arrays)
        atomic.write_json(
            directory / f"{CACHE_NAME}.json",
            {"n_clusters": self.n_clusters, "distance": self.distance, "info": self.info,
             "num_codes": self.num_codes, "num_proteins": len(self.proteins)},
        )
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "FeatureSpectrum":
        """Read a cache written by `save` (FileNotFoundError when absent)."""
        directory = Path(directory)
        meta_path = directory / f"{CACHE_NAME}.json"
        array_path = directory / f"{CACHE_NAME}.npz"
        if not meta_path.exists() or not array_path.exists():
            raise FileNotFoundError(f"no feature spectrum cache in {directory}")
        meta = json.loads(meta_path.read_text())
        with np.load(array_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in cls._ARRAYS}
        return cls(**arrays, n_clusters=int(meta["n_clusters"]), distance=meta["distance"], info=meta["info"])

    @classmethod
    def exists(cls, directory: str | os.PathLike) -> bool:
        directory = Path(directory)
        return (directory / f"{CACHE_NAME}.json").exists() and (directory / f"{CACHE_NAME}.npz").exists()


def build_feature_spectrum(
    histograms: np.ndarray,
    proteins: Sequence,
    families: Sequence | None = None,
    n_clusters: int = 11,
    distance: str = "euclidean",
    info: dict | None = None,
    where: str = "feature spectrum",
) -> FeatureSpectrum:
    """Compute the whole Fig. 4 analysis from per-image local index histograms.

    Args:
        histograms: array (N, K). Per-image local-index histograms.
        proteins: sequence of length N. Protein (class) of each image.
        families: sequence of length N or None. Localisation family of each image; a
            protein's family is its most frequent non-empty one. Defaults to None.
        n_clusters: int. Top-level feature clusters. Defaults to 11 (paper).
        distance: str. See `cluster_codes`. Defaults to ``"euclidean"``.
        info: dict or None. Provenance stored with the cache.
        where: str. Names the run in messages.

    Returns:
        FeatureSpectrum.
    """
    names, means, counts = protein_histograms(histograms, proteins)
    if len(names) < 2:
        raise UserError(
            f"feature spectrum needs images of at least 2 proteins. Received: {list(names)}"
        )
    if families is None:
        protein_families = np.full(len(names), "", dtype=object)
    else:
        families = pd.Series(np.asarray(families, dtype=object)).fillna("").astype(str)
        if len(families) != len(np.asarray(proteins)):
            raise UserError(f"feature spectrum: {len(families)} family labels for {len(proteins)} images")
        by_protein = families.groupby(np.asarray(proteins).astype(str)).agg(_majority)
        protein_families = by_protein.reindex(names).fillna("").to_numpy()
    correlation, informative = code_correlation(means)
    used = np.flatnonzero(informative)
    if used.size == 0:
        raise UserError(
            f"{where}: no codebook feature is used differently by different proteins (all {len(names)} proteins "
            "have the same mean local-index histogram), so there is nothing to cluster; the run's vector quantiser "
            "is likely barely trained (too few epochs): train it longer. Received: constant histograms"
        )
    linkage, leaves = cluster_codes(correlation, used, distance)
    uninformative = np.flatnonzero(~informative)
    order = np.concatenate([used[leaves], uninformative]).astype(np.int64)
    clusters = np.zeros(means.shape[1], dtype=np.int64)
    clusters[used] = top_level_clusters(linkage, leaves, n_clusters)
    return FeatureSpectrum(
        proteins=names.astype(str),
        families=np.asarray(protein_families).astype(str),
        histograms=means,
        n_images=counts,
        correlation=correlation.astype(np.float32),
        informative=informative,
        linkage=linkage,
        order=order,
        clusters=clusters,
        n_clusters=int(n_clusters),
        distance=distance,
        info=dict(info or {}),
    )


# ----- representative images (Fig. 4a bottom, Supp. Fig. 10) ----------------------------------
def cluster_usage(histograms: np.ndarray, spectrum: FeatureSpectrum) -> np.ndarray:
    """Fraction of each image's local positions that fall in each top-level cluster.

    Returns:
        float array (N, C) for clusters ``spectrum.cluster_numbers`` in order.
    """
    histograms = np.asarray(histograms, dtype=np.float64)
    totals = np.maximum(histograms.sum(axis=1, keepdims=True), 1e-12)
    columns = [histograms[:, spectrum.clusters == c].sum(axis=1) for c in spectrum.cluster_numbers]
    return np.stack(columns, axis=1) / totals


def cluster_examples(
    histograms: np.ndarray,
    spectrum: FeatureSpectrum,
    proteins: Sequence | None = None,
    top: int = 4,
) -> dict[int, np.ndarray]:
    """The images that use each feature cluster most (highest fraction of positions).

    Args:
        histograms: array (N, K). Per-image local-index histograms.
        spectrum: FeatureSpectrum. Gives the clusters.
        proteins: sequence of length N or None. When given, at most one image per protein
            (so the examples show different proteins, as in Supp. Fig. 10).
        top: int. Images per cluster. Defaults to 4.

    Returns:
        dict cluster number → int array of up to `top` image indices, best first.
    """
    usage = cluster_usage(histograms, spectrum)
    names = None if proteins is None else np.asarray(proteins).astype(str)
    examples = {}
    for column, cluster in enumerate(spectrum.cluster_numbers):
        chosen: list[int] = []
        seen: set[str] = set()
        for image in np.argsort(-usage[:, column], kind="stable"):
            if names is not None:
                if names[image] in seen:
                    continue
                seen.add(names[image])
            chosen.append(int(image))
            if len(chosen) == top:
                break
        examples[cluster] = np.array(chosen, dtype=np.int64)
    return examples


# ----- figures -----------------------------------------------------------------------------
def _band_colors(count: int):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20")
    return [cmap((2 * i + 1) % 20) for i in range(count)]


def _draw_bands(ax, spectrum: FeatureSpectrum, label_y: float | None = None) -> None:
    ranges = spectrum.cluster_ranges()
    colors = _band_colors(len(ranges))
    for (cluster, start, stop), color in zip(ranges, colors):
        ax.axvspan(start - 0.5, stop - 0.5, color=color if cluster else "#eeeeee", alpha=0.35, lw=0)
    if label_y is not None:
        _band_labels(ax, spectrum, levels=(label_y,), data_y=True)


def _band_labels(ax, spectrum: FeatureSpectrum, levels=(0.1, 0.4, 0.7), data_y: bool = False) -> None:
    """Roman numeral of each top-level cluster over its band; a label that would overlap its left
    neighbour moves up a level (levels in axes fractions, or data units with `data_y`), and is
    left out when no level is free (its band is narrower than the text)."""
    import matplotlib.transforms as transforms

    transform = ax.transData if data_y else transforms.blended_transform_factory(ax.transData, ax.transAxes)
    renderer = ax.figure.canvas.get_renderer()
    right_edge = [-np.inf] * len(levels)
    for cluster, start, stop in spectrum.cluster_ranges():
        if not cluster:
            continue
        for level, y in enumerate(levels):
            text = ax.text((start + stop - 1) / 2, y, roman(cluster), ha="center", va="bottom", fontsize=6,
                           transform=transform)
            extent = text.get_window_extent(renderer)
            if extent.x0 > right_edge[level] + 1:
                right_edge[level] = extent.x1
                break
            text.remove()


def plot_spectrum(
    spectrum: FeatureSpectrum, protein: str, path: str | os.PathLike, with_consensus: bool = True
) -> None:
    """Feature spectrum of one protein with the top-level cluster bands (Fig. 4c)."""
    import matplotlib

    matplotlib.use("Agg", force=False)

    from statcell_tf import figures

    values = spectrum.spectrum(protein)
    family = spectrum.families[spectrum.protein_index(protein)]
    fig, axes = figures.new_figure(panel=(10, 3.2))
    ax = axes[0, 0]
    positions = np.arange(len(values))
    top = float(values.max()) if values.size and values.max() > 0 else 1.0
    _draw_bands(ax, spectrum)
    ax.bar(positions, values, width=1.0, color="#222222", lw=0, label=protein)
    if with_consensus and family:
        consensus = spectrum.family_consensus(exclude_protein=protein)
        if family in consensus.index:
            row = consensus.drop(columns="n_proteins").loc[family].to_numpy()[spectrum.order]
            ax.plot(positions, row, color="tab:red", lw=0.8, label=f"{family} consensus")
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_ylim(0, top * 1.3)
    ax.set_xlabel("feature index (clustered order)")
    ax.set_ylabel("occurrence per image (mean count)")
    ax.set_title(f"Feature spectrum of {protein}" + (f" ({family})" if family else "")
                 + "; bands: top-level feature clusters (Fig. 4c)")
    fig.legend(loc="outside right upper", frameon=False)
    fig.canvas.draw()
    _band_labels(ax, spectrum, levels=(0.8, 0.9))
    atomic.save_figure(path, fig)


def plot_family_spectra(spectrum: FeatureSpectrum, path: str | os.PathLike) -> None:
    """Consensus spectrum of every localisation family, one row each (Fig. 4b)."""
    import matplotlib

    matplotlib.use("Agg", force=False)

    consensus = spectrum.family_consensus()
    if consensus.empty:
        raise UserError("family spectra need family (localisation) labels. Received: none")
    families = list(consensus.index)
    from statcell_tf import figures

    fig, axes = figures.new_figure(len(families), 1, panel=(10, 0.75), figsize=(10, 0.75 * len(families) + 1.2),
                                   sharex=True)
    values_all = consensus.drop(columns="n_proteins").to_numpy(float)
    top = float(np.nanmax(values_all)) if values_all.size and np.nanmax(values_all) > 0 else 1.0
    for ax, family in zip(axes[:, 0], families):
        values = consensus.drop(columns="n_proteins").loc[family].to_numpy()[spectrum.order]
        _draw_bands(ax, spectrum)
        ax.bar(np.arange(len(values)), values, width=1.0, color="#222222", lw=0)
        ax.set_ylim(0, top * 1.05)
        ax.set_yticks([0, top], ["0", f"{top:.2g}"])
        ax.set_ylabel(f"{family}\n(n = {int(consensus.loc[family, 'n_proteins'])})", rotation=0, ha="right",
                      va="center")
    axes[-1, 0].set_xlabel("feature index (clustered order); bands: top-level feature clusters")
    axes[-1, 0].set_xlim(-0.5, spectrum.num_codes - 0.5)
    fig.supylabel("occurrence per image (mean count; same scale in every row)")
    figures.suptitle(fig, "Consensus feature spectrum of each localization family, n = proteins (Fig. 4b)")
    atomic.save_figure(path, fig)


def plot_correlation_heatmap(spectrum: FeatureSpectrum, path: str | os.PathLike) -> None:
    """Code-code correlation in feature order with the cluster bands (Fig. 4a)."""
    import matplotlib

    matplotlib.use("Agg", force=False)

    from statcell_tf import figures

    ordered = spectrum.correlation[np.ix_(spectrum.order, spectrum.order)]
    fig, axes = figures.new_figure(2, 1, figsize=(7.5, 8.2), sharex=True, gridspec_kw={"height_ratios": [12, 1]})
    ax, bar = axes[0, 0], axes[1, 0]
    image = ax.imshow(ordered, cmap=figures.SIGNED, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
    fig.colorbar(image, ax=ax, label="Pearson r", shrink=0.8)
    ax.set_title("Correlation of local codes, clustered (Fig. 4a)")
    ax.set_ylabel("feature index (clustered order)")
    ax.tick_params(labelbottom=False)
    _draw_bands(bar, spectrum)
    bar.set_xlim(-0.5, len(ordered) - 0.5)
    fig.canvas.draw()  # final positions before the band labels are placed
    _band_labels(bar, spectrum)
    bar.set_yticks([])
    bar.set_ylim(0, 1)
    bar.set_xlabel("feature index (clustered order); bands: top-level clusters")
    atomic.save_figure(path, fig)


def plot_cluster_examples(
    images: dict[int, np.ndarray], path: str | os.PathLike, captions: dict[int, Sequence[str]] | None = None
) -> None:
    """Grid of representative images: one row per feature cluster (Fig. 4a bottom).

    Args:
        images: dict cluster → array (n, H, W) or (n, H, W, C); channel 0 is shown.
        path: str or PathLike. PNG destination.
        captions: dict cluster → one caption per image (e.g. protein names). Optional.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)

    from statcell_tf import figures

    clusters = list(images)
    columns = max((len(v) for v in images.values()), default=1) or 1
    fig, axes = figures.new_figure(len(clusters), columns, panel=(1.3, 1.3),
                                   figsize=(1.3 * columns + 0.6, 1.3 * len(clusters) + 0.9))
    shown = [np.asarray(v)[..., 0] if np.asarray(v).ndim == 4 else np.asarray(v) for v in images.values()]
    scale = figures.display_range([image[..., None] for stack in shown for image in stack], ["protein"],
                                  of="all images shown")
    for row, (cluster, stack) in enumerate(zip(clusters, shown)):
        for column in range(columns):
            ax = axes[row, column]
            if column < len(stack):
                figures.show_image(ax, stack[column][..., None], scale)
                if captions and column < len(captions.get(cluster, [])):
                    ax.set_title(str(captions[cluster][column]), fontsize=6)
            else:
                ax.set_axis_off()
        axes[row, 0].set_axis_on()
        axes[row, 0].set_ylabel(roman(int(cluster)), rotation=0, ha="right", va="center", fontsize=10)
    figures.channel_key(fig, scale)
    figures.suptitle(fig, "Representative images per top-level feature cluster (Fig. 4a bottom, S10)")
    atomic.save_figure(path, fig)
