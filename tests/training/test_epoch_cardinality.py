"""Every trainer hands the runtime datasets of known length (progress bars show steps and an
ETA, not "1/Unknown"): the four recipes are run up to `trainer.fit`, which is replaced by a
probe that records the cardinality of epoch 1's training data and of the validation data."""

import pytest

from statcell_tf.cli import run_command
from statcell_tf.data.synthetic import write_bbbc021
from statcell_tf.training import trainer


class _Stop(Exception):
    pass


def _data(command, root):
    from statcell_tf.data.synthetic import write_allencell, write_opencell

    if command == "train-cytoself":
        return write_opencell(root / "data", n_families=2, proteins_per_family=2, cells_per_protein=10, seed=0)
    if command == "train-vaeplus":
        return write_bbbc021(root / "data")
    write_allencell(root / "data", n_families=3, cells_per_structure=8, dims=2, size=(16, 16),
                    mitotic_fraction=0.0, seed=0)
    return root / "data" / "manifest.csv"


FLAGS = {
    "train-cytoself": [["--preset", "demo"], ["--preset", "demo", "--steps-per-epoch", "3"],
                       ["--preset", "demo", "--shuffle", "block"]],
    "train-statcell": [["--model", "reference", "--beta", "0.5", "--preset", "tiny", "--batch-size", "4"]],
    "train-integrated-cell": [["--stage", "reference", "--batch-size", "4"],
                              ["--stage", "reference", "--batch-size", "4", "--steps-per-epoch", "3"],
                              ["--stage", "reference", "--batch-size", "4", "--steps-per-epoch", "3", "--shuffle", "block"]],
    "train-vaeplus": [["--iterations", "8", "--batch-size", "2", "--steps-per-epoch", "4"]],
}


@pytest.mark.slow
@pytest.mark.parametrize("command,flags", [(c, f) for c, many in FLAGS.items() for f in many])
def test_every_epoch_has_a_known_number_of_steps(tmp_path, monkeypatch, command, flags):
    seen = {}

    def probe(model, train_data, val_data, *args, **kwargs):
        for epoch in (1, 2):
            data = train_data(epoch) if callable(train_data) else train_data
            seen[f"train{epoch}"] = int(data.cardinality())
            if "block" in flags and epoch == 1:  # the block-shuffled epoch yields what it announces
                assert sum(1 for _ in data) == seen["train1"]
        seen["val"] = None if val_data is None else int(val_data.cardinality())
        raise _Stop

    monkeypatch.setattr(trainer, "fit", probe)
    data = _data(command, tmp_path)
    with pytest.raises(_Stop):
        run_command(command, ["--data", str(data), *flags, "--out", str(tmp_path / "run")])
    assert seen["train1"] > 0 and seen["train2"] > 0, seen
    if "--steps-per-epoch" in flags:
        assert seen["train1"] == int(flags[flags.index("--steps-per-epoch") + 1])
    assert seen["val"] is None or seen["val"] > 0, seen
