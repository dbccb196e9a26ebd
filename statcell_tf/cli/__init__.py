"""Command-line interface: one click group, one module per command.

Each module ``statcell_tf/cli/<name>.py`` defines a click command called ``command``; its
command name is the module name with ``_`` replaced by ``-`` (``train_cytoself.py`` →
``train-cytoself``). Modules load lazily, so ``--help`` does not import TensorFlow.
Commands run as ``statcell <name>``, as ``bin/<name>`` or as the console script ``<name>``.

User errors (`statcell_tf.errors.UserError`) print one line and exit with status 2. A
command's outputs are all-or-nothing (`statcell_tf.atomic.all_or_nothing`): when it fails,
whatever it wrote is rolled back. Commands that commit progress on purpose (training, which
resumes from its last committed epoch) are marked with `_options.commits_progress`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import functools

import click

from statcell_tf import atomic
from statcell_tf.cli._errors import user_message
from statcell_tf.errors import UserError


def _module_name(command_name: str) -> str:
    return command_name.replace("-", "_")


def command_names() -> list[str]:
    """Names of every available command, sorted."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and not info.ispkg:
            names.append(info.name.replace("_", "-"))
    return sorted(names)


class _UserFacingError(click.ClickException):
    """A user error shown by click as ``Error: <message>`` with exit status 2."""

    exit_code = 2


class _LazyGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = user_message(error)
            if message is None:
                raise
            raise _UserFacingError(message) from None

    def list_commands(self, ctx):
        return command_names()

    def get_command(self, ctx, name):
        if name not in command_names():
            return None
        module = importlib.import_module(f"{__name__}.{_module_name(name)}")
        return _all_or_nothing(module.command)


def _all_or_nothing(command: click.Command) -> click.Command:
    """`command` with its outputs rolled back when it fails (unless it commits progress)."""
    if getattr(command, "commits_progress", False) or getattr(command, "_all_or_nothing", False):
        return command
    callback = command.callback

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        with atomic.all_or_nothing():
            return callback(*args, **kwargs)

    command.callback = guarded
    command._all_or_nothing = True
    return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="statcell_tf")
def cli():
    """statcell_tf: learn and analyse representations of single-cell microscopy images."""


def _run(command: click.Command, args: list[str] | None, prog_name: str) -> int:
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except UserError as error:
        click.echo(f"Error: {error}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except Exception as error:
        message = user_message(error)  # a user error raised inside a TensorFlow op
        if message is None:
            raise
        click.echo(f"Error: {message}", err=True)
        return 2
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of ``statcell <command> ...``."""
    return _run(cli, args, "statcell")


def run_command(name: str, args: list[str] | None = None) -> int:
    """Run one command as if called as ``bin/<name> ARGS``."""
    if name not in command_names():
        click.echo(f"Error: unknown command {name!r}; known: {', '.join(command_names())}", err=True)
        return 2
    command = _LazyGroup().get_command(None, name)
    return _run(command, args, name)


if __name__ == "__main__":
    sys.exit(main())
