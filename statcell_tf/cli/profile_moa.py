"""`profile-moa`: the BBBC021 mechanism-of-action benchmark (NSC / NSCB) of any cell embeddings."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_dir, existing_path, out_path


@click.command()
@click.option("--embeddings", type=existing_path, default=None,
              help="Cell embedding table: CSV (z_0, z_1, ... + plate, well, compound, concentration, moa) or HDF5 "
                   "(profile-moa's embeddings.h5 or embed-cytoself's output).")
@click.option("--vectors", default=None,
              help="HDF5 dataset of the cell vectors, flattened per cell (embed-cytoself: global, local, global_hist, "
                   "local_hist, probabilities) [default: embeddings, else global].")
@click.option("--run", "run", type=existing_dir, default=None, help="A train-vaeplus run: embed --data with its encoder.")
@click.option("--data", type=existing_dir, default=None, help="Crops to embed with --run (metadata needs plate, well, compound, concentration, moa).")
@click.option("--control", default="DMSO", show_default=True, help="Control compound: learns the whitening, is not classified.")
@click.option("--out", type=out_path, required=True, help="Output folder.")
@click.option("--name", default=None, help="Method name in the accuracy table [default: the run or file name].")
@click.option("--features", "feature_prefix", default=None, help="Prefix of the embedding columns [default: z_0-like names].")
@click.option("--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine", show_default=True,
              help="Distance of the 1-nearest-neighbour assignment (benchmark: cosine).")
@click.option("--drop-unreferenced", is_flag=True,
              help="Leave out MoA classes a hold-out leaves without reference profiles (else: error).")
@click.option("--whiten-epsilon", type=click.FloatRange(0), default=1e-6, show_default=True,
              help="Whitening regulariser, relative to the mean eigenvalue of the control covariance.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Crops per encoder call (--run).")
def command(embeddings, vectors, run, data, control, out, name, feature_prefix, metric, drop_unreferenced,
            whiten_epsilon, batch_size):
    """Classify treatments by mechanism of action from cell embeddings (Table 1 of VAE+).

    Cells → well profiles (mean, or mean and S.D.) → treatment profiles (median over wells)
    → 1-nearest-neighbour MoA under the not-same-compound (NSC) and
    not-same-compound-and-batch (NSCB) hold-outs, for the four summaries Mean,
    Mean+Whitened, Mean+S.D., Mean+S.D.+Whitened (whitening: ZCA learned on each plate's
    control cells). Writes OUT/accuracy.csv, OUT/accuracy.md (Table 1 layout) and
    OUT/predictions.csv; with --run also OUT/embeddings.h5 (the embedded cells).
    """
    from statcell_tf import atomic
    from statcell_tf.profiling import moa as profiling

    if (embeddings is None) == (run is None):
        raise click.UsageError("give either --embeddings FILE or --run RUN --data DIR")
    if run is not None and data is None:
        raise click.UsageError("--run needs --data DIR (the crops to embed)")
    if embeddings is not None and data is not None:
        raise click.UsageError("--data is only used with --run")
    if run is not None and vectors is not None:
        raise click.UsageError(f"--vectors is only used with --embeddings. Received: --vectors {vectors}")
    from statcell_tf.atomic import check_out

    out = check_out(out, "--out", inputs=[embeddings, data])
    if embeddings is not None:
        table = profiling.read_embedding_table(embeddings, vectors)
        source = f"--embeddings {embeddings}"
        name = name or Path(embeddings).stem
    else:
        from statcell_tf.vaeplus.training import batched, load_cells, load_endpoints

        _, loaded = load_endpoints(run, flag="--run")
        cells = load_cells(data)
        profiling.check_table(cells.metadata, f"--data {data} metadata")
        vectors = batched(loaded.encode, cells.images, batch_size)  # lazy: one batch read at a time
        table = cells.metadata.copy()
        for j in range(vectors.shape[1]):
            table[f"z_{j}"] = vectors[:, j]
        profiling.write_embedding_table(out / "embeddings.h5", vectors, cells.metadata)
        source = f"--data {data} metadata"
        name = name or Path(run).name
    features = profiling.feature_columns(table, feature_prefix, source)
    result = profiling.moa_benchmark(
        table, features, control=control, method=name, metric=metric, drop_unreferenced=drop_unreferenced,
        whiten_epsilon=whiten_epsilon, source=source,
    )
    atomic.write_csv(out / "accuracy.csv", result.accuracy)
    atomic.write_text(out / "accuracy.md", profiling.accuracy_markdown(result.accuracy))
    atomic.write_csv(out / "predictions.csv", result.predictions)
    click.echo(profiling.accuracy_markdown(result.accuracy))
    click.echo(f"Wrote {out / 'accuracy.csv'}, {out / 'accuracy.md'} and {out / 'predictions.csv'}")

