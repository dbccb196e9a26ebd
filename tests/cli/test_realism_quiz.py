import pandas as pd
import pytest
from click.testing import CliRunner

from statcell_tf.cli import cli, run_command
from statcell_tf.cli.realism_quiz import KEY_NAME, score
from statcell_tf.data.synthetic import write_bbbc021
from tests._support.runs import untrained_vaeplus_run


@pytest.mark.slow
def test_quiz_is_balanced_anonymous_and_keyed(tmp_path):
    data = write_bbbc021(tmp_path / "data", cells_per_well=4)
    run = untrained_vaeplus_run(tmp_path / "run")
    quiz = tmp_path / "quiz"
    result = CliRunner().invoke(cli, ["realism-quiz", str(run), "--data", str(data), "-n", "4", "--out", str(quiz)])
    assert result.exit_code == 0, result.output
    images = sorted(p.name for p in (quiz / "images").iterdir())
    assert images == [f"image_{i}.png" for i in range(1, 9)]  # anonymous: no cell or compound in the name
    key = pd.read_csv(quiz / KEY_NAME)
    assert sorted(key["image"]) == images and key["cell"].is_unique
    assert (key["truth"] == "real").sum() == 4 and (key["truth"] == "reconstructed").sum() == 4
    # 8 cells over 3 treatments (DMSO has twice the cells of each drug): round-robin gives 3, 3, 2
    assert sorted(key.groupby(["compound", "concentration"]).size().tolist()) == [2, 3, 3]
    template = pd.read_csv(quiz / "answers.csv")
    assert list(template.columns) == ["image", "rater_1"] and sorted(template["image"]) == images
    assert not (quiz / "images" / KEY_NAME).exists()


def test_score_counts_reconstructions_passing_as_real(tmp_path, capsys):
    key = pd.DataFrame({"image": ["i1.png", "i2.png", "i3.png", "i4.png"],
                        "truth": ["real", "reconstructed", "reconstructed", "real"]})
    answers = pd.DataFrame({"image": ["i4.png", "i3.png", "i2.png", "i1.png"],
                            "alice": ["real", "real", "synthetic", "real"],  # fooled once
                            "bob": ["Synthetic", "R", "real", "fake"]})
    table = score(answers, key).set_index("rater")
    assert table.loc["alice", "reconstructions_called_real"] == 0.5
    assert table.loc["alice", "real_called_real"] == 1.0 and table.loc["alice", "accuracy"] == 0.75
    assert table.loc["bob", "reconstructions_called_real"] == 1.0 and table.loc["bob", "real_called_real"] == 0.0
    assert table.loc["mean", "reconstructions_called_real"] == 0.75

    quiz = tmp_path / "quiz"
    quiz.mkdir()
    key.to_csv(quiz / KEY_NAME, index=False)
    answers.to_csv(tmp_path / "answers.csv", index=False)
    assert run_command("realism-quiz", ["--score", str(tmp_path / "answers.csv"), "--out", str(quiz)]) == 0
    assert "alice: reconstructions called real 50.0%" in capsys.readouterr().out
    assert pd.read_csv(quiz / "score.csv")["rater"].tolist() == ["alice", "bob", "mean"]
    answers.iloc[:3].to_csv(tmp_path / "partial.csv", index=False)
    assert run_command("realism-quiz", ["--score", str(tmp_path / "partial.csv"), "--out", str(quiz)]) == 2
    assert "must answer every quiz image exactly once" in capsys.readouterr().err
    answers.assign(alice="maybe").to_csv(tmp_path / "odd.csv", index=False)
    assert run_command("realism-quiz", ["--score", str(tmp_path / "odd.csv"), "--out", str(quiz)]) == 2
    assert "write 'real' or 'synthetic'" in capsys.readouterr().err
    assert run_command("realism-quiz", ["--out", str(quiz)]) == 2
