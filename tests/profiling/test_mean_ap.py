"""copairs mAP on profiles whose answers are known: a hand-ranked case, planted mechanisms, shuffled labels."""

import numpy as np
import pandas as pd
import pytest

from statcell_tf.profiling import mean_ap

FEATURES = [f"f{j}" for j in range(8)]


def _hand_ap(relevant):
    """Average precision of a ranked list of 0/1 relevances, by the textbook formula."""
    hits, total = 0, 0.0
    for rank, is_positive in enumerate(relevant, start=1):
        if is_positive:
            hits += 1
            total += hits / rank
    return total / hits


def test_copairs_reproduces_average_precision_of_a_hand_ranked_list():
    # Three replicates of a drug (q, t2, t3) and three DMSO rows on the unit circle; cosine
    # similarity falls with the angle between two rows. Ranked lists (positives: the other
    # drug rows; negatives: the DMSO rows), by hand:
    #   q  (0°):  t2 10°, d1 30°, t3 50°, d2 75°, d3 110°  -> 1 0 1 0 0 -> (1/1 + 2/3) / 2 = 5/6
    #   t2 (10°): q 10°, d1 20°, t3 40°, d2 65°, d3 100°   -> 1 0 1 0 0 -> 5/6
    #   t3 (50°): d1 20°, d2 25°, t2 40°, q 50°, d3 60°    -> 0 0 1 1 0 -> (1/3 + 2/4) / 2 = 5/12
    angles = {"q": 0, "t2": 10, "t3": 50, "d1": 30, "d2": 75, "d3": 110}
    profiles = pd.DataFrame([
        {"Metadata_compound": "DMSO" if name.startswith("d") else "drug",
         "Metadata_concentration": 0.0 if name.startswith("d") else 1.0, "Metadata_moa": "m",
         "f0": np.cos(np.radians(a)), "f1": np.sin(np.radians(a))} for name, a in angles.items()])
    assert [_hand_ap([1, 0, 1, 0, 0]), _hand_ap([0, 0, 1, 1, 0])] == pytest.approx([5 / 6, 5 / 12])
    meta = profiles[["Metadata_compound"]].assign(
        Metadata_reference_index=np.where(profiles["Metadata_compound"] == "DMSO", profiles.index, -1))
    key = ["Metadata_compound", "Metadata_reference_index"]
    ap, _ = mean_ap.copairs_map(meta, profiles[["f0", "f1"]].to_numpy(), key, [], key, ["Metadata_compound"],
                                1000, 0.05, 0)
    np.testing.assert_allclose(ap.loc[:2, "average_precision"], [5 / 6, 5 / 6, 5 / 12], atol=1e-6)
    assert ap.loc[:2, "n_pos_pairs"].tolist() == [2, 2, 2] and ap.loc[:2, "n_total_pairs"].tolist() == [5, 5, 5]
    # The activity mAP of the drug is the mean of the three; its p-value is the fraction of
    # copairs' null (random lists of 2 positives among 5) above it, (k + 1) / (draws + 1).
    activity = mean_ap.phenotypic_activity(profiles, ["f0", "f1"], null_size=1000)
    row = activity.iloc[0]
    assert row["mean_average_precision"] == pytest.approx((5 / 6 + 5 / 6 + 5 / 12) / 3, abs=1e-6)
    assert row["replicates"] == 3 and row["kind"] == "treatment"
    # Exact null by enumeration: C(5, 2) = 10 equally likely lists; 4 have AP > 0.694
    # (positives at {1,2}: 1, {1,3}: 5/6, {1,4}: 3/4, {1,5}: 7/10) -> p = 0.4 (copairs samples
    # 1000 lists; the three replicates share one configuration, hence one null).
    assert row["p_value"] == pytest.approx(0.4, abs=0.05)


def _planted(seed=0, shuffle=False, replicates=4, controls=16):
    """Well profiles: 3 MoAs × 2 compounds, each compound a noisy copy of its MoA's centre."""
    rng = np.random.default_rng(seed)
    centres = {m: rng.normal(size=len(FEATURES)) * 4 for m in ("x", "y", "z")}
    rows = [{"Metadata_compound": "DMSO", "Metadata_concentration": 0.0, "Metadata_moa": "DMSO",
             **dict(zip(FEATURES, rng.normal(size=len(FEATURES))))} for _ in range(controls)]
    for moa, centre in centres.items():
        for compound in (f"{moa}1", f"{moa}2"):
            offset = centre + rng.normal(size=len(FEATURES)) * 0.5
            rows += [{"Metadata_compound": compound, "Metadata_concentration": 1.0, "Metadata_moa": moa,
                      **dict(zip(FEATURES, offset + rng.normal(size=len(FEATURES)) * 0.5))} for _ in range(replicates)]
    table = pd.DataFrame(rows)
    if shuffle:  # every profile drawn like a control: labels carry no signal
        table[FEATURES] = rng.normal(size=(len(table), len(FEATURES)))
    return table


def _null_mean_ap(positives: int, total: int, draws=20000, seed=1) -> float:
    """Expected AP of a random ranking (by simulation, independent of copairs)."""
    rng = np.random.default_rng(seed)
    ranks = np.sort(np.argsort(rng.random((draws, total)), axis=1)[:, :positives], axis=1) + 1
    return float((np.arange(1, positives + 1) / ranks).mean())


def test_planted_mechanisms_are_active_and_consistent():
    table = _planted()
    activity = mean_ap.phenotypic_activity(table, FEATURES, null_size=5000)
    assert len(activity) == 6 and (activity["mean_average_precision"] > 0.95).all()
    assert activity["active"].all() and (activity["corrected_p_value"] < 0.01).all()
    treatments = table.groupby(["Metadata_compound", "Metadata_concentration", "Metadata_moa"], as_index=False)[
        FEATURES].median()
    consistency = mean_ap.phenotypic_consistency(treatments, FEATURES, null_size=5000)
    assert list(consistency["Metadata_moa"]) == ["x", "y", "z"]
    assert (consistency["mean_average_precision"] == 1.0).all()
    # 6 treatments: each has 1 positive among 5 -> AP = 1 happens by chance 1/5 of the time;
    # the mean of two such APs at 1 has p = P(null > 1) ~ 0 in copairs' convention.
    assert consistency["consistent"].all()


def test_shuffled_labels_give_the_null():
    table = _planted(shuffle=True, replicates=6, controls=30)
    activity = mean_ap.phenotypic_activity(table, FEATURES, null_size=5000)
    assert not activity["active"].any()
    expected = _null_mean_ap(positives=5, total=5 + 30)
    assert activity["mean_average_precision"].mean() == pytest.approx(expected, abs=0.06)
    assert activity["p_value"].min() > 0.01
    half = mean_ap.control_half_split(table, FEATURES, null_size=5000)
    assert half.loc[0, "kind"] == "null check" and not half.loc[0, "active"] and half.loc[0, "replicates"] == 15


def test_unevaluable_groups_are_reported_not_raised():
    table = _planted(replicates=1)
    activity = mean_ap.phenotypic_activity(table, FEATURES, null_size=1000)
    assert activity["mean_average_precision"].isna().all()
    assert set(activity["note"]) == {"one replicate: nothing to retrieve"}
    one_moa = table[table["Metadata_moa"].isin(["DMSO", "x"])]
    consistency = mean_ap.phenotypic_consistency(one_moa, FEATURES, null_size=1000)
    assert consistency["note"].tolist() == ["one group: nothing to rank against"]
    from statcell_tf.errors import UserError

    with pytest.raises(UserError, match="no control replicates.*--control"):
        mean_ap.phenotypic_activity(table, FEATURES, control="vehicle")
