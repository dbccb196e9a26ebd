"""Every trainer refuses a non-finite or out-of-range learning rate with one line naming the
flag, exit status 2, before anything is written (it used to train, print a best model that did
not exist and export a SavedModel that output NaN)."""

import pytest

from statcell_tf.cli import run_command

TRAINERS = {
    "train-cytoself": ["--preset", "demo"],
    "train-statcell": ["--model", "reference", "--beta", "0.5", "--preset", "tiny"],
    "train-integrated-cell": ["--stage", "reference"],
    "train-vaeplus": [],
}


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "0"])
@pytest.mark.parametrize("command", list(TRAINERS))
def test_bad_learning_rate_stops_before_anything_is_written(tmp_path, capsys, command, value):
    data = tmp_path / "data.csv" if command in ("train-statcell", "train-integrated-cell") else tmp_path / "data"
    data.mkdir() if data.suffix == "" else data.write_text("CellId\n")
    out = tmp_path / "run"
    code = run_command(command, ["--data", str(data), *TRAINERS[command], "--learning-rate", value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "--learning-rate" in lines[0] and "Traceback" not in err, err
    assert not out.exists()
