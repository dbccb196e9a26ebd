"""Train and reload Statistical Cell runs (shared by `train-statcell`, `beta-sweep` and the analyses).

A run folder follows the run-directory contract (`statcell_tf.training.run_dir`): its
``config.json`` holds a `StatcellTrainConfig` plus the structure types of the target model;
``best.keras`` is the epoch with the highest validation ELBO (paper §6.4); ``splits.csv``
records the CellId → train/val/test assignment (grouped by CellId hash).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.data.source import CellImages
from statcell_tf.errors import UserError
from statcell_tf.statcell.presets import DEFAULT_IMAGE_SHAPE, PRESETS
from statcell_tf.statcell.data import StatcellData

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class StatcellTrainConfig:
    """Every setting of one Statistical Cell training run (saved as config.json).

    Args:
        data: str. Manifest the model was trained on.
        model: str. ``"reference"`` (M_R) or ``"target"`` (M_T).
        dims: int. 2 or 3.
        beta: float. β of the objective.
        objective: str. ``"reparameterised"`` (Eq. 3) or ``"classic"``.
        preset: str. Widths/latent size preset: ``paper``, ``demo`` or ``tiny``.
        size: list of int or None. Model image shape; None = paper size (128×96[×64]).
        latent_dim: int or None. Overrides the preset's latent size.
        filters: list of int or None. Overrides the preset's widths.
        reconstruction_reduction: str. Squared error ``"sum"`` over pixels (the authors' code,
            default) or ``"mean"`` over pixels (pixel-wise MSE, the paper's §6.3 wording).
        eval_samples: int. Posterior samples of the validation ELBO (paper: 10).
        epochs: int. Paper: 300.
        batch_size: int. Paper: 32.
        learning_rate: float. Paper: 2e-4 (Adam 0.9, 0.999).
        seed: int. Seed of weights, sampling, shuffling and the split.
        split_seed: int. Seed of the CellId hash split.
        reference_run: str or None. The reference run a target run is paired with.
        structure_types: list of str. Target types, in model order (target model).
        strategy: str. Distribution strategy name.
        background: str. ``"none"`` or ``"mode"`` (subtract each channel's mode first).
        precision: str. Precision policy name.
    """

    data: str = ""
    model: str = "reference"
    dims: int = 2
    beta: float = 0.5
    objective: str = "reparameterised"
    preset: str = "paper"
    size: list | None = None
    latent_dim: int | None = None
    filters: list | None = None
    reconstruction_reduction: str = "sum"
    eval_samples: int = 10
    epochs: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-4
    seed: int = 0
    split_seed: int = 0
    reference_run: str | None = None
    structure_types: list = dataclasses.field(default_factory=list)
    background: str = "none"
    strategy: str = "auto"
    precision: str = "auto"

    def __post_init__(self):
        if self.model not in ("reference", "target"):
            raise UserError(f"--model must be reference or target. Received: {self.model!r}")
        if self.dims not in (2, 3):
            raise UserError(f"--dims must be 2 or 3. Received: {self.dims!r}")
        if self.preset not in PRESETS:
            raise UserError(f"--preset must be one of {', '.join(PRESETS)}. Received: {self.preset!r}")
        from statcell_tf.training.run_dir import check_number

        check_number(self.beta, "--beta", minimum=0, allow_none=False)
        if self.objective == "reparameterised" and not 0.0 <= self.beta <= 1.0:
            raise UserError(f"--beta must be in [0, 1] for the reparameterised objective (Eq. 3). Received: {self.beta}")
        if self.beta < 0:
            raise UserError(f"--beta must be >= 0. Received: {self.beta}")
        check_number(self.learning_rate, "--learning-rate", minimum=0, open_min=True, allow_none=False)
        if self.epochs < 1 or self.batch_size < 1 or self.eval_samples < 1:
            raise UserError(
                "--epochs, --batch-size and eval_samples must be >= 1. Received: "
                f"epochs={self.epochs}, batch_size={self.batch_size}, eval_samples={self.eval_samples}"
            )
        if self.reconstruction_reduction not in ("sum", "mean"):
            raise UserError(
                f"--reconstruction must be sum or mean. Received: {self.reconstruction_reduction!r}"
            )
        if self.background not in ("none", "mode"):
            raise UserError(f"--background must be none or mode. Received: {self.background!r}")
        if self.size is not None and len(self.size) != self.dims:
            raise UserError(f"--size needs {self.dims} numbers for --dims {self.dims}. Received: {self.size}")

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.size) if self.size else DEFAULT_IMAGE_SHAPE[self.dims]

    def model_kwargs(self) -> dict:
        preset = PRESETS[self.preset]
        return {
            "role": self.model,
            "rank": self.dims,
            "image_shape": list(self.image_shape),
            "num_types": max(1, len(self.structure_types)),
            "latent_dim": int(self.latent_dim or preset["latent_dim"]),
            "filters": list(self.filters or preset["filters"]),
            "beta": float(self.beta),
            "objective": self.objective,
            "reconstruction_reduction": self.reconstruction_reduction,
            "eval_samples": int(self.eval_samples),
            "learning_rate": float(self.learning_rate),
            "seed": int(self.seed),
            "background": self.background,
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config.json") -> "StatcellTrainConfig":
        """From a run's config.json (the one schema) or a flat dict of settings."""
        from statcell_tf.training.run_dir import settings_from, settings_values

        values, config = settings_values(values, "statcell", source)
        if config is not None:
            values = {**values, "model": config["role"], "structure_types": config["data"].get("structure_types", [])}
        return settings_from({"settings": values}, cls, source)

    def run_config(self) -> dict:
        """This config in the one config.json schema."""
        from statcell_tf.training.run_dir import make_config

        settings = self.to_dict()
        role = settings.pop("model")
        types = settings.pop("structure_types")
        return make_config("statcell", role, self.preset, settings, {"structure_types": types})


def group_column(metadata: pd.DataFrame) -> str:
    """The column splits must not break up: the source cell of control copies, else CellId."""
    for column in ("source_CellId", "CellId", "group"):
        if column in metadata.columns:
            return column
    raise UserError("the metadata has no CellId column to split by. Received: columns="
                    + ", ".join(map(str, metadata.columns)))


def split_cells(metadata: pd.DataFrame, seed: int = 0) -> dict:
    """train/val/test row indices, 80/10/10 grouped by CellId hash (paper §6.4)."""
    from statcell_tf.data.splits import split_indices

    column = group_column(metadata)
    frame = metadata.copy()
    frame[column] = frame[column].astype(str)
    return split_indices(frame, column, fractions=(0.8, 0.1, 0.1), seed=seed)


def splits_frame(metadata: pd.DataFrame, splits: dict) -> pd.DataFrame:
    """splits.csv (the one schema): row, cell_id (CellId), group (source cell), split."""
    from statcell_tf.data.splits import splits_table

    id_column = "CellId" if "CellId" in metadata else None
    group = group_column(metadata) if id_column else None
    return splits_table(metadata, splits, group, id_column)


def _reconstruction_figure(model, data: StatcellData, rows: np.ndarray, path: Path) -> None:
    from statcell_tf.statcell.latent_stats import image_grid_figure

    batch = data.batch(rows)
    reconstruction = np.asarray(model(batch, training=False))
    originals = batch["image"]
    figure = image_grid_figure([list(originals), list(reconstruction)], row_labels=["input", "reconstruction"])
    atomic.save_figure(path, figure)


def complete_settings(config: StatcellTrainConfig, cells: CellImages) -> StatcellTrainConfig:
    """`config` with what it leaves to the data filled in: the image size (the data's, rounded
    to the encoder's depth) and a target model's structure types (those of the data)."""
    from statcell_tf.statcell.data import default_image_shape, structure_types

    if config.model == "target" and not config.structure_types:
        config = dataclasses.replace(config, structure_types=structure_types(cells.metadata))
    if config.size is None:
        depth = len(config.filters or PRESETS[config.preset]["filters"])
        config = dataclasses.replace(config, size=list(default_image_shape(cells, config.dims, depth)))
    return config


def train(config: StatcellTrainConfig, out, *, resume: bool = False, strategy=None, verbose: int = 1,
          export: bool = True):
    """Train one model on ``config.data`` into the run folder `out` (the shared lifecycle).

    The folder receives config.json, splits.csv, checkpoints/, history.csv, best.keras
    (highest validation ELBO), saved_model/ (endpoints of the best model; skipped when
    `export` is False) and figures/reconstruction_epoch_XXX.png (epochs 1, 10, 20, … and the last).

    Returns:
        registry.TrainResult.
    """
    from statcell_tf.data.readers import read_cells
    from statcell_tf.registry import TrainResult
    from statcell_tf.statcell.model import ConditionalBetaVAE
    from statcell_tf.training import export as saving
    from statcell_tf.training import lifecycle, runtime, trainer

    strategy = strategy or runtime.select_strategy(config.strategy)  # first: multi-worker setup

    def prepare(saved, run):
        cells = read_cells(config.data)
        if saved is None:
            settings = complete_settings(config, cells)
        else:
            settings, _ = lifecycle.resumed_settings(saved, config, StatcellTrainConfig)
        data = StatcellData(cells, settings.model, settings.image_shape, settings.structure_types or None,
                            settings.background)
        splits = split_cells(cells.metadata, settings.split_seed)
        for name in ("train", "val"):
            if len(splits[name]) == 0:
                raise UserError(f"--data {cells.source}: the {name} split is empty ({len(cells)} cells); add cells")
        batch_size = min(settings.batch_size, len(splits["train"]))
        preview = np.asarray(splits["val"][:6])

        def callbacks(run):
            def figures(epoch, logs, model):  # first, every 10th and last epoch (a figure costs ~1 s)
                if epoch == 1 or epoch % 10 == 0 or epoch == settings.epochs:
                    _reconstruction_figure(model, data, preview, run.figures / f"reconstruction_epoch_{epoch:03d}.png")

            return [figures]

        def export_best(run, model):
            if export:
                best = saving.load_keras(lifecycle.require_best_model(run, "val_elbo"), "best.keras")
                saving.export_saved_model(best, run.saved_model)
            else:
                lifecycle.require_best_model(run, "val_elbo")

        return lifecycle.RunPlan(
            config=settings.run_config(), splits=splits_frame(cells.metadata, splits),
            train_data=lambda epoch: data.dataset(splits["train"], batch_size, shuffle=True, seed=settings.seed,
                                                  drop_remainder=True, epoch=epoch),
            val_data=data.dataset(splits["val"], settings.batch_size),
            build_model=lambda: ConditionalBetaVAE(**settings.model_kwargs()),
            fit_settings=trainer.TrainSettings(epochs=settings.epochs, monitor="val_elbo", mode="max", verbose=verbose),
            callbacks=callbacks, export=export_best, precision=settings.precision, seed=settings.seed, cells=cells,
        )

    run, history, _ = lifecycle.train_run("statcell", out, prepare, resume=resume, strategy=strategy,
                                          inputs=[config.data], verbose=verbose)
    return TrainResult(run, history)


def open_statcell_run(path, flag: str = "RUN"):
    """(config, RunDirectory) of a Statistical Cell run folder, checked without loading the model."""
    from statcell_tf.training.run_dir import open_run

    run = open_run(path, flag, paper="statcell")
    config = StatcellTrainConfig.from_dict(run.read_config(), str(run.config))
    if not run.best_model.exists():
        raise UserError(f"{flag} {run.path} has no best.keras yet: train it first (train-statcell)")
    return config, run


def load_run(path, flag: str = "RUN"):
    """(model, config, RunDirectory) of a trained run (its best-validation-ELBO model)."""
    from statcell_tf.training import export

    config, run = open_statcell_run(path, flag)
    model = export.load_keras(run.best_model, f"{flag} best.keras")
    return model, config, run


def check_run_pair(ref_run, target_run):
    """(reference config, target config, target RunDirectory) of a reference and a target run,
    both folders checked (config, paper, role, best.keras) before any model is loaded."""
    from statcell_tf.training.run_dir import open_run

    for path, flag in ((ref_run, "REF_RUN"), (target_run, "TARGET_RUN")):
        open_run(path, flag, paper="statcell")
    ref_config, _ = open_statcell_run(ref_run, "REF_RUN")
    config, run = open_statcell_run(target_run, "TARGET_RUN")
    if ref_config.model != "reference" or config.model != "target":
        raise UserError(f"REF_RUN must be a reference run and TARGET_RUN a target run. Received: "
                        f"{ref_config.model} and {config.model}")
    return ref_config, config, run


def load_run_pair(ref_run, target_run):
    """(reference model, target model, target config, target RunDirectory) of two matching runs."""
    check_run_pair(ref_run, target_run)
    reference_model, _, _ = load_run(ref_run, "REF_RUN")
    model, config, run = load_run(target_run, "TARGET_RUN")
    if tuple(reference_model.image_shape) != tuple(model.image_shape):
        raise UserError(f"REF_RUN and TARGET_RUN have different image sizes: "
                        f"{tuple(reference_model.image_shape)} vs {tuple(model.image_shape)}")
    return reference_model, model, config, run


# ----- helpers shared by the Statistical Cell commands --------------------------------------
def parse_size(text: str | None, flag: str = "--size") -> list[int] | None:
    """``128x96`` or ``64x128x96`` (Z×Y×X) → list of int; None stays None."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.lower().replace(",", "x").split("x") if part.strip()]
    except ValueError:
        raise UserError(f"{flag} must look like 128x96 or 64x128x96. Received: {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{flag} must look like 128x96 or 64x128x96. Received: {text!r}")
    return values


def write_tiff(path, images: np.ndarray) -> Path:
    """Write (n, *spatial, C) float images as one TIFF, axes TCYX or TCZYX, atomically."""
    import tifffile

    images = np.asarray(images, "float32")
    stack = np.moveaxis(images, -1, 1)  # (n, C, *spatial)
    axes = "TCYX" if stack.ndim == 4 else "TCZYX"
    with atomic.atomic_path(path) as tmp:
        tifffile.imwrite(tmp, stack, metadata={"axes": axes})
    return Path(path)


def data_for_run(config: StatcellTrainConfig, data_flag_value=None, flag: str = "--data"):
    """(CellImages, StatcellData) of `data_flag_value`, or of the manifest the run was trained on."""
    from statcell_tf.data.readers import read_cells

    manifest = data_flag_value or config.data
    if not manifest:
        raise UserError(f"{flag} is required: the run does not record its training data")
    if not Path(manifest).exists():
        raise UserError(f"{flag} {manifest} does not exist (pass {flag} MANIFEST)")
    cells = read_cells(manifest, flag=flag)
    data = StatcellData(cells, config.model, config.image_shape, config.structure_types or None, config.background)
    return cells, data
