"""`latent-walk`: decode walks along the top latent dimensions (Fig. 2c/d, S2)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path


@click.command("latent-walk")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dims", default="top:4", show_default=True,
              help="top:K (ranked by mean |μ| over the cells) or a comma list of dimension indices.")
@click.option("--steps", type=click.IntRange(min=2), default=9, show_default=True)
@click.option("--span", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Walk from −span to +span standard deviations of the dimension.")
@click.option("--data", type=existing_path, default=None, help="Manifest [the run's training data].")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True,
              help="Cells that rank the dimensions and set their spread.")
@click.option("--cell", "cell_id", default=None,
              help="Target runs: CellId whose membrane, DNA and structure type condition the walk "
              "[the first cell of the split].")
@click.option("--out", type=out_path, default=None, help="Output folder [RUN/latent_walk].")
def command(run, dims, steps, span, data, split, cell_id, out):
    """Walk the top latent dimensions of RUN: all other dimensions 0, the walked one in
    STEPS steps from −SPAN to +SPAN SD. Writes latent_walk.png, latent_walk.tiff
    (dims·steps × C × [Z ×] Y × X) and latent_walk.csv (dimension, rank score, SD, offsets)."""
    import numpy as np
    import pandas as pd

    from statcell_tf import atomic
    from statcell_tf.statcell.latent_stats import (
        embed,
        image_grid_figure,
        latent_walk,
        parse_dims,
        parse_dims_spec,
        rank_dimensions,
    )
    from statcell_tf.errors import UserError
    from statcell_tf.statcell.training import data_for_run, load_run, write_tiff

    parse_dims_spec(dims)  # a typo in --dims stops before the model loads
    model, config, run_dir = load_run(run)
    cells, dataset = data_for_run(config, data)
    rows = run_dir.rows_of(cells, split)
    if len(rows) < 2:
        raise UserError(f"--split {split} has {len(rows)} cells; at least 2 are needed to rank dimensions")
    mu, _ = embed(model, dataset, rows, config.batch_size)
    chosen = parse_dims(dims, mu)
    condition = None
    if config.model == "target":
        if cell_id is not None:
            hits = np.flatnonzero(cells.metadata["CellId"].astype(str).to_numpy() == str(cell_id))
            if not len(hits):
                raise UserError(f"--cell {cell_id} is not in the data")
            condition = dataset.batch(hits[:1])
        else:
            condition = dataset.batch(rows[:1])
    images, offsets = latent_walk(model, mu, chosen, steps, span, condition)
    out = Path(out or run_dir.path / "latent_walk")
    order, score = rank_dimensions(mu)
    rank_of = {int(d): i + 1 for i, d in enumerate(order)}
    table = pd.DataFrame({
        "dimension": chosen,
        "rank": [rank_of[d] for d in chosen],
        "mean_abs_mu": [float(np.mean(np.abs(mu[:, d]))) for d in chosen],
        "sd": [float(np.std(mu[:, d])) for d in chosen],
        "offsets": [" ".join(f"{v:.4g}" for v in row) for row in offsets],
    })
    atomic.write_csv(out / "latent_walk.csv", table)
    write_tiff(out / "latent_walk.tiff", images.reshape(-1, *images.shape[2:]))
    shown = images
    if config.model == "target":  # show the conditioning membrane + DNA with the walked structure
        reference = condition["reference"][:1]
        reference = np.broadcast_to(reference[None], (*images.shape[:2], *reference.shape[1:]))
        shown = np.concatenate([reference, images], axis=-1)
    columns = [f"{v:+.1f} SD" for v in np.linspace(-span, span, steps)]
    figure = image_grid_figure(list(shown), [f"mu_{d}" for d in chosen], columns,
                               title=f"latent walks, {split} cells (Fig. 2c, S2)")
    atomic.save_figure(out / "latent_walk.png", figure)
    click.echo(f"Wrote walks along dimensions {', '.join(map(str, chosen))} to {out}")
