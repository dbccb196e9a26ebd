"""Training VAE+, or its VAE / AE baselines, on single-cell crops (Lafarge et al. 2019).

The run config (`VAEPlusTrainConfig`), the data (`load_cells`, treatment-balanced sampling,
the grouped validation split, the tf.data pipeline), `build_model`, the reconstruction panel
and `train`, which ``bin/train-vaeplus`` calls. Also the helpers the other VAE+ commands
share (``interpolate``, ``realism-quiz``, ``profile-moa``): loading a run's SavedModel
endpoints, applying them in batches, normalising crops and rendering them as RGB.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from statcell_tf.errors import UserError

PAPER_BATCH_SIZE = 104  # one crop per BBBC021 treatment (103) + DMSO; the authors' code
SAMPLINGS = ("treatment", "uniform")


@dataclasses.dataclass(frozen=True)
class VAEPlusTrainConfig:
    """Run-level settings of `train-vaeplus`; saved as ``config.json`` in the run folder.

    Args:
        data: str. Folder of single-cell crops (BBBC021 layout: metadata.csv + crops/).
        variant: str. ``vaeplus``, ``vae`` or ``ae``.
        iterations: int. Training iterations (paper: 40,000).
        batch_size: int. Size of each of the two minibatches B1 and B2 (paper: one crop per
            treatment; authors' code: 104).
        steps_per_epoch: int or None. Iterations between logs/checkpoints/figures; must
            divide `iterations`. None = the largest divisor of `iterations` up to 1000.
        sampling: str. ``treatment`` (paper: every treatment equally likely, then a random
            crop of it) or ``uniform`` (every crop equally likely).
        validation_fraction: float. Fraction of wells (the reader's ``group``) held out to
            log validation terms (on at most 50 batches, the same ones every epoch); 0
            disables validation.
        latent_dim, filters, discriminator_filters, schedule_period, beta, feature_reduction,
        learning_rate, discriminator_learning_rate, weight_decay: `VAEPlus` hyperparameters
        (feature_reduction: ``scaled_mean``, the authors' code, or ``sum``, the paper's L_i^D).
        seed: int. Seed of the initialisation, sampling and data order.
        strategy, precision: runtime choices (see `statcell_tf.training.runtime`).
    """

    data: str
    variant: str = "vaeplus"
    iterations: int = 40000
    batch_size: int = PAPER_BATCH_SIZE
    steps_per_epoch: int | None = None
    sampling: str = "treatment"
    validation_fraction: float = 0.1
    latent_dim: int = 256
    filters: int = 32
    discriminator_filters: int = 64
    schedule_period: float = 2500.0
    beta: float | None = None
    feature_reduction: str = "scaled_mean"
    learning_rate: float = 1e-3
    discriminator_learning_rate: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    preset: str = "paper"

    def __post_init__(self):
        from statcell_tf.vaeplus.model import VARIANTS

        if self.variant not in VARIANTS:
            raise UserError(f"--variant must be one of {', '.join(VARIANTS)}. Received: {self.variant!r}")
        from statcell_tf.vaeplus.model import FEATURE_REDUCTIONS

        if self.feature_reduction not in FEATURE_REDUCTIONS:
            raise UserError(
                f"--feature-reduction must be one of {', '.join(FEATURE_REDUCTIONS)}. "
                f"Received: {self.feature_reduction!r}"
            )
        if self.sampling not in SAMPLINGS:
            raise UserError(f"--sampling must be one of {', '.join(SAMPLINGS)}. Received: {self.sampling!r}")
        for name in ("iterations", "batch_size", "latent_dim", "filters", "discriminator_filters"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(self, name)}")
        if self.steps_per_epoch is not None and (self.steps_per_epoch < 1 or self.iterations % self.steps_per_epoch):
            raise UserError(
                f"--steps-per-epoch must divide --iterations {self.iterations}. Received: {self.steps_per_epoch}"
            )
        from statcell_tf.training.run_dir import check_number

        for name in ("learning_rate", "discriminator_learning_rate"):
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=0, open_min=True, allow_none=False)
        for name in ("beta", "weight_decay"):  # None = the variant's default
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=0)
        check_number(self.schedule_period, "--schedule-period", minimum=0, open_min=True, allow_none=False)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise UserError(f"--validation-fraction must be in [0, 1). Received: {self.validation_fraction}")
        if self.schedule_period <= 0:
            raise UserError(f"--schedule-period must be > 0. Received: {self.schedule_period}")

    @property
    def epoch_steps(self) -> int:
        if self.steps_per_epoch:
            return self.steps_per_epoch
        return max(d for d in range(1, min(self.iterations, 1000) + 1) if self.iterations % d == 0)

    @property
    def epochs(self) -> int:
        return self.iterations // self.epoch_steps

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "epochs": self.epochs, "steps_per_epoch": self.epoch_steps}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config.json") -> "VAEPlusTrainConfig":
        from statcell_tf.training.run_dir import settings_from, settings_values

        values, _ = settings_values(values, "vaeplus", source)
        values = {k: v for k, v in values.items() if k != "epochs"}  # derived from iterations
        return settings_from({"settings": values}, cls, source)


# ----- helpers shared by the VAE+ commands ------------------------------------------------------
def load_cells(data, flag: str = "--data"):
    """Read a folder of single-cell crops; VAE+ needs (68, 68, C) images."""
    from statcell_tf.data.readers import read_cells

    return check_cells(read_cells(Path(data), flag=flag), flag)


def check_cells(cells, flag: str = "--data"):
    """`cells` if they are what VAE+ reads ((68, 68, C) crops), else one line naming them."""
    shape = tuple(cells.image_shape)
    if len(shape) != 3 or shape[:2] != (68, 68):
        raise UserError(f"{flag} {cells.source}: VAE+ needs 68×68 crops with channels last. Received: image shape {shape}")
    return cells


def load_endpoints(run, flag: str = "RUN"):
    """The SavedModel of a train-vaeplus run (endpoints encode, decode, reconstruct)."""
    from statcell_tf.training.export import load_saved_model
    from statcell_tf.training.run_dir import open_run

    run_directory = open_run(run, flag=flag, paper="vaeplus")
    loaded = load_saved_model(run_directory.saved_model)
    for name in ("encode", "decode", "reconstruct"):
        if not hasattr(loaded, name):
            raise UserError(f"{flag} {run}: the SavedModel has no '{name}' endpoint; is it a train-vaeplus run?")
    return run_directory, loaded


def batched(function, array, batch_size: int = 256) -> np.ndarray:
    """Apply a SavedModel endpoint to `array` (N, ...) in batches; returns float32 numpy."""
    import tensorflow as tf

    outputs = [
        function(tf.constant(np.asarray(array[i : i + batch_size], dtype=np.float32))).numpy()
        for i in range(0, len(array), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def normalize(images: np.ndarray) -> np.ndarray:
    """Per-image, per-channel max normalisation (paper Sect. 4.1): the model's own
    `InputNormalization("max")` layer, on numpy images."""
    from statcell_tf.layers.input_normalization import InputNormalization

    return np.asarray(InputNormalization("max")(np.asarray(images, dtype=np.float32)))


def display_order(channel_names) -> list[int]:
    """Channel indices shown as R, G, B: the paper maps DNA → R, β-tubulin → G, F-actin → B."""
    names = [str(n).lower() for n in channel_names]

    def find(*keys):
        for i, name in enumerate(names):
            if any(k in name for k in keys):
                return i
        return None

    order = [find("dna", "dapi", "hoechst", "nucle"), find("tubulin"), find("actin", "phalloidin")]
    if len(names) == 3 and None not in order and len(set(order)) == 3:
        return order
    return list(range(min(3, len(names))))


def to_rgb(images: np.ndarray, channel_names) -> np.ndarray:
    """(…, H, W, C) images in [0, 1] → (…, H, W, 3) RGB in [0, 1] (missing channels black)."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    order = display_order(channel_names)
    rgb = np.zeros(images.shape[:-1] + (3,), np.float32)
    for k, channel in enumerate(order):
        rgb[..., k] = images[..., channel]
    return rgb


def balanced_indices(metadata, rows: np.ndarray, count: int, sampling: str, rng) -> np.ndarray:
    """`count` crop indices drawn from `rows`: uniformly, or every treatment equally likely."""
    rows = np.asarray(rows)
    if sampling == "uniform" or not {"compound", "concentration"} <= set(metadata.columns):
        return rng.choice(rows, size=count, replace=True)
    keys = metadata.iloc[rows][["compound", "concentration"]].astype(str).agg("|".join, axis=1).to_numpy()
    _, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / (len(sizes) * sizes[inverse])
    return rng.choice(rows, size=count, replace=True, p=weights / weights.sum())


def grouped_validation_split(metadata, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a `fraction` of the groups (wells: the reader's ``group`` column)."""
    everything = np.arange(len(metadata))
    if fraction <= 0:
        return everything, np.zeros(0, np.int64)
    column = "group" if "group" in metadata.columns else None
    groups = metadata[column].astype(str).to_numpy() if column else everything.astype(str)
    unique = np.unique(groups)
    held = max(1, int(round(fraction * len(unique))))
    if held >= len(unique):
        return everything, np.zeros(0, np.int64)
    chosen = np.random.default_rng(seed).choice(unique, size=held, replace=False)
    mask = np.isin(groups, chosen)
    return everything[~mask], everything[mask]


def image_dataset(cells, indices: np.ndarray, batch_size: int, seed: int, repeat: bool):
    """tf.data of max-normalised (per image and channel) float32 image batches read lazily at
    `indices`, in the given order (the sampling already drew them at random)."""
    from statcell_tf.data.pipeline import make_dataset

    from statcell_tf.data.pipeline import apply_preprocessing
    from statcell_tf.layers.input_normalization import InputNormalization

    dataset = make_dataset(cells, indices, batch_size, shuffle=False, seed=seed, augment=False, repeat=repeat)
    # Normalised on whole batches by the layer the model owns (and its SavedModel applies).
    return apply_preprocessing(dataset, InputNormalization("max")).map(lambda batch: batch["image"])


# ----- training -------------------------------------------------------------------------------
def build_model(config: VAEPlusTrainConfig):
    from statcell_tf.vaeplus.model import VAEPlus

    return VAEPlus(
        variant=config.variant,
        latent_dim=config.latent_dim,
        filters=config.filters,
        discriminator_filters=config.discriminator_filters,
        beta=config.beta,
        schedule_period=config.schedule_period,
        feature_reduction=config.feature_reduction,
        learning_rate=config.learning_rate,
        discriminator_learning_rate=config.discriminator_learning_rate,
        weight_decay=config.weight_decay,
        seed=config.seed,
    )


def reconstruction_panel(model, images: np.ndarray, channel_names, path) -> None:
    """Save a 2-row figure: the crops (top) and their reconstructions from μ (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from statcell_tf.atomic import save_figure

    reconstructions = model.reconstruct(images).numpy()
    count = len(images)
    figure, axes = plt.subplots(2, count, figsize=(1.4 * count, 3.0), squeeze=False)
    for j in range(count):
        for i, picture in enumerate((images[j], reconstructions[j])):
            axes[i, j].imshow(to_rgb(picture, channel_names))
            axes[i, j].set_axis_off()
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    figure.tight_layout()
    save_figure(path, figure)


def train(config: VAEPlusTrainConfig, out, *, resume: bool = False, strategy=None, verbose: int = 1):
    """Train one VAE+ run into `out` with the shared lifecycle; returns a `registry.TrainResult`.

    Both minibatch streams (B1 auto-encoded, B2 real images for the discriminator) are drawn
    once for all iterations from the seed; epoch e reads its slice of them, so a resumed run
    reads exactly the batches an uninterrupted one reads.
    """
    import tensorflow as tf

    from statcell_tf.training import export, lifecycle, runtime, trainer
    from statcell_tf.training.run_dir import make_config

    from statcell_tf.registry import TrainResult

    strategy = strategy or runtime.select_strategy(config.strategy)  # first: multi-worker setup
    requested = config

    def prepare(saved, run):
        current = requested
        if saved is not None:  # a resumed run may be extended (more iterations)
            current, _ = lifecycle.resumed_settings(saved, requested, VAEPlusTrainConfig, extendable=("iterations",))
        cells = load_cells(current.data)
        train_rows, val_rows = grouped_validation_split(cells.metadata, current.validation_fraction, current.seed)
        count = current.iterations * current.batch_size
        # One generator per stream: a longer run (more --iterations) extends both streams and
        # keeps their beginnings, so an extended resume reads what one long run reads.
        streams = [
            balanced_indices(cells.metadata, train_rows, count, current.sampling, np.random.default_rng([current.seed, k]))
            for k in range(2)
        ]
        per_epoch = current.epoch_steps * current.batch_size
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

        def train_data(epoch):
            window = slice((epoch - 1) * per_epoch, epoch * per_epoch)
            first, second = (image_dataset(cells, s[window], current.batch_size, current.seed + k, False)
                             for k, s in enumerate(streams))
            return tf.data.Dataset.zip((first, second)).map(lambda a, b: {"image": a, "image_d": b}).with_options(options)

        val_data = None
        if len(val_rows):
            val_data = image_dataset(cells, val_rows, current.batch_size, current.seed, False).map(lambda a: {"image": a})
        panel_rows = (val_rows if len(val_rows) else train_rows)[:8]
        panel_images = normalize(cells.images[np.sort(panel_rows)])

        def callbacks(run):
            def figures(epoch, logs, trained):
                reconstruction_panel(trained, panel_images, cells.channel_names,
                                     run.figures / f"reconstructions_epoch{epoch:04d}.png")
                reconstruction_panel(trained, panel_images, cells.channel_names, run.figures / "reconstructions.png")

            return [figures]

        from statcell_tf.data.splits import splits_table

        group = "group" if "group" in cells.metadata else None
        table = splits_table(cells.metadata, {"train": train_rows, "val": val_rows}, group)
        settings = current.to_dict()
        settings.pop("epochs")
        return lifecycle.RunPlan(
            config=make_config("vaeplus", current.variant, current.preset, settings, {"num_cells": len(cells)}),
            splits=table, train_data=train_data, val_data=val_data,
            build_model=lambda: build_model(current),
            # No model selection: the paper trains a fixed number of iterations and keeps the
            # last model, so best.keras tracks the newest epoch (monitor the step counter).
            fit_settings=trainer.TrainSettings(
                epochs=current.epochs, steps_per_epoch=current.epoch_steps,
                validation_steps=min(-(-len(val_rows) // current.batch_size), 50) if len(val_rows) else None,
                monitor="step", mode="max", verbose=verbose,
            ),
            callbacks=callbacks, export=lambda run, model: export.export_saved_model(model, run.saved_model),
            precision=current.precision, seed=current.seed, cells=cells,
        )

    run, history, _ = lifecycle.train_run("vaeplus", out, prepare, resume=resume, strategy=strategy,
                                          inputs=[config.data], verbose=verbose)
    return TrainResult(run, history)

