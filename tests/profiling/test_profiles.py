"""pycytominer profiles: normalisation against controls with the fallback rule, feature
selection, Parquet files pycytominer and copairs read as they are, no warnings."""

import warnings

import numpy as np
import pandas as pd
import pytest

from statcell_tf.errors import UserError
from statcell_tf.profiling import cells as cell_tables
from statcell_tf.profiling import mean_ap, profiles
from statcell_tf.profiling.references import control_references


def _cells(controls_per_plate=(20, 20, 20), cells=20, seed=0):
    """Metadata_ cell table: DMSO and two drugs on three plates (two in Week1), a plate
    offset every normalisation against that plate's controls removes."""
    rng = np.random.default_rng(seed)
    rows = []
    for plate, n_controls in zip(("Week1_1", "Week1_2", "Week2_1"), controls_per_plate):
        offset = rng.normal(size=5) * 3
        wells = [("DMSO", 0.0, "DMSO", n_controls, np.zeros(5))] + [
            (d, 1.0, "m", cells, np.eye(5)[i] * 4) for i, d in enumerate(("a", "b"))]
        for w, (compound, concentration, moa, n, centre) in enumerate(wells):
            for _ in range(n):
                rows.append({"Metadata_plate": plate, "Metadata_well": f"W{w}", "Metadata_compound": compound,
                             "Metadata_concentration": concentration, "Metadata_moa": moa,
                             **{f"Cells_f{j}": v for j, v in enumerate(centre + offset + rng.normal(size=5))}})
    return pd.DataFrame(rows)


def test_fallback_rule_plate_batch_pooled_all_samples():
    plates = np.array(["Week1_1"] * 3 + ["Week1_2"] * 3 + ["Week2_1"] * 3)
    batches = np.array([p.split("_")[0] for p in plates])
    control = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    _, report = control_references(plates, batches, control)
    assert report["reference"].tolist() == ["plate", "batch Week1", "pooled"]
    assert report["controls"].tolist() == [2, 1, 0] and report["fallback"].tolist() == [False, True, True]
    _, pooled = control_references(plates, batches, control, scope="pooled")
    assert set(pooled["reference"]) == {"pooled"} and not pooled["fallback"].any()
    rows, lonely = control_references(plates, batches, np.eye(9, dtype=bool)[0])  # one control in all
    assert set(lonely["reference"]) == {"all samples"} and rows["Week2_1"].tolist() == [6, 7, 8]


def test_normalisation_removes_plate_effects_and_falls_back_on_plates_with_0_or_1_control():
    table = _cells(controls_per_plate=(20, 1, 0))
    built = profiles.build_profiles(cell_tables.validate_cells(table, "t"), profiles.ProfileSettings())
    report = built.references.set_index("plate")
    assert report["reference"].tolist() == ["plate", "batch Week1", "pooled"]
    assert report.loc["Week1_2", "controls"] == 1 and (report["step"] == "normalize").all()
    # On the plate with its own controls: control cells at mean 0, S.D. 1.
    cells = built.cells
    own = cells[(cells["Metadata_plate"] == "Week1_1") & (cells["Metadata_compound"] == "DMSO")][built.features]
    np.testing.assert_allclose(own.mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(own.std(ddof=0), 1.0, atol=1e-9)
    assert len(built.wells) == 8 and built.wells["Metadata_Object_Count"].sum() == len(table)
    assert built.treatments[["Metadata_compound", "Metadata_wells"]].values.tolist() == [["DMSO", 2], ["a", 3], ["b", 3]]


def test_profiles_are_parquet_that_pycytominer_and_copairs_read_as_they_are(tmp_path):
    built = profiles.build_profiles(cell_tables.validate_cells(_cells(), "t"),
                                    profiles.ProfileSettings(normalize="mad_robustize", spherize="ZCA"))
    built.wells.to_parquet(tmp_path / "wells.parquet", index=False)
    wells = pd.read_parquet(tmp_path / "wells.parquet")
    features = [c for c in wells.columns if not c.startswith("Metadata_")]
    assert features == built.features and features[0].startswith("Cells_")
    pycytominer = profiles.pycytominer()
    # pycytominer infers CellProfiler features and Metadata_ columns from the names alone.
    normalised = pycytominer.normalize(wells, samples="Metadata_compound == 'DMSO'")
    assert list(normalised.columns) == list(wells.columns)
    from copairs import map as copairs

    metadata = wells.filter(regex="^Metadata_")
    ap = copairs.average_precision(metadata, wells.filter(regex="^(?!Metadata_)").to_numpy(), ["Metadata_compound"],
                                   [], [], ["Metadata_compound"], progress_bar=False)
    assert ap["average_precision"].notna().all()


def test_spherize_pca_needs_the_pooled_scope_and_settings_are_validated():
    with pytest.raises(UserError, match="PCA rotates each plate"):
        profiles.ProfileSettings(spherize="PCA")
    profiles.ProfileSettings(spherize="PCA", scope="pooled")
    with pytest.raises(ValueError, match="normalize"):
        profiles.ProfileSettings(normalize="zscore")


def test_nonfinite_features_stop_with_one_line_or_are_dropped_and_counted():
    table = _cells()
    table.loc[5, "Cells_f2"] = np.inf
    table.loc[9, "Cells_f0"] = np.nan
    with pytest.raises(UserError, match=r"t: column 'Cells_f2' must hold finite numbers. Received: inf in row 6 \(2 row"):
        cell_tables.validate_cells(table, "t")
    kept = cell_tables.validate_cells(table, "t", nonfinite="drop")
    assert kept.dropped_rows == 2 and len(kept.table) == len(table) - 2
    text = table.astype({"Cells_f1": object})
    text.loc[3, "Cells_f1"] = "n/a"
    with pytest.raises(UserError, match="column 'Cells_f1' must hold numbers. Received: 'n/a'"):
        cell_tables.validate_cells(text, "t", nonfinite="drop")


def test_bare_and_metadata_names_give_the_same_profiles():
    table = _cells()
    bare = table.rename(columns=lambda c: c.removeprefix("Metadata_")).rename(
        columns=lambda c: c.replace("Cells_f", "z_"))
    a = profiles.build_profiles(cell_tables.validate_cells(table, "t"))
    b = profiles.build_profiles(cell_tables.validate_cells(bare, "t"))
    np.testing.assert_allclose(a.treatments[a.features].to_numpy(), b.treatments[b.features].to_numpy())


def test_sub_well_replicates_average_groups_of_cells():
    cells = profiles.build_profiles(cell_tables.validate_cells(_cells(cells=25), "t")).cells
    groups = profiles.pseudo_replicates(cells, [c for c in cells.columns if c.startswith("Cells_")], 10, seed=0)
    counts = groups.groupby(["Metadata_plate", "Metadata_well"])["Metadata_Object_Count"].apply(sorted)
    assert counts[("Week1_1", "W1")] == [8, 8, 9]  # 25 cells -> 3 groups
    assert groups["Metadata_Object_Count"].sum() == len(cells)


@pytest.mark.filterwarnings("error")
def test_no_warnings_reach_the_user():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wide = _cells(controls_per_plate=(30, 1, 0))
        rng = np.random.default_rng(1)
        extra = pd.DataFrame(rng.normal(size=(len(wide), 300)), columns=[f"Nuclei_g{j}" for j in range(300)])
        wide = pd.concat([wide, extra], axis=1)  # wide tables: pandas' PerformanceWarning territory
        built = profiles.build_profiles(cell_tables.validate_cells(wide, "t"),
                                        profiles.ProfileSettings(spherize="ZCA"))
        replicates = profiles.pseudo_replicates(built.cells, built.features, 5)
        mean_ap.phenotypic_activity(replicates, built.features, null_size=500)
        mean_ap.control_half_split(built.wells, built.features, null_size=500)
        mean_ap.phenotypic_consistency(built.treatments, built.features, null_size=500)
