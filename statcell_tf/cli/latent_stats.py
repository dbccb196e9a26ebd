"""`latent-stats`: latent-space statistics of a Statistical Cell run (Fig. 2a/b, S1, S3, S6)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path


@click.command("latent-stats")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=existing_path, default=None, help="Manifest [the run's training data].")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=32, show_default=True,
              help="Top-ranked dimensions correlated with features (the paper shows 32).")
@click.option("--color-by", "color_by", default="cell_cycle_phase,cell_area,cell_volume", show_default=True,
              help="Comma list: cell features or metadata columns colouring the pairwise plots "
              "(names absent from this data are skipped); none = uncoloured.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--out", type=out_path, default=None, help="Output folder [RUN/latent_stats].")
def command(run, data, split, top, color_by, batch_size, out):
    """Rank latent dimensions by mean |μ| and write: per-dimension KLD by rank (Fig. S6),
    cell features measured by regionprops, Spearman correlations of the top dimensions
    with them as a clustered heatmap (Fig. S3a), Pearson correlations among the top
    dimensions (Fig. S3d) and pairwise scatters of the top four (Fig. 2a/b, S1)."""
    from statcell_tf.statcell.latent_stats import cell_features, latent_stats
    from statcell_tf.statcell.training import data_for_run, load_run

    model, config, run_dir = load_run(run)
    cells, dataset = data_for_run(config, data)
    rows = run_dir.rows_of(cells, split)
    out = Path(out or run_dir.path / "latent_stats")
    wanted = [c.strip() for c in color_by.split(",") if c.strip()]
    feature_names = set(cell_features(dataset.raw_images(rows[:1]), ("membrane", "dna")).columns) if len(rows) else set()
    usable = [c for c in wanted if c == "none" or c in feature_names or c in cells.metadata.columns]
    skipped = sorted(set(wanted) - set(usable))
    if wanted and not usable:
        from statcell_tf.errors import UserError

        raise UserError(f"--color-by: none of {', '.join(wanted)} is a feature or metadata column; features: "
                        f"{', '.join(sorted(feature_names))}")
    result = latent_stats(model, dataset, rows, out, top=top, colour_by=usable, batch_size=batch_size)
    order = ", ".join(str(int(d)) for d in result["order"][:8])
    note = f" (skipped --color-by {', '.join(skipped)}: not in this data)" if skipped else ""
    click.echo(f"Wrote latent statistics of {len(rows)} {split} cells to {out}; top dimensions: {order}{note}")
