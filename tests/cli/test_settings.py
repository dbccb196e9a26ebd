"""One rule for every trainer's settings: flag given > --config FILE > --preset > default."""

import dataclasses
import json

import click
import pytest
from click.testing import CliRunner

from statcell_tf.cli._settings import config_option, resolve_settings
from statcell_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Settings:
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    augment: bool = True
    preset: str = "paper"


PRESETS = {"paper": {}, "demo": {"epochs": 4, "learning_rate": 1e-2}}


@click.command()
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=32)
@click.option("--learning-rate", type=float, default=None)
@click.option("--no-augment", is_flag=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="paper")
@config_option
@click.pass_context
def command(ctx, epochs, batch_size, learning_rate, no_augment, preset, config_file):
    values = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, no_augment=not no_augment,
                  preset=preset)
    settings = resolve_settings(ctx, Settings, values, PRESETS, rename={"no_augment": "augment"},
                                config_file=config_file)
    click.echo(json.dumps(dataclasses.asdict(settings)))


def _run(tmp_path, *args, config=None):
    if config is not None:
        (tmp_path / "c.json").write_text(json.dumps(config))
        args = (*args, "--config", str(tmp_path / "c.json"))
    result = CliRunner().invoke(command, list(args), standalone_mode=False)
    if result.exception:
        raise result.exception
    return json.loads(result.output)


def test_precedence(tmp_path):
    assert _run(tmp_path) == {"epochs": 100, "batch_size": 32, "learning_rate": 1e-3, "augment": True, "preset": "paper"}
    assert _run(tmp_path, "--preset", "demo")["epochs"] == 4  # preset over default
    from_file = _run(tmp_path, "--preset", "demo", config={"epochs": 7, "batch_size": 8, "augment": False})
    assert (from_file["epochs"], from_file["batch_size"], from_file["augment"]) == (7, 8, False)  # file over preset
    assert from_file["learning_rate"] == 1e-2  # the preset still fills what the file leaves
    flags = _run(tmp_path, "--epochs", "9", "--batch-size", "32", config={"epochs": 7, "batch_size": 8})
    assert (flags["epochs"], flags["batch_size"]) == (9, 32)  # a flag given wins, even at its default value
    assert _run(tmp_path, config={"preset": "demo"})["epochs"] == 4  # the file may choose the preset
    run_config = {"format": 2, "paper": "cytoself", "settings": {"epochs": 3}}
    assert _run(tmp_path, config=run_config)["epochs"] == 3  # another run's config.json


@pytest.mark.parametrize("content, fragment", [("[1]", "JSON object"), ('{"epochz": 1}', "unknown setting(s) epochz"),
                                               ("{oops", "not valid JSON")])
def test_bad_config_file_names_the_flag(tmp_path, content, fragment):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(UserError, match="--config") as error:
        CliRunner().invoke(command, ["--config", str(tmp_path / "c.json")], standalone_mode=False,
                           catch_exceptions=False)
    assert fragment in str(error.value)
