"""Every model trains under MirroredStrategy with two replicas (two logical CPU devices, as
two GPUs would be) and the replicas end each epoch with identical weights and batch-norm
statistics (their mean over the replicas)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 2 minutes on 2 idle cores

SCRIPT = Path(__file__).with_name("mirrored_models.py")


# Two processes side by side (about 65 s of work each) so both CI cores are used.
GROUPS = (("cytoself", "integrated_cell_conditional"),
          ("averaging", "statcell", "integrated_cell_reference", "vaeplus"))


def test_every_registered_paper_has_a_model_here():
    """A paper added to the registry must also be added to mirrored_models._models."""
    from statcell_tf import registry

    covered = {name for group in GROUPS for name in group}
    missing = [p for p in registry.BUILTIN if not any(name == p or name.startswith(f"{p}_") for name in covered)]
    assert not missing, f"add {missing} to tests/training/mirrored_models.py and GROUPS"


def test_every_model_trains_on_two_replicas_that_stay_identical(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    outputs = [tmp_path / f"report{k}.json" for k in range(len(GROUPS))]
    workers = [
        subprocess.Popen([sys.executable, str(SCRIPT), str(out), *group], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for out, group in zip(outputs, GROUPS)
    ]
    for worker in workers:
        try:
            _, stderr = worker.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
        assert worker.returncode == 0, stderr[-3000:]
    report = {}
    for out in outputs:
        part = json.loads(out.read_text())
        assert part.pop("replicas") == 2
        report.update(part)
    assert set(report) == {name for group in GROUPS for name in group}
    # The end-of-epoch averaging of batch-norm statistics: replicas that saw 1s and 5s both hold 3.
    assert report.pop("averaging") == [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
    assert set(report) == {"cytoself", "statcell", "integrated_cell_reference", "integrated_cell_conditional",
                           "vaeplus"}
    for name, result in report.items():
        # Two epochs of two steps: the epoch boundary (end of the data) is where they drifted apart.
        assert result["steps"] == 4 and result["finite"], (name, result)
        assert result["replica_mismatches"] == [], (name, result["replica_mismatches"][:5])
