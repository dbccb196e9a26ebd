"""embed_cytoself / load_embeddings: streamed HDF5 layout, values, labels and metadata."""

import json

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cytoself.embeddings import embed_cytoself, load_embeddings, normalize_images
from statcell_tf.cytoself.model import CytoselfModel
from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.errors import UserError
from statcell_tf.training.export import save_keras

TINY = dict(
    num_classes=3, image_shape=(16, 16, 2), stem_filters=4, encoder1_stages=[[1, 3, 1, 4, 1], [2, 3, 2, 6, 1]],
    local_filters=8, encoder2_stages=[[2, 3, 2, 8, 1]], global_filters=16, local_num_embeddings=8,
    global_num_embeddings=8, global_num_splits=2, decoder_filters=4, decoder_min_filters=4,
    decoder_units_per_block=1, classifier_units=8, seed=0,
)
NORMALIZATION = {"offset": [0.0, 10.0], "scale": [1.0, 0.5]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    model = CytoselfModel(**TINY)
    model.build((None, 16, 16, 2))
    save_keras(model, path / "best.keras")
    config = {"model": "cytoself", "channels": ["pro", "nucdist"], "label_column": "protein",
              "label_values": ["A", "B", "C"], "normalization": NORMALIZATION}
    (path / "config.json").write_text(json.dumps(config))
    return path, model


def _cells(n=7):
    rng = np.random.default_rng(0)
    images = rng.random((n, 16, 16, 3)).astype("float32")  # channels: nuc, pro, nucdist (reordered by name)
    images[..., 2] += 10.0
    metadata = pd.DataFrame({"protein": ["A", "B", "C", "A", "Z", "B", "C"][:n], "fov": np.arange(n) // 2,
                             "family": ["er", "golgi", "er", "er", "nucleus", "golgi", "er"][:n]})
    return CellImages(ArrayImages(images), metadata, ("nuc", "pro", "nucdist"), "test-data")


@pytest.mark.slow
def test_embed_writes_every_array_with_model_values(run, tmp_path):
    path, model = run
    cells = _cells()
    out = embed_cytoself(path, cells, tmp_path / "emb.h5", batch_size=3, progress=False)
    arrays, metadata = load_embeddings(out)
    assert arrays["global"].shape == (7, 2, 2, 16) and arrays["local"].shape == (7, 4, 4, 8)
    assert arrays["global_indices"].shape == (7, 2, 2, 2) and arrays["local_indices"].shape == (7, 4, 4)
    np.testing.assert_array_equal(arrays["local_hist"].sum(axis=1), [16] * 7)
    np.testing.assert_array_equal(arrays["global_hist"].sum(axis=1), [8] * 7)
    expected = model.embed(normalize_images(cells.images[:][..., [1, 2]], NORMALIZATION))
    np.testing.assert_allclose(arrays["global"], expected["global"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(arrays["local_indices"], expected["local_indices"])
    np.testing.assert_array_equal(arrays["label"], [0, 1, 2, 0, -1, 1, 2])  # "Z" is unknown to the run
    np.testing.assert_array_equal(arrays["index"], np.arange(7))
    pd.testing.assert_frame_equal(metadata, cells.metadata, check_dtype=False)
    assert metadata.attrs["num_embeddings"] == 8 and json.loads(metadata.attrs["channels"]) == ["pro", "nucdist"]


@pytest.mark.slow
def test_subset_float16_and_no_local(run, tmp_path):
    path, _ = run
    out = embed_cytoself(path, _cells(), tmp_path / "sub.h5", indices=[5, 1], dtype="float16",
                         include_local=False, progress=False)
    arrays, metadata = load_embeddings(out)
    assert "local" not in arrays and arrays["global"].dtype == np.float16
    assert metadata["protein"].tolist() == ["B", "B"] and arrays["index"].tolist() == [5, 1]
    only, _ = load_embeddings(out, keys=["local_hist"])
    assert set(only) == {"local_hist"}


def test_errors_name_the_problem(run, tmp_path):
    path, _ = run
    small = CellImages(ArrayImages(np.zeros((2, 8, 8, 2), "float32")), pd.DataFrame({"protein": ["A", "B"]}),
                       ("pro", "nucdist"), "small")
    with pytest.raises(UserError, match="shape"):
        embed_cytoself(path, small, tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(UserError, match="does not exist"):
        load_embeddings(tmp_path / "missing.h5")
