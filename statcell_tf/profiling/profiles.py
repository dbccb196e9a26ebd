"""Cells → normalised, feature-selected, spherized cell / well / treatment profiles (pycytominer).

The image-based profiling recipe of the field (Caicedo et al. 2017; pycytominer), on a
validated cell table (`cells.CellTable`):

1. **normalise** every plate against its negative controls (``standardize``: mean / S.D.,
   or ``mad_robustize``: median / MAD; `pycytominer.normalize` with the controls as
   ``samples``), on the cells (default) or on the well profiles;
2. **select features** (`pycytominer.feature_select`: ``variance_threshold``,
   ``correlation_threshold``, ``drop_outliers``, ``blocklist``) on the normalised rows;
3. **spherize** (optional; ZCA or PCA, `pycytominer.normalize(method="spherize")`) against
   the controls, per plate, per batch or pooled;
4. **aggregate** cells → wells (`pycytominer.aggregate`, mean or median) and wells →
   treatments (`pycytominer.consensus`, median or mean).

The reference of steps 1 and 3 follows one rule for every plate (`references`): its own
controls when it holds at least ``min_controls`` control units (cells, or wells with
``normalize_on="wells"``), else its batch's, else all plates', else all of the plate's rows;
`Profiles.references` says which plate used which. PCA spherizing rotates each reference
into its own eigenbasis, which makes plates incomparable: it is allowed with the pooled
scope only.

Every table returned names its metadata ``Metadata_<name>`` and keeps the feature names, so
pycytominer and copairs read the Parquet files as they are (features = the columns not
starting with ``Metadata_``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError
from statcell_tf.profiling import moa, references
from statcell_tf.profiling.cells import CellTable, as_metadata_names

NORMALIZE_METHODS = ("none", "standardize", "mad_robustize")
NORMALIZE_ON = ("cells", "wells")
SPHERIZE_METHODS = ("none", "ZCA", "ZCA-cor", "PCA", "PCA-cor")
FEATURE_SELECT = ("variance_threshold", "correlation_threshold", "drop_outliers", "blocklist")
AGGREGATIONS = ("mean", "median")
WELL_STRATA = ["Metadata_plate", "Metadata_well", "Metadata_compound", "Metadata_concentration", "Metadata_moa",
               "Metadata_batch"]
TREATMENT_STRATA = ["Metadata_compound", "Metadata_concentration", "Metadata_moa"]
_REFERENCE = "Metadata_normalisation_reference"


class NoInformativeFeatures(UserError):
    """Every feature is constant across the profiles: nothing to compare (an untrained
    vector-quantised model can map every cell to one code)."""


@dataclasses.dataclass(frozen=True)
class ProfileSettings:
    """How cells become profiles (see the module docstring).

    Args:
        control: str. Compound name of the negative control. Defaults to ``"DMSO"``.
        normalize: one of `NORMALIZE_METHODS`. Defaults to ``"standardize"``.
        normalize_on: ``"cells"`` or ``"wells"``. Defaults to ``"cells"``.
        scope: ``"plate"``, ``"batch"`` or ``"pooled"``: the first reference tried.
        min_controls: int. Fewest control units a reference may hold. Defaults to 2.
        feature_select: tuple of `FEATURE_SELECT` operations. Defaults to variance and
            correlation thresholds.
        corr_threshold: float. Pearson correlation above which one of two features goes.
        blocklist: tuple of feature names for the ``blocklist`` operation; empty =
            pycytominer's packaged CellProfiler blocklist.
        spherize: one of `SPHERIZE_METHODS`. Defaults to ``"none"``.
        spherize_epsilon: float. pycytominer's regulariser of the singular values.
        aggregate: ``"mean"`` or ``"median"``: cells → wells.
        consensus: ``"median"`` or ``"mean"``: wells → treatments.
    """

    control: str = "DMSO"
    normalize: str = "standardize"
    normalize_on: str = "cells"
    scope: str = "plate"
    min_controls: int = 2
    feature_select: tuple = ("variance_threshold", "correlation_threshold")
    corr_threshold: float = 0.9
    blocklist: tuple = ()
    spherize: str = "none"
    spherize_epsilon: float = 1e-6
    aggregate: str = "mean"
    consensus: str = "median"

    def __post_init__(self):
        for name, allowed in (("normalize", NORMALIZE_METHODS), ("normalize_on", NORMALIZE_ON),
                              ("scope", references.SCOPES), ("spherize", SPHERIZE_METHODS),
                              ("aggregate", AGGREGATIONS), ("consensus", AGGREGATIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {', '.join(allowed)}. Received: {name}={getattr(self, name)!r}")
        unknown = sorted(set(self.feature_select) - set(FEATURE_SELECT))
        if unknown:
            raise ValueError(f"`feature_select` operations must be among {', '.join(FEATURE_SELECT)}. Received: {unknown}")
        if self.min_controls < 1:
            raise ValueError(f"`min_controls` must be >= 1. Received: min_controls={self.min_controls}")
        if not 0 < self.corr_threshold <= 1:
            raise ValueError(f"`corr_threshold` must be in (0, 1]. Received: corr_threshold={self.corr_threshold}")
        if self.spherize.startswith("PCA") and self.scope != "pooled":
            raise UserError(
                f"--spherize {self.spherize} rotates each plate's profiles into that plate's own eigenbasis, which makes "
                f"plates incomparable; use ZCA or --scope pooled. Received: --spherize {self.spherize} --scope {self.scope}"
            )


@dataclasses.dataclass
class Profiles:
    """Profiles at three levels, all with ``Metadata_*`` columns and the kept features.

    Attributes:
        cells: normalised (and spherized) single cells.
        wells: one row per (plate, well, compound, concentration); ``Metadata_Object_Count``
            cells.
        treatments: one row per (compound, concentration); ``Metadata_wells``.
        features: the features left after selection.
        references: one row per plate and step (``normalize``, ``spherize``), see
            `references.control_references`, with ``step`` and ``unit``.
        removed_features: features dropped by the selection.
    """

    cells: pd.DataFrame
    wells: pd.DataFrame
    treatments: pd.DataFrame
    features: list
    references: pd.DataFrame
    removed_features: list


def pycytominer():
    """The pycytominer module, imported without the pandas deprecation warning its import
    raises on pandas >= 3 (it sets the removed ``mode.copy_on_write`` option)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*copy_on_write", category=DeprecationWarning)
        import pycytominer as module
    return module


def metadata_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if str(c).startswith("Metadata_")]


def _against_controls(frame: pd.DataFrame, features: list, settings: ProfileSettings, method: str, unit: str,
                      step: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`pycytominer.normalize` of every plate of `frame`, fitted on that plate's reference
    rows (`references.control_references`)."""
    normalize = pycytominer().normalize
    plates = frame["Metadata_plate"].to_numpy()
    rows, report = references.control_references(
        plates, frame["Metadata_batch"].to_numpy(), (frame["Metadata_compound"] == settings.control).to_numpy(),
        settings.scope, settings.min_controls,
    )
    meta = metadata_columns(frame)
    options = ({"method": "spherize", "spherize_method": settings.spherize, "spherize_epsilon": settings.spherize_epsilon}
               if step == "spherize" else {"method": method})
    parts = []
    for plate, reference in rows.items():
        on_plate = np.flatnonzero(plates == plate)
        # The reference rows (maybe from other plates) first, marked; pycytominer fits on them.
        both = pd.concat([frame.iloc[reference].assign(**{_REFERENCE: True}),
                          frame.iloc[on_plate].assign(**{_REFERENCE: False})], ignore_index=True)
        try:
            normalised = normalize(both, features=list(features), meta_features=meta + [_REFERENCE],
                                   samples=f"{_REFERENCE} == True", **options)
        except ValueError as error:
            raise UserError(
                f"{step} ({options.get('spherize_method', method)}) of plate {plate} against "
                f"{report.set_index('plate').loc[plate, 'reference']} failed: {str(error).splitlines()[0]}"
            ) from None
        part = normalised[~normalised[_REFERENCE].to_numpy(bool)].drop(columns=_REFERENCE)
        parts.append(part.set_index(on_plate))
    result = pd.concat(parts).sort_index()
    return result, report.assign(step=step, unit=unit)


def select_features(frame: pd.DataFrame, features: list, settings: ProfileSettings) -> list[str]:
    """The features `pycytominer.feature_select` keeps (none of the operations: all but the
    constant ones). Raises `NoInformativeFeatures` when every feature is constant."""
    varying = [f for f, v in zip(features, frame[list(features)].to_numpy(np.float64).std(axis=0)) if v > 0]
    if not varying:
        raise NoInformativeFeatures(f"every one of the {len(features)} features is constant across the profiles")
    if not settings.feature_select:
        return varying
    feature_select = pycytominer().feature_select
    options = {}
    if "blocklist" in settings.feature_select and settings.blocklist:
        options["blocklist"] = list(settings.blocklist)
    kept = feature_select(frame[metadata_columns(frame) + varying], features=varying,
                          operation=list(settings.feature_select), corr_threshold=settings.corr_threshold, **options)
    kept = [f for f in varying if f in kept.columns]
    if not kept:
        raise UserError(f"feature selection ({', '.join(settings.feature_select)}) removed every one of "
                        f"{len(features)} features; choose fewer --feature-select operations")
    return kept


def aggregate_wells(cells: pd.DataFrame, features: list, operation: str) -> pd.DataFrame:
    """Cells → one profile per well (`pycytominer.aggregate`) with ``Metadata_Object_Count``."""
    aggregate = pycytominer().aggregate
    counted = cells.assign(Metadata_cell=np.arange(len(cells)))
    return aggregate(counted, strata=WELL_STRATA, features=list(features), operation=operation,
                     compute_object_count=True, object_feature="Metadata_cell")


def pseudo_replicates(cells: pd.DataFrame, features: list, size: int, seed: int = 0,
                      operation: str = "mean") -> pd.DataFrame:
    """Sub-well replicates: the cells of every well shuffled and cut into groups of about
    `size` cells (``ceil(n / size)`` groups per well; a well with fewer cells is one group),
    each group aggregated (`pycytominer.aggregate`). For treatments imaged in one well:
    averaging a few cells gives replicates far less noisy than single cells (they still
    share their well's conditions). ``Metadata_replicate`` numbers the groups of a well.
    """
    if size < 1:
        raise ValueError(f"`size` must be >= 1. Received: size={size}")
    if size == 1:
        return cells.assign(Metadata_replicate=np.arange(len(cells)))
    groups = np.empty(len(cells), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for rows in cells.groupby(WELL_STRATA, sort=True, dropna=False).indices.values():
        count = int(np.ceil(len(rows) / size))
        groups[rng.permutation(rows)] = np.arange(len(rows)) % count
    aggregate = pycytominer().aggregate
    grouped = cells.reset_index(drop=True).assign(Metadata_replicate=groups, Metadata_cell=np.arange(len(cells)))
    return aggregate(grouped, strata=WELL_STRATA + ["Metadata_replicate"], features=list(features),
                     operation=operation, compute_object_count=True, object_feature="Metadata_cell")


def aggregate_treatments(wells: pd.DataFrame, features: list, operation: str) -> pd.DataFrame:
    """Wells → one profile per treatment (`pycytominer.consensus`) with ``Metadata_wells``."""
    consensus = pycytominer().consensus
    treatments = consensus(wells[TREATMENT_STRATA + list(features)], replicate_columns=TREATMENT_STRATA,
                           operation=operation, features=list(features))
    counts = wells.groupby(TREATMENT_STRATA, sort=True).size().rename("Metadata_wells").reset_index()
    treatments = counts.merge(treatments, on=TREATMENT_STRATA, how="right")
    return treatments[TREATMENT_STRATA + ["Metadata_wells"] + list(features)]


def _normalise_select_spherize(frame: pd.DataFrame, features: list, settings: ProfileSettings,
                               unit: str) -> tuple[pd.DataFrame, list, list]:
    """Steps 1–3 of the module docstring on cells or wells."""
    reports = []
    if settings.normalize != "none":
        frame, report = _against_controls(frame, features, settings, settings.normalize, unit, "normalize")
        reports.append(report)
    kept = select_features(frame, features, settings)
    frame = frame[metadata_columns(frame) + kept]
    if settings.spherize != "none":
        frame, report = _against_controls(frame, kept, settings, "spherize", unit, "spherize")
        reports.append(report)
    return frame, kept, reports


def build_profiles(cells: CellTable, settings: ProfileSettings = ProfileSettings()) -> Profiles:
    """Run the recipe of the module docstring on a validated cell table.

    With ``normalize_on="wells"`` the returned cells are the raw cells (selected features).
    """
    table = cells.table.assign(batch=moa.batch_labels(cells.table).to_numpy())
    features = list(cells.features)
    frame = as_metadata_names(table, features)
    frame = frame[metadata_columns(frame) + features]
    if settings.normalize_on == "cells":
        frame, kept, reports = _normalise_select_spherize(frame, features, settings, "cell")
        wells = aggregate_wells(frame, kept, settings.aggregate)
    else:
        wells = aggregate_wells(frame, features, settings.aggregate)
        wells, kept, reports = _normalise_select_spherize(wells, features, settings, "well")
        frame = frame[metadata_columns(frame) + kept]
    treatments = aggregate_treatments(wells, kept, settings.consensus)
    removed = [f for f in features if f not in kept]
    report = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame(
        columns=[*references.REPORT_COLUMNS, "step", "unit"])
    return Profiles(frame.reset_index(drop=True), wells.reset_index(drop=True), treatments, kept, report, removed)
