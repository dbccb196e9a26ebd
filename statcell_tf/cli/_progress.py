"""Progress output of the commands (click lives here, never in the library).

Library functions take an optional ``progress`` (a callable wrapping an iterable) or ``log``
(a callable taking one message); the commands pass these.
"""

from __future__ import annotations

import contextlib

import click


def progress(label: str):
    """A function wrapping an iterable in a click progress bar on stderr."""

    def wrap(iterable):
        items = list(iterable)
        with click.progressbar(items, label=label, file=click.get_text_stream("stderr")) as bar:
            yield from bar

    return wrap


def echo_err(message: str) -> None:
    """Print one line to stderr (a ``log`` callable for library functions)."""
    click.echo(message, err=True)


@contextlib.contextmanager
def counter_bar(total: int, label: str):
    """A click progress bar on stderr, yielded as a callable taking the number of items done
    so far (the ``progress`` argument of the streaming writers)."""
    with click.progressbar(length=total, label=label, file=click.get_text_stream("stderr")) as bar:
        done = [0]

        def advance(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        yield advance
