import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from statcell_tf.cli.interpolate import compound_rows, resolve_cell
from statcell_tf.data.synthetic import write_bbbc021
from statcell_tf.errors import UserError
from statcell_tf.vaeplus import interpolation
from tests._support.runs import untrained_vaeplus_run


def test_feature_shift_path_moves_largest_differences_first():
    source = np.array([0.0, 0.0, 0.0, 0.0])
    target = np.array([1.0, -5.0, 0.5, 3.0])
    path, shifted = interpolation.feature_shift_path(source, target, steps=2)
    assert list(shifted) == [0, 2, 4]
    np.testing.assert_array_equal(path[0], source)
    np.testing.assert_array_equal(path[1], [0.0, -5.0, 0.0, 3.0])  # |−5| and |3| first
    np.testing.assert_array_equal(path[2], target)
    similarity = interpolation.cosine_similarity(path[1:], target)
    assert similarity[-1] == pytest.approx(1.0) and similarity[0] < 1.0
    assert interpolation.closest_to_mean(np.array([[0.0, 0.0], [1.0, 1.0], [10.0, 10.0]])) == 1  # mean (3.7, 3.7)


def test_cell_and_compound_lookup():
    metadata = pd.DataFrame({"file": ["a_0.npy", "b_1.npy"], "compound": ["DMSO", "Taxol"], "concentration": [0.0, 0.3]})
    assert resolve_cell(metadata, "b_1.npy") == 1 and resolve_cell(metadata, "a_0") == 0 and resolve_cell(metadata, "1") == 1
    with pytest.raises(UserError, match="no cell 'zz'"):
        resolve_cell(metadata, "zz")
    assert list(compound_rows(metadata, "taxol", None)) == [1]
    with pytest.raises(UserError, match="no cells of 'aspirin'"):
        compound_rows(metadata, "aspirin", None)
    with pytest.raises(UserError, match="available: 0.3"):
        compound_rows(metadata, "Taxol", 1.0)


@pytest.mark.slow
def test_interpolate_writes_strip_and_similarities(tmp_path, capsys):
    data = write_bbbc021(tmp_path / "data")
    run = untrained_vaeplus_run(tmp_path / "run")
    metadata = pd.read_csv(data / "metadata.csv")
    source = metadata.loc[metadata["compound"] == "DMSO", "file"].iloc[0]
    out = tmp_path / "strip.png"
    result = CliRunner().invoke(cli, ["interpolate", str(run), "--from-cell", source, "--to-compound", "Nocodazole",
                                      "--data", str(data), "--steps", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and out.stat().st_size > 1000
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["step"]) == [0, 1, 2, 3, 4] and list(table["features_shifted"]) == [0, 1, 2, 4, 5]
    assert table["cosine_similarity"].iloc[-1] == pytest.approx(1.0)
    assert table["target_cell"].iloc[0] in set(metadata.loc[metadata["compound"] == "nocodazole", "file"])
    assert run_command("interpolate", [str(run), "--from-cell", source, "--to-compound", "aspirin",
                                       "--data", str(data)]) == 2
    assert "no cells of 'aspirin'" in capsys.readouterr().err
