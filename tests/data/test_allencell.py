import numpy as np
import pandas as pd
import pytest
import tifffile

from statcell_tf.data import allencell
from statcell_tf.errors import UserError
from tests._support.fake_data import write_manifest


@pytest.mark.parametrize("dims", [2, 3])
def test_manifest_channel_last_in_membrane_dna_structure_order(tmp_path, dims):
    manifest = write_manifest(tmp_path / "ac", dims=dims)
    cells = allencell.read_allencell(manifest)
    assert cells.channel_names == ("membrane", "dna", "structure")
    assert cells.image_shape == ((16, 16, 3) if dims == 2 else (4, 16, 16, 3))
    assert list(cells.metadata["label"]) == ["ST0", "ST1", "ST0", "ST1"]
    assert list(cells.metadata["group"]) == ["0", "1", "2", "3"]
    assert "cell_cycle_phase" in cells.metadata
    raw = tifffile.imread(tmp_path / "ac" / "cell2.tif")
    np.testing.assert_allclose(cells.images[2][..., 1], raw[1])
    swapped = allencell.read_allencell(manifest, membrane=2, structure=0)
    np.testing.assert_allclose(swapped.images[2][..., 0], raw[2])
    np.testing.assert_allclose(swapped.images[2][..., 2], raw[0])


def test_axes_zcyx_ome_and_unnamed_and_per_row_channels(tmp_path):
    folder = tmp_path / "ac"
    folder.mkdir()
    rng = np.random.default_rng(0)
    czyx = rng.random((3, 2, 8, 8), dtype=np.float32)
    tifffile.imwrite(folder / "zc.tif", np.ascontiguousarray(czyx.transpose(1, 0, 2, 3)), imagej=True,
                     metadata={"axes": "ZCYX"})
    tifffile.imwrite(folder / "ome.ome.tif", czyx, metadata={"axes": "CZYX"})
    tifffile.imwrite(folder / "plain.tif", czyx)  # axes stored as "QQYX" (unknown): C first
    pd.DataFrame(
        {"CellId": [1, 2, 3], "structure_name": ["a", "b", "c"],
         "path": ["zc.tif", "ome.ome.tif", str(folder / "plain.tif")],
         "ch_membrane": [0, 2, 0], "ch_dna": [1, 1, 1], "ch_structure": [2, 0, 2]}
    ).to_csv(folder / "manifest.csv", index=False)
    cells = allencell.read_allencell(folder)  # a folder with manifest.csv works too
    assert cells.image_shape == (2, 8, 8, 3)
    expected = np.moveaxis(czyx, 0, -1)  # (Z, Y, X, C)
    np.testing.assert_allclose(cells.images[0], expected)
    np.testing.assert_allclose(cells.images[1], expected[..., [2, 1, 0]])
    np.testing.assert_allclose(cells.images[2], expected)
    # Plain multi-page TIFFs (axes "IYX") and planar 3-sample ones ("SYX") are 2D CYX cells.
    tifffile.imwrite(folder / "pages.tif", czyx[:, 0], metadata=None)
    assert allencell.tiff_layout(str(folder / "pages.tif"))[1] in ("IYX", "SYX")
    shape, axes, _ = allencell.tiff_layout(str(folder / "pages.tif"))
    assert allencell.channel_last_order(shape, axes) == ([1, 2, 0], False)


def test_cells_of_different_shapes_rejected_at_read_time(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    tifffile.imwrite(tmp_path / "ac" / "cell3.tif", np.zeros((3, 20, 20), np.float32), metadata={"axes": "CYX"})
    pattern = r"cell3.tif \(CellId 3\) must be \(16, 16\) like .*cell0.tif.*Received: \(20, 20\)"
    with pytest.raises(UserError, match=pattern):
        allencell.read_allencell(manifest)


def test_channel_index_beyond_the_file(tmp_path):
    manifest = write_manifest(tmp_path / "ac")
    with pytest.raises(UserError, match=r"cell0.tif \(CellId 0\) has 3 channel\(s\) but .*asks for channel 5"):
        allencell.read_allencell(manifest, dna=5)
    table = pd.read_csv(manifest)
    table.loc[1, "ch_dna"] = np.nan
    table.to_csv(manifest, index=False)
    with pytest.raises(UserError, match="ch_dna must be a channel index .* for CellId 1"):
        allencell.read_allencell(manifest)
