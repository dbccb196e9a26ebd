"""File names made from user strings (`statcell_tf.naming.file_stem`)."""

from statcell_tf.naming import file_stem


def test_readable_names_are_kept_in_any_script():
    for name in ("ER_1", "α-TUB", "β-TUB", "NA", "sec61b.v2", "ENSG00000100000"):
        assert file_stem(name) == name


def test_unsafe_names_stay_distinct_and_readable():
    names = ["a/b", "a b", "a_b", "a:b", "Control - DNA", "..", "", ".hidden", "x."]
    stems = [file_stem(n) for n in names]
    assert len(set(stems)) == len(stems)  # no two names share a file
    assert stems[0].startswith("a_b-") and stems[2] == "a_b"
    assert stems[4].startswith("Control_-_DNA-")
    for stem in stems:
        assert "/" not in stem and not stem.startswith(".") and stem
    assert file_stem("a/b") == file_stem("a/b")  # stable across calls and runs
