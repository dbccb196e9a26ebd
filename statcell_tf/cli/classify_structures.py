"""`classify-structures`: structure classification by a conditional Integrated Cell (Table S9)."""

from __future__ import annotations

import click

from statcell_tf.cli._options import existing_dir, existing_path, out_path
from statcell_tf.errors import UserError


@click.command()
@click.argument("run", type=existing_dir)
@click.option("--data", required=True, type=existing_path, help="Allen Cell manifest CSV.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True, help="Cells of RUN/splits.csv to classify (all = every cell of --data).")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--out", type=out_path, default=None, help="Output folder [default: RUN/classification].")
def command(run, data, split, batch_size, out):
    """Classify the labelled structure of held-out cells with RUN's conditional encoder (ŷ).

    Writes confusion_matrix.csv (rows true, columns predicted) and .png, per_class_accuracy.csv,
    predictions.csv (CellId, true and predicted structure, probability) and summary.json
    (accuracy, chance level, number of cells). Cells of structures the model was not trained
    on are skipped.
    """
    import numpy as np
    import pandas as pd

    from statcell_tf import atomic
    from statcell_tf.integrated_cell import analysis
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import classify_cells, load_model, read_data
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, paper="integrated_cell")
    cells = read_data(data)
    rows = run_dir.rows_of(cells, split)  # the run's split of its own data, checked before loading
    model = load_model(run_dir, "conditional")
    names = model.class_names or [str(k) for k in range(model.num_classes)]
    view = icd.model_view(cells, model.image_size, names)
    labels = view.metadata[icd.LABEL_COLUMN].to_numpy()[rows]
    unknown = int((labels < 0).sum())
    rows, labels = rows[labels >= 0], labels[labels >= 0]
    if len(rows) == 0:
        raise UserError(f"--data {data}: none of the {split} cells has a structure the model knows ({', '.join(names)})")
    if unknown:
        click.echo(f"Skipping {unknown} cells of structures the model was not trained on.", err=True)
    click.echo(f"Classifying {len(rows)} {split} cells...", err=True)
    probabilities, predicted = classify_cells(model, view, rows, batch_size)
    matrix = analysis.confusion_matrix(labels, predicted, len(names))
    out = out or run_dir.path / "classification"
    atomic.write_csv(out / "confusion_matrix.csv", analysis.confusion_frame(matrix, names), index=True)
    per_class = analysis.per_class_accuracy(matrix, names)
    atomic.write_csv(out / "per_class_accuracy.csv", per_class)
    metadata = view.metadata.iloc[rows]
    predictions = pd.DataFrame({
        icd.ID_COLUMN: metadata[icd.ID_COLUMN].to_numpy(),
        "structure_name": [names[k] for k in labels],
        "predicted": [names[k] for k in predicted],
        "probability": probabilities[np.arange(len(rows)), predicted],
        "probability_true": probabilities[np.arange(len(rows)), labels],
    })
    atomic.write_csv(out / "predictions.csv", predictions)
    accuracy = float(np.mean(predicted == labels))
    counts = np.bincount(labels, minlength=len(names))
    summary = {
        "run": str(run_dir.path), "data": str(data), "split": split, "cells": int(len(rows)),
        "accuracy": accuracy, "balanced_accuracy": float(np.nanmean(per_class["accuracy"])),
        "chance_uniform": 1.0 / len(names), "chance_majority": float(counts.max() / counts.sum()),
        "skipped_unknown_structures": unknown,
    }
    atomic.write_json(out / "summary.json", summary)
    figure = analysis.plot_confusion(matrix, names, title=f"{split} cells: accuracy {accuracy:.1%} (n={len(rows)})")
    atomic.save_figure(out / "confusion_matrix.png", figure)
    click.echo(per_class.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"accuracy {accuracy:.3f} on {len(rows)} {split} cells (chance {1 / len(names):.3f}); wrote {out}")
