"""Finding a cytoself run and what the analysis commands read from it.

Helpers shared by the cytoself analyses (``feature-spectrum``, ``feature-interpret``,
``umap-cytoself``, ``embed-cytoself``, ``train-cytoself``): the newest run folder, reading the
data, making sure ``RUN/embeddings.h5`` exists, the rows of a run's split, metadata columns
and the run's cached `FeatureSpectrum`. No click here: commands pass a `log` callable for
messages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from statcell_tf.errors import UserError
from statcell_tf.data.readers import read_cells
from statcell_tf.training.run_dir import open_run

DEFAULT_RUNS = Path("models") / "cytoself"
EMBEDDINGS_NAME = "embeddings.h5"
PROTEIN_COLUMNS = ("protein", "label")
FAMILY_COLUMNS = ("family", "localization", "localisation", "moa")


def resolve_run(run: Path | None, runs_root: Path = DEFAULT_RUNS) -> Path:
    """`run`, or the newest run folder (by config.json time) under ``models/cytoself/``."""
    if run is not None:
        return open_run(run, "--run", paper="cytoself").path
    candidates = sorted(runs_root.glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(
            f"--run not given and no run found under {runs_root}/; train one with "
            "bin/train-cytoself or pass --run RUN. Received: no run"
        )
    return candidates[-1].parent


ENSEMBL_COLUMNS = ("ensg", "ensembl_id", "gene_id")


def resolve_protein(name: str, spectrum, embeddings: Path) -> str:
    """The protein `name` refers to: a protein name of the embeddings, or an Ensembl gene id
    (OpenCell files are named by it) of one protein. Unknown names are a UserError listing the
    closest names."""
    from statcell_tf.cytoself.embeddings import load_embeddings

    if name in set(spectrum.proteins.tolist()):
        return name
    _, metadata = load_embeddings(embeddings, keys=["index"])
    protein = spectrum.info.get("protein_column") or pick_column(metadata, PROTEIN_COLUMNS, "PROTEIN")
    for column in (c for c in ENSEMBL_COLUMNS if c in metadata):
        hits = sorted(set(metadata.loc[metadata[column].astype(str).str.upper() == name.upper(), protein].astype(str)))
        if len(hits) > 1:
            raise UserError(f"PROTEIN {name}: the {column} id names several proteins ({', '.join(hits)}); give one name")
        if hits:
            return hits[0]
    spectrum.protein_index(name)  # raises with the closest names
    return name


def ensure_embeddings(
    run_dir: Path, data: Path | None, allow_pickle: bool = False, log: Callable[[str], None] | None = None
) -> Path:
    """``RUN/embeddings.h5``, computed from every cell of `data` with the run's model when missing.

    Every cell is embedded (so every protein has a spectrum); the commands pick the cells they
    analyse with ``--split`` (`split_rows`). ``bin/embed-cytoself`` writes the same file for a
    chosen split only. `log` receives the one progress message (default: printed to stderr).
    """
    open_run(run_dir, "RUN", paper="cytoself")
    path = Path(run_dir) / EMBEDDINGS_NAME
    if path.exists():
        return path
    if data is None:
        raise UserError(
            f"{path} does not exist; pass --data DIR so the run's model can embed the images "
            "(or run bin/embed-cytoself first). Received: no --data"
        )
    from statcell_tf.cytoself.embeddings import embed_cytoself

    cells = read_cells(data, allow_pickle)
    (log or _stderr)(f"Embedding all {len(cells)} cells of {data} with {run_dir} → {path}")
    embed_cytoself(run_dir, cells, path)
    return path


def split_rows(run_dir: Path, index: np.ndarray, metadata, split: str) -> np.ndarray:
    """Rows of an embeddings file whose cells belong to `split` of the run (``all``: every row).

    The file's ``index`` (row of each cell in its data) is matched with the run's
    ``splits.csv``; the group recorded there must equal the embeddings' group column, so
    embeddings of other data are refused rather than silently mis-split.
    """
    index = np.asarray(index, dtype=np.int64)
    if split == "all":
        return np.arange(len(index))
    import pandas as pd

    splits_path = run_dir / "splits.csv"
    if not splits_path.exists():
        raise UserError(f"--split {split}: {splits_path} is missing; use --split all. Received: --split {split}")
    from statcell_tf.training.run_dir import RunDirectory

    config = RunDirectory(run_dir).read_config()["data"]
    table = pd.read_csv(splits_path)
    row_column = "row" if "row" in table.columns else "index"
    table = table.set_index(row_column)
    group = config.get("group_column") or "group"
    known = np.isin(index, table.index.to_numpy())
    same = bool(known.all())
    if same and group in metadata.columns and "group" in table.columns:
        recorded = table["group"].astype(str).reindex(index).to_numpy()
        same = bool(np.array_equal(recorded, metadata[group].astype(str).to_numpy()))
    if not same:
        raise UserError(
            f"--split {split}: the embeddings are not of the data RUN {run_dir} was trained on, so "
            f"its {splits_path.name} does not apply; use --split all. Received: --split {split}"
        )
    rows = np.flatnonzero(table["split"].reindex(index).to_numpy() == split)
    if rows.size == 0:
        raise UserError(
            f"--split {split}: none of the embedded cells is in the run's {split} split (the file "
            f"holds {len(index)} cells); use --split all or embed that split. Received: --split {split}"
        )
    return rows


def require_arrays(embeddings: Path, keys, why: str) -> None:
    """UserError when the embeddings file lacks one of `keys`."""
    import h5py

    with h5py.File(embeddings, "r") as handle:
        present = sorted(handle.keys())
    missing = [k for k in keys if k not in present]
    if missing:
        raise UserError(f"{embeddings} has no {', '.join(missing)}: {why}. Received: datasets={present}")


def pick_column(metadata, candidates, flag: str, required: bool = True) -> str | None:
    """The first of `candidates` present in `metadata` (UserError when none and required)."""
    for name in candidates:
        if name in metadata.columns:
            return name
    if required:
        raise UserError(
            f"{flag}: the embeddings metadata has none of the columns {', '.join(candidates)}. "
            f"Received: columns={list(metadata.columns)}"
        )
    return None


def load_spectrum(
    run_dir: Path,
    embeddings: Path,
    n_clusters: int = 11,
    distance: str = "euclidean",
    split: str = "all",
    cache_dir: Path | None = None,
):
    """The run's FeatureSpectrum: read from the cache when it matches `embeddings`, else built.

    The cache (``RUN/feature_spectrum/feature_spectrum.{npz,json}``) records the embeddings
    file's size and modification time and the split; re-embedding invalidates it. A different number of
    clusters only re-cuts the cached dendrogram.
    """
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.cytoself.feature_spectrum import FeatureSpectrum, build_feature_spectrum

    cache_dir = run_dir / "feature_spectrum" if cache_dir is None else cache_dir
    stat = embeddings.stat()
    source = {
        "embeddings": str(embeddings.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "split": split,
    }
    if FeatureSpectrum.exists(cache_dir):
        cached = FeatureSpectrum.load(cache_dir)
        if cached.info.get("source") == source and cached.distance == distance:
            return cached if cached.n_clusters == n_clusters else cached.with_clusters(n_clusters)
    why = "it has no feature spectrum (the run was trained without vector quantisation)"
    require_arrays(embeddings, ["local_hist"], why)
    arrays, metadata = load_embeddings(embeddings, keys=["local_hist", "index"])
    rows = split_rows(run_dir, arrays["index"], metadata, split)
    protein = pick_column(metadata, PROTEIN_COLUMNS, "feature-spectrum")
    family = pick_column(metadata, FAMILY_COLUMNS, "feature-spectrum", required=False)
    spectrum = build_feature_spectrum(
        np.asarray(arrays["local_hist"])[rows],
        metadata[protein].astype(str).to_numpy()[rows],
        None if family is None else metadata[family].to_numpy()[rows],
        n_clusters=n_clusters,
        distance=distance,
        info={"source": source, "protein_column": protein, "family_column": family, "split": split},
        where=f"feature-spectrum RUN {run_dir} ({embeddings.name}, --split {split})",
    )
    spectrum.save(cache_dir)
    return spectrum


def data_images(data: Path, embeddings: Path, metadata, index: np.ndarray, allow_pickle: bool = False):
    """The cells of `data` that the embeddings rows came from (UserError when they differ).

    Args:
        index: int array. The embeddings' ``index`` dataset (row of each cell in its data).
    """
    cells = read_cells(data, allow_pickle)
    index = np.asarray(index, dtype=np.int64)
    source = metadata.attrs.get("source", "another data set")
    mismatch = index.size and index.max() >= len(cells)
    for column in PROTEIN_COLUMNS:
        if not mismatch and column in metadata.columns and column in cells.metadata.columns:
            there = cells.metadata[column].astype(str).to_numpy()[index]
            mismatch = not np.array_equal(there, metadata[column].astype(str).to_numpy())
            break
    if mismatch:
        raise UserError(
            f"--data {data} is not the data {embeddings} was computed from ({source}); pass that "
            f"data, or delete {embeddings} to re-embed. Received: --data {data}"
        )
    return cells


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
