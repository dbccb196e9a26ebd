"""`train-cytoself`: train the cytoself model on a folder of single-cell crops."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._settings import config_option, resolve_settings
from statcell_tf.cli._options import (
    commits_progress,
    allow_pickle_option,
    existing_dir,
    out_path,
    precision_option,
    seed_option,
    strategy_option,
)

ABLATION_CHOICES = ["no_vq", "no_id", "no_split", "no_decoder", "no_nuclear", "no_distance"]


@commits_progress
@click.command("train-cytoself")
@click.option("--data", type=existing_dir, required=True,
              help="Data folder (OpenCell npy files/shards, or any format the readers know).")
@click.option("--channels", default=None,
              help="Comma-separated input channels [default: pro,nucdist; all channels for other data].")
@click.option("--preset", type=click.Choice(["paper", "demo"]), default="paper", show_default=True,
              help="paper = published sizes (2048 codes/level); demo = small, about a minute on 2 CPU cores.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Maximum epochs; early stopping after 12 without val_loss improvement "
              "[default: paper 100, demo 4].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Global batch size (split over the replicas).")
@click.option("--learning-rate", type=float, default=None,
              help="Adam learning rate [default: the preset's; paper 4e-4 as in the paper's text, "
              "the authors' TF code used 1e-4].")
@click.option("--ablation", type=click.Choice(ABLATION_CHOICES), default=None,
              help="Train a row of the paper's ablation table (Supp. Table 1).")
@click.option("--label-column", default="label", show_default=True,
              help="Metadata column with the protein identity the ID heads predict.")
@click.option("--group-column", default=None,
              help="Column the 8:1:1 split keeps together [default: group/fov if present].")
@click.option("--no-augment", is_flag=True, help="Disable random 90° rotations and flips.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Steps per epoch [default: one pass over the training split].")
@click.option("--out", type=out_path, default=None, help="Run folder [default: models/cytoself/<preset>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@config_option
@strategy_option
@precision_option
@seed_option
@allow_pickle_option
@click.pass_context
def command(ctx, data, channels, preset, epochs, batch_size, learning_rate, ablation, label_column, group_column,
            no_augment, steps_per_epoch, out, resume, config_file, strategy, precision, seed, allow_pickle):
    """Train cytoself (Kobayashi et al. 2022) and keep the best validation model.

    Splits the cells 8:1:1 by field of view, trains with Adam (×0.1 after 4 epochs without
    val_loss improvement, stop after 12) and writes a run folder: config.json, splits.csv,
    checkpoints/, history.csv and tensorboard/ (every loss term and both perplexities),
    figures/ (a reconstruction panel per epoch), best.keras and saved_model/ (endpoints
    embed_global, embed_local, vq_indices, index_histogram, reconstruct, classify).
    """
    from statcell_tf.cytoself.paper import PAPER
    from statcell_tf.cytoself.presets import DEFAULT_EPOCHS
    from statcell_tf.cytoself.training import CytoselfTrainConfig
    from statcell_tf.training import runtime

    strategy_object = runtime.select_strategy(strategy)  # first: multi-worker configures collectives
    channel_list = None
    if channels is not None:
        channel_list = tuple(c.strip() for c in channels.split(",") if c.strip())
        if not channel_list:
            raise click.UsageError(f"--channels needs at least one channel name. Received: {channels!r}")
    values = dict(
        data=str(data), channels=channel_list, preset=preset, ablation=ablation, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, label_column=label_column,
        group_column=group_column, no_augment=not no_augment, steps_per_epoch=steps_per_epoch,
        strategy=strategy, precision=precision, allow_pickle=allow_pickle,
    )
    presets = {name: {"epochs": DEFAULT_EPOCHS[name]} for name in DEFAULT_EPOCHS}
    config = resolve_settings(ctx, CytoselfTrainConfig, values, presets, rename={"no_augment": "augment"},
                              config_file=config_file)
    preset = config.preset
    ablation = config.ablation
    out = out or Path("models") / "cytoself" / (preset if ablation is None else f"{preset}-{ablation}")
    path = PAPER.train(config, out, resume=resume, strategy=strategy_object).run.path
    click.echo(f"Run written to {path} (best model: {path / 'best.keras'}, SavedModel: {path / 'saved_model'})")
