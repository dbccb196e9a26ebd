import numpy as np
import pandas as pd
from click.testing import CliRunner

from statcell_tf.atomic import write_json
from statcell_tf.cli import cli, run_command
from statcell_tf.cli.realism_quiz import KEY_NAME, score


def write_bbbc021(root, cells_per_well=3, size=68, seed=0):
    """A tiny folder in the BBBC021 crops layout (metadata.csv + crops/<moa>/<file>.npy)."""
    rng = np.random.default_rng(seed)
    wells = [("Week1_101", "B02", "DMSO", 0.0, "DMSO"), ("Week1_101", "C03", "taxol", 0.3, "Microtubule stabilizers"),
             ("Week2_201", "B02", "DMSO", 0.0, "DMSO"), ("Week2_201", "D04", "nocodazole", 1.0, "Microtubule destabilizers")]
    rows = []
    yy, xx = np.mgrid[:size, :size]
    for plate, well, compound, concentration, moa in wells:
        folder = root / "crops" / moa.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(cells_per_well):
            cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [rng.uniform(size * 0.1, size * 0.25)]
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            image = np.stack([blob * (3000 + 1000 * c) + rng.uniform(300, 500, blob.shape) for c in range(3)], -1)
            name = f"{well}_s1_w1{plate[-3:]}ABC_{i}.npy"
            np.save(folder / name, image.astype(np.uint16))
            rows.append({"file": name, "source_image_dapi": name.rsplit("_", 1)[0] + ".tif", "cell_index": i,
                         "plate": plate, "well": well, "site": "s1", "replicate": 1, "compound": compound,
                         "concentration": concentration, "moa": moa})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def untrained_run(path):
    """A run folder holding the SavedModel of an untrained tiny VAE+ (endpoints only matter here)."""
    from statcell_tf.vaeplus.model import VAEPlus
    from statcell_tf.training import export

    write_json(path / "config.json", {"variant": "vaeplus"})
    export.export_saved_model(VAEPlus("vaeplus", latent_dim=5, filters=2, discriminator_filters=2, seed=0),
                              path / "saved_model")
    return path


def test_quiz_is_balanced_anonymous_and_keyed(tmp_path):
    data = write_bbbc021(tmp_path / "data", cells_per_well=4)
    run = untrained_run(tmp_path / "run")
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
