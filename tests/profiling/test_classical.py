"""Classical CellProfiler-style features (cp-measure): known answers, file convention, streaming, real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import run_command
from statcell_tf.data.embedding_files import read_embeddings
from statcell_tf.data.readers import read_cells
from statcell_tf.profiling.classical import ClassicalSettings, channel_label, write_classical

SIZE = 48
NUCLEUS_RADIUS, CELL_RADIUS = 8, 15
DNA_LEVEL, ACTIN_LEVEL = 30000, 12000


def _disk(radius, centre=(SIZE // 2, SIZE // 2)):
    rows, cols = np.ogrid[:SIZE, :SIZE]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _crop(shift=0, actin=ACTIN_LEVEL):
    """A uint16 (48, 48, 3) crop: a DNA disk of radius 8 inside an actin/tubulin disk of radius 15."""
    crop = np.zeros((SIZE, SIZE, 3), np.uint16)
    centre = (SIZE // 2 + shift, SIZE // 2)
    crop[..., 0][_disk(NUCLEUS_RADIUS, centre)] = DNA_LEVEL
    crop[..., 1][_disk(CELL_RADIUS, centre)] = actin
    crop[..., 2][_disk(CELL_RADIUS, centre)] = 5000
    return crop


def write_crops(root: Path, crops, compounds=None) -> Path:
    """A BBBC021-layout folder (metadata.csv + crops/*.npy) holding `crops`."""
    (root / "crops" / "x").mkdir(parents=True)
    rows = []
    for i, crop in enumerate(crops):
        name = f"cell_{i}.npy"
        np.save(root / "crops" / "x" / name, crop)
        compound = compounds[i] if compounds else "DMSO"
        rows.append({"file": name, "plate": "P1", "well": f"A{i % 2:02d}", "compound": compound,
                     "concentration": 0.0, "moa": "NA" if compound == "NA" else "DMSO", "cell_index": i})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


@pytest.mark.slow
def test_known_answer_on_drawn_disks(tmp_path):
    data = write_crops(tmp_path / "data", [_crop(), _crop(shift=3, actin=20000)])
    out = write_classical(read_cells(data), tmp_path / "f.parquet", chunk_size=1).path
    table = pd.read_parquet(out)
    nucleus_area, cell_area = _disk(NUCLEUS_RADIUS).sum(), _disk(CELL_RADIUS).sum()
    assert (table["Nuclei_AreaShape_Area"] == nucleus_area).all()
    assert (table["Cells_AreaShape_Area"] == cell_area).all()
    # intensities as CellProfiler loads uint16 images: value / 65535
    np.testing.assert_allclose(table["Nuclei_Intensity_MeanIntensity_DNA"], DNA_LEVEL / 65535, rtol=1e-6)
    np.testing.assert_allclose(table["Cells_Intensity_MeanIntensity_Actin"], [ACTIN_LEVEL / 65535, 20000 / 65535], rtol=1e-6)
    np.testing.assert_allclose(table["Cells_Intensity_IntegratedIntensity_DNA"], nucleus_area * DNA_LEVEL / 65535, rtol=1e-5)
    # a disk: form factor 4πA/P² near 1, eccentricity near 0; uniform actin → zero texture contrast
    assert (table["Cells_AreaShape_FormFactor"] > 0.85).all() and (table["Cells_AreaShape_Eccentricity"] < 0.2).all()
    assert (table.filter(like="Cells_Texture_Contrast_Actin") == 0).all().all()
    assert (table["Metadata_mask_fallback"] == "none").all()


def test_parquet_convention_per_channel_names_and_pycytominer(tmp_path):
    from pycytominer.cyto_utils import infer_cp_features

    data = write_crops(tmp_path / "data", [_crop(), _crop(shift=2), _crop(shift=-2)], compounds=["NA", "DMSO", "NA"])
    result = write_classical(read_cells(data), tmp_path / "f.parquet", ClassicalSettings(groups=("areashape", "intensity", "texture", "correlation")))
    table = pd.read_parquet(result.path)
    assert len(table) == 3
    assert result.undefined == 3 * 3  # Pearson inside a uniform mask is undefined (written as 0)
    meta = [c for c in table.columns if c.startswith("Metadata_")]
    assert {"Metadata_plate", "Metadata_well", "Metadata_compound", "Metadata_concentration", "Metadata_moa",
            "Metadata_cell_index", "Metadata_mask_fallback"} <= set(meta)
    assert list(table["Metadata_compound"]) == ["NA", "DMSO", "NA"]  # a compound named NA stays text
    assert table["Metadata_cell_index"].tolist() == ["0", "1", "2"]  # identifiers as text
    features = [c for c in table.columns if c not in meta]
    assert (table[features].dtypes == np.float32).all() and np.isfinite(table[features].to_numpy()).all()
    assert sorted(infer_cp_features(table, compartments=["Cells", "Nuclei"])) == sorted(features)
    for channel in ("DNA", "Actin", "Tubulin"):
        assert f"Cells_Intensity_MeanIntensity_{channel}" in features
        assert f"Nuclei_Texture_Contrast_{channel}_3_00_256" in features
    assert "Cells_Correlation_Correlation_DNA_Actin" in features and "Cells_Correlation_Manders_Actin_DNA" in features
    assert not any("Center_" in c or "Location_" in c or "BoundingBox" in c for c in features)
    metadata, values = read_embeddings(result.path)
    assert list(values.columns) == features and metadata["compound"].tolist() == ["NA", "DMSO", "NA"]


def test_streaming_gives_the_same_file_and_hdf5_is_readable_by_profile_moa(tmp_path):
    crops = [_crop(shift=s) for s in (-3, -1, 0, 2, 4)]
    crops[2][..., 0] = 0  # no DNA: the nucleus mask falls back to the centred disk
    cells = read_cells(write_crops(tmp_path / "data", crops))
    settings = ClassicalSettings(groups=("areashape", "intensity"))
    small = pd.read_parquet(write_classical(cells, tmp_path / "small.parquet", settings, chunk_size=2).path)
    whole = pd.read_parquet(write_classical(cells, tmp_path / "whole.parquet", settings, chunk_size=64).path)
    pd.testing.assert_frame_equal(small, whole)
    assert small["Metadata_mask_fallback"].tolist()[2] == "Nuclei"
    h5 = write_classical(cells, tmp_path / "f.h5", settings, chunk_size=2).path
    metadata, values = read_embeddings(h5)
    features = [c for c in small.columns if not c.startswith("Metadata_")]
    np.testing.assert_array_equal(values.to_numpy(np.float32), small[features].to_numpy())
    assert metadata["mask_fallback"].tolist() == small["Metadata_mask_fallback"].tolist()
    assert values.shape == (5, len(features)) and metadata["plate"].tolist() == ["P1"] * 5


def test_channel_labels():
    assert [channel_label(n) for n in ("dna", "actin", "tubulin", "pro", "Mito", "nuc_dist")] == [
        "DNA", "Actin", "Tubulin", "Pro", "Mito", "Nucdist"]


@pytest.mark.parametrize("case", ["suffix", "under_file", "onto_input", "inside_input", "read_only", "features", "channel"])
def test_bad_input_one_line_and_nothing_written(tmp_path, capsys, monkeypatch, case):
    data = write_crops(tmp_path / "data", [_crop()])
    (tmp_path / "file.txt").write_text("x")
    out, extra = tmp_path / "out.parquet", []
    if case == "suffix":
        out = tmp_path / "out.csv"
    elif case == "under_file":
        out = tmp_path / "file.txt" / "out.parquet"
    elif case == "onto_input":
        out = data / "crops" / "x" / "cell_0.npy"
    elif case == "inside_input":
        out = data / "features.parquet"
    elif case == "read_only":  # (root ignores permission bits: the check is made to see a read-only folder)
        import types

        from statcell_tf import atomic

        fake = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")})
        fake.access = lambda path, mode: not (mode & os.W_OK) and os.access(path, mode)
        monkeypatch.setattr(atomic, "os", fake)
    elif case == "features":
        extra = ["--features", "intensity,colour"]
    elif case == "channel":
        extra = ["--nucleus-channel", "hoechst"]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert run_command("embed-classical", ["--data", str(data), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    if case == "read_only":
        assert "cannot write to" in err
    assert "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_cli_writes_parquet(tmp_path, capsys):
    data = write_crops(tmp_path / "data", [_crop(), _crop(shift=1)])
    out = tmp_path / "deep" / "classical.parquet"
    assert run_command("embed-classical", ["--data", str(data), "--out", str(out), "--features", "areashape"]) == 0
    assert "cells/s" in capsys.readouterr().out
    assert len(pd.read_parquet(out)) == 2
    assert [p.name for p in out.parent.iterdir()] == ["classical.parquet"]


@pytest.mark.slow
def test_real_bbbc021_cycloheximide_differs_from_dmso(shared_data, tmp_path):
    """40 DMSO and 40 cycloheximide (50 µM) cells: the features separate them far above chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cells = read_cells(shared_data("bbbc021-dmso-cycloheximide"))
    meta = cells.metadata
    rng = np.random.default_rng(0)
    dmso = rng.choice(np.flatnonzero(meta["compound"] == "DMSO"), 40, replace=False)
    chx = rng.choice(np.flatnonzero((meta["compound"] != "DMSO") & (meta["concentration"] == meta["concentration"].max())), 40, replace=False)
    rows = np.sort(np.concatenate([dmso, chx]))
    result = write_classical(cells.subset(rows), tmp_path / "real.parquet", chunk_size=30)
    metadata, features = read_embeddings(result.path)  # checks every value is finite
    assert len(features) == 80 and features.shape[1] > 500
    for channel in ("DNA", "Actin", "Tubulin"):
        assert f"Cells_Intensity_MeanIntensity_{channel}" in features
    treated = (metadata["compound"] != "DMSO").to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    accuracy = cross_val_score(model, features.to_numpy(), treated, cv=5).mean()
    assert accuracy > 0.75, accuracy  # chance: 0.5


def test_workers_write_the_same_bytes_as_one_process(tmp_path):
    crops = [_crop(shift=s, actin=ACTIN_LEVEL + 500 * s) for s in (-3, -2, -1, 0, 1, 2, 3)]
    cells = read_cells(write_crops(tmp_path / "data", crops))
    settings = ClassicalSettings(groups=("areashape", "intensity", "texture"))
    one = write_classical(cells, tmp_path / "one.parquet", settings, chunk_size=2).path
    two = write_classical(cells, tmp_path / "two.parquet", settings, chunk_size=2, workers=2).path
    assert Path(one).read_bytes() == Path(two).read_bytes()
    assert len(pd.read_parquet(two)) == 7
    # the command line's --workers
    out = tmp_path / "cli.parquet"
    args = ["--data", str(tmp_path / "data"), "--out", str(out), "--features", "areashape,intensity,texture",
            "--chunk-size", "2", "--workers", "2"]
    assert run_command("embed-classical", args) == 0
    assert out.read_bytes() == Path(one).read_bytes()


def test_shards_read_together_equal_one_run(tmp_path, capsys):
    from statcell_tf.errors import UserError

    crops = [_crop(shift=s) for s in (-3, -2, -1, 0, 1, 2, 3)]
    data = write_crops(tmp_path / "data", crops)
    common = ["--data", str(data), "--features", "areashape,intensity"]
    assert run_command("embed-classical", common + ["--out", str(tmp_path / "whole.parquet")]) == 0
    parts = tmp_path / "parts.parquet"
    assert run_command("embed-classical", common + ["--out", str(parts), "--shard", "2/2"]) == 0
    with pytest.raises(UserError, match=r"part\(s\) 1 of 2 are missing"):
        read_embeddings(parts)
    assert run_command("embed-classical", common + ["--out", str(parts), "--shard", "1/2", "--workers", "2",
                                                    "--chunk-size", "2"]) == 0
    whole = read_embeddings(tmp_path / "whole.parquet")
    sharded = read_embeddings(parts)
    pd.testing.assert_frame_equal(sharded[0], whole[0])
    pd.testing.assert_frame_equal(sharded[1], whole[1])
    assert sorted(p.name for p in parts.iterdir()) == ["part-00001-of-00002.parquet", "part-00002-of-00002.parquet"]
    assert len(pd.read_parquet(parts / "part-00001-of-00002.parquet")) == 3  # cells 0-2 of 7, then 3-6
