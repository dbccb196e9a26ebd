"""Every reader rejects bad input with one line naming the file and the problem."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_data import write_manifest, write_opencell  # noqa: E402

from statcell_tf.data import opencell, readers  # noqa: E402
from statcell_tf.errors import UserError  # noqa: E402


def _one_line(error):
    assert "\n" not in str(error.value), str(error.value)
    return str(error.value)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty folder") as e:
        readers.read_cells(tmp_path / "empty")
    _one_line(e)


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        readers.read_cells(tmp_path / "nope")


def test_missing_sibling_channel_file(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    (folder / "ENSG00001_nucdist.npy").unlink()
    with pytest.raises(UserError, match="ENSG00001_nucdist.npy is missing") as e:
        opencell.read_opencell(folder)
    _one_line(e)


def test_mismatched_n_between_channel_files(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    np.save(folder / "ENSG00000_nuc.npy", np.zeros((5, 100, 100), np.float32))
    with pytest.raises(UserError, match=r"ENSG00000_nuc.npy has shape \(5, 100, 100\)"):
        opencell.read_opencell(folder)


def test_mismatched_n_between_images_and_labels(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    table = pd.read_csv(folder / "ENSG00000_label.csv")
    table.iloc[:4].to_csv(folder / "ENSG00000_label.csv", index=False)
    with pytest.raises(UserError, match="ENSG00000_label.csv has 4 rows but .* hold 6 images"):
        opencell.read_opencell(folder)


def test_wrong_image_size(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=64)
    with pytest.raises(UserError, match="are 64x64, expected 100x100"):
        opencell.read_opencell(folder, expected_shape=(100, 100))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_pixels(tmp_path, bad):
    folder = write_opencell(tmp_path / "oc")
    array = np.load(folder / "ENSG00001_pro.npy")
    array[3, 10, 10] = bad
    np.save(folder / "ENSG00001_pro.npy", array)
    with pytest.raises(UserError, match=r"image 9 .*prefix=ENSG00001.* NaN or infinite") as e:
        opencell.read_opencell(folder)
    _one_line(e)


def test_truncated_npy(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    path = folder / "ENSG00000_pro.npy"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="ENSG00000_pro.npy is truncated or not a valid .npy") as e:
        opencell.read_opencell(folder)
    _one_line(e)


def test_pickled_labels_without_allow_pickle(tmp_path):
    folder = write_opencell(tmp_path / "oc", label_format="pickle")
    with pytest.raises(UserError, match="--allow-pickle"):
        readers.read_cells(folder)


def test_unreadable_tiff(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    (tmp_path / "ac" / "cell0.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(UserError, match="cell0.tif is not a readable TIFF") as e:
        readers.read_cells(manifest)
    _one_line(e)


def test_manifest_with_missing_columns(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    pd.read_csv(manifest).drop(columns=["structure_name"]).to_csv(manifest, index=False)
    with pytest.raises(UserError, match="manifest.csv is missing column\\(s\\) structure_name"):
        readers.read_cells(manifest)


def test_manifest_file_missing_and_mixed_shapes(tmp_path):
    import tifffile

    manifest = write_manifest(tmp_path / "ac")
    tifffile.imwrite(tmp_path / "ac" / "cell3.tif", np.zeros((3, 20, 20), np.float32), metadata={"axes": "CYX"})
    cells = readers.read_cells(manifest)
    with pytest.raises(UserError, match=r"cell3.tif is \(20, 20\) but cells must all be \(16, 16\)"):
        cells.images[[3]]
    (tmp_path / "ac" / "cell1.tif").unlink()
    with pytest.raises(UserError, match="1 file\\(s\\) in .*manifest.csv do not exist"):
        readers.read_cells(manifest)


def test_bbbc021_missing_crop(tmp_path):
    folder = tmp_path / "b"
    (folder / "crops").mkdir(parents=True)
    np.save(folder / "crops" / "x_0.npy", np.zeros((68, 68, 3), np.uint16))
    pd.DataFrame(
        {"file": ["x_0.npy", "y_1.npy"], "plate": ["p", "p"], "well": ["A01", "A02"], "compound": ["DMSO"] * 2}
    ).to_csv(folder / "metadata.csv", index=False)
    with pytest.raises(UserError, match="1 crop\\(s\\) listed in .*metadata.csv are not under .*first: y_1.npy"):
        readers.read_cells(folder)


def test_unknown_format(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UserError, match="no supported data found"):
        readers.read_cells(tmp_path)
