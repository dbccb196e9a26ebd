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


def test_all_or_nothing_rolls_back_every_output(tmp_path):
    """A command that fails after writing some outputs leaves the disk as it found it:
    new files and folders removed, replaced files restored."""
    import pytest

    from statcell_tf import atomic

    kept = tmp_path / "kept.txt"
    kept.write_text("before")
    with pytest.raises(RuntimeError):
        with atomic.all_or_nothing():
            atomic.write_text(tmp_path / "new" / "deep" / "a.txt", "a")
            atomic.write_text(kept, "after")
            assert kept.read_text() == "after"  # written outputs can be read back at once
            atomic.make_folder(tmp_path / "made")
            raise RuntimeError("a late failure")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]
    assert kept.read_text() == "before"
    with atomic.all_or_nothing():
        atomic.write_text(kept, "after")
        atomic.write_text(tmp_path / "b.txt", "b")
    assert kept.read_text() == "after" and sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "kept.txt"]


def test_a_file_output_never_replaces_a_folder(tmp_path):
    import pytest

    from statcell_tf import atomic

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npy").write_text("keep me")
    with pytest.raises(IsADirectoryError):
        atomic.write_text(tmp_path / "data", "oops")
    assert (tmp_path / "data" / "x.npy").read_text() == "keep me"


def test_a_full_disk_message_names_the_output_being_written(tmp_path):
    import errno

    from statcell_tf.atomic import atomic_path, writing
    from statcell_tf.cli._errors import user_message

    def short_write():  # numpy's writers report a full disk without a file name
        raise OSError(errno.ENOSPC, "No space left on device")

    for context in (lambda: atomic_path(tmp_path / "out.csv"), lambda: writing(tmp_path / "chunk_00001")):
        try:
            with context():
                short_write()
        except OSError as error:
            message = user_message(error)
        name = "out.csv" if "out.csv" in message else "chunk_00001"
        assert message.startswith(str(tmp_path / name)) and "No space left on device" in message
    assert [p.name for p in tmp_path.iterdir()] == []  # the temporary is gone
