"""The profiling protocol on synthetic tables whose right answers are known by construction."""

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data.embedding_files import feature_columns, read_embeddings, write_embedding_table
from statcell_tf.errors import UserError
from statcell_tf.profiling import moa as profiling


def _treatments(rows):
    """Treatment table from (compound, concentration, moa, batches, vector) tuples."""
    table = pd.DataFrame(
        [
            {"compound": c, "concentration": k, "moa": m, "batches": frozenset(b), "x": v[0], "y": v[1]}
            for c, k, m, b, v in rows
        ]
    )
    return table


def test_nsc_excludes_every_profile_of_the_query_compound():
    # A at two concentrations is its own nearest neighbour; the next nearest other compound
    # (C, MoA "y") is closer than A's true partner B (MoA "x").
    table = _treatments(
        [
            ("A", 1.0, "x", {"W1"}, (1.0, 0.00)),
            ("A", 3.0, "x", {"W1"}, (1.0, 0.01)),
            ("C", 1.0, "y", {"W2"}, (1.0, 0.30)),
            ("B", 1.0, "x", {"W2"}, (1.0, -0.60)),
            ("D", 1.0, "y", {"W1"}, (0.0, 1.00)),
        ]
    )
    predictions, excluded = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC")
    assert excluded.empty
    a = predictions[predictions["compound"] == "A"]
    assert set(a["neighbor_compound"]) == {"C"} and set(a["predicted"]) == {"y"}
    assert (predictions["neighbor_compound"] != predictions["compound"]).all()
    # B's nearest is A (same MoA) -> correct; accuracy known: A×2 wrong, C→A wrong? C's
    # nearest other compound is A (x) -> wrong; D's nearest is C (y) -> correct.
    expected = {"A": ["y", "y"], "B": ["x"], "C": ["x"], "D": ["y"]}
    for compound, predicted in expected.items():
        assert list(predictions.loc[predictions["compound"] == compound, "predicted"]) == predicted
    assert predictions["correct"].mean() == pytest.approx(2 / 5)


def test_nscb_also_excludes_the_query_batch():
    # For A (batch W1) the nearest other compound B shares W1 (correct MoA "x");
    # outside W1 the nearest is C (MoA "y"). NSC is right, NSCB must pick C.
    table = _treatments(
        [
            ("A", 1.0, "x", {"W1"}, (1.0, 0.0)),
            ("B", 1.0, "x", {"W1", "W3"}, (1.0, 0.1)),
            ("C", 1.0, "y", {"W2"}, (1.0, 0.4)),
            ("E", 1.0, "x", {"W2"}, (1.0, -0.9)),
            ("D", 1.0, "y", {"W3"}, (0.1, 1.0)),
        ]
    )
    nsc, _ = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC")
    nscb, _ = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSCB")
    row = lambda p: p[p["compound"] == "A"].iloc[0]  # noqa: E731
    assert row(nsc)["neighbor_compound"] == "B" and row(nsc)["correct"]
    assert row(nscb)["neighbor_compound"] == "C" and not row(nscb)["correct"]
    # B spans W1 and W3: under NSCB neither A (W1) nor D (W3) may be its reference.
    assert nscb[nscb["compound"] == "B"].iloc[0]["neighbor_compound"] in {"C", "E"}
    allowed = profiling.holdout_mask(table, "NSCB")
    names = list(table["compound"])
    for i, query in table.iterrows():
        for j, reference in table.iterrows():
            same = query["compound"] == reference["compound"] or bool(query["batches"] & reference["batches"])
            assert allowed[i, j] == (not same), (names[i], names[j])


def test_cosine_distance_ignores_profile_length():
    table = _treatments(
        [
            ("Q", 1.0, "x", {"W1"}, (1.0, 0.0)),
            ("R", 1.0, "x", {"W2"}, (10.0, 1.0)),  # same direction, far in Euclidean terms
            ("S", 1.0, "y", {"W2"}, (0.7, 0.7)),  # near in Euclidean terms, 45° off
            ("T", 1.0, "y", {"W2"}, (0.0, 5.0)),
        ]
    )
    cosine, _ = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC", metric="cosine")
    euclid, _ = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC", metric="euclidean")
    assert cosine.iloc[0]["neighbor_compound"] == "R"
    assert euclid.iloc[0]["neighbor_compound"] == "S"


def test_unreferenced_treatments_are_left_out_and_listed():
    # MoA "z" has two compounds, both in batch W1: NSC works, NSCB leaves no reference.
    table = _treatments(
        [
            ("A", 1.0, "x", {"W1"}, (1.0, 0.0)),
            ("B", 1.0, "x", {"W2"}, (1.0, 0.1)),
            ("C", 1.0, "z", {"W1"}, (0.0, 1.0)),
            ("D", 1.0, "z", {"W1"}, (0.1, 1.0)),
            ("E", 1.0, "y", {"W2"}, (-1.0, 0.0)),
            ("F", 1.0, "y", {"W1"}, (-1.0, 0.1)),
        ]
    )
    predictions, excluded = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC")
    assert len(predictions) == 6 and excluded.empty
    predictions, excluded = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSCB")
    assert excluded["compound"].tolist() == ["C", "D"] and excluded["class_excluded"].all()
    assert set(predictions["moa"]) == {"x", "y"} and "z" not in set(predictions["predicted"])
    assert predictions["correct"].all()
    line = profiling.describe_exclusions(excluded, "NSCB", len(predictions))
    assert line.startswith("NSCB: 4 treatment(s) evaluated; 2 left out") and "C@1, D@1" in line and line.endswith(": z")


def test_a_treatment_is_left_out_alone_when_its_class_keeps_references():
    # MoA "x": A (W1), B (W2), G (W1 and W2). G shares a batch with every other x: under NSCB
    # G alone has no reference; A and B still reference each other. MoA "s": one compound
    # only, so NSC leaves it out too.
    table = _treatments(
        [
            ("A", 1.0, "x", {"W1"}, (1.0, 0.0)),
            ("B", 1.0, "x", {"W2"}, (1.0, 0.1)),
            ("G", 1.0, "x", {"W1", "W2"}, (1.0, 0.2)),
            ("E", 1.0, "y", {"W2"}, (-1.0, 0.0)),
            ("F", 1.0, "y", {"W1"}, (-1.0, 0.1)),
            ("S", 1.0, "s", {"W3"}, (0.0, 1.0)),
            ("S", 3.0, "s", {"W3"}, (0.0, 1.1)),
        ]
    )
    predictions, excluded = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSC")
    assert excluded["compound"].tolist() == ["S", "S"] and excluded["class_excluded"].all()
    assert len(predictions) == 5 and predictions["correct"].all()
    predictions, excluded = profiling.nearest_neighbor_moa(table, ["x", "y"], "NSCB")
    assert excluded["compound"].tolist() == ["G", "S", "S"]
    assert excluded["class_excluded"].tolist() == [False, True, True]  # x keeps A and B
    assert predictions["compound"].tolist() == ["A", "B", "E", "F"] and predictions["correct"].all()
    assert "G" not in set(predictions["neighbor_compound"])  # left out as a reference too


def test_bbbc021_nscb_exclusions_on_the_official_tables(shared_data):
    """The real BBBC021 structure: NSCB leaves out all 6 Cholesterol-lowering, all 5 Kinase-inhibitor
    and 1 of 9 Microtubule-stabilizer treatments (their compounds were imaged in one week); NSC none."""
    folder = shared_data("bbbc021-metadata")
    images = pd.read_csv(folder / "BBBC021_v1_image.csv").rename(columns={
        "Image_Metadata_Compound": "compound", "Image_Metadata_Concentration": "concentration",
        "Image_Metadata_Plate_DAPI": "plate"})
    table = images.merge(pd.read_csv(folder / "BBBC021_v1_moa.csv"), on=["compound", "concentration"])
    table = table[table["compound"] != "DMSO"]
    table["batch"] = profiling.batch_labels(table, None)
    treatments = (table.groupby(["compound", "concentration", "moa"])["batch"].agg(frozenset)
                  .reset_index(name="batches"))
    assert len(treatments) == 103 and treatments["moa"].nunique() == 12
    treatments["x"], treatments["y"] = np.arange(103.0), 1.0
    assert profiling.nearest_neighbor_moa(treatments, ["x", "y"], "NSC")[1].empty
    predictions, excluded = profiling.nearest_neighbor_moa(treatments, ["x", "y"], "NSCB")
    assert excluded["moa"].value_counts().to_dict() == {
        "Cholesterol-lowering": 6, "Kinase inhibitors": 5, "Microtubule stabilizers": 1}
    assert sorted(excluded.loc[excluded["class_excluded"], "moa"].unique()) == ["Cholesterol-lowering", "Kinase inhibitors"]
    assert len(predictions) == 103 - 12 and predictions["moa"].nunique() == 10


def test_whitening_maps_each_plates_controls_to_identity_covariance():
    rng = np.random.default_rng(0)
    rows = []
    for plate, mixing in (("P1", [[2.0, 0.5, 0.0], [0.0, 0.3, 0.0], [0.1, 0.0, 1.5]]),
                          ("P2", [[0.5, 0.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.2, 0.1]])):
        for compound, n in (("DMSO", 400), ("drug", 50)):
            z = rng.normal(size=(n, 3)) @ np.array(mixing) + rng.normal(size=3) * 5
            for v in z:
                rows.append({"plate": plate, "compound": compound, "z_0": v[0], "z_1": v[1], "z_2": v[2]})
    table = pd.DataFrame(rows)
    features = ["z_0", "z_1", "z_2"]
    white, report = profiling.whiten_per_plate(table, features, control="DMSO", epsilon=0.0)
    assert list(report["reference"]) == ["plate", "plate"] and not report["fallback"].any()
    for plate in ("P1", "P2"):
        controls = white[(white["plate"] == plate) & (white["compound"] == "DMSO")][features].to_numpy()
        np.testing.assert_allclose(np.cov(controls, rowvar=False), np.eye(3), atol=1e-8)
        np.testing.assert_allclose(controls.mean(axis=0), 0.0, atol=1e-8)
        # ZCA is symmetric: the closest whitening to the identity (no per-plate rotation).
        raw = table[(table["plate"] == plate) & (table["compound"] == "DMSO")][features].to_numpy()
        _, transform = profiling.fit_zca(raw, 0.0)
        np.testing.assert_allclose(transform, transform.T, atol=1e-10)
    # Non-control rows are transformed with their own plate's transform.
    drug = table[(table["plate"] == "P2") & (table["compound"] == "drug")][features].to_numpy()
    raw_controls = table[(table["plate"] == "P2") & (table["compound"] == "DMSO")][features].to_numpy()
    mean, transform = profiling.fit_zca(raw_controls, 0.0)
    got = white[(white["plate"] == "P2") & (white["compound"] == "drug")][features].to_numpy()
    np.testing.assert_allclose(got, (drug - mean) @ transform, atol=1e-10)


def test_whitening_falls_back_to_the_batch_then_all_plates_when_a_plate_lacks_controls():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({
        "plate": ["Week1_1"] * 6 + ["Week1_2"] * 3 + ["Week2_1"] * 3,
        "compound": ["DMSO"] * 6 + ["DMSO", "drug", "drug"] + ["drug"] * 3,
        "z_0": rng.normal(size=12), "z_1": rng.normal(size=12),
    })
    white, report = profiling.whiten_per_plate(table, ["z_0", "z_1"], control="DMSO", epsilon=0.0)
    report = report.set_index("plate")
    assert report.loc["Week1_1", "reference"] == "plate" and not report.loc["Week1_1", "fallback"]
    assert report.loc["Week1_2", "reference"] == "batch Week1" and report.loc["Week1_2", "controls"] == 1
    assert report.loc["Week2_1", "reference"] == "pooled" and report.loc["Week2_1", "reference_rows"] == 7
    # Week1_2 is whitened with the transform of its batch's 7 control cells.
    mean, transform = profiling.fit_zca(table.loc[table["compound"] == "DMSO", ["z_0", "z_1"]].to_numpy(), 0.0)
    np.testing.assert_allclose(white.loc[6:8, ["z_0", "z_1"]].to_numpy(),
                               (table.loc[6:8, ["z_0", "z_1"]].to_numpy() - mean) @ transform)
    from statcell_tf.profiling.references import describe_fallbacks

    lines = describe_fallbacks(report.reset_index(), what="whitened")
    assert lines == ["plate Week1_2 has 1 control cell(s): whitened against the 7 control cells of batch Week1",
                     "plate Week2_1 has 0 control cell(s): whitened against all 7 control cells (pooled)"]


def test_well_mean_then_treatment_median():
    table = pd.DataFrame(
        {
            "plate": ["Week1_1"] * 4 + ["Week1_2"] * 2 + ["Week2_3"] * 2,
            "well": ["A01", "A01", "A02", "A02", "B01", "B01", "C01", "C01"],
            "compound": ["t"] * 8,
            "concentration": [1.0] * 8,
            "moa": ["m"] * 8,
            "z_0": [0.0, 2.0, 10.0, 10.0, 4.0, 6.0, 100.0, 100.0],
        }
    )
    wells, columns = profiling.well_profiles(table, ["z_0"], with_sd=True)
    assert list(wells["mean_z_0"]) == [1.0, 10.0, 5.0, 100.0]
    assert list(wells["sd_z_0"]) == [1.0, 0.0, 1.0, 0.0]
    treatments = profiling.treatment_profiles(wells, columns)
    assert len(treatments) == 1
    assert treatments.loc[0, "mean_z_0"] == 7.5  # median of 1, 10, 5, 100
    assert treatments.loc[0, "batches"] == frozenset({"Week1", "Week2"})
    assert treatments.loc[0, "wells"] == 4


def _cell_table(seed=0, cells=30):
    """Cells of 3 MoAs × 2 compounds × 2 concentrations on 4 plates (2 weeks), with a
    plate-specific nuisance that only the per-plate whitening removes."""
    rng = np.random.default_rng(seed)
    centres = {"x": np.array([3.0, 0, 0, 0]), "y": np.array([0, 3.0, 0, 0]), "z": np.array([0, 0, 3.0, 0])}
    design = [("a1", "x", "Week1"), ("a2", "x", "Week2"), ("b1", "y", "Week1"), ("b2", "y", "Week2"),
              ("c1", "z", "Week1"), ("c2", "z", "Week2")]
    rows = []
    for week, plates in (("Week1", ["Week1_1", "Week1_2"]), ("Week2", ["Week2_1", "Week2_2"])):
        for p, plate in enumerate(plates):
            scale = np.diag(rng.uniform(0.5, 2.0, 4))
            shift = rng.normal(size=4)
            wells = [("DMSO", 0.0, "DMSO", np.zeros(4))] * 3 + [
                (c, k, m, centres[m] * k) for c, m, w in design if w == week for k in (1.0, 2.0)
            ]
            for w, (compound, concentration, moa, centre) in enumerate(wells):
                z = (centre + rng.normal(size=(cells, 4))) @ scale + shift
                for v in z:
                    rows.append({"plate": plate, "well": f"W{w:02d}", "compound": compound,
                                 "concentration": concentration, "moa": moa,
                                 **{f"z_{j}": v[j] for j in range(4)}})
    return pd.DataFrame(rows)


def test_benchmark_table_on_separable_synthetic_cells():
    table = _cell_table()
    result = profiling.moa_benchmark(table, control="DMSO", method="synthetic")
    accuracy = result.accuracy.set_index("holdout")
    assert list(result.accuracy.columns[:6]) == ["holdout", "method", *profiling.SUMMARIES]
    # Every MoA has one compound per week: NSCB leaves the other week's compound.
    assert accuracy.loc["NSC", "treatments"] == 12 and accuracy.loc["NSCB", "treatments"] == 12
    for summary in profiling.SUMMARIES:
        assert accuracy.loc["NSC", summary] == 100.0
        assert accuracy.loc["NSCB", summary] == 100.0
    predictions = result.predictions
    assert (predictions["neighbor_compound"] != predictions["compound"]).all()
    nscb = predictions[predictions["holdout"] == "NSCB"]
    week = {c: ("Week1" if c.endswith("1") else "Week2") for c in nscb["compound"]}
    assert all(week[q] != week[n] for q, n in zip(nscb["compound"], nscb["neighbor_compound"]))
    markdown = profiling.accuracy_markdown(result.accuracy)
    assert "| NSC | synthetic | 100.0 | 100.0 | 100.0 | 100.0 |" in markdown


def test_benchmark_refuses_tables_without_metadata_or_controls():
    table = _cell_table(cells=3)
    with pytest.raises(UserError, match="lacks metadata column.*moa"):
        profiling.moa_benchmark(table.drop(columns="moa"))
    with pytest.raises(UserError, match="no control cells"):
        profiling.moa_benchmark(table, control="vehicle")


def test_embedding_table_round_trip_and_feature_detection(tmp_path):
    table = _cell_table(cells=2)
    features = feature_columns(table)
    assert features == ["z_0", "z_1", "z_2", "z_3"]
    path = write_embedding_table(tmp_path / "cells.h5", table[features].to_numpy(), table.drop(columns=features))
    metadata, back = read_embeddings(path)
    assert list(back.columns) == [f"embeddings_{j}" for j in range(4)]
    np.testing.assert_allclose(back.to_numpy(), table[features].to_numpy(), rtol=1e-6)
    assert list(metadata["compound"]) == list(table["compound"])
    np.testing.assert_allclose(metadata["concentration"], table["concentration"])
    table.to_csv(tmp_path / "cells.csv", index=False)
    assert list(read_embeddings(tmp_path / "cells.csv")[1].columns) == features
    with pytest.raises(UserError, match="no embedding columns"):
        feature_columns(table, prefix="emb_")
