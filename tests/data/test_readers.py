import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_data import write_manifest, write_opencell  # noqa: E402

from statcell_tf.data import allencell, opencell, readers  # noqa: E402
from statcell_tf.errors import UserError  # noqa: E402


def test_opencell_folder_streams_stacked_channels(tmp_path):
    write_opencell(tmp_path / "oc")
    cells = opencell.read_opencell(tmp_path / "oc", channels=["pro", "nucdist"])
    assert len(cells) == 12 and cells.image_shape == (100, 100, 2)
    assert cells.channel_names == ("pro", "nucdist")
    assert sorted(cells.metadata["label"].unique()) == ["A", "B"]
    assert cells.metadata["group"].iloc[0] == "A_fov0"
    raw = np.load(tmp_path / "oc" / "ENSG00001_nucdist.npy")
    np.testing.assert_array_equal(cells.images[[7, 6]][..., 1], raw[[1, 0]])
    assert isinstance(np.load(tmp_path / "oc" / "ENSG00000_pro.npy", mmap_mode="r"), np.memmap)


def test_opencell_string_label_npy_needs_no_pickle(tmp_path):
    write_opencell(tmp_path / "oc", label_format="npy")
    cells = readers.read_cells(tmp_path / "oc")
    assert list(cells.metadata.columns[:4]) == ["ensg", "protein", "localization", "fov"]


def test_pickled_labels_need_allow_pickle(tmp_path):
    write_opencell(tmp_path / "oc", label_format="pickle")
    with pytest.raises(UserError, match="ENSG00000_label.npy holds pickled objects.*--allow-pickle"):
        opencell.read_opencell(tmp_path / "oc")
    assert len(opencell.read_opencell(tmp_path / "oc", allow_pickle=True)) == 12


def test_release_shards(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    for key, n in (("00", 3), ("01", 2)):
        np.save(tmp_path / f"Image_data{key}.npy", rng.random((n, 100, 100, 4), dtype=np.float32))
        pd.DataFrame({"ensg": ["E"] * n, "name": ["P" + key] * n, "loc_grade1": ["er"] * n}).to_csv(
            tmp_path / f"Label_data{key}.csv", index=False
        )
    cells = readers.read_cells(tmp_path, channels=["pro", "nucdist"])
    assert len(cells) == 5 and cells.image_shape == (100, 100, 2)
    assert list(cells.metadata["protein"]) == ["P00"] * 3 + ["P01"] * 2


@pytest.mark.parametrize("dims", [2, 3])
def test_allencell_manifest(tmp_path, dims):
    manifest = write_manifest(tmp_path / "ac", dims=dims)
    cells = readers.read_cells(manifest)
    assert cells.channel_names == ("membrane", "dna", "structure")
    assert cells.image_shape == ((16, 16, 3) if dims == 2 else (4, 16, 16, 3))
    import tifffile

    raw = tifffile.imread(tmp_path / "ac" / "cell2.tif")
    np.testing.assert_allclose(cells.images[2][..., 1], raw[1])
    swapped = allencell.read_allencell(manifest, membrane=2, structure=0)
    np.testing.assert_allclose(swapped.images[2][..., 0], raw[2])


def test_bbbc021_real_crops_load_with_metadata(shared_data):
    from statcell_tf.data import bbbc021

    folder = shared_data("bbbc021-dmso-cycloheximide")
    cells = readers.read_cells(folder)
    assert len(cells) == 2185 and cells.image_shape == (68, 68, 3)
    assert cells.channel_names == ("dna", "actin", "tubulin")
    assert set(cells.metadata["moa"]) == {"DMSO", "Protein synthesis"}
    batch = cells.images[[0, 2000]]
    assert batch.dtype == np.uint16 and 300 < batch.min() and batch.max() < 65535
    official = shared_data("bbbc021-metadata")
    joined = bbbc021.join_official(
        cells.metadata, official / "BBBC021_v1_image.csv", official / "BBBC021_v1_moa.csv"
    )
    assert joined["Image_Metadata_Plate_DAPI"].notna().all()
    assert (joined["Image_Metadata_Plate_DAPI"] == joined["plate"]).all()
    # The official tables spell it "cyclohexamide", as the crop metadata does.
    assert (joined["moa_official"] == joined["moa"]).all()
    assert (joined["moa_official"] == "Protein synthesis").sum() == 565


def test_deeploc_reads_as_labelled_two_channel_set(shared_data):
    cells = readers.read_cells(shared_data("deeploc-yeast-36", "Schuldiner_test_set.hdf5"))
    assert len(cells) == 36 and cells.image_shape == (64, 64, 2)
    assert cells.metadata["label"].nunique() > 5
    from scipy.stats import skew

    images = cells.images[:]
    # Fluorescence (bright spots on a dark background) is far more right-skewed than DIC.
    protein = np.median([skew(image[..., 0].ravel()) for image in images])
    brightfield = np.median([skew(image[..., 1].ravel()) for image in images])
    assert protein > 1.5 * brightfield > 0
