import pandas as pd
import pytest

from statcell_tf import atomic


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_folder_replaced_whole(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "stale").write_text("x")
    with atomic.atomic_path(target, suffix="") as tmp:
        tmp.mkdir()
        (tmp / "fresh").write_text("y")
    assert [p.name for p in target.iterdir()] == ["fresh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_writers(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"b": 1})
    atomic.write_csv(tmp_path / "t.csv", pd.DataFrame({"x": [1, 2]}))
    assert (tmp_path / "a.json").read_text().strip() == '{\n  "b": 1\n}'
    assert pd.read_csv(tmp_path / "t.csv")["x"].tolist() == [1, 2]
