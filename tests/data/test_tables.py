"""The shared table reader and numeric validator (`statcell_tf.data.tables`)."""

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data import tables
from statcell_tf.errors import UserError


def write(tmp_path, text, name="cells.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_identifiers_named_na_are_kept(tmp_path):
    table = tables.read_table(write(tmp_path, "plate,well,z_0\nNA,A01,1\nNone,nan,2\n"))
    assert table["plate"].tolist() == ["NA", "None"]
    assert table["well"].tolist() == ["A01", "nan"]
    tables.require_ids(table, ["plate", "well"], "t")


def test_empty_identifier_is_refused(tmp_path):
    table = tables.read_table(write(tmp_path, "plate,z_0\nP1,1\n,2\n"))
    with pytest.raises(UserError, match=r"'plate' must name every row.*row 2"):
        tables.require_ids(table, ["plate"], "t")


@pytest.mark.parametrize(
    "cell, fragment",
    [("abc", r"'z_1' must hold numbers. Received: 'abc' in row 2"),
     ("inf", r"'z_1' must hold finite numbers. Received: inf in row 2"),
     ("nan", r"'z_1' must hold finite numbers. Received: 'nan' in row 2"),
     ("", r"'z_1' must hold finite numbers. Received: an empty cell")],
)
def test_bad_feature_cells_are_named(tmp_path, cell, fragment):
    table = tables.read_table(write(tmp_path, f"plate,z_0,z_1\nP,1,2\nP,3,{cell}\nP,5,6\n"))
    with pytest.raises(UserError, match=fragment):
        tables.numeric_matrix(table, ["z_0", "z_1"], "--embeddings cells.csv")


def test_drop_nonfinite_rows_on_request(tmp_path):
    table = tables.read_table(write(tmp_path, "plate,z_0,z_1\nP,1,2\nP,3,inf\nP,5,6\n"))
    values, kept = tables.numeric_matrix(table, ["z_0", "z_1"], "t", nonfinite="drop")
    np.testing.assert_array_equal(values, [[1, 2], [5, 6]])
    assert kept.tolist() == [True, False, True]
    with pytest.raises(UserError, match="must hold numbers"):  # text is never dropped silently
        tables.numeric_matrix(tables.read_table(write(tmp_path, "z_0\n1\nx\n")), ["z_0"], "t", nonfinite="drop")


def test_parquet_and_errors(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"Metadata_Plate": ["NA"], "f": [1.0]}).to_parquet(path)
    assert tables.read_table(path)["Metadata_Plate"].tolist() == ["NA"]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="not a readable Parquet"):
        tables.read_table(tmp_path / "bad.parquet", "--embeddings")
    with pytest.raises(UserError, match="is a folder"):
        tables.read_table(tmp_path, "--embeddings")
    with pytest.raises(UserError, match="duplicate column"):
        tables.read_table(write(tmp_path, "a,a\n1,2\n"))
