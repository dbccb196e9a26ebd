"""CytoselfModel: the paper's shape trace, loss terms, ablations, save/load and export."""

import json

import numpy as np
import pytest

from statcell_tf.cytoself.model import CytoselfModel
from statcell_tf.cytoself.presets import preset_config
from tests._support import cytoself_run

# The CLI tests' tiny model (16 → 8 → 4: local 4×4×8; global 2×2×16 split in 2 vectors of 8), 8 local codes
TINY = dict(cytoself_run.TINY, num_classes=3, local_num_embeddings=8)
ALL_TERMS = {
    "loss", "reconstruction", "mse_lyr1", "vq1", "vq2", "vq1_codebook", "vq1_commitment", "vq2_codebook",
    "vq2_commitment", "perplexity1", "perplexity2", "classification1", "classification2", "accuracy1", "accuracy2",
}


def _batch(n=4, shape=(16, 16, 2), seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.random((n,) + shape).astype("float32"), "label": (np.arange(n) % 3).astype("int32")}


@pytest.mark.slow
def test_paper_preset_shape_trace_and_histograms():
    model = CytoselfModel(**preset_config("paper", num_classes=5))
    out = model(np.random.default_rng(0).random((1, 100, 100, 2)).astype("float32"))
    assert out["local_pre"].shape == (1, 25, 25, 64) and out["global_pre"].shape == (1, 4, 4, 576)
    assert out["local"].shape == (1, 25, 25, 64) and out["global"].shape == (1, 4, 4, 576)
    assert out["local_indices"].shape == (1, 25, 25) and out["global_indices"].shape == (1, 4, 4, 9)
    assert int(np.sum(out["local_hist"])) == 625 and int(np.sum(out["global_hist"])) == 144
    assert out["local_hist"].shape == (1, 2048) and out["global_hist"].shape == (1, 2048)
    assert out["reconstruction"].shape == (1, 100, 100, 2)
    assert out["mid_reconstruction"].shape == (1, 25, 25, 64)
    assert out["logits1"].shape == (1, 5) and out["logits2"].shape == (1, 5)
    assert model.vq2.embedding_dim == 64 and model.vq2.num_splits == 9
    assert model.fc1.hidden.units == 1000 and model.learning_rate == 4e-4


@pytest.mark.slow
def test_one_train_step_every_term_finite():
    model = CytoselfModel(**TINY)
    batch = _batch()
    model.prepare(batch)
    before = [v.numpy().copy() for v in model.trainable_variables]
    losses = model.train_step_fn(batch)
    assert set(losses) == ALL_TERMS
    for key, value in losses.items():
        assert np.isfinite(float(value)), key
    changed = [not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables)]
    assert all(changed), [v.path for v, c in zip(model.trainable_variables, changed) if not c]


def test_total_is_weighted_sum_and_variance_normalises_reconstruction():
    model = CytoselfModel(**TINY, loss_weights={"vq2": 2.0, "classification1": 0.0})
    batch = _batch()
    losses = {k: float(v) for k, v in model.compute_losses(batch).items()}
    expected = (losses["reconstruction"] + losses["mse_lyr1"] + losses["vq1"] + 2 * losses["vq2"]
                + losses["classification2"])
    assert losses["loss"] == pytest.approx(expected, rel=1e-5)
    model.data_variance = 4.0
    assert float(model.compute_losses(batch)["reconstruction"]) == pytest.approx(losses["reconstruction"] / 4, rel=1e-5)
    with pytest.raises(ValueError, match="loss_weights"):
        CytoselfModel(**TINY, loss_weights={"kl": 1.0})


@pytest.mark.slow
@pytest.mark.parametrize(
    "ablation, absent, global_hist_sum",
    [
        ("no_vq", {"vq1", "vq2", "perplexity1", "perplexity2"}, None),
        ("no_id", {"classification1", "classification2", "accuracy1", "accuracy2"}, 8),
        ("no_split", set(), 4),  # 2×2 vectors of 16 values, not 8 sub-vectors
        ("no_decoder", {"reconstruction", "mse_lyr1"}, 8),
    ],
)
def test_ablations_remove_their_terms(ablation, absent, global_hist_sum):
    from statcell_tf.cytoself.presets import MODEL_ABLATIONS

    model = CytoselfModel(**{**TINY, **MODEL_ABLATIONS[ablation]})
    losses = model.compute_losses(_batch(2))
    missing = {t for t in ALL_TERMS if t not in losses}
    assert {k for k in missing if not k.endswith(("_codebook", "_commitment"))} == absent
    assert all(np.isfinite(float(v)) for v in losses.values())
    embedded = model.embed(_batch(2)["image"])
    if global_hist_sum is None:
        assert "global_hist" not in embedded and embedded["global"].shape == (2, 2, 2, 16)
    else:
        np.testing.assert_array_equal(embedded["global_hist"].sum(axis=1), [global_hist_sum] * 2)


@pytest.mark.slow
def test_reconstruct_with_codes_removed():
    model = CytoselfModel(**TINY)
    images = _batch(2)["image"]
    np.testing.assert_allclose(model.reconstruct_with_codes_removed(images, []), model.reconstruct(images), atol=1e-6)
    out = model.encode(images)
    used = np.unique(out["local_indices"]).tolist()
    zeroed = model.reconstruct_with_codes_removed(images, used)  # every local vector zeroed
    expected = model.decode(np.zeros_like(out["local"]), out["global"])
    np.testing.assert_allclose(zeroed, expected, atol=1e-6)
    assert not np.allclose(zeroed, model.reconstruct(images))
    with pytest.raises(ValueError, match="codes_to_zero"):
        model.reconstruct_with_codes_removed(images, [8])


def test_config_round_trip():
    model = CytoselfModel(**TINY, use_classifier=False, data_variance=0.5)
    clone = CytoselfModel.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.get_config() == model.get_config()


@pytest.mark.slow
def test_save_load_reproduces_outputs(tmp_path):
    from statcell_tf.training.export import load_keras, save_keras

    model = CytoselfModel(**TINY)
    model.prepare(_batch())
    model.train_step_fn(_batch())  # move BN statistics away from their initial values
    images = _batch(3, seed=1)["image"]
    save_keras(model, tmp_path / "m.keras")
    loaded = load_keras(tmp_path / "m.keras")
    expected = model.embed(images)
    for key, value in loaded.embed(images).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    assert set(loaded.export_endpoints()) == {
        "embed_global", "embed_local", "vq_indices", "index_histogram", "reconstruct", "classify"
    }
