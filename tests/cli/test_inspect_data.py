import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fake_data import write_opencell  # noqa: E402

from statcell_tf.cli import cli  # noqa: E402


def test_inspect_opencell_folder_reports_counts_ranges_and_splits(tmp_path):
    folder = write_opencell(tmp_path / "oc", proteins=("A", "B", "C"), n=4)
    np.save(folder / "ENSG00002_pro.npy", np.zeros((4, 100, 100), np.float32))  # blank images
    result = CliRunner().invoke(cli, ["inspect-data", str(folder)])
    assert result.exit_code == 0, result.output
    assert "opencell format, 12 images of shape (100, 100, 3)" in result.output
    assert "label: 3 classes" in result.output and "  A: 4" in result.output
    assert "split by group (6 groups)" in result.output
    assert "pro: min 0, max" in result.output
    assert "problems:" in result.output


def test_inspect_reports_nan_as_a_user_error(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    array = np.load(folder / "ENSG00000_nuc.npy")
    array[1, 0, 0] = np.nan
    np.save(folder / "ENSG00000_nuc.npy", array)
    result = CliRunner().invoke(cli, ["inspect-data", str(folder)])
    assert result.exit_code == 2
    assert "NaN or infinite" in result.output and "Traceback" not in result.output


def test_inspect_real_bbbc021(shared_data):
    result = CliRunner().invoke(cli, ["inspect-data", str(shared_data("bbbc021-dmso-cycloheximide"))])
    assert result.exit_code == 0, result.output
    assert "2185 images of shape (68, 68, 3)" in result.output
    assert "moa: DMSO 1620, Protein synthesis 565" in result.output
