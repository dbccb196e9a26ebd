"""`generate-cells`: sample new cells from a trained reference model (Fig. 4a)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import out_path, seed_option


@click.command("generate-cells")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "count", type=click.IntRange(min=1), default=7, show_default=True, help="Cells to generate.")
@click.option("--real", "n_real", type=click.IntRange(min=0), default=3, show_default=True,
              help="Real test cells shown beside them (when the run's data is readable).")
@click.option("--out", type=out_path, default=None, help="Output folder [RUN/generated].")
@seed_option
def command(run, count, n_real, out, seed):
    """Decode N draws z ~ N(0, I) of the reference model in RUN into membrane + DNA images.

    Writes generated.tiff (N × C × [Z ×] Y × X, float) and generated.png (real test cells
    on the first row when the training data is available, generated cells below).
    """
    import numpy as np

    from statcell_tf import atomic
    from statcell_tf.statcell.latent_stats import image_grid_figure
    from statcell_tf.backend import keras
    from statcell_tf.errors import UserError
    from statcell_tf.statcell.training import data_for_run, load_run, write_tiff

    model, config, run_dir = load_run(run)
    if config.model != "reference":
        raise UserError(f"RUN {run} is a target run; generate-cells samples reference runs "
                        "(use impute-structures for structures)")
    out = Path(out or run_dir.path / "generated")
    images = np.asarray(model.sample_prior(count, seed=keras.random.SeedGenerator(seed)))
    write_tiff(out / "generated.tiff", images)
    rows, labels = [list(images)], ["generated"]
    if n_real and config.data and Path(config.data).exists():
        cells, data = data_for_run(config)
        test = run_dir.rows_of(cells, "test")[:n_real]
        if len(test):
            rows.insert(0, list(data.batch(test)["image"]))
            labels.insert(0, "real (test)")
    atomic.save_figure(out / "generated.png", image_grid_figure(rows, row_labels=labels,
                                                                 title="cells sampled from the prior (Fig. 4a)"))
    click.echo(f"Wrote {count} generated cells to {out}")
