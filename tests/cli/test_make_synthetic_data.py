import numpy as np
import pandas as pd
import tifffile
from click.testing import CliRunner

from statcell_tf.cli import cli


def _run(*args):
    return CliRunner().invoke(cli, ["make-synthetic-data", *[str(a) for a in args]])


def test_opencell_files_summary_and_refusal(tmp_path):
    out = tmp_path / "oc"
    args = ("--out", out, "--format", "opencell", "--families", 3, "--proteins-per-family", 2, "--cells", 4, "--size", 32)
    result = _run(*args, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert "Wrote 24 OpenCell-format cells" in result.output
    assert len(list(out.glob("*_pro.npy"))) == 6 and len(list(out.glob("*_label.csv"))) == 6
    first = sorted(out.glob("*_pro.npy"))[0]
    assert np.load(first).shape == (4, 32, 32)
    before = np.load(first)
    # A non-empty --out is refused without --overwrite (exit 2, one-line error), replaced with it.
    result = _run(*args)
    assert result.exit_code == 2 and "--overwrite" in result.output and "Traceback" not in result.output
    result = _run(*args, "--seed", 6, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.load(first), before)


def test_allencell_3d_and_flag_conflicts(tmp_path):
    out = tmp_path / "ac"
    result = _run("--out", out, "--format", "allencell", "--families", 2, "--cells", 3, "--dims", 3, "--size", 24,
                  "--mitotic-fraction", 0.5)
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 6
    with tifffile.TiffFile(out / manifest["path"][0]) as tif:
        assert tif.series[0].axes == "CZYX" and tif.series[0].shape == (3, 8, 24, 24)
    result = _run("--out", tmp_path / "x", "--format", "opencell", "--dims", 3)
    assert result.exit_code == 2 and "--dims applies to --format allencell only" in result.output
    result = _run("--out", tmp_path / "y", "--format", "allencell", "--proteins-per-family", 1000, "--cells", 100)
    assert result.exit_code == 2 and "--proteins-per-family x --cells must be below 100000" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_allencell_proteins_per_family(tmp_path):
    out = tmp_path / "ac"
    result = _run("--out", out, "--format", "allencell", "--families", 2, "--proteins-per-family", 2, "--cells", 3,
                  "--size", 16, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "Wrote 12 Allen-Cell-format 2D cells (2 structures x 2 proteins x 3" in result.output
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 12 and manifest.groupby("structure_name")["protein"].nunique().tolist() == [2, 2]


def test_allencell_treatment_and_opencell_refusal(tmp_path):
    from statcell_tf.cli import make_synthetic_data
    from statcell_tf.data import synthetic

    assert make_synthetic_data.TREATMENTS == synthetic.TREATMENTS
    out = tmp_path / "treated"
    result = _run("--out", out, "--format", "allencell", "--families", 2, "--cells", 3, "--size", 16, "--seed", 1,
                  "--treatment", "rounding")
    assert result.exit_code == 0, result.output
    assert "mitotic fraction 0.15, treatment rounding) to" in result.output
    manifest = pd.read_csv(out / "manifest.csv")
    assert (manifest["treatment"] == "rounding").all() and manifest["CellId"].str.startswith("rounding-").all()
    result = _run("--out", tmp_path / "none", "--format", "allencell", "--families", 2, "--cells", 3, "--size", 16,
                  "--treatment", "none")
    assert result.exit_code == 0 and "treatment" not in pd.read_csv(tmp_path / "none" / "manifest.csv").columns
    result = _run("--out", tmp_path / "oc", "--format", "opencell", "--treatment", "rounding")
    assert result.exit_code == 2 and "--treatment applies to --format allencell only" in result.output
    assert not (tmp_path / "oc").exists()


def test_bbbc021_crops_read_back_and_flag_refusals(tmp_path):
    from statcell_tf.data.readers import read_cells

    out = tmp_path / "b"
    result = _run("--out", out, "--format", "bbbc021", "--cells", 2, "--size", 32, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "Wrote 8 BBBC021-format crops (4 wells x 2, 32x32, channels dna, actin, tubulin)" in result.output
    cells = read_cells(out)
    assert len(cells) == 8 and cells.channel_names == ("dna", "actin", "tubulin")
    assert np.load(out / "crops" / "DMSO" / cells.metadata["file"][0]).shape == (32, 32, 3)
    for flag, value in (("--families", 3), ("--proteins-per-family", 2)):
        result = _run("--out", tmp_path / "x", "--format", "bbbc021", flag, value)
        assert result.exit_code == 2 and f"{flag} does not apply to --format bbbc021. Received: {flag} {value}" in result.output
    result = _run("--out", tmp_path / "x", "--format", "bbbc021", "--treatment", "rounding")
    assert result.exit_code == 2 and "--treatment applies to --format allencell only" in result.output
    assert not (tmp_path / "x").exists()


def test_plate_holds_the_fields_of_the_tiffs(tmp_path):
    """--format plate: plate.zarr (NGFF 0.5, zarr v3) holds the very pixels of the OME-TIFF fields, 3D too."""
    from statcell_tf.data import fields
    from statcell_tf.data.hcs import is_plate, plate_table

    out = tmp_path / "plate"
    result = _run("--out", out, "--format", "plate", "--ngff", "0.5", "--families", 3, "--fields", 2, "--cells", 2,
                  "--size", 64, "--cell-size", 32, "--dims", 3)
    assert result.exit_code == 0, result.output
    assert "plate.zarr (NGFF 0.5, 3 wells x 2 fields), plate_map.csv" in result.output
    assert is_plate(out / "plate.zarr") and not is_plate(out / "fields")
    plate_map = pd.read_csv(out / "plate_map.csv")
    assert list(plate_map["well"]) == ["A01", "A02", "B01"] and list(plate_map["concentration"]) == [0.1, 0.2, 0.3]
    table = plate_table([out / "plate.zarr"], out / "plate_map.csv", ("dna", "membrane")).table
    tiffs = pd.read_csv(out / "fovs_allencell.csv")
    assert len(table) == len(tiffs) == 6
    for (_, row), tiff in zip(table.iterrows(), tiffs["dna"]):
        header = fields.read_header(row["dna"])
        assert header.axes == "CZYX" and header.shape == (3, 8, 64, 64)
        dna = fields.read_channel(header, fields.channel_index(header, row["dna_channel"]))
        np.testing.assert_array_equal(dna, tifffile.imread(out / tiff))
    truth = pd.read_csv(out / "cells.csv")
    assert {"well", "site"} <= set(truth.columns) and set(truth["well"]) == {"A01", "A02", "B01"}
    result = _run("--out", tmp_path / "x", "--format", "fov", "--ngff", "0.4")
    assert result.exit_code == 2 and "--ngff applies to --format plate only" in result.output
    assert not (tmp_path / "x").exists()
