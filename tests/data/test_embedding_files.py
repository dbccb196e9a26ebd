"""The one embedding writer/reader: Parquet convention, HDF5 layout, atomicity, destination checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from statcell_tf.data.embedding_files import EmbeddingWriter, check_out_file, read_embeddings
from statcell_tf.errors import UserError


def _metadata():
    return pd.DataFrame({
        "plate": [101, 101, 102], "well": ["A01", "NA", "B02"], "compound": ["DMSO", "NA", None],
        "concentration": [0.0, 1.5, 3.0], "qc": [True, False, True], "Metadata_Site": ["s1", "s2", "s3"],
    })


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_round_trip_in_chunks(tmp_path, suffix):
    vectors = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2)
    path = tmp_path / f"e{suffix}"
    with EmbeddingWriter(path, _metadata(), attrs={"run": "r"}) as writer:
        writer.write({"z": vectors[:2]})
        writer.write({"z": vectors[2:]})
    metadata, features = read_embeddings(path)
    assert list(features.columns) == [f"z_{j}" for j in range(4)]
    np.testing.assert_array_equal(features.to_numpy(), vectors.reshape(3, 4))
    assert metadata["well"].tolist() == ["A01", "NA", "B02"]
    if suffix == ".parquet":
        table = pd.read_parquet(path)
        assert list(table.columns[:6]) == ["Metadata_plate", "Metadata_well", "Metadata_compound",
                                           "Metadata_concentration", "Metadata_qc", "Metadata_Site"]
        assert table["Metadata_plate"].tolist() == ["101", "101", "102"]  # identifiers as text
        assert table["Metadata_compound"].tolist()[:2] == ["DMSO", "NA"] and table["Metadata_compound"].isna().iloc[2]
        assert table["Metadata_concentration"].dtype == np.float64 and table["Metadata_qc"].dtype == bool
        assert (table[[f"z_{j}" for j in range(4)]].dtypes == np.float32).all()


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_a_failure_leaves_nothing(tmp_path, suffix):
    with pytest.raises(RuntimeError, match="boom"):
        with EmbeddingWriter(tmp_path / f"e{suffix}", _metadata()) as writer:
            writer.write({"z": np.zeros((2, 3))})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="2 rows written for 3"):  # an incomplete file is never published
        with EmbeddingWriter(tmp_path / f"e{suffix}", _metadata()) as writer:
            writer.write({"z": np.zeros((2, 3))})
    assert list(tmp_path.iterdir()) == []


def test_destination_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "data").mkdir()
    for out, message in [
        (tmp_path / "e.csv", "expected a file ending in .parquet"),
        (tmp_path / "file" / "e.parquet", "is a file, not a folder"),
        (tmp_path / "data", "expected a file ending in"),
        (tmp_path / "data" / "e.h5", "overlaps the input"),
    ]:
        with pytest.raises(UserError, match=message):
            check_out_file(out, inputs=[tmp_path / "data"])
    assert check_out_file(tmp_path / "new" / "e.parquet", inputs=[tmp_path / "data"]) == tmp_path / "new" / "e.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file"]
