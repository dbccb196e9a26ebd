import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import opencell
from statcell_tf.errors import UserError
from tests._support.fake_data import write_opencell


def test_folder_streams_stacked_channels_from_memory_maps(tmp_path):
    folder = write_opencell(tmp_path / "oc")
    cells = opencell.read_opencell(folder, channels=["pro", "nucdist"])
    assert len(cells) == 12 and cells.image_shape == (100, 100, 2)
    assert cells.channel_names == ("pro", "nucdist")
    assert sorted(cells.metadata["label"].unique()) == ["A", "B"]
    assert cells.metadata["group"].iloc[0] == "A_fov0"
    assert list(cells.metadata["prefix"].unique()) == ["ENSG00000", "ENSG00001"]
    pro, nucdist = np.load(folder / "ENSG00001_pro.npy"), np.load(folder / "ENSG00001_nucdist.npy")
    np.testing.assert_array_equal(cells.images[[7, 6]][..., 1], nucdist[[1, 0]])
    np.testing.assert_array_equal(cells.images[11][..., 0], pro[5])
    # Every channel file stays a memory map: nothing is loaded until a batch is gathered.
    assert all(isinstance(a, np.memmap) for part in cells.images.parts for a in part)
    everything = opencell.read_opencell(folder)
    assert everything.channel_names == ("pro", "nuc", "nucdist")


def test_data_larger_than_memory_reads_the_same_pixels(tmp_path):
    """The large-data path (read-ahead of every run of rows, then unmapping what was read)
    gathers the same images as the plain one, runs of rows and single rows, across files."""
    folder = write_opencell(tmp_path / "oc")
    plain = opencell.read_opencell(folder, channels=["pro", "nucdist"]).images
    large = opencell.read_opencell(folder, channels=["pro", "nucdist"]).images
    large.release_pages = True  # as `is_large` sets it for data over a quarter of the memory
    for rows in ([0, 1, 2, 3, 7, 8, 11], [5], [6, 7, 8, 9, 10, 11], [0, 11]):
        rows = np.array(rows)
        np.testing.assert_array_equal(large._take(rows), plain._take(rows))
        np.testing.assert_array_equal(large.take_planar(rows), plain.take_planar(rows))


def test_read_ahead_ranges_are_page_aligned_runs_of_rows():
    """Rows 1-2 and 5 of 40,000-byte rows starting at byte 128: two ranges, each from the page
    boundary at or before its first row (40,128 -> 36,864; 200,128 -> 196,608) to the end of
    its last row; a range is cut at the end of the mapping."""
    ranges = opencell.row_ranges(np.array([1, 2, 5]), 128, 40_000, 4096, 10**6)
    assert ranges == [(36_864, 120_128 - 36_864), (196_608, 240_128 - 196_608)]
    assert opencell.row_ranges(np.array([7]), 128, 40_000, 4096, 300_000) == [(278_528, 300_000 - 278_528)]


def test_label_columns_spelled_differently_and_extra_columns_kept(tmp_path):
    folder = write_opencell(tmp_path / "oc", proteins=("A",), n=3)
    pd.DataFrame(
        {"Ensembl ID": ["E1"] * 3, "Protein Name": ["ACTB"] * 3, "Localization": ["cytoskeleton"] * 3,
         "family": ["f1"] * 3}
    ).to_csv(folder / "ENSG00000_label.csv", index=False)
    cells = opencell.read_opencell(folder)
    assert {"ensg", "protein", "localization", "family"} <= set(cells.metadata.columns)
    assert list(cells.metadata["label"]) == ["ACTB"] * 3
    assert cells.metadata["family"].iloc[0] == "f1"  # an explicit family is not overwritten
    assert cells.metadata["group"].iloc[0] == "ENSG00000"  # no fov: the file prefix groups


def test_string_label_npy_needs_no_pickle(tmp_path):
    write_opencell(tmp_path / "oc", label_format="npy")
    cells = opencell.read_opencell(tmp_path / "oc")
    assert list(cells.metadata.columns[:4]) == ["ensg", "protein", "localization", "fov"]
    assert cells.metadata["fov"].iloc[2] == "A_fov1"


def test_pickled_labels_need_allow_pickle(tmp_path):
    write_opencell(tmp_path / "oc", label_format="pickle")
    with pytest.raises(UserError, match="ENSG00000_label.npy holds pickled objects.*--allow-pickle"):
        opencell.read_opencell(tmp_path / "oc")
    cells = opencell.read_opencell(tmp_path / "oc", allow_pickle=True)
    assert len(cells) == 12 and cells.metadata["protein"].iloc[-1] == "B"


def test_integer_channel_files_and_uint8_dtypes(tmp_path):
    folder = tmp_path / "oc"
    folder.mkdir()
    np.save(folder / "x_pro.npy", np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4))
    np.save(folder / "x_nucdist.npy", np.ones((2, 4, 4), np.uint8))
    pd.DataFrame({"ensg": ["E", "E"], "protein": ["P", "P"], "localization": ["er", "er"]}).to_csv(
        folder / "x_label.csv", index=False
    )
    cells = opencell.read_opencell(folder)
    assert cells.images.dtype == np.uint16 and cells.images[1][3, 3, 0] == 31


def test_release_shards_with_release_label_columns(tmp_path):
    rng = np.random.default_rng(0)
    for key, n in (("00", 3), ("01", 2)):
        np.save(tmp_path / f"Image_data{key}.npy", rng.random((n, 100, 100, 4), dtype=np.float32))
        pd.DataFrame(
            {"ensg": ["E"] * n, "name": ["P" + key] * n, "loc_grade1": ["er"] * n, "FOV_id": [key] * n}
        ).to_csv(tmp_path / f"Label_data{key}.csv", index=False)
    cells = opencell.read_opencell(tmp_path, channels=["pro", "nucdist"])
    assert len(cells) == 5 and cells.image_shape == (100, 100, 2)
    assert list(cells.metadata["protein"]) == ["P00"] * 3 + ["P01"] * 2
    assert list(cells.metadata["group"]) == ["00"] * 3 + ["01"] * 2
    raw = np.load(tmp_path / "Image_data01.npy")
    np.testing.assert_array_equal(cells.images[4], raw[1][..., [0, 2]])
    full = opencell.read_opencell(tmp_path)
    assert full.channel_names == ("pro", "nuc", "nucdist", "nucseg")
