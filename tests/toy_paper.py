"""A fifth paper defined entirely in tests/: a tiny dense autoencoder behind the `registry.Paper`
interface, to prove that a lab's own model plugs in without editing statcell_tf/.

It uses only the public spine: `training.lifecycle.train_run` (validate → lock → create or
resume → train → export), `data.readers.read_cells` (one way in for data),
`RunDirectory.rows_of` (the run's split, checked against the run's data),
`data.embedding_files.CellEncoder` and `training.export`. Registered either with
`registry.register(PAPER)` or through the ``statcell_tf.papers`` entry-point group
(`write_entry_point`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.layers.input_normalization import InputNormalization
from statcell_tf.registry import Paper, TrainResult
from statcell_tf.training.model import TrainableModel

NAME = "toy_autoencoder"


@dataclasses.dataclass(frozen=True)
class ToySettings:
    data: str
    latent_dim: int = 3
    epochs: int = 2
    batch_size: int = 4
    learning_rate: float = 1e-2
    seed: int = 0

    def __post_init__(self):
        from statcell_tf.training.run_dir import check_number

        for name in ("latent_dim", "epochs", "batch_size"):
            check_number(getattr(self, name), f"--{name.replace('_', '-')}", minimum=1, allow_none=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config.json") -> "ToySettings":
        from statcell_tf.training.run_dir import settings_from, settings_values

        values, _ = settings_values(values, NAME, source)
        return settings_from({"settings": values}, cls, source)


@keras.saving.register_keras_serializable(package="statcell_tf_tests")
class ToyAutoencoder(TrainableModel):
    """Max-normalise (its own layer, so the SavedModel takes images as on disk), flatten,
    dense to `latent_dim`, dense back."""

    def __init__(self, image_shape, latent_dim=3, learning_rate=1e-2, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.preprocessing = InputNormalization("max")
        self.encoder = keras.layers.Dense(self.latent_dim, name="encoder")
        self.decoder = keras.layers.Dense(int(np.prod(self.image_shape)), name="decoder")

    def encode(self, images, training=False):
        x = self.preprocessing(tf.cast(images, "float32"))
        return {"z": self.encoder(tf.reshape(x, (tf.shape(x)[0], -1)))}

    def call(self, images, training=False):
        z = self.encode(images, training)["z"]
        return tf.reshape(self.decoder(z), (-1, *self.image_shape))

    def compute_losses(self, batch, training=False):
        target = self.preprocessing(tf.cast(batch["image"], "float32"))
        loss = tf.reduce_mean(tf.square(self(batch["image"], training=training) - target))
        return {"loss": loss}

    def export_endpoints(self):
        spec = [tf.TensorSpec((None, *self.image_shape), tf.float32)]
        return {"encode": (lambda images: self.encode(images)["z"], spec)}

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape), "latent_dim": self.latent_dim}


class ToyPaper(Paper):
    name = NAME
    title = "toy autoencoder (tests)"
    keras_modules = (__name__,)
    settings = ToySettings

    def train(self, settings, out, *, resume=False, strategy=None, verbose=1):
        from statcell_tf.data.pipeline import make_dataset
        from statcell_tf.data.readers import read_cells
        from statcell_tf.data.splits import split_indices, splits_table
        from statcell_tf.training import export, lifecycle, trainer
        from statcell_tf.training.run_dir import make_config

        def prepare(saved, run):
            current = settings
            if saved is not None:
                current, _ = lifecycle.resumed_settings(saved, settings, ToySettings)
            cells = read_cells(current.data)
            metadata = cells.metadata.assign(_cell=np.arange(len(cells)).astype(str))
            if saved is None:
                splits = split_indices(metadata, "_cell", fractions=(0.6, 0.2, 0.2), seed=current.seed)
            else:
                splits = run.split_rows(len(cells))

            def export_best(run, model):
                best = export.load_keras(lifecycle.require_best_model(run, "val_loss"), "best.keras")
                export.export_saved_model(best, run.saved_model)

            return lifecycle.RunPlan(
                config=make_config(NAME, "autoencoder", None, current.to_dict(), {"num_cells": len(cells)}),
                splits=splits_table(metadata, splits, "_cell") if saved is None else None,
                train_data=lambda epoch: make_dataset(cells, splits["train"], current.batch_size, shuffle=True,
                                                      seed=current.seed, epoch=epoch),
                val_data=make_dataset(cells, splits["val"], current.batch_size),
                build_model=lambda: ToyAutoencoder(cells.image_shape, current.latent_dim, current.learning_rate),
                fit_settings=trainer.TrainSettings(epochs=current.epochs, monitor="val_loss", verbose=verbose),
                export=export_best, precision="float32", seed=current.seed, cells=cells,
            )

        run, history, _ = lifecycle.train_run(NAME, out, prepare, resume=resume, strategy=strategy,
                                              inputs=[settings.data], verbose=verbose)
        return TrainResult(run, history)

    def load_run(self, run):
        from statcell_tf.training.run_dir import open_run

        run_dir = open_run(run, "RUN", paper=self.name)
        config, model = run_dir.load(self.name)
        return model, ToySettings.from_dict(config, str(run_dir.config)), run_dir

    def encoder(self, run, cells, *, split="all"):
        from statcell_tf.data.embedding_files import CellEncoder

        model, _, run_dir = self.load_run(run)
        rows = run_dir.rows_of(cells, split)

        def encode(positions):
            images = np.asarray(cells.images[rows[positions]], np.float32)
            if not len(images):
                return {"z": np.zeros((0, model.latent_dim), np.float32)}
            return {"z": np.asarray(model.encode(images)["z"], np.float32)}

        return CellEncoder(cells.metadata.iloc[rows], encode, ["z"], {"run": str(Path(run).resolve()), "paper": NAME})


PAPER = ToyPaper()


def write_entry_point(site: Path) -> Path:
    """A distribution in folder `site` that declares PAPER in the ``statcell_tf.papers``
    entry-point group (what ``pip install`` of a lab's package would leave); put `site` on
    PYTHONPATH and statcell_tf finds the paper."""
    info = Path(site) / "toy_paper-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-paper\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[statcell_tf.papers]\n{NAME} = tests.toy_paper:PAPER\n")
    return Path(site)
