"""Training a cytoself run: config, data preparation, the fit, figures and export.

`train(settings, out)` is what ``bin/train-cytoself`` calls (through the paper's registry
entry, `statcell_tf.cytoself.paper`): it reads the data, selects the
input channels, splits the cells 8:1:1 grouped by field of view (saved as ``splits.csv``),
fixes the input normalisation and the data variance on the training split, builds the model
from its preset, trains it with the runtime (Adam; learning rate ×0.1 after 4 epochs without
validation improvement, early stopping after 12, keep best) and exports the best model as a
SavedModel. Everything needed to reload or resume is written to ``config.json``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError
from statcell_tf.cytoself.presets import (
    ABLATIONS,
    CHANNEL_ABLATIONS,
    DEFAULT_CHANNELS,
    PRESETS,
    preset_config,
)

GROUP_COLUMNS = ("group", "fov", "FOV", "field_of_view")  # readers fill "group"
PANEL_IMAGES = 6
STATS_SAMPLE = 2000


@dataclasses.dataclass(frozen=True)
class CytoselfTrainConfig:
    """Run-level settings of a cytoself training run; saved as ``config.json``.

    Args:
        data: str. The data folder.
        channels: tuple of str or None. Input channels; None = the ablation's channels or
            ``pro, nucdist`` (falling back to all channels when the data has other names).
        preset: str. ``paper`` or ``demo``.
        ablation: str or None. One of `ABLATIONS`.
        epochs: int. Maximum epochs (early stopping may end sooner).
        batch_size: int. Global batch size.
        learning_rate: float or None. None = the preset's (paper: 4e-4, the paper's text; the
            authors' TF code used 1e-4).
        seed: int. Seed of the weights, the split, shuffling and augmentation.
        label_column: str. Metadata column with the identity the heads predict.
        group_column: str or None. Column the split never breaks up; None = the first of
            group, fov, FOV, field_of_view present (else each cell is its own group).
        augment: bool. Random 90° rotations and flips of the training images.
        plateau_patience: int. Epochs without val_loss improvement before lr ×0.1.
        early_stopping_patience: int. Epochs without improvement before stopping.
        steps_per_epoch: int or None. None = one pass over the training split.
        strategy: str. Distribution strategy name.
        precision: str. Precision policy name.
        allow_pickle: bool. Allow pickled label files.
    """

    data: str
    channels: tuple[str, ...] | None = None
    preset: str = "paper"
    ablation: str | None = None
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float | None = None
    seed: int = 0
    label_column: str = "label"
    group_column: str | None = None
    augment: bool = True
    plateau_patience: int = 4
    early_stopping_patience: int = 12
    steps_per_epoch: int | None = None
    strategy: str = "auto"
    precision: str = "auto"
    allow_pickle: bool = False

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"--preset must be one of {', '.join(PRESETS)}. Received: {self.preset!r}")
        if self.ablation is not None and self.ablation not in ABLATIONS:
            raise UserError(f"--ablation must be one of {', '.join(ABLATIONS)}. Received: {self.ablation!r}")
        if self.channels is not None and self.ablation in CHANNEL_ABLATIONS:
            raise UserError(f"--channels and --ablation {self.ablation} both choose the channels; pass one")
        from statcell_tf.training.run_dir import check_number

        for name in ("epochs", "batch_size", "plateau_patience", "early_stopping_patience", "steps_per_epoch"):
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=1, allow_none=name == "steps_per_epoch")
        check_number(self.learning_rate, "--learning-rate", minimum=0, open_min=True)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["channels"] = None if self.channels is None else list(self.channels)
        return out

    @classmethod
    def from_dict(cls, values: dict, source: str = "config.json") -> "CytoselfTrainConfig":
        """From a run's config.json (the one schema) or a flat dict of settings."""
        from statcell_tf.training.run_dir import settings_from, settings_values

        values, _ = settings_values(values, "cytoself", source)
        if values.get("channels") is not None:
            values["channels"] = tuple(values["channels"])
        return settings_from({"settings": values}, cls, source)


# ----- data preparation ----------------------------------------------------------------------
def choose_channels(config: CytoselfTrainConfig, available) -> tuple[str, ...]:
    """The input channels: --channels, else the ablation's, else pro+nucdist (or all)."""
    available = tuple(available)
    if config.channels is not None:
        wanted = config.channels
    elif config.ablation in CHANNEL_ABLATIONS:
        wanted = CHANNEL_ABLATIONS[config.ablation]
    elif all(c in available for c in DEFAULT_CHANNELS):
        wanted = DEFAULT_CHANNELS
    else:
        return available  # other data (e.g. BBBC021 DNA, actin, tubulin): every channel
    missing = [c for c in wanted if c not in available]
    if missing:
        raise UserError(
            f"--channels: channel(s) {', '.join(missing)} not in the data; available: "
            f"{', '.join(available)}. Received: {','.join(wanted)}"
        )
    return tuple(wanted)


def group_column(metadata: pd.DataFrame, config: CytoselfTrainConfig) -> str | None:
    """The column grouping the split (field of view), or None when the data has none."""
    if config.group_column is not None:
        if config.group_column not in metadata.columns:
            raise UserError(
                f"--group-column {config.group_column!r} is not a metadata column. "
                f"Received: columns={list(metadata.columns)}"
            )
        return config.group_column
    return next((c for c in GROUP_COLUMNS if c in metadata.columns), None)


def compute_normalization(images: np.ndarray) -> dict | None:
    """Per-channel ``(x − offset) · scale`` mapping the training images to about [0, 1].

    Channels already within [−1, 1] (OpenCell: protein in [0, 1], nuclear distance in
    [−1, 1]) are left alone; others (raw microscope counts) are scaled from their 0.1 and
    99.9 percentiles. Returns None when no channel needs scaling.
    """
    images = np.asarray(images, dtype=np.float32)
    flat = images.reshape(-1, images.shape[-1])
    offsets, scales = [], []
    for c in range(flat.shape[1]):
        values = flat[:, c]
        if values.min() >= -1.0 and values.max() <= 1.0:
            offsets.append(0.0)
            scales.append(1.0)
            continue
        low, high = np.percentile(values, [0.1, 99.9])
        offsets.append(float(low))
        scales.append(float(1.0 / max(high - low, 1e-6)))
    if all(o == 0.0 for o in offsets) and all(s == 1.0 for s in scales):
        return None
    return {"offset": offsets, "scale": scales}


def sample_rows(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to `n` of `rows`, sorted (sequential reads), drawn without replacement."""
    rows = np.asarray(rows)
    if len(rows) <= n:
        return np.sort(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))


# ----- figures ------------------------------------------------------------------------------
def reconstruction_panel(model, images: np.ndarray, channel_names, title: str = ""):
    """Figure: for each image (as on disk), every input channel above its reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recon = model.reconstruct(images)
    images = model.preprocess(images)  # shown as the model sees them
    n, channels = len(images), images.shape[-1]
    figure, axes = plt.subplots(2 * channels, n, figsize=(1.6 * n, 1.6 * 2 * channels), squeeze=False)
    for c in range(channels):
        low = float(min(images[..., c].min(), 0.0))
        high = float(max(images[..., c].max(), 1e-6))
        for i in range(n):
            for row, source, kind in ((2 * c, images, "input"), (2 * c + 1, recon, "recon")):
                ax = axes[row, i]
                ax.imshow(source[i, ..., c], cmap="gray", vmin=low, vmax=high)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_ylabel(f"{channel_names[c]}\n{kind}", fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


# ----- training -----------------------------------------------------------------------------
def train(config: CytoselfTrainConfig, out, *, resume: bool = False, strategy=None, verbose: int = 1):
    """Train (or resume) a cytoself run in folder `out` with the shared lifecycle.

    Args:
        config: CytoselfTrainConfig. ``config.data`` is read with `data.readers.read_cells`.
        out: str or Path. The run folder; an existing run needs `resume`.
        resume: bool. Continue the run in `out` from its last committed epoch.
        strategy: tf.distribute.Strategy or None. Created by the caller before any TF op.
        verbose: int. 0 = silent.

    Returns:
        registry.TrainResult.
    """
    from statcell_tf.data.readers import read_cells
    from statcell_tf.registry import TrainResult
    from statcell_tf.training import lifecycle

    def prepare(saved, run):
        return plan_run(config, read_cells(config.data, config.allow_pickle), saved, run)

    run, history, _ = lifecycle.train_run("cytoself", out, prepare, resume=resume, strategy=strategy,
                                          inputs=[config.data], verbose=verbose)
    return TrainResult(run, history)


def plan_run(config: CytoselfTrainConfig, cells, saved: dict | None, run):
    """The cytoself recipe: channels, split, normalisation, model config and datasets (writes nothing)."""
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.data.pipeline import apply_preprocessing, make_dataset
    from statcell_tf.data.splits import split_indices, splits_table
    from statcell_tf.training import export, lifecycle, trainer
    from statcell_tf.training.run_dir import make_config

    all_cells = cells
    if saved is not None:
        config, run_config = lifecycle.resumed_settings(saved, config, CytoselfTrainConfig)
        config = dataclasses.replace(config, channels=None if config.channels is None else tuple(config.channels))
    channels = choose_channels(config, cells.channel_names)
    cells = cells.select_channels(list(channels)) if tuple(cells.channel_names) != channels else cells
    metadata = cells.metadata
    if config.label_column not in metadata.columns:
        raise UserError(
            f"--label-column {config.label_column!r} is not a metadata column of {cells.source}. "
            f"Received: columns={list(metadata.columns)}"
        )
    if saved is None:
        group = group_column(metadata, config)
        if group is None:  # no field of view: every cell is its own group
            metadata = metadata.assign(_cell=np.arange(len(metadata)).astype(str))
            group = "_cell"
        splits = split_indices(metadata, group, fractions=(0.8, 0.1, 0.1), seed=config.seed)
        if len(splits["train"]) == 0 or len(splits["val"]) == 0:
            raise UserError(
                f"--data {cells.source}: {metadata[group].nunique()} {group} group(s) are too few for an "
                "8:1:1 split with non-empty training and validation sets"
            )
        label_values = sorted(metadata[config.label_column].astype(str).unique().tolist())
        stats_rows = sample_rows(splits["train"], STATS_SAMPLE, config.seed)
        sample = np.asarray(cells.images[stats_rows], dtype=np.float32)
        normalization = compute_normalization(sample)
        preprocessing = _preprocessing(normalization)
        data_variance = float(np.var(np.asarray(preprocessing(sample))))
        learning_rate = config.learning_rate or PRESETS[config.preset]["learning_rate"]
        model_config = preset_config(
            config.preset, config.ablation, num_classes=len(label_values),
            image_shape=list(cells.image_shape), data_variance=max(data_variance, 1e-8),
            learning_rate=learning_rate, seed=config.seed, normalization=normalization,
        )
        data = {
            "model_config": model_config, "channels": list(channels), "label_column": config.label_column,
            "label_values": label_values, "group_column": group, "normalization": normalization,
            "data_variance": model_config["data_variance"], "num_cells": len(cells),
            "split_sizes": {k: int(len(v)) for k, v in splits.items()}, "source": str(cells.source),
        }
        role = "cytoself" if config.ablation is None else config.ablation
        run_config = make_config("cytoself", role, config.preset, config.to_dict(), data)
        table = splits_table(metadata, splits, group)
    else:
        data = run_config["data"]
        if data.get("num_cells") != len(cells) or data.get("channels") != list(channels):
            raise UserError(
                f"--resume: {cells.source} is not the data of this run "
                f"(expected {data.get('num_cells')} cells with channels {data.get('channels')}). "
                f"Received: {len(cells)} cells with channels {list(channels)}"
            )
        splits, table = run.split_rows(len(cells)), None
    label_values = data["label_values"]
    model_config = {**data["model_config"], "normalization": data.get("normalization")}
    preprocessing = _preprocessing(data.get("normalization"))

    def train_data(epoch):
        return apply_preprocessing(make_dataset(
            cells, splits["train"], config.batch_size, shuffle=True, seed=config.seed, augment=config.augment,
            label_column=config.label_column, label_values=label_values, repeat=config.steps_per_epoch is not None,
            drop_remainder=_replicas() > 1, epoch=epoch, steps=config.steps_per_epoch,
        ), preprocessing)

    val_rows = splits["val"]
    val_data = apply_preprocessing(make_dataset(
        cells, val_rows, config.batch_size, label_column=config.label_column, label_values=label_values,
    ), preprocessing)
    panel_raw = np.asarray(cells.images[val_rows[:PANEL_IMAGES]], np.float32)

    def callbacks(run):
        def write_panel(epoch, logs, trained_model):
            if not trained_model.use_decoder:  # the no_decoder ablation reconstructs nothing
                return
            title = f"epoch {epoch}: val reconstruction {logs.get('val_reconstruction', float('nan')):.4g}"
            figure = reconstruction_panel(trained_model, panel_raw, channels, title)
            from statcell_tf import atomic

            atomic.save_figure(run.figures / f"reconstruction_epoch{epoch:03d}.png", figure)

        return [write_panel]

    def export_best(run, model):
        best = export.load_keras(lifecycle.require_best_model(run, "val_loss"), flag="best model")
        export.export_saved_model(best, run.saved_model)

    return lifecycle.RunPlan(
        config=run_config, splits=table, train_data=train_data, val_data=val_data,
        build_model=lambda: CytoselfModel(**model_config),
        fit_settings=trainer.TrainSettings(
            epochs=config.epochs, steps_per_epoch=config.steps_per_epoch, monitor="val_loss", mode="min",
            plateau_patience=config.plateau_patience, plateau_factor=0.1, min_lr=1e-8,
            early_stopping_patience=config.early_stopping_patience,
        ),
        callbacks=callbacks, export=export_best, precision=config.precision, seed=config.seed, cells=all_cells,
    )


def _replicas() -> int:
    from statcell_tf.backend import tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _preprocessing(normalization):
    from statcell_tf.layers.input_normalization import InputNormalization

    if not normalization:
        return InputNormalization("none")
    return InputNormalization("affine", offset=normalization["offset"], scale=normalization["scale"])
