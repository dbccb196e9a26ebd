"""Two real worker processes on 127.0.0.1 train under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
        out_dir = tmp_path / ("chief" if index == 0 else "worker")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(out_dir)],
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
    for index, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"worker {index} failed:\n{output[-3000:]}"
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
