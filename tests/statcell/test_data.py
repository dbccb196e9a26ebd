import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import controls
from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.errors import UserError
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.statcell.data import (
    StatcellData,
    default_image_shape,
    fit_shape,
    toy_cells,
)


def test_normalise_fit_shape_and_background_hand_values():
    x = np.zeros((1, 4, 4, 2), "float32")
    x[0, 1, 1] = [2.0, 0.0]
    x[0, 2, 2] = [4.0, 0.0]
    y = np.asarray(InputNormalization("max")(x))  # what StatcellData and the model apply
    assert y[0, 2, 2, 0] == 1.0 and y[0, 1, 1, 0] == 0.5 and y[..., 1].max() == 0.0
    padded = fit_shape(np.ones((2, 3, 5, 1)), (4, 4))
    assert padded.shape == (2, 4, 4, 1) and padded[0, :, 0].sum() == 3  # X cropped 5→4, Y padded 3→4
    background = np.full((1, 10, 10, 1), 100.0, "float32")
    background[0, :2, :2] = 300.0
    cleaned = np.asarray(InputNormalization("mode")(background))  # --background mode
    assert cleaned[0, 5, 5, 0] == 0.0 and cleaned[0, 0, 0, 0] == pytest.approx(1.0)  # mode 100 removed, 200 → 1


def test_statcell_data_batches_for_both_roles_and_projection():
    cells = toy_cells(6, (4, 16, 16), seed=0)
    reference = StatcellData(cells, "reference", (16, 16))  # 3D data, 2D model: max projection
    batch = reference.batch(np.arange(3))
    assert batch["image"].shape == (3, 16, 16, 2) and set(batch) == {"image"}
    target = StatcellData(cells, "target", (4, 16, 16))
    batch = target.batch(np.array([0, 4]))
    assert batch["image"].shape == (2, 4, 16, 16, 1) and batch["reference"].shape == (2, 4, 16, 16, 2)
    assert [target.types[i] for i in batch["target_type"]] == list(cells.metadata["structure_name"].iloc[[0, 4]])
    assert default_image_shape(cells, 2, 3) == (16, 16) and default_image_shape(cells, 3, 2) == (4, 16, 16)
    with pytest.raises(UserError, match="structure"):
        StatcellData(cells.select_channels(["membrane", "dna"]), "target", (16, 16))
    batches = list(reference.dataset(np.arange(6), 4, shuffle=True, drop_remainder=True))
    assert len(batches) == 1 and tuple(batches[0]["image"].shape) == (4, 16, 16, 2)


def test_dataset_reshuffles_every_pass_and_replays_the_order_of_skipped_passes():
    cells = toy_cells(12, (8, 8), seed=0)
    data = StatcellData(cells, "reference", (8, 8))

    def order(iterator):
        return np.concatenate([batch["image"].numpy()[:, 4, 4, 1] for batch in iterator])

    dataset = data.dataset(np.arange(12), 4, shuffle=True)
    assert int(dataset.cardinality()) == 3
    first, second = order(iter(dataset)), order(iter(dataset))
    assert not np.array_equal(first, second) and np.array_equal(np.sort(first), np.sort(second))
    fresh = data.dataset(np.arange(12), 4, shuffle=True)
    iter(fresh)  # what the trainer does for each finished epoch when it resumes
    np.testing.assert_array_equal(order(iter(fresh)), second)
    with pytest.raises(UserError, match="--batch-size"):
        data.dataset(np.arange(3), 4, drop_remainder=True)


def test_control_structures_are_what_they_claim():
    cells = toy_cells(5, (24, 24), seed=1)
    images = cells.images[np.arange(5)]
    out, kind, source = controls.control_images(images, seed=0)
    assert out.shape == (25, 24, 24, 3) and list(np.unique(kind)) == sorted(controls.CONTROL_KINDS)
    for image, k, s in zip(out, kind, source):
        np.testing.assert_array_equal(image[..., :2], images[s][..., :2])
        structure = image[..., 2]
        if k == "blank":
            assert structure.max() == 0
        elif k == "dna":
            np.testing.assert_array_equal(structure, images[s][..., 1])
        elif k == "membrane":
            np.testing.assert_array_equal(structure, images[s][..., 0])
        elif k == "random":
            donors = [j for j in range(5) if j != s]
            assert any(np.array_equal(structure, images[j][..., 2]) for j in donors)
        else:  # noise: only inside the cell, non-negative, not a copy
            region = controls.cell_region(images[s][..., 0], images[s][..., 1])
            assert structure[~region].max() == 0 and structure[region].std() > 0 and structure.min() >= 0


def test_write_controls_manifest(tmp_path):
    import tifffile

    cells = toy_cells(6, (16, 16), seed=0)
    (tmp_path / "data").mkdir()
    rows = []
    for i, row in cells.metadata.iterrows():
        path = f"{row.CellId}.tiff"
        tifffile.imwrite(tmp_path / "data" / path, np.moveaxis(cells.images[i], -1, 0))
        rows.append({"CellId": row.CellId, "structure_name": row.structure_name, "path": path})
    manifest = pd.DataFrame(rows)
    table = controls.write_controls(cells, manifest, tmp_path / "data", tmp_path / "out", n_cells=2,
                                    kinds=("dna", "noise"), seed=0)
    assert len(table) == 6 + 4 and (tmp_path / "out" / "manifest.csv").exists()
    for path in table["path"]:
        assert (tmp_path / "out" / path).exists()
    with pytest.raises(UserError, match="already contains control"):
        controls.write_controls(cells, table.iloc[:6].assign(structure_name="Control - DNA"),
                                tmp_path / "data", tmp_path / "again")
    bad = CellImages(ArrayImages(cells.images[np.arange(6)][..., :2]), cells.metadata, ("membrane", "dna"))
    with pytest.raises(UserError, match="structure"):
        controls.write_controls(bad, manifest, tmp_path / "data", tmp_path / "bad")
