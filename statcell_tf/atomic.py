"""Atomic writes: every output appears complete or not at all.

Write to a temporary sibling path, then ``os.replace`` it onto the final name, so an
interrupted command never leaves a half-written file or folder behind.

A command's outputs as a whole are made all-or-nothing by `all_or_nothing`: inside it,
every `atomic_path` records what it created or replaced (a hard link keeps the previous
version), and when the command fails (a disk that fills up at its third file, a bad cell
found late) every output is rolled back and every folder it created removed. Files are in
place as soon as they are written, so a command may read back what it wrote.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from statcell_tf.errors import UserError


class _Journal:
    """What the outputs of one command changed: created folders, and (path, backup) pairs."""

    def __init__(self):
        self.created: list[Path] = []
        self.written: list[tuple[Path, Path | None]] = []
        self.current: Path | None = None  # the output being written (named in error messages)

    def make_parents(self, folder: Path) -> None:
        missing = [p for p in [folder, *folder.parents] if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self.created.extend(reversed(missing))  # outermost first

    def backup(self, path: Path) -> Path | None:
        """Keep the current version of `path` (a hard link, else a copy) before it is replaced."""
        if not path.exists() and not path.is_symlink():
            return None
        backup = path.with_name(f".{path.name}.{os.getpid()}.bak")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(backup, ignore_errors=True)
            shutil.copytree(path, backup, symlinks=True)
            return backup
        with contextlib.suppress(FileNotFoundError):
            backup.unlink()
        try:
            os.link(path, backup)
        except OSError:
            shutil.copy2(path, backup)
        return backup

    def rollback(self) -> None:
        for path, backup in reversed(self.written):
            with contextlib.suppress(OSError):
                if backup is None:
                    _remove(path)
                elif backup.is_dir():
                    _remove(path)
                    os.replace(backup, path)
                else:
                    os.replace(backup, path)
        for folder in reversed(self.created):
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self) -> None:
        for _, backup in self.written:
            if backup is not None:
                with contextlib.suppress(OSError):
                    _remove(backup)


_journal: _Journal | None = None
_writing: Path | None = None  # the output being written outside `all_or_nothing` (error messages)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Outputs written inside the block stay only if the whole block succeeds (module doc).

    Nested uses join the outermost block. Not for training, whose per-epoch commits must
    survive a later failure.
    """
    global _journal
    if _journal is not None:
        yield
        return
    _journal = journal = _Journal()
    try:
        yield
    except BaseException:
        journal.rollback()
        raise
    else:
        journal.commit()
    finally:
        _journal = None


def current_output() -> Path | None:
    """The output `atomic_path` (or `writing`) was writing when a command failed (for its error message)."""
    if _journal is not None and _journal.current is not None:
        return _journal.current
    return _writing


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Name `path` as the output being written, so an OSError inside the block (a full disk
    that numpy reports without a file name) is reported with it."""
    global _writing
    previous, _writing = _writing, Path(path)
    yield
    _writing = previous  # kept on an exception: the error message names it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` left by killed processes (``.<name>.<pid>.*.tmp*`` whose
    process is gone); `atomic_path` calls it, so the next write of an output cleans up after
    a killed one."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    start = f".{path.name}."
    for entry in path.parent.iterdir():
        name = entry.name
        if not name.startswith(start) or ".tmp" not in name[len(start):]:
            continue
        pid = name[len(start):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                _remove(entry)
                removed.append(entry)
    return removed


def make_folder(path: str | os.PathLike) -> Path:
    """``mkdir -p`` that `all_or_nothing` removes again if the command fails."""
    path = Path(path)
    if _journal is not None:
        _journal.make_parents(path)
    else:
        path.mkdir(parents=True, exist_ok=True)
    return path


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
    global _writing
    path = Path(path)
    _writing = path
    if _journal is not None:
        _journal.current = path
    make_folder(path.parent)
    remove_stale_temporaries(path)
    suffix = path.suffix if suffix is None else suffix
    # The temporary names its process: a later run removes it once that process is gone.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink() and not tmp.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder; expected the path of a file", str(path))
        if _journal is not None:
            _journal.written.append((path, _journal.backup(path)))
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        if _journal is not None:
            _journal.current = None
        _writing = None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


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
    """Save a matplotlib figure atomically and close it; a PNG stores the figure's title as its
    ``Title`` (the caption `gallery.write_gallery` shows)."""
    import matplotlib.pyplot as plt

    from statcell_tf.figures import figure_caption

    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    if str(path).lower().endswith(".png") and figure_caption(figure):
        kwargs.setdefault("metadata", {"Title": figure_caption(figure)})
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, **kwargs)
    finally:
        plt.close(figure)
    return Path(path)

def check_out(out, flag: str = "--out", inputs=(), new_folder: bool = False, hint: str = "") -> Path:
    """`out` if outputs can be written there; else one UserError line.

    Refuses: a path under a regular file, the input data itself or a folder inside it (or
    holding it), a location that cannot be written (read-only filesystem or no
    permission) and, with `new_folder`, an existing file or non-empty folder. Creates nothing.
    """
    out = Path(out)
    absolute = Path(os.path.abspath(out))
    for source in inputs:
        if source is None:
            continue
        source = Path(os.path.abspath(source))
        if absolute == source or source in absolute.parents or absolute in source.parents:
            raise UserError(f"{flag} {out} overlaps the input {source}; choose a folder outside the data")
    if new_folder and out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "not empty"
        raise UserError(f"{flag} {out} is {what}; expected a new or empty folder{'; ' + hint if hint else ''}")
    for parent in absolute.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {out}: {parent} is a file, not a folder")
    existing = next(p for p in [absolute, *absolute.parents] if p.is_dir())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: cannot write to {existing} (read-only or no permission)")
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            raise UserError(f"{flag} {out}: {existing} is on a read-only filesystem")
    except (AttributeError, OSError):
        pass
    return out
