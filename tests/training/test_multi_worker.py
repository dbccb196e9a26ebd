"""Two real worker processes on 127.0.0.1 train under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "tiny.py"
TIME_LIMIT_S = 240


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(out_dirs, *args):
    """Start one worker process per folder of `out_dirs` (index 0 = chief); return (exit codes, outputs)."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(len(out_dirs))]
    processes = []
    for index, out_dir in enumerate(out_dirs):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(out_dir), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIME_LIMIT_S)
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [process.returncode for process in processes], outputs


def test_two_workers_end_with_identical_weights_and_resume_together(tmp_path):
    codes, outputs = _run_workers([tmp_path / "chief", tmp_path / "worker"])
    for index, (code, output) in enumerate(zip(codes, outputs)):
        assert code == 0, f"worker {index} failed:\n{output[-3000:]}"
    chief = np.load(tmp_path / "chief" / "weights_0.npz")
    other = np.load(tmp_path / "worker" / "weights_1.npz")
    assert len(chief.files) == len(other.files) > 0
    initial = np.load(str(tmp_path / "chief") + "_initial_0.npz")
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key])
    assert any(not np.allclose(chief[k], initial[k]) for k in chief.files), "no training happened"
    import pandas as pd

    history = pd.read_csv(tmp_path / "chief" / "history.csv")
    assert list(history["step"]) == [3, 6] and np.isfinite(history["loss"]).all()
    # The chief wrote the run outputs; the other worker wrote none (only a temp checkpoint).
    assert (tmp_path / "chief" / "checkpoints").is_dir()
    assert (tmp_path / "chief" / "history.csv").exists()
    assert not (tmp_path / "worker" / "checkpoints").exists()
    assert not (tmp_path / "worker" / "history.csv").exists()

    # Resume on separate folders: the worker cannot see the chief's checkpoints, so both stop
    # with one message instead of pairing the chief's epoch 3 with the worker's epoch 1 (a hang).
    codes, outputs = _run_workers([tmp_path / "chief", tmp_path / "worker"], "3", "--resume")
    assert codes == [2, 2], outputs
    assert all("restored different epochs (0, 2" in output for output in outputs), outputs
    # Resume on a shared folder (the chief's): both continue after epoch 2 and stay identical.
    codes, outputs = _run_workers([tmp_path / "chief", tmp_path / "chief"], "3", "--resume")
    assert codes == [0, 0], outputs
    resumed = [np.load(tmp_path / "chief" / f"weights_{index}_resumed.npz") for index in range(2)]
    for key in chief.files:
        np.testing.assert_array_equal(resumed[0][key], resumed[1][key])
    assert any(not np.allclose(resumed[0][k], chief[k]) for k in chief.files), "the resumed epoch did not train"
    assert list(pd.read_csv(tmp_path / "chief" / "history.csv")["step"]) == [3, 6, 9]
