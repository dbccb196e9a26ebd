"""The unfinished-data-set marker: a folder a command is still writing, or that was stopped, says so.

A command that writes a data set in several steps (prepare-crops) puts ``UNFINISHED.json`` in
the folder before its first write and removes it as its last step. Every data reader calls
`check` (`statcell_tf.data.readers.read_cells` and the format readers), so a killed or stopped
run is never read as a finished data set: the reader refuses in one line naming the folder
and the command that finishes it, unless the caller passes ``allow=True`` (the readers'
``allow_unfinished``; inspect-data's ``--allow-unfinished``: use the folder as it is).
"""

from __future__ import annotations

import json
from pathlib import Path

from statcell_tf.errors import UserError

MARKER = "UNFINISHED.json"


def mark(folder: str | Path, command: str, finish: str, **details) -> Path:
    """Mark `folder` unfinished: `command` writes it; `finish` is the command line that completes it."""
    from statcell_tf.atomic import write_json

    return write_json(Path(folder) / MARKER, {"command": command, "finish": finish, **details})


def clear(folder: str | Path) -> None:
    """The data set in `folder` is complete: remove the marker (the writing command's last step)."""
    (Path(folder) / MARKER).unlink(missing_ok=True)


def check(path: str | Path, flag: str = "--data", allow: bool = False) -> None:
    """Refuse a data set whose folder (`path`, or the folder of the file `path`) carries the marker.

    Args:
        path: str or Path. The data set: a folder or a file in it (a manifest, metadata.csv).
        flag: str. Names `path` in the message.
        allow: bool. Use the unfinished folder as it is (the user's explicit choice).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    marker = folder / MARKER
    if allow or not marker.is_file():
        return
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        info = {}
    command = info.get("command", "the command that wrote it")
    finish = info.get("finish") or f"{command} ... --resume"
    raise UserError(
        f"{flag} {folder} is an unfinished data set ({command} was stopped or is still writing it: {marker.name} "
        f"is there); finish it with `{finish}` (inspect-data --allow-unfinished describes it as it is)"
    )
