"""Every reader rejects bad input with one line naming the file and the problem."""

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import opencell, readers, validation
from statcell_tf.errors import UserError
from tests._support.fake_data import write_manifest, write_opencell


def _raises(pattern, function, *args, **kwargs) -> str:
    """The UserError message of `function(...)`: one line, matching `pattern`."""
    with pytest.raises(UserError, match=pattern) as raised:
        function(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message, message
    return message


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises(r"--data .*empty is an empty folder; expected OpenCell", readers.read_cells, tmp_path / "empty")


def test_missing_path(tmp_path):
    _raises(r"--data .*nope does not exist", readers.read_cells, tmp_path / "nope")


def test_missing_sibling_channel_file(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    (folder / "ENSG00001_pro.npy").unlink()
    _raises(
        r"ENSG00001_pro.npy is missing: it is the sibling of ENSG00001_nuc.npy.*Received for ENSG00001: nuc, nucdist",
        readers.read_cells, folder,
    )


def test_mismatched_n_between_channel_files(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    np.save(folder / "ENSG00000_nuc.npy", np.zeros((5, 8, 8), np.float32))
    _raises(
        r"ENSG00000_nuc.npy must match ENSG00000_pro.npy \(same N, H, W\). Received: shape \(5, 8, 8\) vs \(6, 8, 8\)",
        opencell.read_opencell, folder,
    )


def test_mismatched_n_between_images_and_labels(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    pd.read_csv(folder / "ENSG00000_label.csv").iloc[:4].to_csv(folder / "ENSG00000_label.csv", index=False)
    _raises(
        r"ENSG00000_label.csv must have one row per image of ENSG00000_\*.npy \(6\). Received: 4 rows",
        opencell.read_opencell, folder,
    )


def test_wrong_image_size(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=64)
    _raises(
        r"ENSG00000_pro.npy: images must be 100x100 pixels. Received: 64x64",
        readers.read_cells, folder, expected_shape=(100, 100),
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_pixels_found_at_read_time(tmp_path, bad):
    folder = write_opencell(tmp_path / "oc", size=8)
    array = np.load(folder / "ENSG00001_nucdist.npy")
    array[3, 1, 1] = bad
    np.save(folder / "ENSG00001_nucdist.npy", array)
    pattern = r"ENSG00001_nucdist.npy: image 3 has NaN or infinite pixels; expected finite values"
    _raises(pattern, readers.read_cells, folder)
    # Channels not read are not checked.
    assert len(readers.read_cells(folder, channels=["pro"])) == 12


def test_nan_in_large_data_is_caught_by_the_pipeline(tmp_path, monkeypatch):
    from statcell_tf.backend import tf
    from statcell_tf.data.pipeline import make_dataset
    from statcell_tf.cli._errors import user_message

    folder = write_opencell(tmp_path / "oc", size=8)
    array = np.load(folder / "ENSG00001_pro.npy")
    array[2, 0, 0] = np.nan
    np.save(folder / "ENSG00001_pro.npy", array)
    monkeypatch.setattr(validation, "FULL_SCAN_BYTES", 0)  # as if the data were > 512 MB
    cells = readers.read_cells(folder)
    with pytest.raises(tf.errors.OpError) as raised:
        list(make_dataset(cells, np.arange(12), 4))
    assert user_message(raised.value).startswith(f"image 8 in {folder} has NaN or infinite pixels")


def test_truncated_npy(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    path = folder / "ENSG00000_pro.npy"
    path.write_bytes(path.read_bytes()[:500])
    _raises(r"ENSG00000_pro.npy is truncated or not a valid .npy file", opencell.read_opencell, folder)
    path.write_bytes(b"")
    _raises(r"ENSG00000_pro.npy is not a .npy file \(no NUMPY header\)", opencell.read_opencell, folder)


def test_object_images_are_refused(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    np.save(folder / "ENSG00000_pro.npy", np.array([[1, "a"]] * 6, dtype=object), allow_pickle=True)
    pattern = r"ENSG00000_pro.npy must hold numeric images. Received: pickled Python objects"
    _raises(pattern, opencell.read_opencell, folder)


def test_pickled_labels_without_allow_pickle(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8, label_format="pickle")
    _raises(r"ENSG00000_label.npy holds pickled objects.*Pass --allow-pickle", readers.read_cells, folder)


def test_labels_without_protein_column(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8)
    labels = folder / "ENSG00000_label.csv"
    pd.read_csv(labels).drop(columns="protein").to_csv(labels, index=False)
    pattern = r"ENSG00000_label.csv must have a protein column .*Received columns: ensg, localization, fov"
    _raises(pattern, readers.read_cells, folder)


def test_unreadable_tiff(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    (tmp_path / "ac" / "cell2.tif").write_bytes(b"not a tiff at all")
    _raises(r"cell2.tif is not a readable TIFF", readers.read_cells, manifest)


def test_manifest_with_missing_columns(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    pd.read_csv(manifest).drop(columns=["structure_name", "path"]).to_csv(manifest, index=False)
    # Without its path column the CSV is no longer recognised as a manifest by read_cells.
    from statcell_tf.data.allencell import read_allencell

    _raises(r"manifest.csv is missing column\(s\) structure_name, path", read_allencell, manifest)


def test_manifest_file_missing(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    (tmp_path / "ac" / "cell1.tif").unlink()
    _raises(r"1 file\(s\) in .*manifest.csv do not exist \(first: .*cell1.tif\)", readers.read_cells, manifest)


def test_bbbc021_missing_crop(tmp_path):
    folder = tmp_path / "b"
    (folder / "crops").mkdir(parents=True)
    np.save(folder / "crops" / "x_0.npy", np.zeros((68, 68, 3), np.uint16))
    pd.DataFrame(
        {"file": ["x_0.npy", "y_1.npy"], "plate": ["p", "p"], "well": ["A01", "A02"], "compound": ["DMSO"] * 2}
    ).to_csv(folder / "metadata.csv", index=False)
    pattern = r"1 crop\(s\) listed in .*metadata.csv are not under .*crops \(first: y_1.npy\)"
    _raises(pattern, readers.read_cells, folder)


def test_unknown_format(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    _raises("no supported data found", readers.read_cells, tmp_path)
