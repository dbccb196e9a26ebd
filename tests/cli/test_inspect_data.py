import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli
from tests._support.fake_data import write_manifest, write_opencell

ROOT = Path(__file__).resolve().parents[2]


def _inspect(*args):
    result = CliRunner().invoke(cli, ["inspect-data", *map(str, args)])
    return result.exit_code, result.output


def test_opencell_folder_counts_ranges_splits_and_problems(tmp_path):
    folder = write_opencell(tmp_path / "oc", proteins=("A", "B", "C"), n=4, size=16)
    np.save(folder / "ENSG00002_pro.npy", np.zeros((4, 16, 16), np.float32))  # blank protein images
    nuc = np.load(folder / "ENSG00000_nuc.npy")
    nuc[1, 0, 0] = np.nan
    np.save(folder / "ENSG00000_nuc.npy", nuc)
    table = pd.read_csv(folder / "ENSG00001_label.csv")
    table.loc[3:, "protein"] = "RARE"
    table.to_csv(folder / "ENSG00001_label.csv", index=False)
    code, output = _inspect(folder)
    assert code == 0, output
    assert "opencell format, 12 images of shape (16, 16, 3), dtype float32" in output
    assert "channels: pro, nuc, nucdist" in output
    assert "label: 4 classes" in output and "  A: 4" in output and "  RARE: 1" in output
    assert "pro: min 0, max" in output
    assert "split by group (6 groups): train" in output
    assert "1 image(s) with NaN/inf pixels (first: 1)" in output
    assert "constant images (every pixel equal) per channel: pro 4; first: image 8" in output
    assert "1 label class(es) have fewer than 3 images (e.g. RARE)" in output


@pytest.mark.slow
def test_clean_allen_manifest_has_no_problems(tmp_path):
    manifest = write_manifest(tmp_path / "ac", n=6, dims=3)
    code, output = _inspect(manifest, "--group-column", "CellId")
    assert code == 0, output
    assert "allencell format, 6 images of shape (4, 16, 16, 3)" in output
    assert "channels: membrane, dna, structure" in output
    assert "split by CellId (6 groups)" in output
    assert "structure_name: 2 classes: ST0 3, ST1 3" in output
    assert "problems: none found" in output


def test_unreadable_data_is_a_one_line_user_error(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8, label_format="pickle")
    code, output = _inspect(folder)
    assert code == 2 and "--allow-pickle" in output and "Traceback" not in output
    code, output = _inspect(folder, "--allow-pickle")
    assert code == 0, output


@pytest.mark.slow
def test_bin_shim_runs_the_command(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    done = subprocess.run([str(ROOT / "bin" / "inspect-data"), str(folder), "--max-images", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "12 images" in done.stdout and "only the first 5 of 12 images were scanned" in done.stdout


@pytest.mark.slow
def test_real_bbbc021(shared_data):
    code, output = _inspect(shared_data("bbbc021-dmso-cycloheximide"))
    assert code == 0, output
    assert "bbbc021 format, 2185 images of shape (68, 68, 3), dtype uint16" in output
    assert "moa: 2 classes: DMSO 1620, Protein synthesis 565" in output
    assert "label: 2 classes" in output
    assert "split by group (" in output and "NaN" not in output


def test_real_deeploc(shared_data):
    code, output = _inspect(shared_data("deeploc-yeast-36", "Schuldiner_test_set.hdf5"))
    assert code == 0, output
    assert "deeploc format, 36 images of shape (64, 64, 2)" in output
    assert "label: 9 classes" in output and "Bud: 1" in output
    assert "classes have fewer than 3 images" in output or "class(es) have fewer than 3 images" in output


def _bbbc021(folder, moas, cells_per_moa=3, size=8):
    rows = []
    for m, moa in enumerate(moas):
        for c in range(cells_per_moa):
            name = f"m{m}_{c}.npy"
            (folder / "crops").mkdir(parents=True, exist_ok=True)
            np.save(folder / "crops" / name, np.full((size, size, 3), 100 + m, np.uint16))
            rows.append({"file": name, "plate": f"P{m % 2}", "well": f"W{m}", "compound": f"c{m}",
                         "concentration": 1.0, "moa": moa})
    return pd.DataFrame(rows)


def test_every_summary_line_counts_classes_and_says_what_it_cut(tmp_path):
    """13 mechanisms: the moa line gives the count and names how many it left out."""
    folder = tmp_path / "b"
    _bbbc021(folder, [f"mech{k:02d}" for k in range(13)]).to_csv(folder / "metadata.csv", index=False)
    code, output = _inspect(folder)
    assert code == 0, output
    line = next(line for line in output.splitlines() if line.startswith("moa:"))
    assert line.startswith("moa: 13 classes: ") and line.endswith("... and 1 more")


def test_duplicate_rows_are_a_problem(tmp_path):
    folder = tmp_path / "b"
    table = _bbbc021(folder, ["A", "B"])
    pd.concat([table, table.iloc[[0, 1]]]).to_csv(folder / "metadata.csv", index=False)
    code, output = _inspect(folder)
    assert code == 0, output
    assert "problems: none found" not in output
    assert "2 row(s) repeat an earlier file (first: m0_0.npy)" in output


@pytest.mark.slow
def test_identifiers_named_na_are_names_not_gaps(tmp_path):
    """A field of view and a protein literally called NA keep their names (no merged nan
    group, no RuntimeWarning)."""
    folder = write_opencell(tmp_path / "oc", proteins=("NA", "B"), n=4, size=16)
    for label in folder.glob("*_label.csv"):
        table = pd.read_csv(label, keep_default_na=False)
        table["fov"] = ["NA", "NA", "f1", "f2"]
        table.to_csv(label, index=False)
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "statcell_tf.cli", "inspect-data",
                           str(folder), "--group-column", "fov", "--label-column", "protein"],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "protein: 2 classes" in done.stdout and "  NA: 4" in done.stdout
    assert "split by fov (3 groups)" in done.stdout
    assert "Warning" not in done.stderr
