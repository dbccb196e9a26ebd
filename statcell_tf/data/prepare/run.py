"""The prepare-crops run: fields in order (worker processes), chunks committed to the journal, summary."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from statcell_tf.atomic import write_csv, write_json, write_text, writing
from statcell_tf.data import unfinished
from statcell_tf.data.prepare.crops import FieldResult, process_field
from statcell_tf.data.prepare.fovs import Field
from statcell_tf.data.prepare.journal import (
    CONFIG_FILE,
    PROGRESS_FILE,
    _journal,
    read_progress,
)
from statcell_tf.data.prepare.montage import write_montages
from statcell_tf.data.prepare.settings import PrepareConfig, output_columns
from statcell_tf.data.prepare.writers import WRITERS
from statcell_tf.errors import UserError
from statcell_tf.parallel import map_ordered

SUMMARY_FILE = "summary.csv"


@dataclasses.dataclass
class PrepareSummary:
    """What a run did. Attributes: fields (processed now), skipped (done before), empty (fields
    where no cell was found), crops (written now), counts (summed per-field counts),
    total_crops (in the folder), seconds."""

    fields: int
    skipped: int
    empty: list[str]
    crops: int
    counts: dict
    total_crops: int
    seconds: float


def _summary_row(field: Field, result: FieldResult, chunk: str | None) -> dict:
    counts = result.counts
    if counts.get("skipped_nonfinite_field"):
        status = "skipped: NaN/inf pixels (--nonfinite skip)"
    elif counts["nuclei"] == 0:
        status = "no cells found"
    elif counts["crops"] == 0:
        status = "no crops kept"
    else:
        status = "ok"
    row = {"field": field.field, "fovs_row": field.row, "status": status, "fingerprint": field.fingerprint}
    row.update({k: int(v) for k, v in counts.items()})
    row.update({"chunk": chunk if counts["crops"] else "", "seconds": round(result.seconds, 3)})
    return row


def _check_resume(out: Path, fields: Sequence[Field]) -> None:
    """--resume continues the run of the same FOVS.csv: a committed field whose row changed, or
    that FOVS.csv no longer lists, is refused (the output must equal a fresh run on FOVS.csv)."""
    _, done = read_progress(out)
    by_id = {f.field: f for f in fields}
    for field_id, row in done.items():
        if field_id in by_id and row["fingerprint"] != by_id[field_id].fingerprint:
            raise UserError(
                f"--resume: FOVS.csv row {by_id[field_id].row + 1} (field {field_id}) differs from the one written to "
                f"{out} (paths, channel indices or metadata); restore it or write to a new --out. Received: a changed row"
            )
    removed = [field_id for field_id in done if field_id not in by_id]
    if removed:
        shown = ", ".join(removed[:5]) + (", ..." if len(removed) > 5 else "")
        raise UserError(
            f"--resume: {len(removed)} field(s) written to {out} are no longer in FOVS.csv ({shown}); their crops "
            "would stay in the output. Restore their rows, or write to a new --out. Received: rows removed from FOVS.csv"
        )


def prepare_crops(
    fields: Sequence[Field],
    out: str | Path,
    config: PrepareConfig,
    carried: Sequence[str],
    workers: int = 1,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk_crops: int = 1000,
    chunk_bytes: int = 64 * 2**20,
    montage_crops: int = 16,
    seed: int = 0,
    finish: str = "",
) -> PrepareSummary:
    """Crop every field into `out`, streaming, and write summary.csv and the montages.

    Call `read_fields` and `check_out` first: they validate without writing. Fields run in
    order (in `workers` processes when > 1; the output is the same for any `workers`);
    finished fields are committed in chunks of at most `chunk_crops` crops or `chunk_bytes`
    bytes. With `resume`, fields already committed in `out` are skipped (their FOVS.csv row
    must be unchanged) and chunk files left by a killed run are removed.

    Args:
        fields: sequence of Field. From `read_fields`.
        out: str or Path. Output folder (created).
        config: PrepareConfig.
        carried: sequence of str. The metadata columns (from `read_fields`).
        workers: int. Processes. Defaults to 1 (this process).
        resume: bool. Continue the run in `out`. Defaults to False.
        progress: callable or None. Called with 1 after each field.
        chunk_crops: int. Crops per chunk at most. Defaults to 1000.
        chunk_bytes: int. Bytes of crops held before a chunk is written. Defaults to 64 MiB.
        montage_crops: int. Random crops per group montage (0: none). Defaults to 16.
        seed: int. Montage sampling. Defaults to 0.
        finish: str. The command line that completes this run, shown by readers while the
            folder is marked unfinished (`statcell_tf.data.unfinished`).

    Returns:
        PrepareSummary.
    """
    import functools

    started = time.perf_counter()
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps({"config": config.to_dict(), "carried": list(carried)}))  # as saved
    if resume:
        _check_resume(out, fields)
    if resume and (out / CONFIG_FILE).is_file():
        before = json.loads((out / CONFIG_FILE).read_text())
        # A setting added since that run was written counts as its default there.
        defaults = {f.name: f.default for f in dataclasses.fields(PrepareConfig)}
        for key in sorted(set(before["config"]) | set(settings["config"])):
            if before["config"].get(key, defaults.get(key)) != settings["config"].get(key):
                raise UserError(
                    f"--resume must use the settings of the run in {out}: {key} was {before['config'].get(key)!r}. "
                    f"Received: {settings['config'].get(key)!r}"
                )
        if before["carried"] != settings["carried"]:
            raise UserError(
                f"--resume needs FOVS.csv with the metadata columns of the run in {out} ({', '.join(before['carried'])}). "
                f"Received: {', '.join(carried)}"
            )
    else:
        write_json(out / CONFIG_FILE, settings)
    # Until the last step below, every reader refuses the folder (a kill or an error leaves it marked).
    unfinished.mark(out, "prepare-crops", finish or "prepare-crops FOVS.csv --out OUT --resume", fields=len(fields))
    columns = output_columns(config, carried)
    writer = WRITERS[config.layout](out, config, columns)
    entries, torn = _journal(out)
    if torn:  # a run killed while writing its last line: keep the complete lines only
        write_text(out / PROGRESS_FILE, "".join(json.dumps(e) + "\n" for e in entries))
    chunks, done = read_progress(out)
    for name in writer.chunk_names_on_disk() - set(chunks):  # left by a killed run
        writer.remove_chunk(name)
    for stale in out.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    todo = [f for f in fields if f.field not in done]
    next_index = 1 + max([int(n.rsplit("_", 1)[1]) for n in set(chunks) | writer.chunk_names_on_disk()] or [-1])
    totals: collections.Counter = collections.Counter()
    empty, crops_now = [], 0
    buffer: list[tuple[Field, FieldResult]] = []

    def commit():
        nonlocal next_index
        with_crops = [r for _, r in buffer if r.counts["crops"]]
        name = None
        if with_crops:
            name = f"{writer.prefix}_{next_index:05d}"
            next_index += 1
            with writing(out / name):  # an OSError (full disk) names the chunk
                writer.write_chunk(name, with_crops)
            chunks.append(name)
        entry = {"chunk": name, "fields": [_summary_row(f, r, name) for f, r in buffer]}
        with writing(out / PROGRESS_FILE), open(out / PROGRESS_FILE, "a") as journal:
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        for row in entry["fields"]:
            done[row["field"]] = row
        buffer.clear()

    work = functools.partial(process_field, config=config)
    held_crops = held_bytes = 0
    try:
        for field, result in zip(todo, map_ordered(work, todo, workers)):
            buffer.append((field, result))
            totals.update({k: v for k, v in result.counts.items()})
            crops_now += result.counts["crops"]
            if result.counts["nuclei"] == 0 and not result.counts.get("skipped_nonfinite_field"):
                empty.append(field.field)
            held_crops += result.counts["crops"]
            held_bytes += result.nbytes
            if held_crops >= chunk_crops or held_bytes >= chunk_bytes:
                commit()
                held_crops = held_bytes = 0
            if progress is not None:
                progress(1)
    except UserError as error:  # e.g. pixels that cannot be read although the header could
        if buffer:
            commit()
        if created and not done:  # nothing finished: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
            raise
        raise UserError(
            f"{error}; the {len(done)} field(s) finished before it are kept in {out}: fix the input and run "
            "again with --resume"
        ) from None
    if buffer:
        commit()
    writer.finish(chunks)
    summary = pd.DataFrame(list(done.values()))
    order = {f.field: i for i, f in enumerate(fields)}
    summary = summary.sort_values("field", key=lambda s: s.map(lambda v: order.get(v, len(order)))).fillna(0)
    write_csv(out / SUMMARY_FILE, summary)
    if montage_crops > 0:
        write_montages(out, config, writer, chunks, montage_crops, seed)
    unfinished.clear(out)
    return PrepareSummary(
        fields=len(todo),
        skipped=len(fields) - len(todo),
        empty=empty,
        crops=crops_now,
        counts=dict(totals),
        total_crops=int(pd.to_numeric(summary.get("crops", pd.Series(dtype=int))).sum()),
        seconds=time.perf_counter() - started,
    )
