import subprocess
from pathlib import Path

import click
from click.testing import CliRunner

from statcell_tf import cli
from statcell_tf.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_help_and_a_bin_shim():
    runner = CliRunner()
    names = cli.command_names()
    for name in names:
        result = runner.invoke(cli.cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        shim = ROOT / "bin" / name
        assert shim.exists(), f"bin/{name} is missing"


def test_user_error_is_one_line_exit_2(monkeypatch, capsys):
    @click.command()
    def broken():
        raise UserError("--data /x does not exist")

    assert cli._run(broken, [], "broken") == 2
    err = capsys.readouterr().err
    assert err == "Error: --data /x does not exist\n"


def test_unknown_command(capsys):
    assert cli.run_command("no-such-command", []) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_bin_shim_runs_help_without_importing_tensorflow():
    shims = [p for p in (ROOT / "bin").iterdir() if p.name != "_shim"]
    if not shims:
        return
    result = subprocess.run([str(shims[0]), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_user_error_wrapped_by_tensorflow_is_one_line(capsys):
    from statcell_tf.errors import USER_ERROR_MARK

    @click.command()
    def broken():
        raise RuntimeError(f"InvalidArgumentError: {USER_ERROR_MARK}image 3 in x.npy has NaN\n\t [[node]]")

    assert cli._run(broken, [], "broken") == 2
    assert capsys.readouterr().err == "Error: image 3 in x.npy has NaN\n"
