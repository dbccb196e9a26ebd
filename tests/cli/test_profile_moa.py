from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from statcell_tf.atomic import write_json
from statcell_tf.cli import cli, run_command


def _cells(tmp_path: Path, unreferenced: bool = False) -> Path:
    """A cell embedding CSV: 2 MoAs × 2 compounds (one per week), DMSO on every plate."""
    rng = np.random.default_rng(0)
    design = [("a1", "x", "Week1"), ("a2", "x", "Week2"), ("b1", "y", "Week1"), ("b2", "y", "Week2")]
    if unreferenced:  # MoA z: both compounds in Week1 -> no NSCB reference
        design += [("c1", "z", "Week1"), ("c2", "z", "Week1")]
    centres = {"x": [4.0, 0, 0], "y": [0, 4.0, 0], "z": [0, 0, 4.0]}
    rows = []
    for plate in ("Week1_11", "Week2_21"):
        week = plate.split("_")[0]
        wells = [("DMSO", 0.0, "DMSO", [0.0, 0, 0])] * 2 + [(c, 1.0, m, centres[m]) for c, m, w in design if w == week]
        for w, (compound, concentration, moa, centre) in enumerate(wells):
            for z in np.asarray(centre) + rng.normal(size=(20, 3)):
                rows.append({"plate": plate, "well": f"A{w:02d}", "compound": compound, "concentration": concentration,
                             "moa": moa, "z_0": z[0], "z_1": z[1], "z_2": z[2]})
    path = tmp_path / "cells.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_profile_moa_from_an_embedding_table(tmp_path):
    out = tmp_path / "profiles"
    result = CliRunner().invoke(cli, ["profile-moa", "--embeddings", str(_cells(tmp_path)), "--out", str(out),
                                      "--name", "toy"])
    assert result.exit_code == 0, result.output
    accuracy = pd.read_csv(out / "accuracy.csv")
    assert list(accuracy["holdout"]) == ["NSC", "NSCB"]
    assert (accuracy[["Mean", "Mean+Whitened", "Mean+S.D.", "Mean+S.D.+Whitened"]] == 100.0).all().all()
    markdown = (out / "accuracy.md").read_text()
    assert "| Hold-out | Method | Mean | Mean+Whitened | Mean+S.D. | Mean+S.D.+Whitened |" in markdown
    assert "| NSCB | toy | 100.0 |" in markdown
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 4 * 2 * 4  # treatments × hold-outs × summaries
    assert (predictions["compound"] != predictions["neighbor_compound"]).all()


def test_profile_moa_refuses_unreferenced_classes_unless_asked(tmp_path, capsys):
    table = _cells(tmp_path, unreferenced=True)
    runner = CliRunner()
    assert run_command("profile-moa", ["--embeddings", str(table), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: the NSCB hold-out leaves MoA class(es) 'z'") and err.count("\n") == 1
    assert "--drop-unreferenced" in err
    result = runner.invoke(cli, ["profile-moa", "--embeddings", str(table), "--out", str(tmp_path / "b"),
                                 "--drop-unreferenced"])
    assert result.exit_code == 0, result.output
    accuracy = pd.read_csv(tmp_path / "b" / "accuracy.csv").set_index("holdout")
    assert accuracy.loc["NSC", "treatments"] == 6 and accuracy.loc["NSCB", "treatments"] == 4
    assert accuracy.loc["NSCB", "dropped_classes"] == "z"


def test_profile_moa_flag_errors(tmp_path, capsys):
    runner = CliRunner()
    table = _cells(tmp_path)
    both = runner.invoke(cli, ["profile-moa", "--embeddings", str(table), "--run", str(tmp_path), "--out", "x"])
    assert both.exit_code == 2 and "either --embeddings FILE or --run RUN" in both.output
    neither = runner.invoke(cli, ["profile-moa", "--out", "x"])
    assert neither.exit_code == 2
    capsys.readouterr()
    assert run_command("profile-moa", ["--embeddings", str(table), "--out", str(tmp_path / "c"),
                                       "--control", "vehicle"]) == 2
    assert "no control cells (compound == 'vehicle')" in capsys.readouterr().err
    pd.read_csv(table).drop(columns="moa").to_csv(tmp_path / "nomoa.csv", index=False)
    assert run_command("profile-moa", ["--embeddings", str(tmp_path / "nomoa.csv"), "--out", str(tmp_path / "d")]) == 2
    assert "lacks metadata column(s) moa" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def write_bbbc021(root, wells, cells_per_well=3, size=68, seed=0):
    """A tiny folder in the BBBC021 crops layout (metadata.csv + crops/<moa>/<file>.npy)."""
    rng = np.random.default_rng(seed)
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


def test_profile_moa_embeds_crops_with_a_run(tmp_path):
    from statcell_tf.models.vaeplus import VAEPlus
    from statcell_tf.training import export

    run = tmp_path / "run"
    write_json(run / "config.json", {"variant": "vae"})
    export.export_saved_model(VAEPlus("vae", latent_dim=3, filters=2, seed=0), run / "saved_model")
    wells = [("Week1_1", "A01", "DMSO", 0.0, "DMSO"), ("Week1_1", "A02", "a1", 1.0, "x"),
             ("Week1_1", "A03", "b1", 1.0, "y"), ("Week2_1", "A01", "DMSO", 0.0, "DMSO"),
             ("Week2_1", "A02", "a2", 1.0, "x"), ("Week2_1", "A03", "b2", 1.0, "y")]
    data = write_bbbc021(tmp_path / "data", wells, cells_per_well=4)
    out = tmp_path / "profiles"
    result = CliRunner().invoke(cli, ["profile-moa", "--run", str(run), "--data", str(data), "--out", str(out),
                                      "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    from statcell_tf.analysis import profiling

    cells = profiling.read_embedding_table(out / "embeddings.h5")
    assert len(cells) == 24 and profiling.feature_columns(cells) == ["z_0", "z_1", "z_2"]
    assert set(cells["compound"]) == {"DMSO", "a1", "a2", "b1", "b2"}
    accuracy = pd.read_csv(out / "accuracy.csv")
    assert accuracy["method"].tolist() == ["run", "run"] and (accuracy["treatments"] == 4).all()
