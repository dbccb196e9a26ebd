"""Every model trains under MirroredStrategy with two replicas (two logical CPU devices, as
two GPUs would be) and the replicas end each epoch with identical weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("mirrored_models.py")


@pytest.mark.slow
def test_every_model_trains_on_two_replicas_that_stay_identical(tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report.pop("replicas") == 2
    assert set(report) == {"cytoself", "statcell", "integrated_cell_reference", "integrated_cell_conditional",
                           "vaeplus"}
    for name, result in report.items():
        # Two epochs of two steps: the epoch boundary (end of the data) is where they drifted apart.
        assert result["steps"] == 4 and result["finite"], (name, result)
        assert result["replica_mismatches"] == [], (name, result["replica_mismatches"][:5])
