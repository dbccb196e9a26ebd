"""bin/umap-cytoself on the tiny cytoself run (the `tiny_cytoself` fixture)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from tests._support import cytoself_run as builder


@pytest.fixture(scope="module")
def tiny_run(tiny_cytoself):
    return tiny_cytoself[0]


@pytest.mark.slow
def test_umap_per_image_and_per_protein_with_score(tiny_run):
    runner = CliRunner()
    result = runner.invoke(cli, ["umap-cytoself", str(tiny_run), "--color-by", "family", "--score", "--split", "all"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tiny_run / "umap" / "umap_global_all_image_family.csv")
    assert len(table) == builder.N_FAMILIES * builder.PROTEINS_PER_FAMILY * builder.CELLS_PER_PROTEIN
    assert {"protein", "family", "umap1", "umap2"} <= set(table.columns)
    assert np.isfinite(table[["umap1", "umap2"]].to_numpy()).all()
    assert (tiny_run / "umap" / "umap_global_all_image_family.png").stat().st_size > 1000
    line = next(line for line in result.output.splitlines() if line.startswith("clustering score"))
    from statcell_tf.cytoself.clustering_score import clustering_score

    expected = clustering_score(table[["umap1", "umap2"]].to_numpy(), table["family"].to_numpy())
    assert line.endswith(f"{expected:.3f}") and "4 classes" in line

    # per protein, coloured by an external label table joined on the protein name
    labels = tiny_run / "complexes.csv"
    complexes = {"NUCLEOLUS_1": "A", "NUCLEOLUS_2": "A", "CHROMATIN_1": "B", "CHROMATIN_2": "B", "UNRELATED": "C"}
    pd.DataFrame({"protein": list(complexes), "complex": list(complexes.values())}).to_csv(labels, index=False)
    result = runner.invoke(
        cli,
        ["umap-cytoself", str(tiny_run), "--level", "local", "--per", "protein", "--labels", str(labels),
         "--label-column", "complex", "--score"],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tiny_run / "umap" / "umap_local_test_protein_complex.csv")
    assert len(table) == builder.N_FAMILIES * builder.PROTEINS_PER_FAMILY
    assert table.set_index("protein").loc["NUCLEOLUS_2", "complex"] == "A"
    assert table["complex"].isna().sum() == 4  # proteins without a complex: "others", not scored
    assert "(complex, local, test cells, per protein, 2 classes)" in result.output
    # the default split is the run's test split (2 cells of each protein here)
    assert (table["n_images"] == 2).all()


def test_umap_errors(tiny_run, capsys):
    assert run_command("umap-cytoself", [str(tiny_run), "--color-by", "nope"]) == 2
    assert "--color-by: column 'nope'" in capsys.readouterr().err
    assert run_command("umap-cytoself", [str(tiny_run)]) == 2  # no label column at all
    assert run_command("umap-cytoself", [str(tiny_run), "--labels", str(tiny_run / "config.json"), "--label-column", "x"]) == 2


def test_split_rows_refuse_embeddings_of_other_data(tiny_run):
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.cytoself.runs import split_rows
    from statcell_tf.errors import UserError

    arrays, metadata = load_embeddings(tiny_run / "embeddings.h5", keys=["index"])
    assert len(split_rows(tiny_run, arrays["index"], metadata, "test")) == 16
    assert len(split_rows(tiny_run, arrays["index"], metadata, "all")) == len(metadata)
    other = metadata.assign(group="another-fov")
    with pytest.raises(UserError, match="not of the data RUN"):
        split_rows(tiny_run, arrays["index"], other, "test")
