"""Mean average precision with copairs: phenotypic activity and phenotypic consistency.

The retrieval framework of Kalinin et al. 2025 (copairs): each profile queries the others,
ranked by cosine similarity; its average precision (AP) says how high its positives rank
among its negatives; a group's mAP is the mean AP of its profiles, and its p-value is the
fraction of a permutation null (random ranks with the same numbers of positives and
negatives, ``null_size`` draws) above it; p-values are Benjamini–Hochberg corrected
across groups.

- **Phenotypic activity** of a treatment (compound, concentration): positives are its other
  replicates, negatives the control (DMSO) replicates; controls are never each other's
  positives (copairs' reference index). Replicates are the rows given: well profiles (the
  standard) or single cells / groups of cells of a well (`profiles.pseudo_replicates`; for
  treatments imaged in one well: cells of one well share that well's conditions, so their
  activity includes well effects). A treatment with one
  replicate has nothing to retrieve: its mAP is reported as missing, with a note.
- **Control half-split**, the null check: a random half of the control replicates posing as
  a treatment against the other half must not be active.
- **Phenotypic consistency** of a mechanism (MoA): treatment profiles query each other;
  positives are treatments of the same MoA and another compound, negatives treatments of
  other MoAs. A MoA with one compound has no positive.

copairs counts the null draws strictly above the observed mAP, so with very few replicates
an mAP of 1, which chance reaches often (2 positives among 8 ranks: 1 in 28), still gets
p = 1 / (null_size + 1): read the p-values of 2–3 well replicates with that in mind.

We call copairs (`copairs.map.average_precision`, `copairs.map.mean_average_precision`,
`copairs.matching.assign_reference_index`) with its null distributions cached in a
temporary folder, not in the user's home.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError

TREATMENT = ["Metadata_compound", "Metadata_concentration"]
_KEY = "Metadata_treatment_key"
_REFERENCE = "Metadata_reference_index"
ACTIVITY_COLUMNS = ["kind", "Metadata_compound", "Metadata_concentration", "Metadata_moa", "replicates",
                    "mean_average_precision", "p_value", "corrected_p_value", "active", "note"]
CONSISTENCY_COLUMNS = ["Metadata_moa", "treatments", "compounds", "mean_average_precision", "p_value",
                       "corrected_p_value", "consistent", "note"]




def _check(profiles: pd.DataFrame, features, columns, source: str) -> None:
    missing = [c for c in columns if c not in profiles.columns]
    if missing:
        raise UserError(f"{source} lacks column(s) {', '.join(missing)} for mAP. Received: "
                        f"{', '.join(map(str, list(profiles.columns)[:12]))}")
    values = profiles[list(features)].to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise UserError(f"{source}: profiles hold NaN or inf values; mAP needs finite profiles")


def copairs_map(meta: pd.DataFrame, values: np.ndarray, pos_sameby: list, pos_diffby: list, neg_diffby: list,
                group: list, null_size: int, threshold: float, seed: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """copairs' AP per row and mAP per `group` (with p-values, BH-corrected across groups).

    Returns (None, None) when no row has both a positive and a negative pair.
    """
    from copairs import map as copairs
    from copairs.matching import UnpairedException

    try:
        ap = copairs.average_precision(meta, values, pos_sameby=pos_sameby, pos_diffby=pos_diffby, neg_sameby=[],
                                       neg_diffby=neg_diffby, distance="cosine", progress_bar=False)
    except UnpairedException:
        return None, None
    scored = ap[(ap["n_pos_pairs"] > 0) & ap["average_precision"].notna()]
    if scored.empty:
        return ap, None
    with tempfile.TemporaryDirectory(prefix="copairs-") as cache:
        maps = copairs.mean_average_precision(scored, group, null_size=null_size, threshold=threshold, seed=seed,
                                              progress_bar=False, cache_dir=cache)
    return ap, maps.drop(columns=["indices"], errors="ignore")


def phenotypic_activity(
    profiles: pd.DataFrame,
    features,
    control: str = "DMSO",
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
    source: str = "profiles",
) -> pd.DataFrame:
    """mAP of every non-control treatment's replicates against the control replicates.

    Args:
        profiles: DataFrame. One row per replicate (well or cell) with ``Metadata_compound``,
            ``Metadata_concentration``, ``Metadata_moa`` and the features.
        features: the feature columns.
        control: str. Compound name of the controls.
        null_size: int. Draws of copairs' permutation null (p-values >= 1 / (null_size + 1)).
        threshold: float. FDR level of ``active``.
        seed: int. Seed of the null.
        source: str. Names the profiles in messages.

    Returns:
        One row per non-control treatment (`ACTIVITY_COLUMNS`); ``mean_average_precision``
        and the p-values are NaN, with a ``note``, for a treatment with one replicate.
    """
    from copairs.matching import assign_reference_index

    _check(profiles, features, TREATMENT + ["Metadata_moa"], source)
    frame = profiles.reset_index(drop=True)
    is_control = (frame["Metadata_compound"] == control).to_numpy()
    if not is_control.any():
        raise UserError(f"{source} has no control replicates (compound == {control!r}); phenotypic activity is "
                        f"measured against them. Pass --control NAME")
    meta = frame[TREATMENT + ["Metadata_moa"]].copy()
    meta[_KEY] = meta["Metadata_compound"].astype(str) + " @ " + meta["Metadata_concentration"].map("{:g}".format)
    # Every control gets its own reference index: controls are negatives, never positives.
    meta = assign_reference_index(meta, meta.index[is_control], reference_col=_REFERENCE, default_value=-1)
    _, maps = copairs_map(meta, _feature_values(frame, features), [_KEY, _REFERENCE], [], [_KEY, _REFERENCE], [_KEY],
                          null_size, threshold, seed)
    treatments = (meta[~is_control].groupby(_KEY, sort=False)
                  .agg(**{c: (c, "first") for c in TREATMENT + ["Metadata_moa"]}, replicates=(_KEY, "size"))
                  .reset_index())
    if maps is None:
        maps = pd.DataFrame({_KEY: pd.Series(dtype=str)})
    result = treatments.merge(maps, on=_KEY, how="left")
    result = _scores(result, "active", {"replicates": "one replicate: nothing to retrieve"}).assign(kind="treatment")
    return result.sort_values(TREATMENT, kind="stable").reset_index(drop=True)[ACTIVITY_COLUMNS]


def control_half_split(
    profiles: pd.DataFrame, features, control: str = "DMSO", null_size: int = 10000, threshold: float = 0.05,
    seed: int = 0, source: str = "profiles",
) -> pd.DataFrame:
    """Phenotypic activity of a random half of the control replicates against the other half:
    the null check (must not be active). One row, compound ``<control> (random half)``."""
    frame = profiles[profiles["Metadata_compound"] == control].reset_index(drop=True)
    if len(frame) < 4:
        return pd.DataFrame([{"kind": "null check", "Metadata_compound": f"{control} (random half)", "Metadata_concentration": 0.0,
                              "Metadata_moa": control, "replicates": len(frame) // 2,
                              "note": f"{len(frame)} control replicate(s): too few to split"}],
                            columns=ACTIVITY_COLUMNS)
    half = np.zeros(len(frame), bool)
    half[np.random.default_rng(seed).permutation(len(frame))[: len(frame) // 2]] = True
    frame.loc[half, "Metadata_compound"] = f"{control} (random half)"
    return phenotypic_activity(frame, features, control, null_size, threshold, seed, source).assign(kind="null check")


def phenotypic_consistency(
    treatments: pd.DataFrame, features, control: str = "DMSO", null_size: int = 10000, threshold: float = 0.05,
    seed: int = 0, source: str = "treatment profiles",
) -> pd.DataFrame:
    """mAP of every mechanism: its treatments retrieving each other (another compound of the
    same MoA) among treatments of other MoAs. One row per MoA (`CONSISTENCY_COLUMNS`)."""
    _check(treatments, features, TREATMENT + ["Metadata_moa"], source)
    frame = treatments[treatments["Metadata_compound"] != control].reset_index(drop=True)
    meta = frame[TREATMENT + ["Metadata_moa"]].copy()
    maps = None
    if meta["Metadata_moa"].nunique() > 1:
        _, maps = copairs_map(meta, _feature_values(frame, features), ["Metadata_moa"], ["Metadata_compound"],
                              ["Metadata_moa"], ["Metadata_moa"], null_size, threshold, seed)
    moas = (meta.groupby("Metadata_moa", sort=True)
            .agg(treatments=("Metadata_compound", "size"), compounds=("Metadata_compound", "nunique")).reset_index())
    if maps is None:
        maps = pd.DataFrame({"Metadata_moa": pd.Series(dtype=str)})
    result = moas.merge(maps, on="Metadata_moa", how="left")
    notes = {"compounds": "one compound: no other compound to retrieve"}
    result = _scores(result, "consistent", notes, single_group=meta["Metadata_moa"].nunique() < 2)
    return result[CONSISTENCY_COLUMNS]


def _scores(result: pd.DataFrame, flag: str, notes: dict, single_group: bool = False) -> pd.DataFrame:
    """copairs' columns renamed, missing scores explained in ``note``."""
    result = result.rename(columns={"below_corrected_p": flag})
    for column in ("mean_average_precision", "p_value", "corrected_p_value"):
        if column not in result.columns:
            result[column] = np.nan
    result[flag] = result[flag].fillna(False).astype(bool) if flag in result.columns else False
    (count_column, why), = notes.items()
    missing = result["mean_average_precision"].isna()
    note = np.where(missing, np.where(result[count_column] < 2, why, "no negative to rank against"), "")
    if single_group:
        note = np.where(missing, "one group: nothing to rank against", note)
    result["note"] = note
    return result


def _feature_values(profiles: pd.DataFrame, features) -> np.ndarray:
    return profiles[list(features)].to_numpy(np.float64)
