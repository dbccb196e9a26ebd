import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import readers
from statcell_tf.errors import UserError
from tests._support.fake_data import write_manifest, write_opencell


def test_detects_every_format(tmp_path, shared_data):
    opencell_folder = write_opencell(tmp_path / "oc", size=8)
    assert readers.detect_format(opencell_folder) == "opencell"
    manifest = write_manifest(tmp_path / "ac")
    assert readers.detect_format(manifest) == "allencell"
    assert readers.detect_format(manifest.parent) == "allencell"
    bbbc = shared_data("bbbc021-dmso-cycloheximide")
    assert readers.detect_format(bbbc) == readers.detect_format(bbbc / "metadata.csv") == "bbbc021"
    assert readers.detect_format(shared_data("deeploc-yeast-36", "Schuldiner_test_set.hdf5")) == "deeploc"
    # The official BBBC021 image table has Plate/Well/FileName columns but is not crop metadata.
    official = shared_data("bbbc021-metadata", "BBBC021_v1_image.csv")
    with pytest.raises(UserError, match="no supported data found"):
        readers.detect_format(official)


def test_read_cells_passes_options_to_the_reader(tmp_path):
    folder = write_opencell(tmp_path / "oc", size=8, label_format="pickle")
    cells = readers.read_cells(folder, allow_pickle=True, channels=["nucdist"], expected_shape=(8, 8))
    assert cells.channel_names == ("nucdist",) and cells.image_shape == (8, 8, 1)
    manifest = write_manifest(tmp_path / "ac")
    # None means "not given"; an option the format lacks is an error.
    assert len(readers.read_cells(manifest, channels=None, expected_shape=(16, 16))) == 4
    with pytest.raises(UserError, match="is allencell data, which has no option channels"):
        readers.read_cells(manifest, channels=["pro"])


def test_folder_with_only_a_nucleus_channel_is_still_opencell(tmp_path):
    folder = tmp_path / "oc"
    folder.mkdir()
    np.save(folder / "p_nuc.npy", np.zeros((2, 8, 8), np.float32))
    pd.DataFrame({"protein": ["A", "A"]}).to_csv(folder / "p_label.csv", index=False)
    cells = readers.read_cells(folder)
    assert cells.channel_names == ("nuc",)


def test_nothing_recognisable_says_what_was_looked_for(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    pattern = "no supported data found. Expected an OpenCell folder .*Received: 1 entries: x.txt"
    with pytest.raises(UserError, match=pattern):
        readers.read_cells(tmp_path)
