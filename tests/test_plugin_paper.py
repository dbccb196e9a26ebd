"""A fifth paper, defined in tests/toy_paper.py and found through the ``statcell_tf.papers``
entry-point group: trained through the lifecycle, killed and resumed, embedded with bin/embed,
exported as a SavedModel and profiled with ``profile-moa --run``, with no edit to statcell_tf/.

Every command runs in a fresh process whose only link to the toy paper is the entry point
(a dist-info folder on PYTHONPATH), as a lab's own installed package would be found.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data.synthetic import write_bbbc021
from tests.toy_paper import NAME, write_entry_point

pytestmark = pytest.mark.slow  # fresh processes train, kill, resume, embed and profile (about 2 min)
ROOT = Path(__file__).resolve().parents[1]
WELLS = [("Week1_1", "A01", "DMSO", 0.0, "DMSO"), ("Week1_1", "A02", "a1", 1.0, "x"),
         ("Week1_1", "A03", "b1", 1.0, "y"), ("Week2_1", "A01", "DMSO", 0.0, "DMSO"),
         ("Week2_1", "A02", "a2", 1.0, "x"), ("Week2_1", "A03", "b2", 1.0, "y")]

TRAIN = """
import sys
from statcell_tf import registry
paper = registry.get({name!r})
settings = paper.settings(data=sys.argv[1], epochs=3, batch_size=4)
result = paper.train(settings, sys.argv[2], resume=len(sys.argv) > 3, verbose=0)
print(len(result.history))
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    site = write_entry_point(root / "site")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    data = write_bbbc021(root / "data", WELLS, cells_per_well=4, size=16)
    other = write_bbbc021(root / "other", WELLS, cells_per_well=4, size=16, seed=1)  # same size, same names
    return root, env, data, other


def _python(env, *args, **extra):
    return subprocess.run([sys.executable, *args], env={**env, **extra}, capture_output=True, text=True, timeout=600)


def _command(env, name, *args):
    return _python(env, "-m", "statcell_tf.cli", name, *map(str, args))


def test_the_entry_point_is_the_only_link(plugin):
    root, env, _, _ = plugin
    code = "from statcell_tf import registry; print(sorted(registry.names()))"
    assert NAME in _python(env, "-c", code).stdout
    bare = {**env, "PYTHONPATH": str(ROOT)}
    assert NAME not in _python(bare, "-c", code).stdout


@pytest.fixture(scope="module")
def trained(plugin):
    root, env, data, _ = plugin
    straight = _python(env, "-c", TRAIN.format(name=NAME), str(data), str(root / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = root / "run"
    killed = _python(env, "-c", TRAIN.format(name=NAME), str(data), str(run), STATCELL_TF_KILL_AT="after_commit:1")
    assert killed.returncode == -9, killed.stderr[-2000:]
    killed = _python(env, "-c", TRAIN.format(name=NAME), str(data), str(run), "resume",
                     STATCELL_TF_KILL_AT="mid_commit:2")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = _python(env, "-c", TRAIN.format(name=NAME), str(data), str(run), "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return root / "straight", run


def test_killed_and_resumed_equals_uninterrupted(trained):
    straight, run = trained
    expected = pd.read_csv(straight / "history.csv").drop(columns="time_s")
    got = pd.read_csv(run / "history.csv").drop(columns="time_s")
    assert len(got) == 3 and "val_loss" in got
    pd.testing.assert_frame_equal(got, expected, rtol=1e-5)


def test_embed_writes_what_the_saved_model_computes(plugin, trained, tmp_path):
    root, env, data, _ = plugin
    _, run = trained
    out = tmp_path / "toy.parquet"
    result = _command(env, "embed", run, "--data", data, "--out", out, "--split", "test")
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_parquet(out)
    splits = pd.read_csv(run / "splits.csv")
    assert len(table) == (splits["split"] == "test").sum() > 0
    features = table[[f"z_{j}" for j in range(3)]].to_numpy()

    # The SavedModel alone (no statcell_tf import) gives the same vectors from the crops on disk.
    code = (
        "import sys, numpy as np, pandas as pd, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "meta = pd.read_csv(sys.argv[2] + '/metadata.csv')\n"
        "files = [f for f in sys.argv[3].split(',')]\n"
        "import glob\n"
        "paths = {p.rsplit('/', 1)[1]: p for p in glob.glob(sys.argv[2] + '/crops/*/*.npy')}\n"
        "images = np.stack([np.load(paths[f]) for f in files]).astype('float32')\n"
        "np.save(sys.argv[4], m.encode(tf.constant(images)).numpy())\n"
    )
    saved = _python({**env, "PYTHONPATH": ""}, "-c", code, str(run / "saved_model"), str(data),
                    ",".join(table["Metadata_file"]), str(tmp_path / "z.npy"))
    assert saved.returncode == 0, saved.stderr[-2000:]
    np.testing.assert_allclose(features, np.load(tmp_path / "z.npy"), rtol=1e-5, atol=1e-6)


def test_embed_refuses_other_data_as_the_runs_split(plugin, trained, tmp_path):
    root, env, _, other = plugin
    _, run = trained
    result = _command(env, "embed", run, "--data", other, "--out", tmp_path / "x.parquet", "--split", "test")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not the data RUN" in lines[0] and "other " in lines[0], result.stderr
    assert not (tmp_path / "x.parquet").exists()
    # --split all is for other data: it runs
    assert _command(env, "embed", run, "--data", other, "--out", tmp_path / "y.parquet").returncode == 0


def test_profile_moa_runs_on_the_toy_run(plugin, trained, tmp_path):
    root, env, data, _ = plugin
    _, run = trained
    out = tmp_path / "profiles"
    result = _command(env, "profile-moa", "--run", run, "--data", data, "--out", out, "--batch-size", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy = pd.read_csv(out / "accuracy.csv")
    assert list(accuracy["holdout"]) == ["NSC", "NSCB"] and (accuracy["treatments"] == 4).all()
    assert accuracy["Mean"].between(0, 100).all()
