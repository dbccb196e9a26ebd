"""bin/feature-spectrum on the tiny cytoself run of tests/_support/cytoself_run.py."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli
from tests._support.cytoself_run import CELLS_PER_PROTEIN, N_FAMILIES, PROTEINS_PER_FAMILY, TINY


@pytest.fixture(scope="module")
def tiny_run(tiny_cytoself):
    return tiny_cytoself[0]


def invoke(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


@pytest.mark.slow
def test_spectrum_files_ranking_and_cache(tiny_run):
    result = invoke(["feature-spectrum", "NUCLEOLUS_1", "--run", str(tiny_run), "--clusters", "3", "--heatmap"])
    assert result.exit_code == 0, result.output
    out = tiny_run / "feature_spectrum"
    table = pd.read_csv(out / "NUCLEOLUS_1_spectrum.csv")
    assert list(table.columns) == ["protein", "position", "code", "cluster", "cluster_name", "occurrence"]
    assert sorted(table["code"]) == list(range(TINY["local_num_embeddings"]))
    assert table["occurrence"].sum() == pytest.approx(16.0)  # 4×4 local positions per image
    assert set(table.loc[table["cluster"] > 0, "cluster_name"]) <= {"i", "ii", "iii"}
    for name in ("NUCLEOLUS_1_spectrum.png", "correlation_heatmap.png", "family_spectra.png", "feature_spectrum.npz"):
        assert (out / name).stat().st_size > 0, name
    ranking = pd.read_csv(out / "NUCLEOLUS_1_family_correlation.csv")
    assert len(ranking) == N_FAMILIES and "nucleolus" in set(ranking["family"])
    assert ranking.loc[ranking["family"] == "nucleolus", "n_proteins"].item() == 1  # itself left out
    assert set(ranking.loc[ranking["family"] != "nucleolus", "n_proteins"]) == {2}
    assert "NUCLEOLUS_1 (family: nucleolus)" in result.output and "  1. " in result.output
    # second call: served from the cache (untouched), re-cut to another cluster count
    cache = out / "feature_spectrum.npz"
    stamp = cache.stat().st_mtime_ns
    result = invoke(["feature-spectrum", "CHROMATIN_2", "--run", str(tiny_run), "--clusters", "2"])
    assert result.exit_code == 0, result.output
    assert cache.stat().st_mtime_ns == stamp
    assert set(pd.read_csv(out / "CHROMATIN_2_spectrum.csv")["cluster"]) <= {0, 1, 2}


def test_unknown_protein_lists_closest_names(tiny_run, capsys):
    from statcell_tf.cli import run_command

    assert run_command("feature-spectrum", ["NUCLEOLUS-1", "--run", str(tiny_run)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("Error: PROTEIN 'NUCLEOLUS-1'") and "closest: NUCLEOLUS_1" in message
    assert message.count("\n") == 1


def test_protein_given_by_its_ensembl_id(tiny_run, tmp_path, capsys):
    """OpenCell names its files by Ensembl id: either spelling finds the protein."""
    from statcell_tf.cli import run_command

    labels = pd.read_csv(next((tiny_run.parent / "data").glob("*_label.csv")))
    ensg, protein = labels["ensg"].iloc[0], labels["protein"].iloc[0]
    assert run_command("feature-spectrum", [ensg.lower(), "--run", str(tiny_run), "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / f"{protein}_spectrum.csv")
    assert set(table["protein"]) == {protein}
    assert f"{protein} (family:" in capsys.readouterr().out


@pytest.mark.slow
def test_newest_run_default_embedding_from_data_and_cluster_examples(tiny_cytoself, tmp_path, monkeypatch, capsys):
    import shutil

    from statcell_tf.cli import run_command

    run_dir, data_dir = tiny_cytoself
    runs = tmp_path / "models" / "cytoself"
    old = runs / "old"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    os.utime(old / "config.json", (1, 1))
    newest = runs / "newest"
    shutil.copytree(run_dir, newest, ignore=shutil.ignore_patterns("feature_spectrum", "embeddings.h5"))
    monkeypatch.chdir(tmp_path)
    # no RUN/embeddings.h5 and no --data: a clear error
    assert run_command("feature-spectrum", ["CHROMATIN_1"]) == 2
    assert "pass --data DIR" in capsys.readouterr().err
    # --data: embeds (the newest run is the default), then writes the cluster examples
    result = invoke(["feature-spectrum", "CHROMATIN_1", "--data", str(data_dir), "--cluster-examples", "--clusters", "3"])
    assert result.exit_code == 0, result.output
    assert not (run_dir / "feature_spectrum" / "cluster_examples.png").exists()
    # every cell is embedded; --split test keeps the run's held-out cells (2 per protein here)
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.cytoself.feature_spectrum import FeatureSpectrum

    arrays, _ = load_embeddings(newest / "embeddings.h5", keys=["index"])
    total = N_FAMILIES * PROTEINS_PER_FAMILY * CELLS_PER_PROTEIN
    np.testing.assert_array_equal(arrays["index"], np.arange(total))
    assert FeatureSpectrum.load(newest / "feature_spectrum").n_images.sum() == total
    assert run_command("feature-spectrum", ["CHROMATIN_1", "--split", "test", "--clusters", "3"]) == 0
    assert list(FeatureSpectrum.load(newest / "feature_spectrum").n_images) == [2] * 8
    assert (newest / "feature_spectrum" / "cluster_examples.png").stat().st_size > 1000
    assert (newest / "feature_spectrum" / "CHROMATIN_1_spectrum.csv").exists()
    # the cache follows the embeddings file: re-embedding invalidates it
    stamp = (newest / "feature_spectrum" / "feature_spectrum.npz").stat().st_mtime_ns
    os.utime(newest / "embeddings.h5")
    assert run_command("feature-spectrum", ["CHROMATIN_1"]) == 0
    assert (newest / "feature_spectrum" / "feature_spectrum.npz").stat().st_mtime_ns != stamp
    # --cluster-examples without --data is a usage error
    assert run_command("feature-spectrum", ["CHROMATIN_1", "--cluster-examples"]) == 2
