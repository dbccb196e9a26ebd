"""The model owns its preprocessing: raw BBBC021 crops (uint16, as on disk) through each
SavedModel, in a process where statcell_tf cannot be imported, equal the package's embeddings."""

import subprocess
import sys

import numpy as np
import pytest

from statcell_tf.backend import tf
from statcell_tf.data.readers import read_cells
from statcell_tf.training.export import export_saved_model

OUTSIDE = """
import sys, numpy as np
sys.modules['statcell_tf'] = None  # importing it would fail: the SavedModel must stand alone
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
raw = np.load(sys.argv[2])
out = getattr(m, sys.argv[3])(tf.constant(raw.astype('float32')))
out = out["mu"] if isinstance(out, dict) else out
np.save(sys.argv[4], out.numpy())
"""


def _raw_crops(shared_data, n=8):
    cells = read_cells(shared_data("bbbc021-dmso-cycloheximide"))
    raw = np.asarray(cells.images[np.arange(n)])
    assert raw.dtype == np.uint16 and raw.max() > 255  # raw microscope counts, not [0, 1]
    return raw


def _outside(tmp_path, saved_model, raw, endpoint):
    np.save(tmp_path / "raw.npy", raw)
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", OUTSIDE, str(saved_model), str(tmp_path / "raw.npy"), endpoint,
                    str(tmp_path / "out.npy")], check=True, env=env, cwd=tmp_path, timeout=300)
    return np.load(tmp_path / "out.npy")


@pytest.mark.slow
def test_cytoself_saved_model_takes_raw_uint16_crops(tmp_path, shared_data):
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config
    from statcell_tf.cytoself.training import compute_normalization

    raw = _raw_crops(shared_data)
    normalization = compute_normalization(raw.astype("float32"))
    assert normalization is not None  # raw counts need the run's affine map
    config = preset_config("demo", num_classes=3, image_shape=list(raw.shape[1:]), seed=0, normalization=normalization)
    model = CytoselfModel(**config)
    normalized = (raw.astype("float32") - normalization["offset"]) * normalization["scale"]
    model.prepare({"image": normalized, "label": np.zeros(len(raw), "int32")})
    package = model.embed(raw)["global"]  # the package's own embedding path (raw in)
    direct = model.encode(tf.constant(normalized), training=False)["global"].numpy()
    np.testing.assert_allclose(package, direct, rtol=1e-5, atol=1e-5)
    path = export_saved_model(model, tmp_path / "sm")
    np.testing.assert_allclose(_outside(tmp_path, path, raw, "embed_global"), package, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_vaeplus_saved_model_takes_raw_uint16_crops(tmp_path, shared_data):
    from statcell_tf.vaeplus.model import VAEPlus
    from statcell_tf.vaeplus.training import normalize

    raw = _raw_crops(shared_data)
    model = VAEPlus(latent_dim=8, filters=4, discriminator_filters=4, seed=0)
    package = model.encode(tf.constant(normalize(raw))).numpy()  # the package's path: normalise, encode
    path = export_saved_model(model, tmp_path / "sm")
    np.testing.assert_allclose(_outside(tmp_path, path, raw, "encode"), package, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_statcell_saved_model_takes_raw_uint16_crops(tmp_path, shared_data):
    import pandas as pd

    from statcell_tf.data.source import ArrayImages, CellImages
    from statcell_tf.statcell.data import StatcellData
    from statcell_tf.statcell.model import ConditionalBetaVAE

    raw = _raw_crops(shared_data)[:, 2:66, 2:66, :2]  # actin as membrane, DNA; model-sized
    model = ConditionalBetaVAE(role="reference", rank=2, image_shape=[64, 64], latent_dim=8, filters=[4, 8],
                               background="mode", seed=0)
    cells = CellImages(ArrayImages(raw), pd.DataFrame({"CellId": [str(i) for i in range(len(raw))]}),
                       ("membrane", "dna"), "raw")
    batch = StatcellData(cells, "reference", (64, 64), background="mode").batch(np.arange(len(raw)))
    model.prepare(batch)
    package = model.encode(batch)[0].numpy()  # the package's path: StatcellData normalises, then encode
    path = export_saved_model(model, tmp_path / "sm")
    outside = _outside(tmp_path, path, raw, "encode")
    np.testing.assert_allclose(outside, package, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_integrated_cell_saved_model_takes_raw_uint16_crops(tmp_path, shared_data):
    from statcell_tf.integrated_cell.data import normalise
    from statcell_tf.integrated_cell.model import IntegratedCellReference

    raw = _raw_crops(shared_data)[:, 2:66, 2:66, :2]
    model = IntegratedCellReference(image_size=(64, 64), latent_dim=4, filters=2, seed=0)
    images = normalise(raw)  # the package's path (ModelViewImages): normalise, then encode
    model.prepare({"image": np.concatenate([images, images[..., :1]], -1)})
    package = model.encode(tf.constant(images)).numpy()
    path = export_saved_model(model, tmp_path / "sm")
    np.testing.assert_allclose(_outside(tmp_path, path, raw, "encode"), package, rtol=1e-4, atol=1e-4)
