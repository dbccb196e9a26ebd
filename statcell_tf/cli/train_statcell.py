"""`train-statcell`: train a Statistical Cell reference (M_R) or target (M_T) model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from statcell_tf.cli._settings import config_option, resolve_settings
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
@click.command("train-statcell")
@click.option("--data", "data", type=existing_path, required=True, help="Allen-style manifest CSV.")
@click.option("--model", "role", type=click.Choice(["reference", "target"]), required=True,
              help="reference = membrane + DNA (M_R); target = structure | reference, type (M_T).")
@click.option("--dims", type=click.IntRange(2, 3), default=2, show_default=True,
              help="2D (3D data is max-projected along z) or 3D.")
@click.option("--beta", type=float, required=True, help="β of the objective (Eq. 3: in [0, 1]).")
@click.option("--objective", type=click.Choice(["reparameterised", "classic"]), default="reparameterised",
              show_default=True, help="Eq. 3 (1−β)·D + β·R, or the classic D + β·R.")
@reconstruction_option
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True, help="Paper: 300.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Global batch size (split over the replicas).")
@click.option("--learning-rate", type=float, default=2e-4, show_default=True, help="Adam (0.9, 0.999).")
@click.option("--preset", type=click.Choice(["paper", "demo", "tiny"]), default="paper", show_default=True,
              help="Channel widths and latent size: paper = Table 3 (32…512, latent 512).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=None, help="Override the preset's latent size.")
@click.option("--size", default=None,
              help="Model image size, e.g. 128x96 or 64x128x96 (Z×Y×X). Default: the data's size "
              "rounded up to a multiple of 2^depth.")
@click.option("--background", type=click.Choice(["none", "mode"]), default="none", show_default=True,
              help="none = data already preprocessed (Allen data package); mode = subtract each "
              "channel's most populous intensity first (paper §6.1.2).")
@click.option("--eval-samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="Posterior samples of the validation ELBO.")
@click.option("--reference-run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Target model: the reference run it pairs with (its size and dims are reused).")
@click.option("--out", type=out_path, default=None, help="Run folder [models/statcell/<model>-<dims>d-beta<B>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@config_option
@strategy_option
@precision_option
@seed_option
@click.pass_context
def command(ctx, data, role, dims, beta, objective, reconstruction, epochs, batch_size, learning_rate, preset,
            latent_dim, size, eval_samples, background, reference_run, out, resume, config_file, strategy,
            precision, seed):
    """Train one Statistical Cell β-VAE and keep its best validation ELBO (paper §6.4).

    Writes a run folder: config.json, splits.csv (80/10/10 by CellId), checkpoints/,
    history.csv (loss, reconstruction, kl, elbo + val_), best.keras, saved_model/
    (encode, decode, sample, impute, elbo) and figures/.
    """
    from statcell_tf.errors import UserError
    from statcell_tf.statcell.paper import PAPER
    from statcell_tf.statcell.presets import PRESETS
    from statcell_tf.statcell.training import StatcellTrainConfig, parse_size
    from statcell_tf.training import runtime
    from statcell_tf.training.run_dir import open_run

    strategy_object = runtime.select_strategy(strategy)  # first: multi-worker configures collectives
    if reference_run is not None and role != "target":
        raise click.UsageError("--reference-run only applies to --model target")
    values = dict(
        data=str(data), role=role, dims=dims, beta=beta, objective=objective, preset=preset, size=parse_size(size),
        latent_dim=latent_dim, reconstruction=reconstruction, eval_samples=eval_samples, background=background,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        reference_run=str(reference_run) if reference_run else None, strategy=strategy, precision=precision,
    )
    config = resolve_settings(ctx, StatcellTrainConfig, values, {name: {} for name in PRESETS},
                              rename={"role": "model", "reconstruction": "reconstruction_reduction"},
                              config_file=config_file)
    config = dataclasses.replace(config, split_seed=config.seed)
    if config.reference_run is not None:
        paired_run = open_run(config.reference_run, "--reference-run", paper="statcell")
        paired = StatcellTrainConfig.from_dict(paired_run.read_config(), str(paired_run.config))
        if paired.model != "reference":
            raise UserError(f"--reference-run {config.reference_run} is a {paired.model} run, not a reference run")
        if paired.dims != config.dims:
            raise UserError(f"--reference-run {config.reference_run} is {paired.dims}D but --dims is {config.dims}")
        if config.size is None:
            config = dataclasses.replace(config, size=list(paired.image_shape))
    out = out or Path("models") / "statcell" / f"{config.model}-{config.dims}d-beta{config.beta:g}"
    path = PAPER.train(config, out, resume=resume, strategy=strategy_object).run.path
    click.echo(f"Run written to {path} (best model: {path / 'best.keras'})")
