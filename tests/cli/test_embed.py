"""bin/embed on a tiny run of each of the four models: Parquet (Metadata_* + <vector>_<j>) equal to
the model's own encoding, streaming, HDF5 read by profile-moa, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import run_command
from statcell_tf.data.embedding_files import read_embeddings
from statcell_tf.data.synthetic import write_bbbc021
from statcell_tf.training.export import save_keras
from statcell_tf.training.run_dir import RunDirectory, make_config
from tests._support.cytoself_run import build_tiny_run


# Every test trains or builds a tiny run of each model (module fixtures): about 5 minutes on a loaded machine.
pytestmark = pytest.mark.slow


def _embed(*args) -> int:
    return run_command("embed", [str(a) for a in args])


def _features(table: pd.DataFrame, vector: str) -> np.ndarray:
    columns = [c for c in table.columns if c.startswith(f"{vector}_") and c[len(vector) + 1:].isdigit()]
    assert columns == [f"{vector}_{j}" for j in range(len(columns))]
    assert (table[columns].dtypes == np.float32).all()
    return table[columns].to_numpy()


def _check_convention(table: pd.DataFrame, metadata: pd.DataFrame) -> None:
    assert len(table) == len(metadata)
    for column in metadata.columns:
        assert f"Metadata_{column}" in table.columns, column


# ----- tiny runs ---------------------------------------------------------------------------------
# Three BBBC021 wells (two cells each): DMSO, a compound literally named NA, DMSO
NA_WELLS = [("Week1_1", "B00", "DMSO", 0.0, "DMSO"), ("Week1_1", "B01", "NA", 1.0, "x"), ("Week1_1", "B02", "DMSO", 0.0, "DMSO")]


@pytest.fixture(scope="module")
def vaeplus(tmp_path_factory):
    from statcell_tf.training.export import export_saved_model
    from statcell_tf.vaeplus.model import VAEPlus

    root = tmp_path_factory.mktemp("vaeplus")
    data = write_bbbc021(root / "data", NA_WELLS, cells_per_well=2)
    model = VAEPlus(latent_dim=4, filters=2, discriminator_filters=2, seed=0)
    model.encode(np.zeros((1, 68, 68, 3), np.float32))
    run = RunDirectory(root / "run")
    run.path.mkdir()
    run.write_config(make_config("vaeplus", "vaeplus", None, {}))
    export_saved_model(model, run.saved_model)
    return run.path, data, model


@pytest.fixture(scope="module")
def allen(tmp_path_factory):
    from statcell_tf.data.synthetic import write_allencell

    root = tmp_path_factory.mktemp("allen")
    write_allencell(root, n_families=3, cells_per_structure=3, dims=2, size=(16, 16), mitotic_fraction=0.0, seed=0)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def statcell(allen, tmp_path_factory):
    from statcell_tf.statcell.data import StatcellData, structure_types
    from statcell_tf.statcell.model import ConditionalBetaVAE
    from statcell_tf.data.readers import read_cells
    from statcell_tf.statcell.training import StatcellTrainConfig

    root = tmp_path_factory.mktemp("statcell")
    cells = read_cells(allen)
    types = structure_types(cells.metadata)
    runs = {}
    for role in ("reference", "target"):
        config = StatcellTrainConfig(
            data=str(allen), model=role, preset="tiny", size=[16, 16], latent_dim=3, filters=[4, 8],
            reference_run=str(root / "reference") if role == "target" else None,
            structure_types=types if role == "target" else [],
        )
        model = ConditionalBetaVAE(**config.model_kwargs())
        data = StatcellData(cells, role, (16, 16), types if role == "target" else None)
        model.prepare(data.batch(np.arange(4)))
        run = RunDirectory(root / role)
        run.path.mkdir()
        run.write_config(config.run_config())
        save_keras(model, run.best_model)
        runs[role] = (run.path, model, data)
    return runs


@pytest.fixture(scope="module")
def integrated(allen, tmp_path_factory):
    from statcell_tf.integrated_cell.model import IntegratedCellConditional, IntegratedCellReference

    root = tmp_path_factory.mktemp("integrated")
    names = ["A", "B", "C"]
    reference = IntegratedCellReference(image_size=(32, 32), latent_dim=3, filters=2, seed=0)
    conditional = IntegratedCellConditional(num_classes=3, image_size=(32, 32), latent_dim=2, reference_latent_dim=3,
                                            filters=2, class_names=names, seed=0)
    batch = {"image": np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32"),
             "label": np.array([0, 1], "int32")}
    runs = {}
    for role, model in (("reference", reference), ("conditional", conditional)):
        model.prepare(batch)
        run = RunDirectory(root / role)
        run.path.mkdir()
        run.write_config(make_config("integrated_cell", role, None, {}, {"class_names": names}))
        save_keras(model, run.best_model)
        runs[role] = (run.path, model)
    return runs


# ----- the four models ---------------------------------------------------------------------------
def test_vaeplus_parquet_equals_the_encoder_and_streams(vaeplus, tmp_path):
    from pycytominer import aggregate
    from pycytominer.cyto_utils import infer_cp_features

    from statcell_tf.data.readers import read_cells
    from statcell_tf.vaeplus.training import normalize

    run, data, model = vaeplus
    assert _embed(run, "--data", data, "--out", tmp_path / "a.parquet", "--batch-size", 4) == 0
    table = pd.read_parquet(tmp_path / "a.parquet")
    cells = read_cells(data)
    _check_convention(table, cells.metadata)
    assert table["Metadata_compound"].tolist() == ["DMSO", "DMSO", "NA", "NA", "DMSO", "DMSO"]  # NA stays text
    assert table["Metadata_concentration"].dtype == np.float64
    expected = np.asarray(model.encode(normalize(cells.images[np.arange(len(cells))])))
    np.testing.assert_allclose(_features(table, "mu"), expected, rtol=1e-4, atol=1e-5)
    # pycytominer sees the Metadata_ columns as metadata and the features as features
    assert infer_cp_features(table, metadata=True) == [c for c in table.columns if c.startswith("Metadata_")]
    wells = aggregate(table, strata=["Metadata_plate", "Metadata_well"], features=[f"mu_{j}" for j in range(4)])
    assert len(wells) == 3 and np.isfinite(wells[[f"mu_{j}" for j in range(4)]].to_numpy()).all()
    # streaming: a chunk smaller than the data gives the same file contents
    assert _embed(run, "--data", data, "--out", tmp_path / "b.parquet", "--batch-size", 64) == 0
    # (float32 sums of another batch size may differ in the last bits: absolute 1e-6)
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "b.parquet"), rtol=1e-5, atol=1e-6)


def test_vaeplus_hdf5_is_read_by_profile_moa(vaeplus, tmp_path):
    run, data, _ = vaeplus
    assert _embed(run, "--data", data, "--out", tmp_path / "e.h5", "--batch-size", 4) == 0
    assert _embed(run, "--data", data, "--out", tmp_path / "e.parquet") == 0
    metadata, features = read_embeddings(tmp_path / "e.h5")
    parquet = pd.read_parquet(tmp_path / "e.parquet")
    # (batch sizes differ: TensorFlow's convolutions may differ in the last float32 bit)
    np.testing.assert_allclose(features.to_numpy(np.float32), _features(parquet, "mu"), rtol=1e-5, atol=1e-6)
    assert metadata["compound"].tolist() == parquet["Metadata_compound"].tolist()
    assert list(features.columns) == [f"mu_{j}" for j in range(4)] and len(metadata) == 6


def test_statcell_target_run_writes_z_ref_and_z_target(statcell, allen, tmp_path):
    target, target_model, target_data = statcell["target"]
    _, reference_model, reference_data = statcell["reference"]
    assert _embed(target, "--data", allen, "--out", tmp_path / "s.parquet", "--batch-size", 4) == 0
    table = pd.read_parquet(tmp_path / "s.parquet")
    _check_convention(table, target_data.cells.metadata)
    rows = np.arange(len(table))
    np.testing.assert_allclose(_features(table, "z_ref"), reference_model.encode(reference_data.batch(rows))[0], atol=1e-5)
    np.testing.assert_allclose(_features(table, "z_target"), target_model.encode(target_data.batch(rows))[0], atol=1e-5)
    assert table["Metadata_CellId"].map(type).eq(str).all()
    # the reference run alone: z_ref only; HDF5 holds one dataset per vector
    assert _embed(statcell["reference"][0], "--data", allen, "--out", tmp_path / "r.h5") == 0
    metadata, features = read_embeddings(tmp_path / "r.h5")
    np.testing.assert_allclose(features.to_numpy(), _features(table, "z_ref"), atol=1e-6)


def test_integrated_cell_latents_and_probabilities(integrated, allen, tmp_path):
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import classify_cells, read_data

    conditional, model = integrated["conditional"]
    assert _embed(conditional, "--data", allen, "--out", tmp_path / "c.parquet", "--batch-size", 4) == 0
    table = pd.read_parquet(tmp_path / "c.parquet")
    view = icd.model_view(read_data(allen), (32, 32), model.class_names)
    rows = np.arange(len(view.metadata))
    probabilities, _ = classify_cells(model, view, rows)
    np.testing.assert_allclose(_features(table, "probabilities"), probabilities, atol=1e-5)
    np.testing.assert_allclose(_features(table, "probabilities").sum(axis=1), 1.0, atol=1e-5)
    encoded = model.encode(model.images(np.asarray(view.images[rows])))
    np.testing.assert_allclose(_features(table, "z_s"), encoded["z_s"], atol=1e-5)
    np.testing.assert_allclose(_features(table, "z_r"), encoded["z_r"], atol=1e-5)
    reference, reference_model = integrated["reference"]
    assert _embed(reference, "--data", allen, "--out", tmp_path / "r.parquet") == 0
    z_r = _features(pd.read_parquet(tmp_path / "r.parquet"), "z_r")
    np.testing.assert_allclose(z_r, reference_model.encode(np.asarray(view.images[rows])[..., :2]), atol=1e-5)


def test_cytoself_vectors_choice_and_alias(tmp_path):
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.cytoself.model import load_run
    from statcell_tf.data.readers import read_cells

    run, data = build_tiny_run(tmp_path / "cyto")
    assert _embed(run, "--data", data, "--out", tmp_path / "g.parquet") == 0
    table = pd.read_parquet(tmp_path / "g.parquet")
    cells = read_cells(data).select_channels(["pro", "nucdist"])
    _check_convention(table, cells.metadata)
    model, _ = load_run(run)
    embedded = model.embed(cells.images[np.arange(len(cells))])
    np.testing.assert_allclose(_features(table, "global"), embedded["global"].reshape(len(cells), -1), atol=1e-5)
    assert not any(c.startswith("local") for c in table.columns)  # Parquet default: global only
    assert _embed(run, "--data", data, "--out", tmp_path / "h.parquet", "--vectors", "global_hist,local_hist") == 0
    hist = pd.read_parquet(tmp_path / "h.parquet")
    np.testing.assert_array_equal(_features(hist, "local_hist"), embedded["local_hist"])
    assert not any(c.startswith("global_") and c[7:].isdigit() for c in hist.columns)
    # embed-cytoself: the same HDF5 as before (layout read by load_embeddings), test split by default
    assert run_command("embed-cytoself", [str(run), "--data", str(data), "--out", str(tmp_path / "t.h5")]) == 0
    arrays, metadata = load_embeddings(tmp_path / "t.h5")
    test_rows = RunDirectory(run).split_rows(len(cells))["test"]
    np.testing.assert_array_equal(arrays["index"], test_rows)
    np.testing.assert_allclose(arrays["global"], embedded["global"][test_rows], atol=1e-5)
    assert metadata.attrs["paper"] == "cytoself" and arrays["local"].shape[0] == len(test_rows)


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["suffix", "under_file", "unknown_paper", "no_config", "vectors", "reference", "inside_data"])
def test_bad_input_one_line_nothing_written(vaeplus, tmp_path, capsys, case):
    run, data, _ = vaeplus
    out, extra = tmp_path / "o.parquet", []
    (tmp_path / "file").write_text("x")
    if case == "suffix":
        out = tmp_path / "o.feather"
    elif case == "under_file":
        out = tmp_path / "file" / "o.parquet"
    elif case == "unknown_paper":
        run = tmp_path / "foreign"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"format": 2, "paper": "deepprofiler", "role": "x",
                                                     "settings": {}, "data": {}}))
    elif case == "no_config":
        run = tmp_path / "empty_run"
        run.mkdir()
    elif case == "vectors":
        extra = ["--vectors", "mu,z_ref"]
    elif case == "reference":
        extra = ["--reference", str(run)]
    elif case == "inside_data":
        out = data / "emb.parquet"
    before = sorted(tmp_path.rglob("*")) + sorted(Path(data).rglob("*"))
    assert _embed(run, "--data", data, "--out", out, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(tmp_path.rglob("*")) + sorted(Path(data).rglob("*")) == before


def test_shards_read_together_equal_one_run_and_a_missing_part_is_refused(vaeplus, tmp_path, capsys):
    from statcell_tf.data.embedding_files import read_arrays
    from statcell_tf.errors import UserError

    run, data, _ = vaeplus
    assert _embed(run, "--data", data, "--out", tmp_path / "whole.parquet", "--batch-size", 2) == 0
    assert _embed(run, "--data", data, "--out", tmp_path / "whole.h5", "--batch-size", 2) == 0
    for k in (3, 1):  # 6 cells in 3 shards of 2, run in any order
        assert _embed(run, "--data", data, "--out", tmp_path / "parts.parquet", "--shard", f"{k}/3", "--batch-size", 2) == 0
        assert _embed(run, "--data", data, "--out", tmp_path / "parts.h5", "--shard", f"{k}/3", "--batch-size", 2) == 0
    assert sorted(p.name for p in (tmp_path / "parts.parquet").iterdir()) == [
        "part-00001-of-00003.parquet", "part-00003-of-00003.parquet"]
    for name in ("parts.parquet", "parts.h5"):  # shard 2 has not run: the folder is refused
        with pytest.raises(UserError, match=r"part\(s\) 2 of 3 are missing"):
            read_embeddings(tmp_path / name)
    assert _embed(run, "--data", data, "--out", tmp_path / "parts.parquet", "--shard", "2/3", "--batch-size", 2) == 0
    assert _embed(run, "--data", data, "--out", tmp_path / "parts.h5", "--shard", "2/3", "--batch-size", 2) == 0
    for whole, parts in (("whole.parquet", "parts.parquet"), ("whole.h5", "parts.h5")):
        metadata, features = read_embeddings(tmp_path / parts)
        expected_metadata, expected = read_embeddings(tmp_path / whole)
        pd.testing.assert_frame_equal(metadata, expected_metadata)
        pd.testing.assert_frame_equal(features, expected)
    arrays, metadata = read_arrays(tmp_path / "parts.h5")
    np.testing.assert_array_equal(arrays["mu"], read_arrays(tmp_path / "whole.h5")[0]["mu"])
    # bad --shard values and a part of another shard count: one line, exit 2, nothing written
    capsys.readouterr()
    for bad in ("0/3", "4/3", "two"):
        assert _embed(run, "--data", data, "--out", tmp_path / "bad.parquet", "--shard", bad) == 2
        assert "--shard" in capsys.readouterr().err
    assert _embed(run, "--data", data, "--out", tmp_path / "parts.parquet", "--shard", "1/2") == 2
    assert "holds parts of 3 shards" in capsys.readouterr().err
    assert not (tmp_path / "bad.parquet").exists() and len(list((tmp_path / "parts.parquet").iterdir())) == 3
