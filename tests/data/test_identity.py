"""The identity a run records of its data: equal for the same data read twice, different (and
said in words) for data of the same size, the same ids or the same file names."""

from __future__ import annotations

import numpy as np

from statcell_tf.data.identity import data_identity, differences
from statcell_tf.data.readers import read_cells
from statcell_tf.data.synthetic import write_allencell, write_opencell


def _opencell(path, seed=0, cells=6):
    write_opencell(path, n_families=2, proteins_per_family=2, cells_per_protein=cells, size=16, seed=seed)
    return read_cells(path)


def test_the_same_data_read_twice_has_one_identity(tmp_path):
    first = data_identity(_opencell(tmp_path / "a"))
    assert differences(first, data_identity(read_cells(tmp_path / "a"))) == []
    assert first["num_cells"] == 24 and first["image_shape"][:2] == [16, 16]


def test_regenerated_data_with_the_same_names_and_size_differs(tmp_path):
    recorded = data_identity(_opencell(tmp_path / "a", seed=0))
    found = differences(recorded, data_identity(_opencell(tmp_path / "b", seed=1)))
    assert found and found[0].startswith("other "), found


def test_a_manifest_with_the_same_cell_ids_but_other_images_differs(tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        write_allencell(tmp_path / name, n_families=2, cells_per_structure=3, dims=2, size=(16, 16), seed=seed)
    a, b = read_cells(tmp_path / "a" / "manifest.csv"), read_cells(tmp_path / "b" / "manifest.csv")
    assert list(a.metadata["CellId"]) == list(b.metadata["CellId"])  # ids are reused
    found = differences(data_identity(a), data_identity(b))
    assert found and "other" in found[0], found


def test_count_and_shape_are_named_first(tmp_path):
    recorded = data_identity(_opencell(tmp_path / "a"))
    fewer = data_identity(_opencell(tmp_path / "b", cells=5))
    assert differences(recorded, fewer) == ["20 cells, the run's data had 24"]
    bigger = dict(recorded, image_shape=[32, 32, 3])
    assert "images of shape 32×32×3" in differences(recorded, bigger)[0]


def test_the_identity_is_json(tmp_path):
    import json

    identity = data_identity(_opencell(tmp_path / "a"))
    assert json.loads(json.dumps(identity)) == identity
    assert isinstance(identity["pixels_digest"], str) and len(identity["pixels_digest"]) == 16
    assert np.isfinite(identity["num_cells"])
