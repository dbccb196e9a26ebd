"""`embed`: per-cell embeddings of a trained run of any of the four models, streamed to Parquet or HDF5."""

from __future__ import annotations

import click

from statcell_tf.cli._embedding import SPLITS
from statcell_tf.cli._options import (
    allow_pickle_option,
    existing_dir,
    existing_path,
    out_path,
    shard_option,
)


@click.command("embed")
@click.argument("run", type=existing_dir)
@click.option("--data", type=existing_path, required=True, help="Cells to embed (any format the run's trainer reads).")
@click.option("--out", type=out_path, required=True,
              help="Output file: .parquet (one row per cell, Metadata_* columns, <vector>_<j> features) or .h5.")
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="Cells to embed: all, or a split recorded by the run (--data must be its training data).")
@click.option("--vectors", default=None,
              help="Comma-separated vectors to write [Parquet default: cytoself global, every vector otherwise; "
                   "HDF5: every vector]. cytoself: global, local, global_hist, local_hist, probabilities, "
                   "global_indices, local_indices; VAE+: mu; Statistical Cell: z_ref, z_target; "
                   "Integrated Cell: z_r (reference), z_r, z_s, probabilities (conditional).")
@click.option("--reference", type=existing_dir, default=None,
              help="Statistical Cell target run: its reference run [default: the one its config.json records].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Cells read and encoded at a time (memory stays flat).")
@shard_option("cells")
@allow_pickle_option
def command(run, data, out, split, vectors, reference, batch_size, shard, allow_pickle):
    """Embed the cells of --data with RUN's best model, whichever paper trained it.

    cytoself: global and local quantised vectors, code histograms, class probabilities;
    VAE+: posterior means mu; Statistical Cell: z_ref (reference run) and, for a target run,
    z_target (with the reference run it is paired with); Integrated Cell: z_r, or z_r, z_s
    and structure probabilities of a conditional run. Parquet: one row per cell, every
    metadata column as Metadata_<column>, features <vector>_<j> (float32), readable by
    pandas, pycytominer and copairs. HDF5: one dataset per vector and group metadata
    (profile-moa reads it). Cells are read, encoded and written --batch-size at a time; the
    file is written under a temporary name and renamed when complete. With --shard K/N,
    --out names a folder and this job writes cells K of N into --out/part-K-of-N.<suffix>;
    profile-moa reads the folder as one table once all N parts are there.
    """
    from statcell_tf.cli._embedding import encoder_for, write_with_progress
    from statcell_tf.data.embedding_files import check_out_file

    chosen = [v.strip() for v in vectors.split(",") if v.strip()] if vectors else None
    from statcell_tf.data.shards import part_path

    target = out if shard is None else part_path(out, shard)
    check_out_file(target, "--out", inputs=[data])
    encoder = encoder_for(run, data, split, reference, allow_pickle)
    if chosen is not None:
        encoder.parquet_vectors(chosen)  # an unknown name stops here, before anything is written
    if shard is not None:  # the encoder's rows, whichever paper: a contiguous slice
        encoder = encoder.rows(*shard.bounds(len(encoder)))
    path, seconds = write_with_progress(target, encoder, batch_size, chosen)
    click.echo(f"Embeddings of {len(encoder)} cells written to {path} ({len(encoder) / max(seconds, 1e-9):.1f} cells/s)")
