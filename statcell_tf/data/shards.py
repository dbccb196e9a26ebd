"""Work split over independent jobs: ``--shard K/N`` (one partition rule, one part naming, one reader check).

A command given ``--shard K/N`` (K = 1..N) does the K-th of N equal, contiguous slices of its
work (cells for embed / embed-classical, fields of view for prepare-crops) and writes it as
one *part* inside ``--out``, which then names a folder: ``part-0000K-of-0000N<suffix>``. N
jobs given the same ``--out`` never write the same file, need no coordination, and can run
on any scheduler (a SLURM array, a Kubernetes indexed Job, a shell loop). Slices are
contiguous and in order, so reading the parts in K order gives the rows of one unsharded run,
in the same order.

A part appears under its name only when its job finished (it is written under a temporary
name and renamed, `statcell_tf.atomic`); `part_files` refuses a folder where a part is
missing, so an unfinished set of shards is never read as a finished one. Re-running a shard
replaces its part.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from statcell_tf.errors import UserError

PART_PATTERN = re.compile(r"^part-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>(\.\w+)*)$")
_SHARD_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class Shard:
    """The K-th (1-based `index`) of `count` slices of the work."""

    index: int
    count: int

    def __post_init__(self):
        if not (1 <= self.count and 1 <= self.index <= self.count):
            raise UserError(f"--shard must be K/N with 1 <= K <= N. Received: {self.index}/{self.count}")

    def bounds(self, n: int) -> tuple[int, int]:
        """[start, stop) of this slice of n items: slices differ in size by at most one."""
        return (self.index - 1) * n // self.count, self.index * n // self.count

    def select(self, items: Sequence) -> list:
        """This shard's items of `items` (contiguous, in order)."""
        start, stop = self.bounds(len(items))
        return list(items[start:stop])

    def part_name(self, suffix: str = "") -> str:
        """``part-0000K-of-0000N<suffix>``: sorts in K order."""
        return f"part-{self.index:05d}-of-{self.count:05d}{suffix}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None, flag: str = "--shard") -> Shard | None:
    """``"K/N"`` → Shard (None stays None); anything else a UserError naming `flag`."""
    if text is None:
        return None
    match = _SHARD_TEXT.match(str(text))
    if not match:
        raise UserError(f"{flag} must be K/N (this job's slice K of N, e.g. 2/8). Received: {text!r}")
    return Shard(int(match[1]), int(match[2]))


def part_path(out, shard: Shard, flag: str = "--out") -> Path:
    """Where shard `shard` writes inside the folder `out`: ``out/part-K-of-N<suffix of out>``.

    Refuses (one UserError line, nothing created) an `out` that is a regular file, and a
    folder holding parts of another number of shards.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file; with --shard it names the folder that holds the parts of every "
                        f"shard (e.g. {out.name} in another place, or remove the file)")
    counts = sorted({count for _, count, _ in _parts(out)}) if out.is_dir() else []
    if counts and counts != [shard.count]:
        raise UserError(f"{flag} {out} holds parts of {' and '.join(map(str, counts))} shards; --shard "
                        f"{shard} would add a part of {shard.count}. Use the same N for every shard (or another --out)")
    return out / shard.part_name(out.suffix)


def _parts(folder: Path) -> list[tuple[int, int, Path]]:
    found = []
    for path in folder.iterdir():
        match = PART_PATTERN.match(path.name)
        if match:
            found.append((int(match["index"]), int(match["count"]), path))
    return sorted(found)


def is_sharded(path) -> bool:
    """True for a folder holding at least one ``part-K-of-N`` entry."""
    path = Path(path)
    return path.is_dir() and bool(_parts(path))


def part_files(folder, flag: str = "--data", finished: Callable[[Path], bool] | None = None) -> list[Path]:
    """The parts of a sharded output in K order, once every one is there; else one UserError line.

    Refused: no part, parts of different shard counts, a missing part (its job has not
    finished, failed, or did not run) and, with `finished`, a part it says is unfinished (a
    folder part written in place, e.g. prepare-crops' without its summary.csv).
    """
    folder = Path(folder)
    parts = _parts(folder) if folder.is_dir() else []
    if not parts:
        raise UserError(f"{flag} {folder} holds no part-K-of-N files of a sharded run")
    counts = sorted({count for _, count, _ in parts})
    if len(counts) > 1:
        raise UserError(f"{flag} {folder} mixes parts of {' and '.join(map(str, counts))} shards; "
                        "expected the parts of one sharded run")
    count = counts[0]
    present = {index for index, _, _ in parts}
    missing = [k for k in range(1, count + 1) if k not in present]
    if missing:
        example = Shard(missing[0], count).part_name(parts[0][2].suffix if parts[0][2].is_file() else "")
        raise UserError(
            f"{flag} {folder}: part(s) {', '.join(map(str, missing[:10]))} of {count} are missing (their "
            f"--shard K/{count} jobs have not finished or did not run; e.g. {example}); "
            f"found {len(present)} of {count}"
        )
    unfinished = [index for index, _, path in parts if finished is not None and not finished(path)]
    if unfinished:
        raise UserError(
            f"{flag} {folder}: part(s) {', '.join(map(str, unfinished[:10]))} of {count} are unfinished (their "
            f"--shard K/{count} jobs are running, were killed or failed: rerun them, with --resume where the "
            "command has it)"
        )
    return [path for _, _, path in parts]
