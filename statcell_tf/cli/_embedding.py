"""Shared by `embed` and `embed-cytoself`: the run's paper → its embedding function, and the
streaming write with a progress bar (click stays here; the science is in each paper package)."""

from __future__ import annotations

import time

from statcell_tf.cli._progress import counter_bar

SPLITS = ("all", "train", "val", "test")


def encoder_for(run, data, split="all", reference=None, allow_pickle=False, dtype="float32", include_local=True):
    """The `CellEncoder` of RUN's paper (asked of the registry) for --data, everything
    validated and nothing written. Options a paper does not take are refused by name."""
    from statcell_tf.data.readers import read_cells
    from statcell_tf.errors import UserError
    from statcell_tf.training.run_dir import open_run

    paper = open_run(run, "RUN").paper()
    given = {"reference": (reference, None, "--reference"), "dtype": (dtype, "float32", "--float16"),
             "include_local": (include_local, True, "--no-local")}
    options = {}
    for name, (value, default, flag) in given.items():
        if value == default:
            continue
        if name not in paper.encoder_options:
            raise UserError(f"{flag} does not apply to RUN {run}: it is a {paper.title} run. Received: {flag}"
                            + (f" {value}" if name == "reference" else ""))
        options[name] = value
    cells = read_cells(data, allow_pickle, flag="--data")
    return paper.encoder(run, cells, split=split, **options)


def write_with_progress(out, encoder, batch_size: int, vectors=None):
    """Stream `encoder`'s cells into `out` under a progress bar; returns (path, seconds)."""
    from statcell_tf.data.embedding_files import write_embeddings

    started = time.perf_counter()
    with counter_bar(len(encoder), "Embedding cells") as advance:
        path = write_embeddings(out, encoder, batch_size, vectors, progress=advance)
    return path, time.perf_counter() - started
