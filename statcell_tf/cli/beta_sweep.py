"""`beta-sweep`: rate–distortion trade-off over β (Fig. 3a, S6)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import (
    commits_progress,
    existing_path,
    out_path,
    precision_option,
    reconstruction_option,
    seed_option,
    strategy_option,
)


@commits_progress
@click.command("beta-sweep")
@click.option("--data", type=existing_path, required=True, help="Allen-style manifest CSV.")
@click.option("--betas", default="0:1:25", show_default=True,
              help="start:stop:count (evenly spaced, ends included) or a comma list.")
@click.option("--model", "role", type=click.Choice(["reference", "target"]), default="reference", show_default=True)
@click.option("--dims", type=click.IntRange(2, 3), default=2, show_default=True)
@click.option("--objective", type=click.Choice(["reparameterised", "classic"]), default="reparameterised",
              show_default=True)
@reconstruction_option
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--learning-rate", type=float, default=2e-4, show_default=True)
@click.option("--preset", type=click.Choice(["paper", "demo", "tiny"]), default="paper", show_default=True)
@click.option("--latent-dim", type=click.IntRange(min=1), default=None)
@click.option("--size", default=None, help="Model image size [the data's size, rounded up].")
@click.option("--background", type=click.Choice(["none", "mode"]), default="none", show_default=True,
              help="none = data already preprocessed (Allen data package); mode = subtract each "
              "channel's most populous intensity first (paper §6.1.2).")
@click.option("--eval-samples", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--out", type=out_path, default=Path("models/statcell/beta-sweep"), show_default=True)
@strategy_option
@precision_option
@seed_option
def command(data, betas, role, dims, objective, reconstruction, epochs, batch_size, learning_rate, preset,
            latent_dim, size, eval_samples, background, out, strategy, precision, seed):
    """Train one model per β (resumable: finished β are skipped, unfinished ones resume),
    keep each at its best validation ELBO and measure the mean rate (KL) and distortion
    (squared error, 10 posterior samples) on the test split. Writes OUT/beta_<β>/ run
    folders, OUT/rate_distortion.csv, rate_distortion.png (Fig. 3a) and kld_by_rank.png (Fig. S6b)."""
    import dataclasses

    from statcell_tf.errors import UserError
    from statcell_tf.statcell.beta_sweep import parse_betas, sweep
    from statcell_tf.statcell.data import default_image_shape
    from statcell_tf.statcell.presets import PRESETS
    from statcell_tf.data.readers import read_cells
    from statcell_tf.statcell.training import StatcellTrainConfig, parse_size
    from statcell_tf.atomic import check_out

    values = parse_betas(betas)
    check_out(out, "--out", inputs=[data])
    cells = read_cells(data)
    sizes = parse_size(size) or list(default_image_shape(cells, dims, len(PRESETS[preset]["filters"])))
    base = StatcellTrainConfig(
        data=str(data), model=role, dims=dims, beta=0.0, objective=objective, preset=preset, size=sizes,
        latent_dim=latent_dim, reconstruction_reduction=reconstruction, eval_samples=eval_samples,
        background=background, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, split_seed=seed, strategy=strategy, precision=precision,
    )
    for beta in values:  # every β is checked before the first one trains
        try:
            dataclasses.replace(base, beta=beta)
        except UserError as error:
            raise UserError(f"--betas {betas}: β = {beta} is not allowed ({error})") from None
    frame = sweep(base, cells, values, out, verbose=0, n_samples=eval_samples, log=click.echo)
    click.echo(frame[["beta", "rate", "distortion", "elbo"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    click.echo(f"Wrote {out / 'rate_distortion.csv'} and {out / 'rate_distortion.png'}")
