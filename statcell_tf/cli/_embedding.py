"""Shared by `embed` and `embed-cytoself`: the run's paper → its embedding function, and the
streaming write with a progress bar (click stays here; the science is in each paper package)."""

from __future__ import annotations

import time

from statcell_tf.cli._progress import counter_bar

SPLITS = ("all", "train", "val", "test")


def cytoself_rows(run_dir, cells, split: str, data):
    """Rows of `cells` in `split` of a cytoself run (None = all); the data must be the run's own."""
    from statcell_tf.errors import UserError

    if split == "all":
        return None
    expected = run_dir.read_config()["data"].get("num_cells")
    if expected != len(cells):
        raise UserError(
            f"--split {split}: --data {data} is not the data RUN was trained on (it has {len(cells)} cells, "
            f"the run's data had {expected}); use --split all for other data"
        )
    return run_dir.split_rows(len(cells))[split]


def encoder_for(run, data, split="all", reference=None, allow_pickle=False, dtype="float32", include_local=True):
    """The `CellEncoder` of RUN's paper for --data (everything validated, nothing written)."""
    from statcell_tf.errors import UserError
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, "RUN")
    paper = run_dir.read_config()["paper"]
    if reference is not None and paper != "statcell":
        raise UserError(f"--reference is for Statistical Cell target runs; RUN {run} is a {paper} run. "
                        f"Received: --reference {reference}")
    if paper == "cytoself":
        from statcell_tf.cytoself.embeddings import cytoself_encoder
        from statcell_tf.cytoself.runs import read_cells

        cells = read_cells(data, allow_pickle)
        rows = cytoself_rows(run_dir, cells, split, data)
        return cytoself_encoder(run_dir.path, cells, rows, dtype, include_local)
    if paper == "vaeplus":
        from statcell_tf.vaeplus.embeddings import vaeplus_encoder

        return vaeplus_encoder(run, data, split)
    if paper == "statcell":
        from statcell_tf.statcell.embeddings import statcell_encoder

        return statcell_encoder(run, data, reference, split)
    from statcell_tf.integrated_cell.embeddings import integrated_cell_encoder

    return integrated_cell_encoder(run, data, split)


def write_with_progress(out, encoder, batch_size: int, vectors=None):
    """Stream `encoder`'s cells into `out` under a progress bar; returns (path, seconds)."""
    from statcell_tf.data.embedding_files import write_embeddings

    started = time.perf_counter()
    with counter_bar(len(encoder), "Embedding cells") as advance:
        path = write_embeddings(out, encoder, batch_size, vectors, progress=advance)
    return path, time.perf_counter() - started
