"""prepare-crops end to end: outputs read by inspect-data, bad input refused before writing, real fields."""

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from statcell_tf.data.synthetic import write_fovs

EXAMPLE_HUMAN = ("cellprofiler-examplehuman", "images")


@pytest.fixture(scope="module")
def fovs(tmp_path_factory):
    return write_fovs(tmp_path_factory.mktemp("fovs") / "fovs", n_families=2, fields_per_protein=2,
                      cells_per_field=5, size=(192, 192), cell_size=56, seed=4)


def _run(*args):
    return CliRunner().invoke(cli, ["prepare-crops", *[str(a) for a in args]])


def _error_line(result) -> str:
    """The one `Error: ...` line of a refused run (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.slow
def test_make_synthetic_fov_and_prepare_every_layout(tmp_path):
    data = tmp_path / "fovs"
    result = CliRunner().invoke(cli, ["make-synthetic-data", "--out", str(data), "--format", "fov", "--families", "2",
                                      "--fields", "1", "--cells", "4", "--size", "160", "--cell-size", "56"])
    assert result.exit_code == 0, result.output
    assert "Wrote 2 synthetic 2D fields of view" in result.output
    truth = pd.read_csv(data / "cells.csv")
    assert set(truth["family"]) == {"nucleoplasm", "nucleolus"} and len(truth) == 8
    cases = [
        ("opencell", ["--size", "48", "--downsample", "1"], "opencell format, 8 images of shape (48, 48, 3)"),
        ("bbbc021", ["--channels", "dna,membrane,protein", "--size", "40"], "bbbc021 format, 8 images of shape (40, 40, 3)"),
        ("allencell", ["--size", "80"], "allencell format, 8 images of shape (80, 80, 3)"),
    ]
    for layout, options, described in cases:
        out = tmp_path / layout
        result = _run(data / f"fovs_{layout}.csv", "--layout", layout, "--out", out, "--montage-crops", "2", *options)
        assert result.exit_code == 0, result.output
        assert f"Wrote 8 {layout} crops from 2 fields of view" in result.output
        assert (out / "summary.csv").is_file() and len(list((out / "montage").glob("*.png"))) == 2
        inspected = CliRunner().invoke(cli, ["inspect-data", str(out)])
        assert inspected.exit_code == 0 and described in inspected.output, inspected.output
    # Running again into the same folder needs --resume, which then finds nothing left to do.
    result = _run(data / "fovs_opencell.csv", "--layout", "opencell", "--out", tmp_path / "opencell", "--size", "48",
                  "--downsample", "1")
    assert "is not empty; pass --resume" in _error_line(result)
    result = _run(data / "fovs_opencell.csv", "--layout", "opencell", "--out", tmp_path / "opencell", "--size", "48",
                  "--downsample", "1", "--resume")
    assert result.exit_code == 0 and "Wrote 0 opencell crops from 0 fields of view (2 fields done earlier" in result.output


def _table(fovs, tmp_path, name="fovs.csv", **changes):
    """fovs_opencell.csv with absolute paths, `changes` applied to row 0; returns its path."""
    table = pd.read_csv(fovs / "fovs_opencell.csv")
    for column in ("pro", "nuc"):
        table[column] = [str(fovs / p) for p in table[column]]
    for column, value in changes.items():
        table.loc[0, column] = value
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


def test_bad_input_is_refused_before_anything_is_written(fovs, tmp_path):
    out = tmp_path / "out"
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((100, 192), np.uint16))
    stack = tmp_path / "stack.ome.tif"
    tifffile.imwrite(stack, np.zeros((4, 192, 192), np.uint16), ome=True, metadata={"axes": "ZYX"})
    cases = [
        ({"nuc": str(tmp_path / "gone.tif")}, [], r"row 1: column nuc names .*gone.tif, which does not exist"),
        ({"nuc": str(broken)}, [], r"broken.tif is not a readable TIFF"),
        ({"nuc": str(small)}, [], r"row 1: channel nuc \(.*small.tif\) must have the shape of channel pro "
                                  r"192x192 \(2D\). Received: 100x192 \(2D\)"),
        ({"nuc": str(stack), "pro": str(stack)}, ["--projection", "none"],
         r"row 1: channel pro \(.*stack.ome.tif\) is a z-stack, but --layout opencell needs 2D fields; pass "
         r"--projection max"),
        ({"nuc": ""}, [], r"row 1: column nuc must name an image file. Received: an empty value"),
        ({}, ["--size", "120"], r"a --size 120 crop does not fit in the field \(192x192 pixels, 96x96 after "
                                r"--downsample 2\)"),
        ({}, ["--qc", "area>3"], r"--qc measures are nucleus_area, .*Received: --qc 'area>3'"),
        ({}, ["--channels", "a,b"], r"--channels applies to --layout bbbc021 only"),
        ({}, ["--nucleus-channel", "dapi"], r"--nucleus-channel must be one of the channels \(pro, nuc\)"),
    ]
    for i, (changes, options, expected) in enumerate(cases):
        csv = _table(fovs, tmp_path, f"fovs{i}.csv", **changes)
        line = _error_line(_run(csv, "--layout", "opencell", "--out", out, *options))
        assert re.search(expected, line), (expected, line)
        assert not out.exists(), line
    # Metadata the layout's reader needs, and the channel columns.
    table = pd.read_csv(_table(fovs, tmp_path)).drop(columns=["protein"])
    table.to_csv(tmp_path / "noprotein.csv", index=False)
    line = _error_line(_run(tmp_path / "noprotein.csv", "--layout", "opencell", "--out", out))
    assert "needs the column(s) protein for --layout opencell" in line
    line = _error_line(_run(_table(fovs, tmp_path), "--layout", "bbbc021", "--channels", "dna,actin", "--out", out))
    assert "must have a column of image paths per channel of --layout bbbc021 (dna, actin); missing: dna, actin" in line
    line = _error_line(_run(_table(fovs, tmp_path), "--layout", "bbbc021", "--out", out))
    assert "--layout bbbc021 needs --channels" in line
    assert not out.exists()


def test_bad_out_folders(fovs, tmp_path):
    csv = _table(fovs, tmp_path)  # (the paper's --size 100 after ×2 needs larger fields: smaller settings)

    def _run(*args):
        return CliRunner().invoke(cli, ["prepare-crops", *[str(a) for a in args], "--downsample", "1", "--size", "40"])

    line = _error_line(_run(csv, "--layout", "opencell", "--out", fovs / "fields"))
    assert "overlaps the input" in line and "fov0000_protein.ome.tif" in line
    line = _error_line(_run(csv, "--layout", "opencell", "--out", tmp_path))  # the folder of FOVS.csv
    assert "overlaps the input" in line
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _error_line(_run(csv, "--layout", "opencell", "--out", tmp_path / "afile"))
    assert "afile is a file, not a folder" in _error_line(_run(csv, "--layout", "opencell", "--out", tmp_path / "afile" / "sub"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert "is not empty" in _error_line(_run(csv, "--layout", "opencell", "--out", tmp_path / "full"))
    line = _error_line(_run(csv, "--layout", "opencell", "--out", tmp_path / "full", "--resume"))
    assert "holds no prepare.json, so no prepare-crops run to resume" in line


def test_damaged_pixels_stop_the_run_and_keep_finished_fields(fovs, tmp_path):
    """A header that reads but pixels that do not: one-line error, finished fields kept for --resume."""
    table = pd.read_csv(_table(fovs, tmp_path))
    good = table.loc[2, "nuc"]
    damaged = tmp_path / "damaged.tif"
    damaged.write_bytes(Path(good).read_bytes())
    os.truncate(damaged, damaged.stat().st_size // 2)
    table.loc[2, "nuc"] = str(damaged)
    table.to_csv(tmp_path / "damaged.csv", index=False)
    args = ["--layout", "opencell", "--out", tmp_path / "out", "--downsample", "1", "--size", "40", "--montage-crops", "0"]
    line = _error_line(_run(tmp_path / "damaged.csv", *args))
    assert "damaged.tif: pixels cannot be read" in line and "the 2 field(s) finished before it are kept" in line
    table.loc[2, "nuc"] = good
    table.to_csv(tmp_path / "damaged.csv", index=False)
    result = _run(tmp_path / "damaged.csv", *args, "--resume")
    assert result.exit_code == 0 and "from 2 fields of view (2 fields done earlier were skipped)" in result.output


def test_empty_field_is_reported_not_an_error(fovs, tmp_path):
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.full((192, 192), 500, np.uint16))
    csv = _table(fovs, tmp_path, pro=str(blank), nuc=str(blank))
    result = _run(csv, "--layout", "opencell", "--out", tmp_path / "out", "--downsample", "1", "--size", "40",
                  "--montage-crops", "0")
    assert result.exit_code == 0, result.output
    assert "1 field(s) had no cells (status 'no cells found' in summary.csv): fov0000" in result.output
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.loc[0, "status"] == "no cells found" and summary.loc[0, "nuclei"] == 0


@pytest.mark.slow
def test_opencell_output_trains_cytoself(tmp_path):
    """Synthetic fields → prepare-crops --layout opencell → train-cytoself --preset demo, one epoch."""
    data = write_fovs(tmp_path / "fovs", n_families=2, proteins_per_family=2, fields_per_protein=3,
                      cells_per_field=4, size=(320, 320), cell_size=100, margin=50, seed=0)
    out = tmp_path / "crops"
    assert run_command("prepare-crops", [str(data / "fovs_opencell.csv"), "--layout", "opencell", "--out", str(out),
                                         "--downsample", "1", "--min-distance", "8", "--montage-crops", "0"]) == 0
    labels = pd.concat(pd.read_csv(p) for p in out.glob("*_label.csv"))
    assert len(labels) >= 40 and labels["protein"].nunique() == 4
    run = tmp_path / "run"
    code = run_command("train-cytoself", ["--data", str(out), "--preset", "demo", "--epochs", "1",
                                          "--batch-size", "16", "--out", str(run)])
    assert code == 0
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 1 and np.isfinite(history["loss"]).all()


def _example_human(shared_data, tmp_path):
    images = shared_data(*EXAMPLE_HUMAN)
    stem = "AS_09125_050116030001_D03f00d"
    row = {"dna": images / f"{stem}0.tif", "cell_body": images / f"{stem}2.tif", "fov": "D03f00",
           "plate": "AS_09125_050116030001", "well": "D03", "site": 0, "compound": "none", "protein": "cell_body"}
    return row


@pytest.mark.slow
def test_example_human_opencell_and_bbbc021(shared_data, tmp_path):
    """The CellProfiler ExampleHuman field (HT29, 512×512; ~300 nuclei) in both 2D layouts.

    Counts: segment_nuclei finds ~300 nuclei (test_preprocess counted 87 by eye in one quadrant);
    a crop centred on a nucleus fits when the centroid lies size/2 from every edge, (412/512)² =
    65 % of the field for 100-px crops and (444/512)² = 75 % for 68-px crops. Checked by eye on
    the montages: every crop has a nucleus in its centre.
    """
    row = _example_human(shared_data, tmp_path)
    pd.DataFrame([{**row, "pro": row["cell_body"], "nuc": row["dna"]}]).drop(columns=["dna", "cell_body"]).to_csv(
        tmp_path / "opencell.csv", index=False)
    pd.DataFrame([row]).to_csv(tmp_path / "bbbc021.csv", index=False)
    counts = {}
    for layout, options in (("opencell", ["--downsample", "1"]), ("bbbc021", ["--channels", "dna,cell_body"])):
        out = tmp_path / layout
        result = _run(tmp_path / f"{layout}.csv", "--layout", layout, "--out", out, "--montage-crops", "4", *options)
        assert result.exit_code == 0, result.output
        inspected = CliRunner().invoke(cli, ["inspect-data", str(out)])
        assert inspected.exit_code == 0, inspected.output
        summary = pd.read_csv(out / "summary.csv")
        counts[layout] = int(summary.loc[0, "crops"])
        assert 220 <= summary.loc[0, "nuclei"] <= 400
    assert 150 <= counts["opencell"] <= 240, counts  # ~65 % of ~300 nuclei
    assert 180 <= counts["bbbc021"] <= 290, counts  # ~75 %
    assert counts["bbbc021"] > counts["opencell"]  # smaller crops lose fewer border nuclei
    distance = np.concatenate([np.load(p) for p in (tmp_path / "opencell").glob("*_nucdist.npy")])
    assert distance.min() == -1 and distance.max() == 1 and (distance[:, 50, 50] > 0).mean() > 0.95
    crops = np.stack([np.load(p) for p in sorted((tmp_path / "bbbc021" / "crops").rglob("*.npy"))[:20]])
    assert crops.shape[1:] == (68, 68, 2) and crops.dtype == np.uint8  # raw 8-bit intensities kept


def test_shards_read_together_equal_one_run(fovs, tmp_path):
    from statcell_tf.data.readers import read_cells

    csv = fovs / "fovs_opencell.csv"
    common = ["--layout", "opencell", "--size", "48", "--downsample", "1", "--montage-crops", "0"]
    assert _run(csv, "--out", tmp_path / "whole", *common).exit_code == 0
    for k in (3, 1, 2):  # 4 fields in 3 shards (1, 1, 2 fields), any order
        result = _run(csv, "--out", tmp_path / "parts", "--shard", f"{k}/3", *common)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [f"part-0000{k}-of-00003" for k in (1, 2, 3)]
    assert len(pd.read_csv(tmp_path / "parts" / "part-00003-of-00003" / "summary.csv")) == 2
    whole, parts = read_cells(tmp_path / "whole"), read_cells(tmp_path / "parts")
    keep = [c for c in whole.metadata.columns if c != "prefix"]  # file prefixes name each part's chunks
    pd.testing.assert_frame_equal(parts.metadata[keep], whole.metadata[keep])
    np.testing.assert_array_equal(parts.images[np.arange(len(parts))], whole.images[np.arange(len(whole))])
    assert parts.channel_names == whole.channel_names
    inspected = CliRunner().invoke(cli, ["inspect-data", str(tmp_path / "parts")])
    assert inspected.exit_code == 0 and f"opencell format, {len(whole)} images" in inspected.output, inspected.output
    # A part whose run has not finished (no summary.csv yet) is refused in one line.
    (tmp_path / "parts" / "part-00002-of-00003" / "summary.csv").unlink()
    from statcell_tf.errors import UserError

    with pytest.raises(UserError, match=r"part\(s\) 2 of 3 are unfinished"):
        read_cells(tmp_path / "parts")
    assert "part(s) 2 of 3 are unfinished" in _error_line(CliRunner().invoke(cli, ["inspect-data", str(tmp_path / "parts")]))
