"""The run directory contract: everything a run writes lives in one folder.

``models/<model>/<run>/``: ``config.json`` (one schema for every paper, below),
``splits.csv`` (one schema: row, cell_id, group, split), ``checkpoints/`` (the committed
state of every finished epoch; resume after a kill), ``best.keras`` (best validation score),
``saved_model/`` (named endpoints, loadable by ``tf.saved_model.load`` alone),
``history.csv``, ``tensorboard/``, ``figures/`` and ``.lock`` while a process trains.

``config.json``::

    {"format": 2, "paper": "cytoself", "role": "cytoself", "preset": "demo",
     "version": "0.1.0", "settings": {...every training setting...},
     "data": {...what the run derived from its data: classes, channels, split sizes...}}

Runs written before format 2 (one layout per paper) are read through `upgrade_config`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import __version__, atomic
from statcell_tf.errors import UserError

CONFIG_FORMAT = 2
SPLIT_COLUMNS = ("row", "cell_id", "group", "split")


class RunDirectory:
    """Paths, config, splits and loading of one training run.

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
    lock_file = property(lambda self: self.path / ".lock")

    def exists(self) -> bool:
        """True when the folder already holds a run (a config.json)."""
        return self.config.is_file()

    # ----- config.json ----------------------------------------------------------------------
    def read_config(self) -> dict:
        """The saved config.json, validated and upgraded to the current schema.

        Raises:
            UserError: naming config.json when it is missing, not JSON or malformed.
        """
        if not self.config.is_file():
            raise UserError(f"{self.path} is not a run folder: config.json is missing")
        try:
            raw = json.loads(self.config.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise UserError(f"{self.config} is not valid JSON ({error})") from None
        return validate_config(upgrade_config(raw, self.config), self.config)

    def write_config(self, config: dict) -> None:
        atomic.write_json(self.config, validate_config(config, self.config))

    # ----- splits.csv -----------------------------------------------------------------------
    def write_splits(self, table: pd.DataFrame) -> None:
        missing = [c for c in SPLIT_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"a splits table needs columns {SPLIT_COLUMNS}. Received: {list(table.columns)}")
        atomic.write_csv(self.splits, table[list(SPLIT_COLUMNS)])

    def read_splits(self) -> pd.DataFrame:
        """splits.csv as a table with columns row, cell_id, group, split (older layouts
        upgraded: cytoself/VAE+ row, group, split; Statistical/Integrated Cell CellId, split)."""
        from statcell_tf.data import validation

        if not self.splits.is_file():
            raise UserError(f"{self.splits} is missing: the run folder is incomplete")
        table = validation.read_csv(self.splits, dtype=str, keep_default_na=False)
        if "cell_id" not in table and "CellId" in table:
            table = table.rename(columns={"CellId": "cell_id"})
        if "row" not in table:
            table["row"] = ""
        if "cell_id" not in table:
            table["cell_id"] = table["row"]
        if "group" not in table:
            table["group"] = table["cell_id"]
        validation.require_columns(table, list(SPLIT_COLUMNS), self.splits)
        bad = sorted(set(table["split"]) - {"train", "val", "test", ""})
        if bad:
            raise UserError(f"{self.splits}: column split holds {bad[:3]}; expected train, val or test")
        return table[list(SPLIT_COLUMNS)]

    def split_rows(self, n: int) -> dict[str, np.ndarray]:
        """``{"train", "val", "test"}`` row indices recorded for data of `n` cells."""
        table = self.read_splits()
        rows = pd.to_numeric(table["row"], errors="coerce")
        if len(table) != n:
            raise UserError(f"{self.splits} records a split of {len(table)} cells but the data has {n}")
        if rows.isna().any() or not np.array_equal(np.sort(rows.to_numpy()), np.arange(n)):
            raise UserError(f"{self.splits}: column row must list every cell 0..{n - 1} once")
        rows = rows.to_numpy(np.int64)
        split = table["split"].to_numpy()
        return {name: np.sort(rows[split == name]) for name in ("train", "val", "test")}

    def paper(self, flag: str = "RUN"):
        """The `registry.Paper` that trained this run (its config.json checked)."""
        from statcell_tf import registry

        return registry.get(self.check(None, flag)["paper"], f"{flag} {self.path}")

    # ----- the run's data -------------------------------------------------------------------
    def data_identity(self) -> dict | None:
        """The identity of the data the run was trained on (`data.identity`), None for runs
        written before runs recorded it."""
        identity = self.read_config()["data"].get("identity")
        return identity if isinstance(identity, dict) else None

    def check_data(self, cells, flag: str = "--data") -> None:
        """One line when `cells` cannot be what the run's model reads: images of another size
        than the run's data (never silently cropped or resized)."""
        from statcell_tf.data.identity import describe_shape

        identity = self.data_identity()
        if identity is None or not identity.get("image_shape"):
            return
        recorded, current = list(identity["image_shape"])[:-1], list(cells.image_shape)[:-1]
        if recorded != current:
            raise UserError(
                f"{flag} {cells.source} holds images of {describe_shape(current)} px, but RUN {self.path} was "
                f"trained on {describe_shape(recorded)} px images ({identity.get('source')}); resize or crop the "
                f"data to {describe_shape(recorded)} first. Received: {describe_shape(cells.image_shape)}"
            )

    def check_same_data(self, cells, why: str, flag: str = "--data") -> None:
        """One line when `cells` are not the data the run was trained on (ids, files, size)."""
        from statcell_tf.data.identity import data_identity, differences

        recorded = self.data_identity()
        if recorded is None:
            raise UserError(
                f"{why}: RUN {self.path} was written before runs recorded the identity of their data "
                f"(no data.identity in {self.config}), so {flag} {cells.source} cannot be checked to be its data"
            )
        found = differences(recorded, data_identity(cells))
        if found:
            raise UserError(
                f"{why}: {flag} {cells.source} is not the data RUN {self.path} was trained on "
                f"({recorded.get('source')}): it has {'; '.join(found)}"
            )

    def rows_of(self, cells, split: str = "all", flag: str = "--data") -> np.ndarray:
        """Row indices of `cells` in the run's `split` (``all``: every row), the one split
        look-up of every command. Any split but ``all`` needs `cells` to be the run's own data
        (`check_same_data`); other data are refused in one line, never mis-split."""
        self.check_data(cells, flag)
        if split == "all":
            return np.arange(len(cells), dtype=np.int64)
        if split not in ("train", "val", "test"):
            raise UserError(f"--split must be one of all, train, val, test. Received: {split!r}")
        self.check_same_data(cells, f"--split {split}", flag)
        rows = self.split_rows(len(cells))[split]
        if not len(rows):
            raise UserError(f"--split {split}: {self.splits} records no {split} cells; use --split all or "
                            "another split")
        return rows

    # ----- loading --------------------------------------------------------------------------
    def load(self, paper: str | None = None, flag: str = "RUN"):
        """(config, best model) of a trained run; `paper` checks which paper trained it."""
        from statcell_tf.training.export import load_keras

        config = self.check(paper, flag)
        if not self.best_model.exists():
            raise UserError(f"{flag} {self.path} has no best.keras yet (train it first). Received: missing {self.best_model}")
        return config, load_keras(self.best_model, f"{flag} best.keras")

    def check(self, paper: str | None = None, flag: str = "RUN") -> dict:
        """The config of an existing run folder, checked to be a run of `paper`."""
        if not self.path.is_dir():
            raise UserError(f"{flag} {self.path} does not exist or is not a folder")
        if not self.exists():
            raise UserError(f"{flag} {self.path} is not a run folder: config.json is missing")
        config = self.read_config()
        if paper is not None and config["paper"] != paper:
            raise UserError(
                f"{flag} {self.path} is a {config['paper']} run; expected a {paper} run. "
                f"Received: paper={config['paper']!r} in {self.config}"
            )
        return config

    # ----- housekeeping ---------------------------------------------------------------------
    def remove_stale_temporaries(self) -> list[Path]:
        """Delete what killed processes left: atomic-write temporaries (``.name.*.tmp*``),
        half-replaced folders (``.name.old``) and TensorFlow's ``ckpt-N_temp`` folders."""
        removed = []
        for folder in (self.path, self.figures, self.checkpoints):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                name = entry.name
                stale = (name.startswith(".") and (".tmp" in name or name.endswith((".old", ".bak")))) or (
                    folder == self.checkpoints and "_temp" in name
                )
                if stale:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                    removed.append(entry)
        return removed


def open_run(path, flag: str = "RUN", paper: str | None = None) -> RunDirectory:
    """An existing run folder (of `paper` when given), or a UserError naming what is wrong."""
    run = RunDirectory(path)
    run.check(paper, flag)
    return run


# ----- the one config schema ---------------------------------------------------------------------
def make_config(paper: str, role: str, preset: str | None, settings: dict, data: dict | None = None) -> dict:
    """A config.json for a new run."""
    return validate_config(
        {
            "format": CONFIG_FORMAT,
            "paper": paper,
            "role": role,
            "preset": preset,
            "version": __version__,
            "settings": dict(settings),
            "data": dict(data or {}),
        }
    )


def validate_config(config, source="config.json") -> dict:
    """`config` if it follows the schema, else a UserError naming `source`."""
    if not isinstance(config, dict):
        raise UserError(f"{source} must hold a JSON object; received {type(config).__name__}: {str(config)[:60]}")
    missing = [key for key in ("format", "paper", "role", "settings", "data") if key not in config]
    if missing:
        raise UserError(f"{source} lacks key(s) {', '.join(missing)}; it is damaged or not a statcell_tf run")
    from statcell_tf import registry

    registry.get(config["paper"], str(source))
    if not isinstance(config["role"], str):
        raise UserError(f"{source}: role must be a string. Received: {config['role']!r}")
    for key in ("settings", "data"):
        if not isinstance(config[key], dict):
            raise UserError(f"{source}: {key} must be a JSON object. Received: {str(config[key])[:60]}")
    if config["format"] != CONFIG_FORMAT:
        raise UserError(f"{source}: format {config['format']!r} is not supported (this version reads {CONFIG_FORMAT})")
    return config


def upgrade_config(raw, source="config.json"):
    """A config.json of a run written before the one schema (format 2), upgraded by the paper
    it belongs to (`registry.upgrade_legacy_config`); others are returned unchanged for
    `validate_config`."""
    if not isinstance(raw, dict) or "format" in raw:
        return raw
    from statcell_tf import registry

    return registry.upgrade_legacy_config(raw) or raw


def settings_values(values: dict, paper: str, source="config.json") -> tuple[dict, dict | None]:
    """(flat settings, config or None) of `values`: a run's config.json (the one schema,
    checked to be a run of `paper`) or already a flat dict of settings."""
    if "settings" in values and "paper" in values:
        if values["paper"] != paper:
            raise UserError(f"{source} is a {values['paper']} run, not a {paper} run")
        return dict(values["settings"]), values
    return dict(values), None


def settings_from(config: dict, cls, source="config.json", renamed: dict | None = None):
    """The settings dataclass `cls` of a run's config, with one-line errors naming `source`.

    Unknown keys, missing required keys and invalid values all name the file (never a flag
    the user did not pass).
    """
    import dataclasses

    values = dict(config["settings"])
    for old, new in (renamed or {}).items():
        if old in values:
            values[new] = values.pop(old)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    required = [
        name for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in values
    ]
    if required:
        raise UserError(f"{source}: setting(s) {', '.join(required)} missing")
    try:
        return cls(**values)
    except (UserError, TypeError, ValueError) as error:
        raise UserError(f"{source}: invalid settings ({error})") from None


def check_number(value, flag: str, minimum=None, maximum=None, open_min=False, allow_none=True):
    """`value` if it is None (when allowed) or a finite number in range, else a UserError."""
    if value is None and allow_none:
        return value
    if isinstance(value, np.generic):  # a numpy scalar reads as a plain number in messages
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number. Received: {value!r}")
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        raise UserError(f"{flag} must be {'>' if open_min else '>='} {minimum:g}. Received: {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(f"{flag} must be <= {maximum:g}. Received: {value!r}")
    return value


