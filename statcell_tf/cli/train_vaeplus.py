"""`train-vaeplus`: train VAE+, or its VAE / AE baselines, on single-cell crops (Lafarge et al. 2019).

The training itself lives in `statcell_tf.vaeplus.training`.
"""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import commits_progress, existing_dir, out_path, precision_option, seed_option, strategy_option
from statcell_tf.cli._settings import config_option, resolve_settings
from statcell_tf.vaeplus.training import PAPER_BATCH_SIZE, SAMPLINGS


@commits_progress
@click.command()
@click.option("--data", required=True, type=existing_dir, help="Folder of 68×68 single-cell crops (BBBC021 layout).")
@click.option("--variant", type=click.Choice(["vaeplus", "vae", "ae"]), default="vaeplus", show_default=True,
              help="vaeplus: β=2 + progressive discriminator losses; vae: β=1; ae: β=0.")
@click.option("--iterations", type=click.IntRange(1), default=40000, show_default=True, help="Training iterations (paper: 40,000).")
@click.option("--batch-size", type=click.IntRange(1), default=PAPER_BATCH_SIZE, show_default=True,
              help="Size of each minibatch B1 and B2 (authors' code: 104, one crop per treatment).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Iterations per log/checkpoint/figure; must divide --iterations [default: largest divisor <= 1000].")
@click.option("--sampling", type=click.Choice(SAMPLINGS), default="treatment", show_default=True,
              help="treatment: every treatment equally likely (paper); uniform: every crop equally likely.")
@click.option("--schedule-period", type=click.FloatRange(0, min_open=True), default=2500.0, show_default=True,
              help="T of γ_i(t) = min(1, max(0, t/T − i)): iterations between discriminator layers.")
@click.option("--feature-reduction", type=click.Choice(["scaled_mean", "sum"]), default="scaled_mean",
              show_default=True,
              help="Discriminator-feature loss L_i^D per image: scaled_mean = 0.5·(68·68·C)·mean over the layer "
                   "(the authors' code), sum = 0.5·Σ over the layer (the paper's formula).")
@click.option("--latent-dim", type=click.IntRange(1), default=256, show_default=True, help="Embedding size.")
@click.option("--filters", type=click.IntRange(1), default=32, show_default=True, help="Channels of every conv layer.")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Fraction of wells held out to log validation terms (0: none).")
@click.option("--out", type=out_path, default=None, help="Run folder [default: models/vaeplus/<variant>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--preset", type=click.Choice(["paper", "demo"]), default="paper", show_default=True,
              help="paper = Sect. 4 (40,000 iterations of 104, 256-d embedding); demo = 600 iterations of 32, "
              "64-d, γ period 100: minutes on 2 CPU cores.")
@config_option
@strategy_option
@precision_option
@seed_option
@click.pass_context
def command(ctx, data, variant, iterations, batch_size, steps_per_epoch, sampling, schedule_period, feature_reduction,
            latent_dim, filters, validation_fraction, out, resume, quiet, preset, config_file, strategy, precision, seed):
    """Train VAE+ (or the VAE / AE baseline) on single-cell crops.

    Every iteration draws two independent minibatches: B1 is auto-encoded, B2 (real crops)
    is paired with B1's reconstructions to train the discriminator. Crops are normalised
    per image and channel by their maximum. The run folder receives config.json,
    checkpoints/, best.keras (the newest model), history.csv (every loss term, γ_i and the
    discriminator's accuracy), tensorboard/, figures/reconstructions*.png and saved_model/
    (endpoints encode = posterior means, decode, reconstruct).
    """
    from statcell_tf.vaeplus.paper import PAPER
    from statcell_tf.vaeplus.presets import PRESETS
    from statcell_tf.vaeplus.training import VAEPlusTrainConfig

    values = dict(
        data=str(data), variant=variant, iterations=iterations, batch_size=batch_size,
        steps_per_epoch=steps_per_epoch, sampling=sampling, validation_fraction=validation_fraction,
        latent_dim=latent_dim, filters=filters, schedule_period=schedule_period,
        feature_reduction=feature_reduction, seed=seed, strategy=strategy, precision=precision, preset=preset,
    )
    config = resolve_settings(ctx, VAEPlusTrainConfig, values, PRESETS, config_file=config_file)
    variant = config.variant
    out = out or Path("models") / "vaeplus" / variant
    history = PAPER.train(config, out, resume=resume, verbose=0 if quiet else 1).history
    last = history.iloc[-1]
    shown = ", ".join(f"{k}={last[k]:.4g}" for k in ("loss", "mse", "kl", "d_accuracy", "val_mse") if k in history)
    click.echo(f"Trained {variant} for {int(last['step'])} iterations ({shown}); run in {out}")

