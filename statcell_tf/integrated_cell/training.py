"""Training runs of the Integrated Cell (section 2.3): the two stages, their settings and their
run directories. The command `train-integrated-cell` parses flags and calls `train`.

Stage ``reference`` trains `IntegratedCellReference` on membrane + DNA; stage ``conditional``
loads a reference run's best model, copies its encoder into a frozen Enc_r and trains
`IntegratedCellConditional` on all three channels. Both use the one training runtime
(`statcell_tf.training.trainer.fit`), cells split by CellId (`splits.csv` in the run).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError
from statcell_tf.integrated_cell import data as icd

STAGES = ("reference", "conditional")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class IntegratedCellSettings:
    """Every setting of one stage's run; saved as the run's ``config.json``.

    Args:
        stage: str. ``"reference"`` or ``"conditional"``.
        data: str. Allen Cell manifest CSV.
        reference_run: str or None. Reference run folder (required for ``conditional``).
        epochs: int. Paper: 150 (reference), 220 (conditional).
        batch_size: int. Paper: 32.
        image_size: list of int. [H, W]; paper 256×256.
        filters: int. Width multiplier (paper 64).
        latent_dim: int. |z_r| or |z_s| (paper 16).
        learning_rate: float. Adam, every network (paper 2e-4).
        beta_1: float. Adam β1 (authors' code 0.5).
        gamma_enc: float. γ_Enc (paper 1e-4).
        gamma_dec: float. γ_Dec (paper 1e-5).
        noise_stddev: float. White noise on the image discriminator input (paper 0.05).
        decoder_condition: str. ``"softmax"`` (paper) or ``"one_hot"``.
        output_batchnorm: bool. BN before the decoders' sigmoid (paper tables; the authors'
            code has none).
        steps_per_epoch: int or None. None = one pass over the training cells.
        split_fractions: list of float. Train/val/test fractions of cells (grouped by CellId).
        seed: int.
        strategy: str. Distribution strategy name.
        precision: str. Precision policy name.
        preset: str. ``paper`` or ``demo`` (the named starting point of the settings).
        shuffle: str. ``auto``, ``full`` or ``block`` (`statcell_tf.data.pipeline.make_dataset`).
    """

    stage: str
    data: str
    reference_run: str | None = None
    epochs: int = 150
    batch_size: int = 32
    image_size: tuple = (256, 256)
    filters: int = 64
    latent_dim: int = 16
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    gamma_enc: float = 1e-4
    gamma_dec: float = 1e-5
    noise_stddev: float = 0.05
    decoder_condition: str = "softmax"
    output_batchnorm: bool = True
    steps_per_epoch: int | None = None
    split_fractions: tuple = (0.8, 0.1, 0.1)
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    preset: str = "paper"
    shuffle: str = "auto"

    def __post_init__(self):
        if self.stage not in STAGES:
            raise UserError(f"--stage must be one of {', '.join(STAGES)}. Received: {self.stage!r}")
        if self.stage == "conditional" and not self.reference_run:
            raise UserError("--stage conditional needs --reference-run RUN (a reference-stage run). Received: none")
        from statcell_tf.training.run_dir import check_number

        for name in ("epochs", "batch_size", "filters", "latent_dim"):
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=1, allow_none=False)
        check_number(self.learning_rate, "--learning-rate", minimum=0, open_min=True, allow_none=False)
        for name in ("gamma_enc", "gamma_dec", "noise_stddev"):
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=0, allow_none=False)
        check_number(self.steps_per_epoch, "--steps-per-epoch", minimum=1)
        from statcell_tf.data.source import check_shuffle

        check_shuffle(self.shuffle)
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise UserError(f"split fractions must be 3 numbers summing to 1. Received: {self.split_fractions}")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["image_size"] = list(self.image_size)
        out["split_fractions"] = list(self.split_fractions)
        return out

    @classmethod
    def from_dict(cls, values: dict, source: str = "config.json") -> IntegratedCellSettings:
        """From a run's config.json (the one schema) or a flat dict of settings."""
        from statcell_tf.training.run_dir import settings_from, settings_values

        values, _ = settings_values(values, "integrated_cell", source)
        values = {k: v for k, v in values.items() if k not in ("model", "class_names", "kind")}  # legacy keys
        for name in ("image_size", "split_fractions"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return settings_from({"settings": values}, cls, source)

    def run_config(self, class_names) -> dict:
        """This stage's config.json (the one schema)."""
        from statcell_tf.training.run_dir import make_config

        return make_config("integrated_cell", self.stage, self.preset, self.to_dict(), {"class_names": class_names})


def read_data(path, flag: str = "--data") -> object:
    """The data at `path` as `CellImages` (the project's one reader, `data.readers.read_cells`)."""
    from statcell_tf.data.readers import read_cells

    return read_cells(path, flag=flag)


def split_cells(view, fractions, seed: int) -> dict:
    """Train/val/test row indices, grouped by CellId (no cell in two splits)."""
    from statcell_tf.data.splits import split_indices

    return split_indices(view.metadata, icd.ID_COLUMN, fractions=tuple(fractions), seed=seed)


def splits_table(view, splits: dict) -> pd.DataFrame:
    """splits.csv (the one schema): row, cell_id (CellId), group (CellId), split."""
    from statcell_tf.data.splits import splits_table as table

    return table(view.metadata, splits, icd.ID_COLUMN, icd.ID_COLUMN)


def load_model(run, kind: str):
    """The best model of a run folder, checked to be an Integrated Cell of `kind` stage."""
    from statcell_tf.integrated_cell.model import IntegratedCellConditional, IntegratedCellReference
    from statcell_tf.training import export

    expected = IntegratedCellReference if kind == "reference" else IntegratedCellConditional
    path = run.best_model
    if not path.exists():
        raise UserError(f"{run.path} has no best.keras yet (train it first). Received: missing {path}")
    model = export.load_keras(path, flag="RUN")
    if not isinstance(model, expected):
        raise UserError(
            f"{run.path} holds a {type(model).__name__}; expected an Integrated Cell {kind}-stage run "
            f"({expected.__name__}). Received: {type(model).__name__}"
        )
    return model


def _datasets(view, splits, settings, batch_size, class_names):
    from statcell_tf.data.pipeline import make_dataset

    # Labels by structure name in the model's class order (the reader's own label column holds names).
    labels = {}
    if settings.stage == "conditional":
        labels = {"label_column": icd.NAME_COLUMN, "label_values": list(class_names)}
    repeat = settings.steps_per_epoch is not None
    # Full batches only when possible: batch statistics of a 1-cell remainder are meaningless.
    drop = len(splits["train"]) >= batch_size

    def train(epoch):  # positioned by epoch: a resumed run reads what an uninterrupted one reads
        return make_dataset(
            view, splits["train"], batch_size, shuffle=settings.shuffle, seed=settings.seed, augment=False, repeat=repeat,
            drop_remainder=drop, epoch=epoch, steps=settings.steps_per_epoch, **labels,
        )

    val = None
    if len(splits.get("val", [])):
        val = make_dataset(view, splits["val"], batch_size, shuffle=False, seed=settings.seed, augment=False, **labels)
    return train, val


def _figure_callback(view, rows, run, stage):
    """After each epoch: inputs vs reconstructions of a few held-out cells (Fig. S1/S2)."""
    from statcell_tf import atomic
    from statcell_tf.integrated_cell.analysis import reconstruction_figure

    images = np.asarray(view.images[np.asarray(rows[:6], "int64")])

    def callback(epoch, logs, model):
        if stage == "reference":
            recon = np.asarray(model(images))
            shown = images[..., :2]
        else:
            recon = np.asarray(model(images)["reconstruction"])
            shown = images
        losses = ", ".join(f"{key.replace('_', ' ')} {logs[key]:.4g}" for key in ("val_loss",) if key in (logs or {}))
        figure = reconstruction_figure(shown, recon, title=f"Integrated Cell {stage} model, epoch {epoch}: validation "
                                       "cells and reconstructions" + (f"; {losses}" if losses else ""))
        atomic.save_figure(run.figures / "reconstructions.png", figure)

    return callback


def build_model(settings: IntegratedCellSettings, class_names, reference=None):
    """The stage's model from the settings (conditional: with `reference`'s encoder copied in)."""
    from statcell_tf.integrated_cell.model import IntegratedCellConditional, IntegratedCellReference

    common = dict(
        image_size=list(settings.image_size), latent_dim=settings.latent_dim, filters=settings.filters,
        noise_stddev=settings.noise_stddev, output_batchnorm=settings.output_batchnorm, gamma_enc=settings.gamma_enc, gamma_dec=settings.gamma_dec,
        learning_rate=settings.learning_rate, beta_1=settings.beta_1, seed=settings.seed,
    )
    if settings.stage == "reference":
        return IntegratedCellReference(**common)
    model = IntegratedCellConditional(
        len(class_names), class_names=list(class_names), reference_latent_dim=reference.latent_dim,
        reference_filters=reference.filters, reference_channels=reference.reference_channels,
        decoder_condition=settings.decoder_condition, **common,
    )
    model.load_reference_encoder(reference)
    return model


def train(settings: IntegratedCellSettings, out, *, resume: bool = False, strategy=None, verbose: int = 1):
    """Train one stage into the run folder `out` (the shared lifecycle); returns a
    `registry.TrainResult`.

    Writes config.json, splits.csv, checkpoints/, best.keras, history.csv, tensorboard/,
    figures/reconstructions.png and saved_model/ (endpoints ``encode``, ``classify``,
    ``integrate`` for the conditional stage; ``encode``, ``decode``, ``reconstruct`` for
    the reference stage). ``--batch-size`` is the global batch (split over the replicas).
    """
    from statcell_tf.registry import TrainResult
    from statcell_tf.training import export, lifecycle, runtime, trainer
    from statcell_tf.training.run_dir import open_run

    strategy = strategy or runtime.select_strategy(settings.strategy)  # first: multi-worker setup
    requested = settings

    def prepare(saved, run):
        current = requested
        if saved is not None:
            current, _ = lifecycle.resumed_settings(saved, requested, IntegratedCellSettings)
            if current.stage != requested.stage:
                raise UserError(
                    f"--out {run.path} holds a {current.stage}-stage run; it cannot be resumed as "
                    f"--stage {requested.stage}. Received: --stage {requested.stage}"
                )
        reference = None
        if current.stage == "conditional":
            flag = "--reference-run" if saved is None else f"reference_run in {run.config}"
            reference = load_model(open_run(current.reference_run, flag=flag, paper="integrated_cell"), "reference")
            if list(current.image_size) != list(reference.image_size):
                current = dataclasses.replace(current, image_size=tuple(reference.image_size))
        cells = read_data(current.data)
        class_names = icd.class_names_of(cells) if current.stage == "conditional" else None
        if saved is not None and class_names != saved["data"].get("class_names"):
            raise UserError(
                f"--data {current.data}: its structures differ from the run's. "
                f"Received: {class_names}, run: {saved['data'].get('class_names')}"
            )
        view = icd.model_view(cells, current.image_size, class_names)
        splits = split_cells(view, current.split_fractions, current.seed)
        if len(splits["train"]) == 0:
            raise UserError(f"--data {current.data}: no cells in the training split. Received: {len(view.metadata)} cells")
        train_data, val_data = _datasets(view, splits, current, current.batch_size, class_names)
        shown_rows = splits["val"] if len(splits.get("val", [])) else splits["train"]
        monitor = "val_loss" if val_data is not None else "loss"

        def export_best(run, model):
            lifecycle.require_best_model(run, monitor)
            export.export_saved_model(load_model(run, current.stage), run.saved_model)

        return lifecycle.RunPlan(
            config=current.run_config(class_names), splits=splits_table(view, splits), train_data=train_data,
            val_data=val_data, build_model=lambda: build_model(current, class_names, reference),
            fit_settings=trainer.TrainSettings(epochs=current.epochs, steps_per_epoch=current.steps_per_epoch,
                                               monitor=monitor, verbose=verbose),
            callbacks=lambda run: [_figure_callback(view, shown_rows, run, current.stage)],
            export=export_best, precision=current.precision, seed=current.seed, cells=cells,
        )

    run, history, _ = lifecycle.train_run("integrated_cell", out, prepare, resume=resume, strategy=strategy,
                                          inputs=[settings.data], verbose=verbose)
    return TrainResult(run, history)


def classify_cells(model, view, rows, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Structure probabilities ŷ (N, K) and argmax predictions (N,) of `view`'s `rows`."""
    rows = np.asarray(rows, "int64")
    probabilities = []
    for start in range(0, len(rows), batch_size):
        images = np.asarray(view.images[rows[start : start + batch_size]], "float32")
        probabilities.append(np.asarray(model.classify(images)))
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, model.num_classes), "float32")
    return probabilities, probabilities.argmax(axis=-1)


def integrate_cells(model, view, rows, batch_size: int = 16) -> np.ndarray:
    """Algorithm 3 for `view`'s `rows`: (N, K, H, W) predicted structure channels."""
    rows = np.asarray(rows, "int64")
    out = []
    for start in range(0, len(rows), batch_size):
        images = np.asarray(view.images[rows[start : start + batch_size]], "float32")
        out.append(np.asarray(model.integrate(images[..., :2]))[..., 0])
    return np.concatenate(out) if out else np.zeros((0, model.num_classes, *model.image_size), "float32")
