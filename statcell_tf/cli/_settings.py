"""The settings of a training command, one rule for every trainer:
flag given on the command line > ``--config FILE`` > ``--preset`` > default.

Every trainer takes ``--preset``, ``--config FILE`` (a JSON object whose keys are the run's
settings, as in the ``settings`` block of a run's ``config.json``), a global
``--batch-size``, ``--resume``, ``--strategy``, ``--precision`` and ``--seed``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from click.core import ParameterSource

from statcell_tf.errors import UserError

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON file of settings (keys as in a run's config.json 'settings'); flags given on the command "
    "line override it, and it overrides --preset.",
)


def given_on_command_line(ctx: click.Context) -> set[str]:
    """Names of the parameters the user passed (command line or environment)."""
    return {
        name for name in ctx.params
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }


def read_config_file(path: Path | None, cls) -> dict:
    """The settings in ``--config FILE``: a JSON object of known setting names."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"--config {path} is not valid JSON ({error})") from None
    if isinstance(values, dict) and isinstance(values.get("settings"), dict) and "paper" in values:
        values = values["settings"]  # a run's config.json: reuse its settings
    if not isinstance(values, dict):
        raise UserError(f"--config {path} must hold a JSON object of settings. Received: {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"--config {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return values


def resolve_settings(ctx: click.Context, cls, values: dict, presets: dict, rename: dict | None = None,
                     config_file: Path | None = None):
    """Build the settings dataclass `cls` with the precedence flag > file > preset > default.

    Args:
        ctx: click.Context of the command (tells which flags were given).
        cls: the settings dataclass (validates itself in ``__post_init__``).
        values: parameter name → value of every flag that maps to a setting.
        presets: preset name → settings it fixes (e.g. epochs, learning rate).
        rename: parameter name → setting name where they differ.
        config_file: Path or None. ``--config FILE``.
    """
    rename = rename or {}
    given = given_on_command_line(ctx)
    from_file = read_config_file(config_file, cls)
    defaults = {rename.get(k, k): v for k, v in values.items() if k not in given and v is not None}
    flags = {rename.get(k, k): v for k, v in values.items() if k in given}
    preset = flags.get("preset", from_file.get("preset", defaults.get("preset")))
    if preset is not None and presets and preset not in presets:
        raise UserError(f"--preset must be one of {', '.join(presets)}. Received: {preset!r}")
    merged = {**defaults, **(presets.get(preset, {}) if preset is not None else {}), **from_file, **flags}
    if preset is not None and "preset" in {f.name for f in dataclasses.fields(cls)}:
        merged["preset"] = preset
    merged = {k: v for k, v in merged.items() if k in {f.name for f in dataclasses.fields(cls)}}
    try:
        return cls(**merged)
    except TypeError as error:
        raise UserError(f"--config {config_file}: {error}") from None
