"""prepare-crops on OME-Zarr HCS plates (NGFF 0.4 and 0.5) with a plate map: the same crops as the same
fields listed in a FOVS.csv of TIFFs, the plate map's columns on every crop of its well, shards, resume."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli
from statcell_tf.data.bbbc021 import read_bbbc021
from statcell_tf.data.hcs import normalise_well, plate_table
from statcell_tf.data.synthetic import write_fovs
from statcell_tf.errors import UserError

BBBC021 = ["--layout", "bbbc021", "--channels", "dna,membrane,protein", "--size", "40", "--montage-crops", "0"]


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def screen(request, tmp_path_factory):
    """4 wells (2×2: A/1, A/2, B/1, B/2) × 2 fields of 144×144 px, 3 cells each, as TIFFs + FOVS.csv and as
    plate.zarr in NGFF `request.param` + plate_map.csv."""
    folder = tmp_path_factory.mktemp(f"plate{request.param}") / "screen"
    write_fovs(folder, n_families=2, proteins_per_family=2, fields_per_protein=2, cells_per_field=3,
               size=(144, 144), cell_size=48, seed=5, plate=request.param)
    if request.param == "0.5":  # zarr v3, NGFF attributes under "ome"
        assert json.loads((folder / "plate.zarr" / "zarr.json").read_text())["attributes"]["ome"]["version"] == "0.5"
    else:  # zarr v2, .zattrs
        assert json.loads((folder / "plate.zarr" / ".zattrs").read_text())["plate"]["version"] == "0.4"
    return folder


def _run(*args):
    return CliRunner().invoke(cli, ["prepare-crops", *[str(a) for a in args]])


def test_normalise_well():
    assert [normalise_well(w) for w in ("B3", "B03", "b03", "B/3", "B_03", " c12 ", "AF48")] == [
        "B03", "B03", "B03", "B03", "B03", "C12", "AF48"]
    assert normalise_well("W000x") is None and normalise_well("3B") is None and normalise_well("") is None


@pytest.mark.slow
def test_plate_prepares_like_its_fovs_csv(screen, tmp_path):
    result = _run(screen / "plate.zarr", "--plate-map", screen / "plate_map.csv", "--out", tmp_path / "plate", *BBBC021)
    assert result.exit_code == 0, result.output
    assert "Wrote 24 bbbc021 crops from 8 fields of view" in result.output
    tiffs = _run(screen / "fovs_bbbc021.csv", "--out", tmp_path / "tiffs", *BBBC021)
    assert tiffs.exit_code == 0, tiffs.output
    truth = pd.read_csv(screen / "cells.csv")
    plate, csv = read_bbbc021(tmp_path / "plate"), read_bbbc021(tmp_path / "tiffs")
    assert len(plate) == len(csv) == len(truth) == 24  # every known cell, once
    np.testing.assert_array_equal(plate.images[np.arange(len(plate))], csv.images[np.arange(len(csv))])
    positions = ["nucleus_label", "centroid_y", "centroid_x", "crop_y", "crop_x", "compound", "moa"]
    pd.testing.assert_frame_equal(plate.metadata[positions], csv.metadata[positions])
    # The plate map's columns on every crop of its well; plate, well and site from the plate.
    plate_map = pd.read_csv(screen / "plate_map.csv").set_index("well")
    meta = plate.metadata
    assert set(meta["plate"]) == {"SYN01"} and list(pd.unique(meta["well"])) == ["A01", "A02", "B01", "B02"]
    for column in ("compound", "concentration", "moa"):
        np.testing.assert_array_equal(meta[column].to_numpy(), plate_map.loc[meta["well"], column].to_numpy())
    truth_wells = truth.groupby(["well", "site"]).size()
    assert meta.groupby(["well", "site"]).size().to_dict() == truth_wells.to_dict()
    assert list(pd.unique(meta["field"])) == [f"SYN01_{w}_{s}" for w in ("A01", "A02", "B01", "B02") for s in (0, 1)]
    assert sorted(meta["treatment"].unique())[0] == "NUCLEOLUS_1@0.3"
    inspected = CliRunner().invoke(cli, ["inspect-data", str(tmp_path / "plate")])
    assert inspected.exit_code == 0 and "bbbc021 format, 24 images of shape (40, 40, 3)" in inspected.output


@pytest.mark.slow
def test_plate_shards_and_resume_equal_one_run(screen, tmp_path):
    from statcell_tf.data import prepare
    from statcell_tf.data.readers import read_cells

    inputs = [screen / "plate.zarr", "--plate-map", screen / "plate_map.csv"]
    assert _run(*inputs, "--out", tmp_path / "whole", *BBBC021).exit_code == 0
    for k in (2, 1):
        result = _run(*inputs, "--out", tmp_path / "parts", "--shard", f"{k}/2", *BBBC021)
        assert result.exit_code == 0 and "from 4 fields of view" in result.output, result.output
    whole, parts = read_cells(tmp_path / "whole"), read_cells(tmp_path / "parts")
    keep = [c for c in whole.metadata.columns if c not in ("file", "prefix")]
    pd.testing.assert_frame_equal(parts.metadata[keep], whole.metadata[keep])
    np.testing.assert_array_equal(parts.images[np.arange(len(parts))], whole.images[np.arange(len(whole))])

    # A run stopped after its first committed field, then --resume: the same output as one run.
    config = prepare.PrepareConfig.for_layout("bbbc021", channels=("dna", "membrane", "protein"), size=40)
    fields, carried, _ = prepare.read_plates([screen / "plate.zarr"], screen / "plate_map.csv", config)

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    with pytest.raises(Stop):
        prepare.prepare_crops(fields, tmp_path / "resumed", config, carried, progress=stop, chunk_crops=1,
                              montage_crops=0)
    assert _run(*inputs, "--out", tmp_path / "resumed", *BBBC021).exit_code == 2  # not empty: needs --resume
    result = _run(*inputs, "--out", tmp_path / "resumed", "--resume", *BBBC021)
    assert result.exit_code == 0 and "(1 fields done earlier were skipped)" in result.output, result.output
    resumed = read_cells(tmp_path / "resumed")
    pd.testing.assert_frame_equal(resumed.metadata[keep], whole.metadata[keep])
    np.testing.assert_array_equal(resumed.images[np.arange(len(resumed))], whole.images[np.arange(len(whole))])
    # --resume with a plate map whose values changed for a finished well is refused (its crops carry the old).
    changed = pd.read_csv(screen / "plate_map.csv", dtype=str)
    changed.loc[0, "compound"] = "renamed"
    changed.to_csv(tmp_path / "changed.csv", index=False)
    result = _run(screen / "plate.zarr", "--plate-map", tmp_path / "changed.csv", "--out", tmp_path / "resumed",
                  "--resume", *BBBC021)
    assert result.exit_code == 2 and "differs from the one written" in result.output, result.output


def test_plate_maps_join_by_well_spelling_row_column_and_plate(screen, tmp_path):
    """Wells as B3 / B/3 or row + column columns, TSV and Parquet, several plates joined by a plate column;
    identifiers stay text (a zero-padded plate id keeps its zeros), wells the map has but no plate are reported."""
    plate_map = pd.read_csv(screen / "plate_map.csv", dtype=str)
    channels = ("dna", "membrane", "protein")
    spelled = plate_map.assign(well=["A1", "a/2", "B_01", "B2"])
    spelled.to_csv(tmp_path / "spelled.tsv", sep="\t", index=False)
    rows = plate_map.assign(row=[w[0] for w in plate_map["well"]], column=[w[1:] for w in plate_map["well"]])
    rows.drop(columns=["well"]).to_parquet(tmp_path / "rows.parquet")
    tables = [plate_table([screen / "plate.zarr"], tmp_path / name, channels).table
              for name in ("spelled.tsv", "rows.parquet")]
    assert list(tables[0]["well"]) == list(tables[1]["well"]) == ["A01", "A01", "A02", "A02", "B01", "B01", "B02",
                                                                  "B02"]
    assert list(tables[0]["compound"]) == list(tables[1]["compound"])
    assert list(tables[0]["dna_channel"].unique()) == ["DNA"]  # matched ignoring case
    assert tables[0].loc[0, "dna"] == str(screen / "plate.zarr" / "A" / "1" / "0")
    # Two plates (the second renamed), one plate map with a plate column and an extra well on no plate.
    second = tmp_path / "second.zarr"
    shutil.copytree(screen / "plate.zarr", second)
    import zarr

    group = zarr.open_group(second, mode="r+")
    attrs = dict(group.attrs)
    ngff = attrs["ome"] if "ome" in attrs else attrs
    ngff["plate"]["name"] = "0002"
    group.attrs.update(attrs)
    both = pd.concat([plate_map.assign(plate="SYN01"), plate_map.assign(plate="0002", compound="other"),
                      pd.DataFrame([{"plate": "0002", "well": "H12", "compound": "x", "concentration": "1",
                                     "moa": "y"}])])
    both.to_csv(tmp_path / "both.csv", index=False)
    made = plate_table([screen / "plate.zarr", second], tmp_path / "both.csv", channels,
                       plate_channels="protein=2")
    assert made.plates == ["SYN01", "0002"] and made.unmatched == ["0002 H12"]
    table = made.table
    assert len(table) == 16 and table["fov"].is_unique and set(table["plate"]) == {"SYN01", "0002"}
    assert set(table.loc[table["plate"] == "0002", "compound"]) == {"other"}
    assert set(table["protein_channel"]) == {"2"}
    result = _run(screen / "plate.zarr", second, "--plate-map", tmp_path / "both.csv", "--out", tmp_path / "o",
                  *BBBC021, "--shard", "1/16")
    assert result.exit_code == 0, result.output
    assert "plate map: 1 well(s) are on no plate given (not used): 0002 H12" in result.output
    # Without the plate column, two plates with the same wells are joined by well alone.
    made = plate_table([screen / "plate.zarr", second], screen / "plate_map.csv", channels)
    assert len(made.table) == 16 and made.unmatched == []
    with pytest.raises(UserError, match="are all named 'SYN01'"):
        plate_table([screen / "plate.zarr", screen / "plate.zarr"], screen / "plate_map.csv", channels)
