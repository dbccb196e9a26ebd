"""`train-integrated-cell`: train one stage of the Integrated Cell (Johnson et al. 2017)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import (
    commits_progress,
    existing_dir,
    existing_path,
    out_path,
    precision_option,
    seed_option,
    strategy_option,
)
from statcell_tf.cli._settings import config_option, resolve_settings
from statcell_tf.errors import UserError


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"256"`` → (256, 256); ``"128x96"`` → (128, 96)."""
    if text is None:
        return None
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 8:
        raise UserError(f"--size must be N or HxW with sides >= 8 (e.g. 256 or 128x96). Received: {text!r}")
    return values


@commits_progress
@click.command()
@click.option("--data", required=True, type=existing_path, help="Allen Cell manifest CSV (CellId, structure_name, path, channel columns).")
@click.option("--stage", required=True, type=click.Choice(["reference", "conditional"]), help="reference = cell+nuclear shape model (Algorithm 1); conditional = structure model (Algorithm 2).")
@click.option("--reference-run", type=existing_dir, default=None, help="Reference-stage run folder (required with --stage conditional).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs [default: 150 reference, 220 conditional, as the paper].")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Global batch size (split over the replicas).")
@click.option("--size", default=None, help="Image size N or HxW [default: 256; conditional: the reference run's].")
@click.option("--filters", type=click.IntRange(1), default=64, show_default=True, help="Width: filters of the first conv (paper 64).")
@click.option("--latent-dim", type=click.IntRange(1), default=16, show_default=True, help="|z_r| (reference) or |z_s| (conditional).")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True, help="Adam learning rate of every network.")
@click.option("--gamma-enc", type=click.FloatRange(0), default=1e-4, show_default=True, help="γ_Enc: weight of the latent adversarial term.")
@click.option("--gamma-dec", type=click.FloatRange(0), default=1e-5, show_default=True, help="γ_Dec: weight of the image adversarial term.")
@click.option("--decoder-condition", type=click.Choice(["softmax", "one_hot"]), default="softmax", show_default=True, help="What the conditional decoder gets for y in training: the encoder's ŷ (paper) or the true label.")
@click.option("--output-batchnorm/--no-output-batchnorm", default=True, show_default=True, help="BN before the decoders' sigmoid (paper tables) or not (authors' code).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None, help="Steps per epoch [default: one pass over the training cells].")
@click.option("--out", type=out_path, default=None, help="Run folder [default: models/integrated_cell/<stage>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--preset", type=click.Choice(["paper", "demo"]), default="paper", show_default=True,
              help="paper = section 3.3 (256 px, 64 filters, 150/220 epochs); demo = 64 px, 16 filters, 5 epochs.")
@config_option
@strategy_option
@precision_option
@seed_option
@click.pass_context
def command(ctx, data, stage, reference_run, epochs, batch_size, size, filters, latent_dim, learning_rate, gamma_enc,
            gamma_dec, decoder_condition, output_batchnorm, steps_per_epoch, out, resume, quiet, preset, config_file,
            strategy, precision, seed):
    """Train the reference (membrane + DNA) or conditional (structure) stage of the Integrated Cell.

    Cells are split 80/10/10 by CellId (RUN/splits.csv). The run folder receives config.json,
    checkpoints/, best.keras (lowest validation loss), history.csv (every loss term of every
    network), tensorboard/, figures/reconstructions.png and saved_model/ (conditional stage:
    endpoints encode, classify, integrate). Train the reference stage first, then
    `--stage conditional --reference-run RUN`.
    """
    from statcell_tf.integrated_cell.paper import PAPER
    from statcell_tf.integrated_cell.presets import presets
    from statcell_tf.integrated_cell.training import IntegratedCellSettings

    if stage == "conditional" and reference_run is None:
        raise click.UsageError("--stage conditional needs --reference-run RUN")
    if stage == "reference" and reference_run is not None:
        raise click.UsageError("--reference-run is only for --stage conditional")
    image_size = parse_size(size)
    if image_size is not None and stage == "conditional":
        from statcell_tf.training.run_dir import open_run

        saved = open_run(reference_run, flag="--reference-run", paper="integrated_cell").read_config()["settings"]
        if list(saved.get("image_size", [])) != list(image_size):
            raise UserError(
                f"--size {size} differs from the reference run's image size {saved.get('image_size')}; "
                f"the conditional stage uses the reference model's size. Received: --size {size}"
            )
    values = dict(
        stage=stage, data=str(data), reference_run=str(reference_run) if reference_run else None, epochs=epochs,
        batch_size=batch_size, image_size=image_size, filters=filters, latent_dim=latent_dim,
        learning_rate=learning_rate, gamma_enc=gamma_enc, gamma_dec=gamma_dec, decoder_condition=decoder_condition,
        output_batchnorm=output_batchnorm, steps_per_epoch=steps_per_epoch, seed=seed, strategy=strategy,
        precision=precision, preset=preset,
    )
    settings = resolve_settings(ctx, IntegratedCellSettings, values, presets(stage), config_file=config_file)
    out = out or Path("models") / "integrated_cell" / stage
    history = PAPER.train(settings, out, resume=resume, verbose=0 if quiet else 1).history
    last = history.iloc[-1]
    shown = ", ".join(f"{k}={last[k]:.4g}" for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in history)
    click.echo(f"Trained {stage} stage for {int(last['epoch'])} epochs ({shown}); run in {out}")
