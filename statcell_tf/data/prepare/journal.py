"""prepare-crops' journal: ``prepare_progress.jsonl``, one line per committed chunk (read-only here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

CONFIG_FILE = "prepare.json"
PROGRESS_FILE = "prepare_progress.jsonl"


def read_progress(out: str | Path) -> tuple[list[str], dict[str, dict]]:
    """Committed chunks and per-field summary rows of an output folder (read-only).

    A torn last line (a run killed while writing it) is ignored: its chunk is not committed.

    Args:
        out: str or Path. The output folder.

    Returns:
        (chunk names in commit order, {field id: summary row}).
    """
    chunks, done = [], {}
    for entry in _journal(Path(out))[0]:
        if entry.get("chunk"):
            chunks.append(entry["chunk"])
        for row in entry.get("fields", []):
            done[row["field"]] = row
    return chunks, done


def _journal(out: Path) -> tuple[list[dict], bool]:
    """The complete entries of the progress journal, and whether a torn tail follows them."""
    path = out / PROGRESS_FILE
    if not path.is_file():
        return [], False
    entries = []
    with open(path) as file:
        for line in file:
            try:
                if not line.endswith("\n"):
                    raise ValueError("no line end")
                entries.append(json.loads(line))
            except ValueError:
                return entries, True
    return entries, False


def pending_fields(out: str | Path, fields: Sequence) -> list:
    """The fields not yet committed in `out` (all of them for a new folder)."""
    _, done = read_progress(out)
    return [f for f in fields if f.field not in done]
