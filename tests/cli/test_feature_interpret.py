"""bin/feature-interpret on the tiny cytoself run (the `tiny_cytoself` fixture)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command


@pytest.fixture(scope="module")
def tiny(tiny_cytoself):
    return tiny_cytoself


@pytest.mark.slow
def test_difference_maps_for_a_feature_cluster_and_a_code(tiny):
    run_dir, data_dir = tiny
    runner = CliRunner()
    args = ["feature-interpret", str(run_dir), "NUCLEOPLASM_1", "--data", str(data_dir), "--clusters", "3"]
    result = runner.invoke(cli, args + ["--feature", "1", "-n", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    png = run_dir / "feature_interpretation" / "NUCLEOPLASM_1_feature_i.png"
    assert png.stat().st_size > 1000
    line = next(line for line in result.output.splitlines() if "mean |difference|" in line)
    assert "without feature cluster i (" in line
    assert len(line.split(":")[-1].split(",")) == 2  # -n 2 images

    # the code NUCLEOPLASM_1 uses most: removing it must change the reconstruction
    from statcell_tf.cytoself.embeddings import load_embeddings

    arrays, metadata = load_embeddings(run_dir / "embeddings.h5", keys=["local_hist"])
    code = int(np.argmax(arrays["local_hist"][metadata["protein"].to_numpy() == "NUCLEOPLASM_1"].sum(axis=0)))
    result = runner.invoke(cli, args + ["--code", str(code)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (run_dir / "feature_interpretation" / f"NUCLEOPLASM_1_code_{code}.png").exists()
    values = [float(v) for v in result.output.split("per image")[1].splitlines()[0].split(",")]
    assert len(values) == 4 and max(values) > 0


def test_interpret_errors(tiny, capsys):
    run_dir, data_dir = tiny
    base = [str(run_dir), "NUCLEOPLASM_1", "--data", str(data_dir)]
    assert run_command("feature-interpret", base) == 2  # neither --feature nor --code
    assert run_command("feature-interpret", base + ["--feature", "1", "--code", "2"]) == 2
    capsys.readouterr()
    assert run_command("feature-interpret", base + ["--feature", "12"]) == 2
    assert "--feature must be a feature cluster number in 1.." in capsys.readouterr().err
    assert run_command("feature-interpret", [str(run_dir), "NUCLEOPLASM", "--data", str(data_dir), "--code", "0"]) == 2
    assert "closest: NUCLEOPLASM_" in capsys.readouterr().err
