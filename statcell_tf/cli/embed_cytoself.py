"""`embed-cytoself`: localisation encodings of a trained cytoself run (an alias of `embed` for cytoself runs)."""

from __future__ import annotations

import click

from statcell_tf.cli._options import allow_pickle_option, existing_dir, out_path


@click.command("embed-cytoself")
@click.argument("run", type=existing_dir)
@click.option("--data", type=existing_dir, required=True, help="Data folder to embed.")
@click.option("--out", type=out_path, default=None,
              help="HDF5 (or .parquet) file to write [default: RUN/embeddings.h5].")
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
    The same as ``embed RUN`` for a cytoself run, with the paper's test split by default.
    """
    from statcell_tf.cli._embedding import encoder_for, write_with_progress
    from statcell_tf.data.embedding_files import check_out_file
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, "RUN", paper="cytoself")
    out = check_out_file(out or run_dir.path / "embeddings.h5", "--out", inputs=[data])
    encoder = encoder_for(run, data, split, allow_pickle=allow_pickle, dtype="float16" if half else "float32",
                          include_local=not no_local)
    path, _ = write_with_progress(out, encoder, batch_size)
    click.echo(f"Embeddings of {len(encoder)} cells written to {path}")
