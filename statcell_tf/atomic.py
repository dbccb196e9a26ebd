"""Atomic writes: every output appears complete or not at all.

Write to a temporary sibling path, then ``os.replace`` it onto the final name, so an
interrupted command never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` if the block succeeds.

    Works for files and for folders (e.g. a SavedModel): the caller creates whatever it
    wants at the yielded path. On an exception the temporary is removed and `path` is left
    as it was.

    Args:
        path: str or PathLike. Final destination.
        suffix: str or None. Suffix of the temporary name; defaults to the final suffix
            (some writers, like matplotlib or Keras, pick the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def check_destination(out: str | os.PathLike, flag: str = "--out") -> Path:
    """The absolute form of `out` if it can be created: no regular file on its path above it,
    and its nearest existing folder writable (not read-only, permission granted). Creates
    nothing; otherwise one `UserError` line naming `flag`."""
    from statcell_tf.errors import UserError

    absolute = Path(os.path.abspath(out))
    for parent in absolute.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {out}: {parent} is a file, not a folder")
    existing = next(p for p in [absolute, *absolute.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK if existing.is_dir() else os.W_OK):
        raise UserError(f"{flag} {out}: cannot write to {existing} (read-only or no permission)")
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            raise UserError(f"{flag} {out}: {existing} is on a read-only filesystem")
    except (AttributeError, OSError):
        pass
    return absolute


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame, **kwargs) -> Path:
    """Write a pandas DataFrame to CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def save_figure(path: str | os.PathLike, figure, **kwargs) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, **kwargs)
    finally:
        plt.close(figure)
    return Path(path)
