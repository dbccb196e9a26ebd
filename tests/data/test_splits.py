import numpy as np
import pandas as pd
import pytest

from statcell_tf.data.splits import hash_splits, load_splits, save_splits, split_indices
from statcell_tf.errors import UserError


def _metadata(n_groups=200, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 20, n_groups)
    return pd.DataFrame({"group": np.repeat([f"fov{i}" for i in range(n_groups)], sizes)})


def test_grouped_split_no_leakage_fractions_and_determinism(tmp_path):
    metadata = _metadata()
    splits = split_indices(metadata)
    groups = {k: set(metadata["group"].iloc[v]) for k, v in splits.items()}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(v) for v in splits.values()) == len(metadata)
    fractions = np.array([len(splits[k]) for k in ("train", "val", "test")]) / len(metadata)
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.03)
    again = split_indices(metadata.sample(frac=1, random_state=1).sort_index())
    for name in splits:
        np.testing.assert_array_equal(splits[name], again[name])
    other = split_indices(metadata, seed=1)
    assert not np.array_equal(splits["test"], other["test"])
    save_splits(tmp_path / "s.csv", metadata, splits)
    loaded = load_splits(tmp_path / "s.csv", len(metadata))
    for name in splits:
        np.testing.assert_array_equal(splits[name], loaded[name])


def test_few_groups_still_fill_every_split():
    splits = split_indices(pd.DataFrame({"group": list("abcde")}))
    assert all(len(v) for v in splits.values())


def test_bad_group_column_is_user_error():
    with pytest.raises(UserError, match="--group-column 'plate'"):
        split_indices(pd.DataFrame({"group": ["a"]}), "plate")


def test_bbbc021_split_by_plate_and_well_without_leakage(shared_data):
    from statcell_tf.data.bbbc021 import read_bbbc021

    cells = read_bbbc021(shared_data("bbbc021-dmso-cycloheximide"))
    splits = split_indices(cells.metadata, "group")
    wells = {k: set(cells.metadata["group"].iloc[v]) for k, v in splits.items()}
    assert all(wells.values())
    assert not (wells["train"] & wells["val"] or wells["train"] & wells["test"] or wells["val"] & wells["test"])
    # Every crop of a well lies in one split.
    assert sum(len(w) for w in wells.values()) == cells.metadata["group"].nunique()


@pytest.mark.slow
def test_split_does_not_depend_on_python_hash_seed(tmp_path):
    import os
    import subprocess
    import sys

    metadata = _metadata(50)
    metadata.to_csv(tmp_path / "m.csv", index=False)
    code = (
        "import sys, pandas as pd; from statcell_tf.data.splits import split_indices;"
        f"s = split_indices(pd.read_csv(r'{tmp_path / 'm.csv'}'), seed=7);"
        "print(','.join(map(str, s['test'])))"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout.strip())
    assert outputs == {",".join(map(str, split_indices(metadata, seed=7)["test"]))}


def test_load_splits_checks_the_file(tmp_path):
    metadata = _metadata(20)
    save_splits(tmp_path / "s.csv", metadata, split_indices(metadata))
    with pytest.raises(UserError, match=f"records a split of {len(metadata)} images but the data has 5"):
        load_splits(tmp_path / "s.csv", 5)
    pd.DataFrame({"row": [0, 0], "split": ["train", "val"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match="bad.csv: column row must list every image 0..1 once"):
        load_splits(tmp_path / "bad.csv", 2)
    with pytest.raises(UserError, match="missing.csv cannot be read"):
        load_splits(tmp_path / "missing.csv", 2)
    # A split file may leave rows in no split (e.g. a run that uses only train and val).
    save_splits(tmp_path / "tv.csv", metadata, {"train": np.arange(10), "val": np.arange(10, len(metadata))})
    loaded = load_splits(tmp_path / "tv.csv", len(metadata))
    assert len(loaded["test"]) == 0 and len(loaded["val"]) == len(metadata) - 10


def test_hash_splits_depend_only_on_the_own_id():
    groups = [f"cell{i}" for i in range(3000)]
    alone = hash_splits(groups[:100], seed=3)
    among_others = hash_splits(groups[2000:] + groups[:100] + ["new-a", "new-b"], seed=3)
    np.testing.assert_array_equal(alone, among_others[1000:1100])
    everything = hash_splits(groups, seed=3)
    fractions = [np.mean(everything == name) for name in ("train", "val", "test")]
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.03)
    assert not np.array_equal(everything, hash_splits(groups, seed=4))
    assert set(hash_splits(groups[:50], fractions=(1.0, 0.0, 0.0))) == {"train"}
    with pytest.raises(UserError, match="summing to 1"):
        hash_splits(groups, fractions=(0.5, 0.1, 0.1))
