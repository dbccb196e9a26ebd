"""`embed-cytoself`: localisation encodings of a trained cytoself run, streamed to HDF5."""

from __future__ import annotations

import click

from statcell_tf.cli._options import allow_pickle_option, existing_dir, out_path


@click.command("embed-cytoself")
@click.argument("run", type=existing_dir)
@click.option("--data", type=existing_dir, required=True, help="Data folder to embed.")
@click.option("--out", type=out_path, default=None, help="HDF5 file to write [default: RUN/embeddings.h5].")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Cells to embed: a split of the run (the paper reports the test split) or all cells.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--float16", "half", is_flag=True, help="Store the quantised vectors as float16 (half the size).")
@click.option("--no-local", is_flag=True, help="Skip the local vectors (N×25×25×64), keep indices and histograms.")
@allow_pickle_option
def command(run, data, out, split, batch_size, half, no_local, allow_pickle):
    """Embed the cells of --data with RUN's best model.

    Writes global (N,4,4,576) and local (N,25,25,64) vectors, code indices, code histograms
    (global_hist, local_hist), class probabilities, the run's label index and every metadata
    column (group ``metadata``). The file is written to a temporary name and renamed when done.
    """
    from statcell_tf.cytoself.embeddings import embed_cytoself
    from statcell_tf.cytoself.runs import read_cells
    from statcell_tf.errors import UserError
    from statcell_tf.cytoself.training import read_splits
    from statcell_tf.atomic import check_out
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, "RUN", paper="cytoself")
    if out is not None:
        check_out(out, "--out", inputs=[data])
    config = run_dir.read_config()["data"]
    cells = read_cells(data, allow_pickle)
    indices = None
    if split != "all":
        if config.get("num_cells") != len(cells):
            raise UserError(
                f"--split {split}: --data {data} is not the data RUN was trained on (it has {len(cells)} cells, "
                f"the run's data had {config.get('num_cells')}); use --split all for other data"
            )
        indices = read_splits(run_dir.path, len(cells))[split]
    out = out or run_dir.path / "embeddings.h5"
    path = embed_cytoself(
        run_dir.path, cells, out, batch_size=batch_size, indices=indices,
        dtype="float16" if half else "float32", include_local=not no_local,
    )
    click.echo(f"Embeddings of {len(cells) if indices is None else len(indices)} cells written to {path}")
