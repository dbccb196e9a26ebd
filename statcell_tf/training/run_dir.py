"""The run directory contract: everything a run writes lives in one folder.

``models/<model>/<run>/``: ``config.json`` (every setting; reloaded on resume),
``checkpoints/`` (every epoch; resume after a kill), ``best.keras`` (best validation score),
``saved_model/`` (named endpoints, loadable by ``tf.saved_model.load`` alone),
``history.csv``, ``tensorboard/``, ``figures/``, ``splits.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

from statcell_tf import atomic
from statcell_tf.errors import UserError


class RunDirectory:
    """Paths and config of one training run.

    Args:
        path: str or Path. The run folder.
    """

    def __init__(self, path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_model = property(lambda self: self.path / "best.keras")
    saved_model = property(lambda self: self.path / "saved_model")
    history = property(lambda self: self.path / "history.csv")
    tensorboard = property(lambda self: self.path / "tensorboard")
    figures = property(lambda self: self.path / "figures")
    splits = property(lambda self: self.path / "splits.csv")

    def exists(self) -> bool:
        """True when the folder already holds a run (a config.json)."""
        return self.config.exists()

    def create(self, config: dict, resume: bool = False, flag: str = "--out", chief: bool = True) -> dict:
        """Start a run, or reopen it when `resume` is set; return the config in force.

        A folder that already holds a run is only reused with `resume` (then its saved
        config wins, except for `epochs`, which may be raised to train longer). A non-`chief`
        worker of a multi-worker run writes nothing and checks nothing: it returns what the
        chief returns when it can see the run (a shared folder, on resume), else `config`.
        """
        if not chief:
            if not (resume and self.exists()):
                return dict(config)
            saved = self.read_config()
            return {**saved, "epochs": config["epochs"]} if "epochs" in config and "epochs" in saved else saved
        if self.exists():
            if not resume:
                raise UserError(
                    f"{flag} {self.path} already holds a run; pass --resume to continue it or "
                    f"choose another {flag}"
                )
            saved = self.read_config()
            if "epochs" in config and "epochs" in saved and config["epochs"] != saved["epochs"]:
                saved["epochs"] = config["epochs"]
                self.write_config(saved)
            return saved
        if self.path.exists() and any(self.path.iterdir()):
            raise UserError(
                f"{flag} {self.path} exists and is not a run folder (no config.json); "
                "choose an empty or new folder"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(exist_ok=True)
        self.write_config(config)
        return dict(config)

    def read_config(self) -> dict:
        """The saved config.json."""
        if not self.config.exists():
            raise UserError(f"{self.path} is not a run folder: config.json is missing")
        try:
            return json.loads(self.config.read_text())
        except ValueError as error:
            raise UserError(f"{self.config} is not valid JSON ({error})") from None

    def write_config(self, config: dict) -> None:
        atomic.write_json(self.config, config)


def open_run(path, flag: str = "RUN") -> RunDirectory:
    """An existing run folder, or a UserError naming what is missing."""
    run = RunDirectory(path)
    if not run.path.is_dir():
        raise UserError(f"{flag} {run.path} does not exist")
    if not run.exists():
        raise UserError(f"{flag} {run.path} is not a run folder: config.json is missing")
    return run
