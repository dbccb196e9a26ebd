from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from statcell_tf.data.embedding_files import read_embeddings
from statcell_tf.data.synthetic import write_bbbc021
from tests._support.runs import untrained_vaeplus_run


def _cells(tmp_path: Path, unreferenced: bool = False) -> Path:
    """A cell embedding CSV: 2 MoAs × 2 compounds (one per week), DMSO on every plate."""
    rng = np.random.default_rng(0)
    design = [("a1", "x", "Week1"), ("a2", "x", "Week2"), ("b1", "y", "Week1"), ("b2", "y", "Week2")]
    if unreferenced:  # MoA z: both compounds in Week1 -> no NSCB reference
        design += [("c1", "z", "Week1"), ("c2", "z", "Week1")]
    centres = {"x": [4.0, 0, 0], "y": [0, 4.0, 0], "z": [0, 0, 4.0]}
    rows = []
    for plate in ("Week1_11", "Week2_21"):
        week = plate.split("_")[0]
        wells = [("DMSO", 0.0, "DMSO", [0.0, 0, 0])] * 2 + [(c, 1.0, m, centres[m]) for c, m, w in design if w == week]
        for w, (compound, concentration, moa, centre) in enumerate(wells):
            for z in np.asarray(centre) + rng.normal(size=(20, 3)):
                rows.append({"plate": plate, "well": f"A{w:02d}", "compound": compound, "concentration": concentration,
                             "moa": moa, "z_0": z[0], "z_1": z[1], "z_2": z[2]})
    path = tmp_path / "cells.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_profile_moa_from_an_embedding_table(tmp_path):
    out = tmp_path / "profiles"
    result = CliRunner().invoke(cli, ["profile-moa", "--embeddings", str(_cells(tmp_path)), "--out", str(out),
                                      "--name", "toy"])
    assert result.exit_code == 0, result.output
    accuracy = pd.read_csv(out / "accuracy.csv")
    assert list(accuracy["holdout"]) == ["NSC", "NSCB"]
    assert (accuracy[["Mean", "Mean+Whitened", "Mean+S.D.", "Mean+S.D.+Whitened"]] == 100.0).all().all()
    markdown = (out / "accuracy.md").read_text()
    assert "| Hold-out | Method | Mean | Mean+Whitened | Mean+S.D. | Mean+S.D.+Whitened |" in markdown
    assert "| NSCB | toy | 100.0 |" in markdown
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 4 * 2 * 4  # treatments × hold-outs × summaries
    assert (predictions["compound"] != predictions["neighbor_compound"]).all()


@pytest.mark.slow
def test_profile_moa_leaves_out_and_lists_unreferenced_treatments(tmp_path):
    """BBBC021-like: MoA z's two compounds live in Week1 only (no NSCB reference); the x and y
    compounds one per week. NSC evaluates all 6, NSCB the 4 others and names c1, c2 and z."""
    table = _cells(tmp_path, unreferenced=True)
    result = CliRunner().invoke(cli, ["profile-moa", "--embeddings", str(table), "--out", str(tmp_path / "b"),
                                      "--evaluate", "nn"])
    assert result.exit_code == 0, result.output
    accuracy = pd.read_csv(tmp_path / "b" / "accuracy.csv").set_index("holdout")
    assert accuracy.loc["NSC", "treatments"] == 6 and accuracy.loc["NSCB", "treatments"] == 4
    assert accuracy.loc["NSC", "excluded_treatments"] == 0 and accuracy.loc["NSCB", "excluded_treatments"] == 2
    assert accuracy.loc["NSCB", "excluded_classes"] == "z" and (accuracy["Mean"] == 100.0).all()
    excluded = pd.read_csv(tmp_path / "b" / "excluded.csv")
    assert excluded[["holdout", "compound", "moa"]].values.tolist() == [["NSCB", "c1", "z"], ["NSCB", "c2", "z"]]
    assert "cells: NSCB: 4 treatment(s) evaluated; 2 left out" in result.output and "c1@1, c2@1" in result.output
    assert "cells: NSC: 6 treatment(s) evaluated, none left out" in result.output
    predictions = pd.read_csv(tmp_path / "b" / "predictions.csv")
    assert not predictions.query("holdout == 'NSCB'")["compound"].isin(["c1", "c2"]).any()


def test_side_by_side_tables_must_hold_the_same_cells_or_intersect(tmp_path, capsys):
    full = pd.read_csv(_cells(tmp_path))
    full.to_csv(tmp_path / "a.csv", index=False)
    full[full["plate"] != "Week2_21"].to_csv(tmp_path / "b.csv", index=False)  # one plate only
    args = ["--embeddings", str(tmp_path / "a.csv"), "--embeddings", str(tmp_path / "b.csv"), "--evaluate", "map"]
    capsys.readouterr()
    assert run_command("profile-moa", [*args, "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "must describe the same cells" in err and f"a: {len(full)} cells, {len(full) // 2} not in every table" in err
    assert not (tmp_path / "no").exists()
    assert run_command("profile-moa", [*args, "--out", str(tmp_path / "yes"), "--intersect"]) == 0
    assert f"--intersect: compared the {len(full) // 2} cells every table holds" in capsys.readouterr().out


def test_profile_moa_flag_errors(tmp_path, capsys):
    runner = CliRunner()
    table = _cells(tmp_path)
    both = runner.invoke(cli, ["profile-moa", "--embeddings", str(table), "--run", str(tmp_path), "--out", "x"])
    assert both.exit_code == 2 and "either --embeddings FILE or --run RUN" in both.output
    neither = runner.invoke(cli, ["profile-moa", "--out", "x"])
    assert neither.exit_code == 2
    capsys.readouterr()
    assert run_command("profile-moa", ["--embeddings", str(table), "--out", str(tmp_path / "c"),
                                       "--control", "vehicle"]) == 2
    assert "no control cells (compound == 'vehicle')" in capsys.readouterr().err
    pd.read_csv(table).drop(columns="moa").to_csv(tmp_path / "nomoa.csv", index=False)
    assert run_command("profile-moa", ["--embeddings", str(tmp_path / "nomoa.csv"), "--out", str(tmp_path / "d")]) == 2
    assert "lacks metadata column(s) moa" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


@pytest.mark.slow
def test_profile_moa_embeds_crops_with_a_run(tmp_path):
    run = untrained_vaeplus_run(tmp_path / "run", "vae", latent_dim=3)
    wells = [("Week1_1", "A01", "DMSO", 0.0, "DMSO"), ("Week1_1", "A02", "a1", 1.0, "x"),
             ("Week1_1", "A03", "b1", 1.0, "y"), ("Week2_1", "A01", "DMSO", 0.0, "DMSO"),
             ("Week2_1", "A02", "a2", 1.0, "x"), ("Week2_1", "A03", "b2", 1.0, "y")]
    data = write_bbbc021(tmp_path / "data", wells, cells_per_well=4)
    out = tmp_path / "profiles"
    result = CliRunner().invoke(cli, ["profile-moa", "--run", str(run), "--data", str(data), "--out", str(out),
                                      "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    cells, features = read_embeddings(out / "embeddings.h5")
    assert len(cells) == 24 and list(features.columns) == ["embeddings_0", "embeddings_1", "embeddings_2"]
    assert set(cells["compound"]) == {"DMSO", "a1", "a2", "b1", "b2"}
    accuracy = pd.read_csv(out / "accuracy.csv")
    assert accuracy["method"].tolist() == ["run", "run"] and (accuracy["treatments"] == 4).all()


def _cytoself_layout(path: Path, table: pd.DataFrame, arrays: dict) -> Path:
    """`table`'s metadata and `arrays` in the layout `embed_cytoself` writes (label, index,
    metadata group with its ``columns`` attribute, the run attributes)."""
    import h5py

    from statcell_tf.data.embedding_files import write_metadata as _write_metadata

    metadata = table.drop(columns=[c for c in table.columns if c.startswith("z_")])
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
        handle.create_dataset("label", data=np.full(len(table), -1, np.int32))
        handle.create_dataset("index", data=np.arange(len(table), dtype=np.int64))
        _write_metadata(handle.create_group("metadata"), metadata)
        handle.attrs["run"] = "toy-run"
        handle.attrs["num_embeddings"] = 4
    return path


@pytest.mark.slow
def test_profile_moa_reads_embed_cytoself_files(tmp_path):
    table = pd.read_csv(_cells(tmp_path))
    z = table[["z_0", "z_1", "z_2"]].to_numpy(np.float32)
    n = len(table)
    # global (N, 1, 3, 1): the CSV's vectors -> the CSV's answer (100 % everywhere).
    # local (N, 2, 3): compound-swapped centres (a1 & b2, a2 & b1 share one) -> every
    # treatment's nearest other compound has the other MoA: 0 % everywhere.
    swap = {"a1": [4.0, 0, 0], "b2": [4.0, 0, 0], "a2": [0, 4.0, 0], "b1": [0, 4.0, 0], "DMSO": [0, 0, 0]}
    noise = np.random.default_rng(1).normal(size=(n, 3))
    local = np.stack([np.array([swap[c] for c in table["compound"]]) + noise, np.ones((n, 3))], axis=1)
    arrays = {
        "global": z.reshape(n, 1, 3, 1).astype(np.float16),
        "local": local.astype(np.float32),
        "global_indices": np.zeros((n, 1, 3), np.int16),
        "local_hist": np.ones((n, 4), np.int16),
    }
    h5 = _cytoself_layout(tmp_path / "embeddings.h5", table, arrays)
    runner = CliRunner()

    result = runner.invoke(cli, ["profile-moa", "--embeddings", str(h5), "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(tmp_path / "g" / "accuracy.csv")
    assert (got[["Mean", "Mean+Whitened", "Mean+S.D.", "Mean+S.D.+Whitened"]] == 100.0).all().all()
    assert (got["treatments"] == 4).all() and got["method"].tolist() == ["embeddings", "embeddings"]
    # Same profiles as the CSV the vectors came from (float16 storage aside).
    assert runner.invoke(cli, ["profile-moa", "--embeddings", str(tmp_path / "cells.csv"), "--out",
                               str(tmp_path / "csv")]).exit_code == 0
    csv = pd.read_csv(tmp_path / "csv" / "predictions.csv")
    pd.testing.assert_series_equal(pd.read_csv(tmp_path / "g" / "predictions.csv")["neighbor_compound"],
                                   csv["neighbor_compound"])

    result = runner.invoke(cli, ["profile-moa", "--embeddings", str(h5), "--vectors", "local", "--out",
                                 str(tmp_path / "l")])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(tmp_path / "l" / "accuracy.csv")
    assert (got[["Mean", "Mean+Whitened", "Mean+S.D.", "Mean+S.D.+Whitened"]] == 0.0).all().all()
    predictions = pd.read_csv(tmp_path / "l" / "predictions.csv")
    pairs = {"a1": "b2", "b2": "a1", "a2": "b1", "b1": "a2"}
    assert (predictions["neighbor_compound"] == predictions["compound"].map(pairs)).all()

    cells, features = read_embeddings(h5, "local")  # (N, 2, 3) flattened per cell
    assert list(features.columns) == [f"local_{j}" for j in range(6)]
    np.testing.assert_allclose(features.to_numpy(), local.reshape(n, 6), rtol=1e-6)
    pd.testing.assert_frame_equal(cells[["plate", "well", "compound", "concentration", "moa"]],
                                  table[["plate", "well", "compound", "concentration", "moa"]], check_dtype=False)


def test_profile_moa_vector_dataset_errors(tmp_path, capsys):
    table = pd.read_csv(_cells(tmp_path))
    n = len(table)
    vectors = np.random.default_rng(0).normal(size=(n, 2, 2)).astype(np.float32)
    ambiguous = _cytoself_layout(tmp_path / "no_global.h5", table,
                                 {"local": vectors, "local_hist": np.ones((n, 4), np.int16),
                                  "local_indices": np.zeros((n, 2), np.int16)})

    def error(*args):
        assert run_command("profile-moa", [*map(str, args), "--out", str(tmp_path / "never")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
        return err

    err = error("--embeddings", ambiguous)
    assert "several vector datasets and no 'embeddings' or 'global'" in err and "--vectors NAME" in err
    assert err.rstrip().endswith("Received: local, local_hist")  # codebook indices are no vectors
    err = error("--embeddings", ambiguous, "--vectors", "global")
    assert "dataset 'global'" in err and "does not exist" in err and "expected one of: local, local_hist" in err
    assert "codebook indices" in error("--embeddings", ambiguous, "--vectors", "local_indices")
    assert "not a numeric (cells, dims, ...) dataset" in error("--embeddings", ambiguous, "--vectors", "index")
    assert "--vectors applies to HDF5" in error("--embeddings", tmp_path / "cells.csv", "--vectors", "local")
    empty = _cytoself_layout(tmp_path / "empty.h5", table, {})
    assert "has no vector dataset" in error("--embeddings", empty)
    assert not (tmp_path / "never").exists()
    # One candidate only: chosen without --vectors.
    single = _cytoself_layout(tmp_path / "single.h5", table, {"local_hist": np.ones((n, 4), np.int16)})
    assert list(read_embeddings(single)[1].columns) == [f"local_hist_{j}" for j in range(4)]
    result = CliRunner().invoke(cli, ["profile-moa", "--run", str(tmp_path), "--data", str(tmp_path),
                                      "--vectors", "local", "--out", "x"])
    assert result.exit_code == 2 and "--vectors is only used with --embeddings" in result.output


@pytest.mark.slow
def test_profile_moa_reads_what_embed_cytoself_writes(tmp_path):
    import json

    from statcell_tf.cytoself.embeddings import embed_cytoself
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.data.source import ArrayImages, CellImages
    from statcell_tf.training.export import save_keras

    run = tmp_path / "run"
    model = CytoselfModel(
        num_classes=2, image_shape=(16, 16, 2), stem_filters=4, encoder1_stages=[[1, 3, 1, 4, 1], [2, 3, 2, 6, 1]],
        local_filters=8, encoder2_stages=[[2, 3, 2, 8, 1]], global_filters=16, local_num_embeddings=8,
        global_num_embeddings=8, global_num_splits=2, decoder_filters=4, decoder_min_filters=4,
        decoder_units_per_block=1, classifier_units=8, seed=0,
    )
    model.build((None, 16, 16, 2))
    save_keras(model, run / "best.keras")
    (run / "config.json").write_text(json.dumps({"model": "cytoself", "channels": ["pro", "nucdist"]}))
    wells = [("Week1_1", "A01", "DMSO", 0.0, "DMSO"), ("Week1_1", "A02", "a1", 1.0, "x"),
             ("Week1_1", "A03", "b1", 1.0, "y"), ("Week2_1", "A01", "DMSO", 0.0, "DMSO"),
             ("Week2_1", "A02", "a2", 1.0, "x"), ("Week2_1", "A03", "b2", 1.0, "y")]
    metadata = pd.DataFrame([dict(zip(("plate", "well", "compound", "concentration", "moa"), w))
                             for w in wells for _ in range(3)])
    images = np.random.default_rng(0).random((len(metadata), 16, 16, 2)).astype("float32")
    cells = CellImages(ArrayImages(images), metadata, ("pro", "nucdist"), "toy")
    h5 = embed_cytoself(run, cells, tmp_path / "embeddings.h5", batch_size=8, dtype="float16", progress=False)
    for vectors, dims in ((None, 2 * 2 * 16), ("local_hist", 8)):
        out = tmp_path / f"profiles-{vectors}"
        args = ["profile-moa", "--embeddings", str(h5), "--out", str(out)] + (["--vectors", vectors] if vectors else [])
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        accuracy = pd.read_csv(out / "accuracy.csv")
        assert (accuracy["treatments"] == 4).all() and (accuracy["classes"] == 2).all()
    table, features = read_embeddings(h5)
    assert len(features.columns) == 2 * 2 * 16  # global (N, 2, 2, 16) per cell
    pd.testing.assert_frame_equal(table[list(metadata.columns)], metadata, check_dtype=False)


def _metadata_table(tmp_path: Path, controls_per_plate=None) -> Path:
    """The `_cells` design in the profiling convention (Metadata_ columns, CellProfiler-like
    feature names) as Parquet, with 3 wells per treatment; optionally fewer control cells."""
    table = pd.read_csv(_cells(tmp_path))
    table = table.rename(columns={c: f"Metadata_{c}" for c in ("plate", "well", "compound", "concentration", "moa")})
    table = table.rename(columns={f"z_{j}": f"Cells_Intensity_f{j}" for j in range(3)})
    table["Metadata_well"] = table["Metadata_well"] + "_" + (np.arange(len(table)) % 3).astype(str)
    if controls_per_plate is not None:
        keep = []
        for plate, group in table.groupby("Metadata_plate"):
            controls = group[group["Metadata_compound"] == "DMSO"].head(controls_per_plate[plate])
            keep += [controls, group[group["Metadata_compound"] != "DMSO"]]
        table = pd.concat(keep, ignore_index=True)
    path = tmp_path / "cells.parquet"
    table.to_parquet(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.filterwarnings("error")
def test_profile_moa_reports_several_embeddings_side_by_side(tmp_path, capsys):
    parquet = _metadata_table(tmp_path)
    csv = tmp_path / "bare.csv"  # the same cells, bare names and z_ features: a second method
    pd.read_parquet(parquet).rename(columns=lambda c: c.removeprefix("Metadata_").replace("Cells_Intensity_f", "z_")
                                    ).to_csv(csv, index=False)
    out = tmp_path / "out"
    assert run_command("profile-moa", ["--embeddings", str(parquet), "--embeddings", str(csv), "--name", "classical",
                                       "--name", "learned", "--null-size", "1000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Compound | Concentration | classical | learned |" in printed
    assert "| NSC | classical | **100.0** |" in printed and "| NSC | learned | **100.0** |" in printed
    for name in ("accuracy.csv", "accuracy.md", "predictions.csv", "activity.csv", "consistency.csv", "map.md",
                 "activity.png", "consistency.png", "references.csv", "profiles/classical.wells.parquet",
                 "profiles/learned.treatments.parquet"):
        assert (out / name).exists(), name
    activity = pd.read_csv(out / "activity.csv")
    treated = activity[activity["kind"] == "treatment"]
    assert len(treated) == 8 and treated["active"].all()  # 4 treatments x 2 methods, 3 wells each
    assert not activity[activity["kind"] == "null check"]["active"].any()
    consistency = pd.read_csv(out / "consistency.csv")
    assert sorted(set(consistency["Metadata_moa"])) == ["x", "y"] and consistency["mean_average_precision"].eq(1).all()
    wells = pd.read_parquet(out / "profiles" / "classical.wells.parquet")
    assert {"Metadata_plate", "Metadata_well", "Metadata_compound", "Metadata_moa"} <= set(wells.columns)
    treatments = pd.read_parquet(out / "profiles" / "learned.treatments.parquet")
    assert list(treatments.filter(regex="^(?!Metadata_)").columns) == ["z_0", "z_1", "z_2"]


@pytest.mark.slow
def test_profile_moa_falls_back_on_plates_with_0_or_1_control_cell_and_says_so(tmp_path, capsys):
    # One plate with 1 control cell, the other with all 40: the first borrows the pooled controls.
    table = _metadata_table(tmp_path, controls_per_plate={"Week1_11": 1, "Week2_21": 40})
    assert run_command("profile-moa", ["--embeddings", str(table), "--null-size", "1000", "--out",
                                       str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    for what in ("whitened", "normalised"):
        assert f"cells: plate Week1_11 has 1 control cell(s): {what} against all 41 control cells (pooled)" in printed
    assert "plate Week2_21" not in printed
    # 0 and 1 control cell: fewer than 2 anywhere -> every plate against all its own cells.
    table = _metadata_table(tmp_path, controls_per_plate={"Week1_11": 1, "Week2_21": 0})
    out = tmp_path / "b"
    assert run_command("profile-moa", ["--embeddings", str(table), "--null-size", "1000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("cells: plate Week2_21 has 0 control cell(s): normalised against all 40 cells of the plate "
            "(too few controls anywhere)") in printed
    references = pd.read_csv(out / "references.csv")
    assert set(references["step"]) == {"whiten (NSC/NSCB)", "normalize"}
    assert references["fallback"].all() and set(references["reference"]) == {"all samples"}


def test_profile_moa_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    good = _metadata_table(tmp_path)
    bad = pd.read_parquet(good)
    bad["Cells_Intensity_f1"] = bad["Cells_Intensity_f1"].astype(object)
    bad.loc[7, "Cells_Intensity_f1"] = "n/a"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "never"

    def error(*args):
        assert run_command("profile-moa", [*map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        # a bad file: one line; a flag conflict: click's usage hint above one Error: line
        errors = [line for line in err.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "Traceback" not in err
        return errors[0]

    err = error("--embeddings", good, "--embeddings", tmp_path / "bad.csv")
    assert capsys.readouterr().err == ""
    assert f"--embeddings {tmp_path / 'bad.csv'}: column 'Cells_Intensity_f1' must hold numbers" in err
    assert "--spherize PCA" in error("--embeddings", good, "--spherize", "PCA")
    assert "one --name per --embeddings" in error("--embeddings", good, "--name", "a", "--name", "b")
    assert "--cells-per-replicate needs --map-level cell" in error("--embeddings", good, "--cells-per-replicate", "5")
    assert not out.exists()
