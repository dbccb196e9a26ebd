"""Image-based profiling and the BBBC021 mechanism-of-action (MoA) benchmark.

The protocol of Lafarge et al. 2019 (Sect. 4.2, Table 1), which follows Ljosa et al. 2013
and Ando et al. 2017:

1. cell embeddings → **well profile**: the mean (or mean and standard deviation) of the
   cells of each (plate, well, compound, concentration);
2. well profiles → **treatment profile**: the element-wise median over the wells of each
   treatment (compound, concentration);
3. every non-control treatment is assigned the MoA of its **nearest neighbour** among the
   other treatments' profiles by cosine distance (1 − cosine similarity, Ljosa et al. 2013;
   Ando et al. 2017), with one of two hold-outs:

   - **NSC** (not-same-compound): every profile of the query's compound, at any
     concentration, is excluded from the references;
   - **NSCB** (not-same-compound-and-batch): in addition, every profile that shares an
     experimental batch with the query is excluded. A treatment's batches are the batches
     of the plates its wells lie on. BBBC021 plates are named ``Week<k>_<plate>``: the
     experimental batch is the week (the plates imaged together), which is what we use when
     plate names follow that pattern; a ``batch`` column in the table takes precedence, and
     for other plate names each plate is its own batch.

   Control treatments (``compound == control``, DMSO) are neither queries nor references
   (Ljosa et al. 2013: 103 treatments, 12 MoAs, DMSO excluded). Accuracy is the fraction
   of queried treatments whose nearest neighbour has their MoA.

4. the four summaries of Table 1: ``Mean``, ``Mean+Whitened``, ``Mean+S.D.`` and
   ``Mean+S.D.+Whitened``. "Whitened" (Ando et al. 2017): the embeddings of each plate are
   transformed by a whitening transform learned on that plate's control cells, before the
   well summaries. We learn it on control *cells* rather than control well profiles: a
   plate has a handful of control wells, far fewer than embedding dimensions, so a
   covariance of well profiles cannot be inverted; the cells give a full-rank estimate, and
   the mean of whitened cells equals the whitened mean. The transform is **ZCA**
   (W = Σ^(−1/2), symmetric) after centring on the plate's control mean, not PCA
   whitening: PCA whitening rotates each plate into its own eigenbasis (with arbitrary
   signs), which would make profiles from different plates incomparable; ZCA is the
   whitening closest to the identity, so all plates stay in the embedding's coordinates.
   Eigenvalues are regularised by ``epsilon · mean eigenvalue`` (relative; 0 = exact).
   A plate with fewer than 2 control cells is whitened with its batch's control cells,
   else with all plates' (`references.control_references`); the benchmark reports which
   plates fell back.

A hold-out can leave a treatment without any admissible reference of its own MoA (in BBBC021
under NSCB: all Cholesterol-lowering and Kinase-inhibitor treatments and one
Microtubule-stabilizer, whose compounds were imaged in one batch; under NSC, a MoA with a
single compound): such a treatment can never be classified correctly, so it is left out of
that hold-out (never scored as a miss), as the BBBC021 literature does, and the benchmark
lists the treatments and the classes left out with the number evaluated.

Cell tables are read by `statcell_tf.data.embedding_files.read_embeddings` (the one reader).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from statcell_tf.data import tables
from statcell_tf.data.embedding_files import feature_columns
from statcell_tf.profiling import references
from statcell_tf.errors import UserError

WELL_KEYS = ("plate", "well", "compound", "concentration")
TREATMENT_KEYS = ("compound", "concentration")
REQUIRED_COLUMNS = ("plate", "well", "compound", "concentration", "moa")
SUMMARIES = ("Mean", "Mean+Whitened", "Mean+S.D.", "Mean+S.D.+Whitened")
HOLDOUTS = ("NSC", "NSCB")
METRICS = ("cosine", "euclidean")
WEEK_PATTERN = re.compile(r"^(Week\d+)_")


# ----- metadata of cell tables (read by `statcell_tf.data.embedding_files.read_embeddings`) -------
def check_table(table: pd.DataFrame, source: str = "embedding table") -> pd.DataFrame:
    """Validate the metadata columns and normalise their types (a copy)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(
            f"{source} lacks metadata column(s) {', '.join(missing)}; needed: {', '.join(REQUIRED_COLUMNS)}. "
            f"Received columns: {', '.join(map(str, list(table.columns)[:12]))}"
        )
    tables.require_ids(table, ("plate", "well", "compound", "moa"), source)
    table = table.copy()
    for column in ("plate", "well", "compound", "moa"):
        table[column] = table[column].astype(str)
    table["concentration"] = tables.numeric_matrix(table, ["concentration"], source)[0][:, 0]
    return table


def batch_labels(table: pd.DataFrame, batch_column: str | None = "batch") -> pd.Series:
    """Experimental batch of every row: `batch_column` if present, else the week of BBBC021
    plate names (``Week4_27801`` → ``Week4``), else the plate itself."""
    if batch_column and batch_column in table.columns:
        return table[batch_column].astype(str)
    plates = table["plate"].astype(str)
    weeks = plates.str.extract(WEEK_PATTERN, expand=False)
    if weeks.notna().all():
        return weeks
    return plates


# ----- whitening -------------------------------------------------------------------------
def fit_zca(controls: np.ndarray, epsilon: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening learned on `controls` (N, D): returns (mean (D,), W (D, D)).

    ``(x − mean) @ W`` has identity covariance over the controls (exactly when epsilon = 0
    and the covariance has full rank). W = U diag((λ + ε·mean λ)^(−1/2)) Uᵀ.
    """
    controls = np.asarray(controls, dtype=np.float64)
    if controls.ndim != 2 or len(controls) < 2:
        raise ValueError(f"need at least 2 control rows to learn a whitening. Received shape {controls.shape}")
    mean = controls.mean(axis=0)
    covariance = np.cov(controls, rowvar=False, ddof=1).reshape(controls.shape[1], controls.shape[1])
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    floor = epsilon * max(float(eigenvalues.mean()), np.finfo(np.float64).tiny)
    scale = 1.0 / np.sqrt(eigenvalues + floor)
    if not np.all(np.isfinite(scale)):
        raise ValueError("the control covariance is singular; use epsilon > 0")
    return mean, (eigenvectors * scale) @ eigenvectors.T


def whiten_per_plate(
    table: pd.DataFrame,
    features: Sequence[str],
    control: str = "DMSO",
    epsilon: float = 1e-6,
    batch_column: str | None = "batch",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whiten the embeddings of every plate with a ZCA transform learned on that plate's
    control rows (``compound == control``).

    A plate with fewer than 2 control cells is whitened with the controls of its batch,
    else of all plates (`references.control_references`; never an error).

    Returns:
        (whitened copy of `table`, report): one report row per plate naming the reference
        used and whether it fell back.
    """
    features = list(features)
    values = table[features].to_numpy(dtype=np.float64)
    whitened = np.empty_like(values)
    is_control = (table["compound"] == control).to_numpy()
    plates = table["plate"].astype(str).to_numpy()
    rows, report = references.control_references(
        plates, batch_labels(table, batch_column).to_numpy(), is_control, "plate", min_controls=2
    )
    for plate, reference in rows.items():
        mean, transform = fit_zca(values[reference], epsilon)
        on_plate = plates == plate
        whitened[on_plate] = (values[on_plate] - mean) @ transform
    # One new block for the features (assigning them column by column fragments wide tables).
    whitened = pd.DataFrame(whitened, index=table.index, columns=features)
    return pd.concat([table.drop(columns=features), whitened], axis=1)[list(table.columns)], report


# ----- profiles --------------------------------------------------------------------------
def well_profiles(
    table: pd.DataFrame, features: Sequence[str], with_sd: bool = False, batch_column: str | None = "batch"
) -> tuple[pd.DataFrame, list[str]]:
    """Summarise the cells of each well: mean (and population S.D.) of every feature.

    Returns:
        (wells, profile_columns): one row per (plate, well, compound, concentration) with
        ``moa``, ``batch``, ``cells`` and the profile columns (``mean_<f>``[, ``sd_<f>``]).
    """
    features = list(features)
    table = table.assign(batch=batch_labels(table, batch_column).to_numpy())
    grouped = table.groupby(list(WELL_KEYS), sort=True, dropna=False)
    means = grouped[features].mean()
    means.columns = [f"mean_{c}" for c in features]
    parts = [means]
    if with_sd:
        sds = grouped[features].std(ddof=0)
        sds.columns = [f"sd_{c}" for c in features]
        parts.append(sds)
    info = grouped.agg(moa=("moa", "first"), batch=("batch", "first"), cells=("moa", "size"))
    wells = pd.concat([info, *parts], axis=1).reset_index()
    profile_columns = [c for part in parts for c in part.columns]
    return wells, profile_columns


def treatment_profiles(wells: pd.DataFrame, profile_columns: Sequence[str]) -> pd.DataFrame:
    """Median of the well profiles of each treatment (compound, concentration).

    Returns one row per treatment with ``moa``, ``batches`` (frozenset of the wells'
    batches), ``plates`` (frozenset), ``wells`` (count) and the profile columns.
    """
    profile_columns = list(profile_columns)
    rows = []
    for (compound, concentration), group in wells.groupby(list(TREATMENT_KEYS), sort=True):
        moas = group["moa"].dropna().astype(str).unique()
        if len(moas) != 1:
            raise UserError(
                f"treatment {compound} at {concentration}: expected one MoA across its wells. "
                f"Received: {', '.join(moas) or 'none'}"
            )
        row = {
            "compound": compound,
            "concentration": concentration,
            "moa": moas[0],
            "batches": frozenset(group["batch"].astype(str)),
            "plates": frozenset(group["plate"].astype(str)),
            "wells": len(group),
        }
        row.update(zip(profile_columns, np.median(group[profile_columns].to_numpy(np.float64), axis=0)))
        rows.append(row)
    return pd.DataFrame(rows)


# ----- nearest-neighbour MoA assignment -----------------------------------------------------
def _distances(queries: np.ndarray, references: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        def unit(a):
            return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

        return 1.0 - unit(queries) @ unit(references).T
    if metric == "euclidean":
        return np.sqrt(np.maximum(((queries[:, None, :] - references[None, :, :]) ** 2).sum(-1), 0.0))
    raise ValueError(f"`metric` must be one of {', '.join(METRICS)}. Received: metric={metric!r}")


def holdout_mask(treatments: pd.DataFrame, holdout: str) -> np.ndarray:
    """(T, T) boolean: True where treatment j may serve as a reference for query i."""
    if holdout not in HOLDOUTS:
        raise ValueError(f"`holdout` must be one of {', '.join(HOLDOUTS)}. Received: holdout={holdout!r}")
    compounds = treatments["compound"].to_numpy()
    allowed = compounds[:, None] != compounds[None, :]
    if holdout == "NSCB":
        batches = list(treatments["batches"])
        shares = np.array([[bool(a & b) for b in batches] for a in batches], dtype=bool)
        allowed &= ~shares
    return allowed


def unreferenced_queries(treatments: pd.DataFrame, holdout: str) -> pd.DataFrame:
    """Treatments with no admissible reference of their own MoA under `holdout` (module doc)."""
    allowed = holdout_mask(treatments, holdout)
    moas = treatments["moa"].to_numpy()
    has_reference = (allowed & (moas[:, None] == moas[None, :])).any(axis=1)
    return treatments.loc[~has_reference, ["compound", "concentration", "moa"]]


def nearest_neighbor_moa(
    treatments: pd.DataFrame,
    profile_columns: Sequence[str],
    holdout: str = "NSC",
    metric: str = "cosine",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1-NN MoA assignment of every treatment under a hold-out.

    A treatment with no admissible reference of its own MoA (every other treatment of it is
    the same compound, or, under NSCB, shares a batch with it) could never be classified
    correctly: it is left out of this hold-out, as query and as reference, never scored as
    a miss (the BBBC021 convention of Ljosa et al. 2013 and Ando et al. 2017), and
    returned as excluded. Admissibility is symmetric, so leaving it out takes no reference
    away from a treatment of its own MoA.

    Args:
        treatments: DataFrame from `treatment_profiles`, controls already removed.
        profile_columns: the profile columns compared.
        holdout: ``"NSC"`` or ``"NSCB"`` (see the module docstring).
        metric: ``"cosine"`` (the benchmark's) or ``"euclidean"``.

    Returns:
        (predictions, excluded): one row per evaluated query with ``predicted``,
        ``neighbor_compound``, ``neighbor_concentration``, ``distance`` and ``correct``; the
        excluded treatments (compound, concentration, moa, ``class_excluded``: no treatment
        of that MoA is evaluated).
    """
    treatments = treatments.reset_index(drop=True)
    missing = unreferenced_queries(treatments, holdout)
    excluded = missing.reset_index(drop=True)
    treatments = treatments[~treatments.index.isin(missing.index)].reset_index(drop=True)
    excluded["class_excluded"] = ~excluded["moa"].isin(set(treatments["moa"]))
    if len(treatments) < 2:
        raise UserError(
            f"the {holdout} benchmark needs at least 2 non-control treatments with a reference of their MoA "
            f"(--evaluate map measures mAP without it). Received: {len(treatments)}, after leaving out "
            f"{len(excluded)} treatment(s) without one"
        )
    values = treatments[list(profile_columns)].to_numpy(np.float64)
    distances = _distances(values, values, metric)
    distances = np.where(holdout_mask(treatments, holdout), distances, np.inf)
    nearest = np.argmin(distances, axis=1)  # first minimum: deterministic ties
    predictions = treatments[["compound", "concentration", "moa"]].copy()
    predictions["predicted"] = treatments["moa"].to_numpy()[nearest]
    predictions["neighbor_compound"] = treatments["compound"].to_numpy()[nearest]
    predictions["neighbor_concentration"] = treatments["concentration"].to_numpy()[nearest]
    predictions["distance"] = distances[np.arange(len(treatments)), nearest]
    predictions["correct"] = predictions["predicted"] == predictions["moa"]
    return predictions, excluded


def describe_exclusions(excluded: pd.DataFrame, holdout: str, evaluated: int) -> str:
    """One line: how many treatments `holdout` evaluates, and which it leaves out and why."""
    if not len(excluded):
        return f"{holdout}: {evaluated} treatment(s) evaluated, none left out"
    names = ", ".join(f"{r.compound}@{r.concentration:g}" for r in excluded.itertuples())
    classes = sorted(excluded.loc[excluded["class_excluded"], "moa"].unique())
    why = "the same compound" + (" or sharing a batch" if holdout == "NSCB" else "")
    line = (f"{holdout}: {evaluated} treatment(s) evaluated; {len(excluded)} left out, no other treatment of their MoA "
            f"being admissible ({why}): {names}")
    return line + (f"; MoA class(es) left out entirely: {', '.join(classes)}" if classes else "")


# ----- the benchmark -----------------------------------------------------------------------
@dataclasses.dataclass
class BenchmarkResult:
    """Accuracy table (rows: hold-out × method, columns: the four summaries, in %), the
    per-treatment predictions, the treatments each hold-out leaves out (`nearest_neighbor_moa`;
    columns holdout, compound, concentration, moa, class_excluded) and the whitening
    reference of every plate (`references.control_references`)."""

    accuracy: pd.DataFrame
    predictions: pd.DataFrame
    excluded: pd.DataFrame
    whitening: pd.DataFrame


def summary_profiles(
    table: pd.DataFrame,
    features: Sequence[str],
    summary: str,
    control: str = "DMSO",
    whiten_epsilon: float = 1e-6,
    batch_column: str | None = "batch",
) -> tuple[pd.DataFrame, list[str]]:
    """Treatment profiles (controls removed) for one of the four `SUMMARIES`."""
    if summary not in SUMMARIES:
        raise ValueError(f"`summary` must be one of {', '.join(SUMMARIES)}. Received: summary={summary!r}")
    cells = whiten_per_plate(table, features, control, whiten_epsilon, batch_column)[0] if "Whitened" in summary else table
    wells, columns = well_profiles(cells, features, with_sd="S.D." in summary, batch_column=batch_column)
    treatments = treatment_profiles(wells, columns)
    return treatments[treatments["compound"] != control].reset_index(drop=True), columns


def moa_benchmark(
    table: pd.DataFrame,
    features: Sequence[str] | None = None,
    control: str = "DMSO",
    method: str = "model",
    metric: str = "cosine",
    whiten_epsilon: float = 1e-6,
    batch_column: str | None = "batch",
    source: str = "embedding table",
) -> BenchmarkResult:
    """Run the MoA benchmark of Table 1 on a cell embedding table.

    Args:
        table: DataFrame. One row per cell: embedding columns + plate, well, compound,
            concentration, moa (and optionally batch).
        features: the embedding columns; None = `feature_columns(table)`.
        control: str. Compound name of the negative control (whitening; not classified).
        method: str. Row label of the accuracy table (the model's name).
        metric: see `nearest_neighbor_moa`.
        whiten_epsilon: float. Relative eigenvalue regulariser of the whitening.
        batch_column: str or None. Column holding the experimental batch (see module doc).
        source: str. Name of the table in error messages.
    """
    table = check_table(table, source)
    features = list(features) if features is not None else feature_columns(table, source=source)
    values, _ = tables.numeric_matrix(table, features, source)
    table = pd.concat([table.drop(columns=features), pd.DataFrame(values, columns=features, index=table.index)], axis=1)
    if not (table["compound"] == control).any():
        raise UserError(
            f"{source} has no control cells (compound == {control!r}); the whitened summaries need them. "
            f"Pass --control NAME. Received compounds: {', '.join(sorted(table['compound'].unique())[:10])}"
        )
    _, whitening = references.control_references(
        table["plate"], batch_labels(table, batch_column), (table["compound"] == control).to_numpy(), "plate", 2
    )
    accuracy = {holdout: {} for holdout in HOLDOUTS}
    counts: dict = {}
    excluded: dict = {}
    predictions = []
    for summary in SUMMARIES:
        treatments, columns = summary_profiles(table, features, summary, control, whiten_epsilon, batch_column)
        for holdout in HOLDOUTS:  # the same treatments for every summary: exclusions do not depend on it
            result, excluded[holdout] = nearest_neighbor_moa(treatments, columns, holdout, metric)
            accuracy[holdout][summary] = 100.0 * float(result["correct"].mean())
            counts[holdout] = (len(result), result["moa"].nunique())
            predictions.append(result.assign(holdout=holdout, summary=summary))
    rows = [
        {"holdout": holdout, "method": method, **accuracy[holdout],
         "treatments": counts[holdout][0], "classes": counts[holdout][1],
         "excluded_treatments": len(excluded[holdout]),
         "excluded_classes": "|".join(sorted(excluded[holdout].loc[excluded[holdout]["class_excluded"], "moa"].unique()))}
        for holdout in HOLDOUTS
    ]
    ordered = ["holdout", "summary", "compound", "concentration", "moa", "predicted", "correct",
               "neighbor_compound", "neighbor_concentration", "distance"]
    left_out = pd.concat([excluded[h].assign(holdout=h) for h in HOLDOUTS], ignore_index=True)
    left_out = left_out[["holdout", "compound", "concentration", "moa", "class_excluded"]]
    return BenchmarkResult(pd.DataFrame(rows), pd.concat(predictions, ignore_index=True)[ordered], left_out,
                           whitening)


def accuracy_markdown(accuracy: pd.DataFrame) -> str:
    """Table 1 layout: one row per (hold-out, method), one column per summary, accuracy in %.

    With several methods, the best value of each hold-out and summary is bold.
    """
    lines = ["| Hold-out | Method | " + " | ".join(SUMMARIES) + " |", "|---|---|" + "---|" * len(SUMMARIES)]
    for holdout in HOLDOUTS:
        block = accuracy[accuracy["holdout"] == holdout]
        best = {s: block[s].max() for s in SUMMARIES}
        for _, row in block.iterrows():
            cells = []
            for s in SUMMARIES:
                text = f"{row[s]:.1f}"
                if len(block) > 1 and np.isclose(row[s], best[s]):
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {holdout} | {row['method']} | " + " | ".join(cells) + " |")
    notes = []
    for _, row in accuracy.drop_duplicates("holdout").iterrows():
        note = f"{row['holdout']}: {int(row['treatments'])} treatments, {int(row['classes'])} MoA classes"
        if row.get("excluded_treatments"):
            note += f" ({int(row['excluded_treatments'])} treatment(s) without a reference of their MoA left out"
            classes = row.get("excluded_classes")
            note += f"; classes left out: {classes.replace('|', ', ')})" if isinstance(classes, str) and classes else ")"
        notes.append(note)
    return "\n".join(lines) + "\n\nAccuracy (%) of 1-nearest-neighbour MoA assignment. " + "; ".join(notes) + ".\n"
