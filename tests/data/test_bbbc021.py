import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import bbbc021
from statcell_tf.errors import UserError


def _folder(tmp_path, n=4):
    """A BBBC021-style folder with crops spread over two sub-folders of crops/."""
    folder = tmp_path / "b"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        sub = folder / "crops" / ("DMSO" if i % 2 else "Actin disruptors" if i else "x")
        sub.mkdir(parents=True, exist_ok=True)
        name = f"B0{i}_s1_w1ABC_{i}.npy"
        np.save(sub / name, rng.integers(300, 60000, (68, 68, 3), dtype=np.uint16))
        rows.append({"file": name, "plate": "Week1_1", "well": f"B0{i // 2}", "site": "s1",
                     "compound": "DMSO" if i % 2 else "cytochalasin B", "concentration": 0.0 if i % 2 else 1.0})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


def test_crops_found_by_name_in_any_subfolder(tmp_path):
    folder = _folder(tmp_path)
    cells = bbbc021.read_bbbc021(folder)
    assert len(cells) == 4 and cells.image_shape == (68, 68, 3)
    assert cells.channel_names == ("dna", "actin", "tubulin")
    assert list(cells.metadata["group"]) == ["Week1_1/B00", "Week1_1/B00", "Week1_1/B01", "Week1_1/B01"]
    assert list(cells.metadata["label"]) == ["cytochalasin B", "DMSO"] * 2
    expected = np.load(folder / "crops" / "DMSO" / "B03_s1_w1ABC_3.npy")
    np.testing.assert_array_equal(cells.images[3], expected)
    assert cells.images.dtype == np.uint16
    # The metadata CSV path works as well as its folder.
    assert len(bbbc021.read_bbbc021(folder / "metadata.csv")) == 4


def test_duplicate_crop_names_and_wrong_crop_size(tmp_path):
    folder = _folder(tmp_path)
    np.save(folder / "crops" / "x" / "B01_s1_w1ABC_1.npy", np.zeros((68, 68, 3), np.uint16))
    with pytest.raises(UserError, match="B01_s1_w1ABC_1.npy has the same file name as"):
        bbbc021.read_bbbc021(folder)
    (folder / "crops" / "x" / "B01_s1_w1ABC_1.npy").unlink()
    with pytest.raises(UserError, match=r"B00_s1_w1ABC_0.npy: crops must be 64x64 pixels. Received: 68x68"):
        bbbc021.read_bbbc021(folder, expected_shape=(64, 64))


def test_real_crops_with_official_tables(shared_data):
    folder = shared_data("bbbc021-dmso-cycloheximide")
    cells = bbbc021.read_bbbc021(folder)
    metadata = cells.metadata
    assert len(cells) == 2185 and cells.image_shape == (68, 68, 3)
    assert set(metadata["moa"]) == {"DMSO", "Protein synthesis"}
    assert (metadata["moa"] == "DMSO").sum() == 1620
    assert "qc_flag_low_dna_contrast" in metadata
    batch = cells.images[[0, 2000]]
    assert batch.dtype == np.uint16 and 300 < batch.min() and batch.max() < 65535
    # Nuclei are brighter than the background of a DNA crop centred on a cell.
    centre = batch[:, 24:44, 24:44, 0].mean(axis=(1, 2))
    border = batch[:, :8, :, 0].mean(axis=(1, 2))
    assert (centre > border).all()
    official = shared_data("bbbc021-metadata")
    joined = bbbc021.join_official(metadata, official / "BBBC021_v1_image.csv", official / "BBBC021_v1_moa.csv")
    assert len(joined) == len(metadata) and (joined["file"] == metadata["file"]).all()
    assert joined["Image_Metadata_Plate_DAPI"].notna().all()
    assert (joined["Image_Metadata_Plate_DAPI"] == joined["plate"]).all()
    assert (joined["Image_Metadata_Well_DAPI"] == joined["well"]).all()
    assert (joined["Image_Metadata_Compound"] == joined["compound"]).all()
    assert (joined["moa_official"] == joined["moa"]).all()
    assert (joined["moa_official"] == "Protein synthesis").sum() == 565


def test_join_official_needs_matching_names(tmp_path, shared_data):
    official = shared_data("bbbc021-metadata")
    metadata = pd.DataFrame({"file": ["nothing_like_bbbc_0.npy"]})
    with pytest.raises(UserError, match="BBBC021_v1_image.csv: no crop matches an Image_FileName_DAPI"):
        bbbc021.join_official(metadata, official / "BBBC021_v1_image.csv")
