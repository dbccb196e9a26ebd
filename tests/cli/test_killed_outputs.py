"""Commands killed (SIGKILL) mid-write: what they leave is refused by readers or removed by the next run.

- prepare-crops killed while it writes: the folder carries UNFINISHED.json, so inspect-data and
  train-* refuse it in one line naming the command that finishes it; ``--resume`` finishes it,
  and the result equals a fresh run.
- an embedding file (embed, embed-classical: `EmbeddingWriter` → `atomic.atomic_path`) killed
  mid-write leaves its hidden temporary; the next write of that output removes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import run_command
from statcell_tf.data.unfinished import MARKER

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate, process, seconds=120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_prepare_crops_killed_is_refused_by_readers_until_resumed(tmp_path, capfd):
    from statcell_tf.data.synthetic import write_fovs

    data = write_fovs(tmp_path / "fovs", n_families=2, fields_per_protein=3, cells_per_field=3, size=(256, 256),
                      cell_size=64, seed=1)
    fovs, out = data / "fovs_opencell.csv", tmp_path / "crops"
    args = [str(fovs), "--layout", "opencell", "--size", "32", "--montage-crops", "0"]
    process = subprocess.Popen([sys.executable, "-m", "statcell_tf.cli", "prepare-crops", *args, "--out", str(out)],
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: (out / MARKER).is_file(), process), "prepare-crops never started writing"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert (out / MARKER).is_file()
    capfd.readouterr()
    for command, extra in (("inspect-data", [str(out)]),
                           ("train-cytoself", ["--data", str(out), "--preset", "demo", "--epochs", "1",
                                               "--out", str(tmp_path / "run")])):
        assert run_command(command, extra) == 2
        errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "is an unfinished data set" in errors[0] and "--resume" in errors[0], errors
    assert not (tmp_path / "run").exists()
    # --resume finishes it: no marker, and the crops equal a fresh run's
    assert run_command("prepare-crops", [*args, "--out", str(out), "--resume"]) == 0
    assert not (out / MARKER).exists()
    assert run_command("prepare-crops", [*args, "--out", str(tmp_path / "fresh")]) == 0
    capfd.readouterr()
    resumed = sorted(p.name for p in out.glob("crops_*_label.csv"))
    labels = pd.concat([pd.read_csv(out / name) for name in resumed], ignore_index=True)
    fresh = pd.concat([pd.read_csv(p) for p in sorted((tmp_path / "fresh").glob("crops_*_label.csv"))],
                      ignore_index=True)
    keys = ["field", "nucleus_label"]
    pd.testing.assert_frame_equal(labels.sort_values(keys).reset_index(drop=True),
                                  fresh.sort_values(keys).reset_index(drop=True))
    assert run_command("inspect-data", [str(out)]) == 0


def test_a_stopped_run_is_described_as_it_is_on_request(tmp_path, capfd):
    from statcell_tf.data import prepare
    from statcell_tf.data.synthetic import write_fovs

    data = write_fovs(tmp_path / "fovs", n_families=1, fields_per_protein=2, cells_per_field=2, size=(256, 256),
                      cell_size=64)
    config = prepare.PrepareConfig.for_layout("opencell", size=32)
    fields, carried = prepare.read_fields(data / "fovs_opencell.csv", config)

    def stop(_):  # a kill after the first field's chunk is committed
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_crops(fields, tmp_path / "o", config, carried, progress=stop, chunk_crops=1, montage_crops=0)
    capfd.readouterr()
    assert run_command("inspect-data", [str(tmp_path / "o")]) == 2
    assert run_command("inspect-data", [str(tmp_path / "o"), "--allow-unfinished"]) == 0
    out = capfd.readouterr().out
    assert "unfinished data set" in out and "problems: none found" not in out


_WRITER = """
import sys, time
import numpy as np, pandas as pd
from statcell_tf.data.embedding_files import EmbeddingWriter
metadata = pd.DataFrame({"plate": ["P1"] * 4})
with EmbeddingWriter(sys.argv[1], metadata) as writer:
    writer.write({"mu": np.ones((2, 3), np.float32)})
    print("written", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("name", ["e.parquet", "e.h5"])
def test_killed_embedding_writer_leaves_a_temporary_the_next_write_removes(tmp_path, name):
    from statcell_tf.data.embedding_files import EmbeddingWriter, read_embeddings

    out = tmp_path / name
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().strip() == "written"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}.")]
    assert len(left) == 1 and f".{process.pid}." in left[0].name and not out.exists()
    metadata = pd.DataFrame({"plate": ["P1", "P2"]})
    with EmbeddingWriter(out, metadata) as writer:  # the next run of that output
        writer.write({"mu": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert read_embeddings(out)[1].to_numpy().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_live_writers_temporary_is_kept(tmp_path):
    from statcell_tf.atomic import remove_stale_temporaries

    live = tmp_path / f".e.parquet.{os.getppid()}.abc.tmp.parquet"  # the parent process is alive
    dead = tmp_path / ".e.parquet.999999999.abc.tmp.parquet"
    for path in (live, dead):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path / "e.parquet") == [dead]
    assert live.exists() and not dead.exists()
