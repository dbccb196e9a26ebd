import numpy as np
import pandas as pd
import pytest

from statcell_tf.errors import UserError
from statcell_tf.statcell import beta_sweep
from statcell_tf.statcell.data import StatcellData, toy_cells
from statcell_tf.statcell.model import ConditionalBetaVAE


def test_parse_betas():
    assert beta_sweep.parse_betas("0:1:5") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(beta_sweep.parse_betas("0:1:25")) == 25
    assert beta_sweep.parse_betas("0.1, 0.5") == [0.1, 0.5]
    for bad in ("0:1", "a:b:c", "0:1:0", "", "x"):
        with pytest.raises(UserError, match="--betas"):
            beta_sweep.parse_betas(bad)
    assert beta_sweep.run_name(0.25) == "beta_0.2500"


def test_rate_distortion_matches_the_model_terms():
    cells = toy_cells(6, (16, 16), seed=0)
    data = StatcellData(cells, "reference", (16, 16))
    model = ConditionalBetaVAE("reference", 2, (16, 16), filters=(4, 8), latent_dim=5, eval_samples=1)
    model.build()
    for head, bias in ((model.mu_head, 0.5), (model.log_var_head, -30.0)):  # deterministic posterior
        head.layer.kernel.assign(np.zeros(head.layer.kernel.shape, "float32"))
        head.layer.bias.assign(np.full(head.layer.bias.shape, bias, "float32"))
    result = beta_sweep.rate_distortion(model, data, np.arange(6), n_samples=3, batch_size=4)
    expected_rate = 0.5 * 5 * (0.25 + np.exp(-30.0) + 30.0 - 1.0)
    x_hat = np.asarray(model.decode(np.full((6, 5), 0.5, "float32")))
    expected_distortion = ((data.batch(np.arange(6))["image"] - x_hat) ** 2).reshape(6, -1).sum(1).mean()
    np.testing.assert_allclose(result["rate"], expected_rate, rtol=1e-5)
    np.testing.assert_allclose(result["distortion"], expected_distortion, rtol=1e-4)
    assert result["n_cells"] == 6 and len(result["kld_by_rank"]) == 5 and result["active_dims"] == 5


def test_figures(tmp_path):
    frame = pd.DataFrame({"beta": [0.1, 0.5, 0.9], "rate": [9.0, 3.0, 0.5], "distortion": [10.0, 14.0, 20.0],
                          "elbo": [-19.0, -17.0, -20.5], "run": [str(tmp_path / "none")] * 3})
    beta_sweep.write_outputs(frame, tmp_path)
    assert (tmp_path / "rate_distortion.png").exists()
    assert pd.read_csv(tmp_path / "rate_distortion.csv")["rate"].tolist() == [9.0, 3.0, 0.5]
