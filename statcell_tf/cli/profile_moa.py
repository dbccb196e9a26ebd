"""`profile-moa`: profiles of any cell embeddings, side by side: NSC/NSCB 1-NN MoA accuracy and copairs mAP."""

from __future__ import annotations

import time
from pathlib import Path

import click

from statcell_tf.cli._options import existing_dir, existing_path, out_path

FEATURE_SELECT = ("variance_threshold", "correlation_threshold", "drop_outliers", "blocklist", "none")


@click.command()
@click.option("--embeddings", type=existing_path, multiple=True,
              help="Cell table (repeat for several, reported side by side): Parquet/CSV/TSV with Metadata_plate, "
                   "Metadata_well, Metadata_compound, Metadata_concentration, Metadata_moa (or the bare names) and "
                   "numeric features, or HDF5 (profile-moa's embeddings.h5, embed-cytoself's output).")
@click.option("--name", "names", multiple=True,
              help="Method name of each --embeddings, in order [default: the file name].")
@click.option("--vectors", default=None,
              help="HDF5 dataset of the cell vectors, flattened per cell (embed-cytoself: global, local, global_hist, "
                   "local_hist, probabilities) [default: embeddings, else global].")
@click.option("--run", "run", type=existing_dir, default=None, help="A run of any model: embed --data with its encoder (the vectors bin/embed writes to Parquet).")
@click.option("--data", type=existing_dir, default=None, help="Crops to embed with --run (metadata needs plate, well, compound, concentration, moa).")
@click.option("--control", default="DMSO", show_default=True,
              help="Control compound: reference of normalisation, whitening and activity; not classified.")
@click.option("--out", type=out_path, required=True, help="Output folder.")
@click.option("--features", "feature_prefix", default=None,
              help="Prefix of the feature columns [default: every non-Metadata_ column, or z_0-like names].")
@click.option("--evaluate", type=click.Choice(["nn", "map"]), multiple=True, default=("nn", "map"), show_default=True,
              help="nn: NSC/NSCB 1-nearest-neighbour MoA accuracy (Table 1 of VAE+); map: copairs mAP.")
@click.option("--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine", show_default=True,
              help="Distance of the 1-nearest-neighbour assignment (benchmark: cosine).")
@click.option("--intersect", is_flag=True,
              help="Several --embeddings holding different cells: compare the cells they share (else: error).")
@click.option("--drop-unreferenced", is_flag=True, hidden=True,
              help="Kept for old scripts: treatments without a reference of their MoA are always left out (listed).")
@click.option("--whiten-epsilon", type=click.FloatRange(0), default=1e-6, show_default=True,
              help="NSC/NSCB whitening regulariser, relative to the mean eigenvalue of the control covariance.")
@click.option("--map-level", type=click.Choice(["well", "cell"]), default="well", show_default=True,
              help="Replicates of phenotypic activity: well profiles, or single cells (treatments imaged in one well).")
@click.option("--cells-per-replicate", type=click.IntRange(1), default=1, show_default=True,
              help="--map-level cell: average the cells of each well in random groups of about this many (sub-well "
                   "replicates, far less noisy than single cells); 1 = single cells.")
@click.option("--normalize", type=click.Choice(["standardize", "mad_robustize", "none"]), default="standardize",
              show_default=True, help="Normalisation against the controls (pycytominer).")
@click.option("--normalize-on", type=click.Choice(["cells", "wells"]), default="cells", show_default=True,
              help="Normalise (and select, spherize) the cells or the well profiles.")
@click.option("--scope", type=click.Choice(["plate", "batch", "pooled"]), default="plate", show_default=True,
              help="Controls of normalisation and spherizing; a plate with too few falls back to its batch, then to all "
                   "plates, then to all its rows (reported).")
@click.option("--min-controls", type=click.IntRange(1), default=2, show_default=True,
              help="Fewest control units (cells or wells) a normalisation reference may hold.")
@click.option("--feature-select", type=click.Choice(FEATURE_SELECT), multiple=True,
              default=("variance_threshold", "correlation_threshold"), show_default=True,
              help="pycytominer feature selection operations (repeat; 'none' for none).")
@click.option("--corr-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="correlation_threshold: drop one of two features correlated above this.")
@click.option("--blocklist", multiple=True, help="Feature to drop with --feature-select blocklist (repeat) "
                                                  "[default: pycytominer's CellProfiler blocklist].")
@click.option("--spherize", type=click.Choice(["none", "ZCA", "ZCA-cor", "PCA", "PCA-cor"]), default="none",
              show_default=True, help="Spherize against the controls after normalisation (PCA: --scope pooled only).")
@click.option("--aggregate", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
              help="Cells -> well profiles.")
@click.option("--consensus", type=click.Choice(["median", "mean"]), default="median", show_default=True,
              help="Wells -> treatment profiles.")
@click.option("--null-size", type=click.IntRange(100), default=10000, show_default=True,
              help="Draws of copairs' permutation null (smallest p = 1 / (null size + 1)).")
@click.option("--fdr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="FDR level of 'active' and 'consistent'.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the null and of the control half-split.")
@click.option("--nonfinite", type=click.Choice(["error", "drop"]), default="error", show_default=True,
              help="A cell with a NaN/inf/empty feature: stop (error) or drop the cell and count it (drop).")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Crops per encoder call (--run).")
def command(embeddings, names, vectors, run, data, control, out, feature_prefix, evaluate, metric, intersect,
            drop_unreferenced,
            whiten_epsilon, map_level, cells_per_replicate, normalize, normalize_on, scope, min_controls, feature_select, corr_threshold,
            blocklist, spherize, aggregate, consensus, null_size, fdr, seed, nonfinite, batch_size):
    """Profile cell embeddings and compare them side by side (VAE+ Table 1 and mAP).

    For every embedding: cells -> well -> treatment profiles. --evaluate nn: the
    not-same-compound (NSC) and not-same-compound-and-batch (NSCB) 1-nearest-neighbour MoA
    accuracy for the summaries Mean, Mean+Whitened, Mean+S.D., Mean+S.D.+Whitened
    (whitening: ZCA on each plate's control cells). --evaluate map: pycytominer profiles
    (normalised against the controls, feature-selected, optionally spherized), then copairs
    mAP: phenotypic activity of every treatment against the controls (with a random half of
    the controls as the null check) and phenotypic consistency of every MoA. A plate with
    too few controls falls back to its batch's, then all plates' controls; the fallbacks
    are printed and written to references.csv.

    A treatment without an admissible reference of its own MoA under a hold-out (BBBC021's
    NSCB: mechanisms imaged in one batch) is left out of that hold-out, never scored as a
    miss; the treatments and classes left out are printed and written to excluded.csv.

    Writes OUT/accuracy.csv, accuracy.md, predictions.csv, excluded.csv (nn); OUT/activity.csv,
    consistency.csv, map.md, activity.png, consistency.png, references.csv and
    OUT/profiles/<name>.wells.parquet, <name>.treatments.parquet (map); with --run also
    OUT/embeddings.h5.
    """
    import pandas as pd

    from statcell_tf import atomic
    from statcell_tf.atomic import check_out
    from statcell_tf.data.embedding_files import write_embedding_table
    from statcell_tf.profiling import cells as cell_tables
    from statcell_tf.profiling import mean_ap, report
    from statcell_tf.profiling import moa as profiling
    from statcell_tf.profiling.profiles import NoInformativeFeatures, ProfileSettings, build_profiles, pseudo_replicates
    from statcell_tf.profiling.references import describe_fallbacks

    if bool(embeddings) == (run is not None):
        raise click.UsageError("give either --embeddings FILE or --run RUN --data DIR (--embeddings repeats for several)")
    if run is not None and data is None:
        raise click.UsageError("--run needs --data DIR (the crops to embed)")
    if embeddings and data is not None:
        raise click.UsageError("--data is only used with --run")
    if run is not None and vectors is not None:
        raise click.UsageError(f"--vectors is only used with --embeddings. Received: --vectors {vectors}")
    if names and len(names) != max(len(embeddings), 1):
        raise click.UsageError(f"give one --name per --embeddings. Received: {len(names)} --name for "
                               f"{max(len(embeddings), 1)} embedding(s)")
    if cells_per_replicate > 1 and map_level != "cell":
        raise click.UsageError(f"--cells-per-replicate needs --map-level cell. Received: --map-level {map_level}")
    if "none" in feature_select and len(feature_select) > 1:
        raise click.UsageError(f"--feature-select none excludes other operations. Received: {', '.join(feature_select)}")
    settings = ProfileSettings(
        control=control, normalize=normalize, normalize_on=normalize_on, scope=scope, min_controls=min_controls,
        feature_select=tuple(op for op in feature_select if op != "none"), corr_threshold=corr_threshold,
        blocklist=tuple(blocklist), spherize=spherize, aggregate=aggregate, consensus=consensus,
    )
    out = check_out(out, "--out", inputs=[*embeddings, data])
    timings = []

    # 1. Read and validate every table before anything is computed or written.
    start = time.perf_counter()
    methods, written = [], []
    if embeddings:
        labels = list(names) or _default_names(embeddings)
        for label, path in zip(labels, embeddings):
            methods.append((label, cell_tables.read_cells(path, vectors, feature_prefix, nonfinite)))
        methods, note = cell_tables.same_cells(methods, intersect)
    else:
        from statcell_tf.cli._embedding import encoder_for

        encoder = encoder_for(run, data, "all")  # the run's paper (registry), any of them
        crops = encoder  # metadata of the cells, in encoding order
        profiling.check_table(crops.metadata, f"--data {data} metadata")
        encoded = encoder.features(batch_size)  # lazy: one batch read at a time
        table = pd.concat([crops.metadata.reset_index(drop=True),
                           pd.DataFrame(encoded, columns=[f"z_{j}" for j in range(encoded.shape[1])])], axis=1)
        methods.append((names[0] if names else Path(run).name,
                        cell_tables.validate_cells(table, f"--data {data} metadata", None, nonfinite)))
        written.append(lambda: write_embedding_table(out / "embeddings.h5", encoded, crops.metadata))
    timings.append(("read" if embeddings else "embed", time.perf_counter() - start))

    # 2. Evaluate every method (still nothing written: a user error leaves no output).
    accuracy, predictions, activity, consistency, reference_tables, profiles, notes = [], [], [], [], [], {}, []
    if embeddings and note:
        notes.append(note)
    excluded = []
    for label, cells in methods:
        cell_tables.check_controls(cells.table, control, cells.source)
        if cells.dropped_rows:
            notes.append(f"{label}: dropped {cells.dropped_rows} cell(s) with NaN/inf features (--nonfinite drop)")
        if "nn" in evaluate:
            start = time.perf_counter()
            result = profiling.moa_benchmark(
                cells.table, cells.features, control=control, method=label, metric=metric,
                whiten_epsilon=whiten_epsilon, source=cells.source,
            )
            accuracy.append(result.accuracy)
            excluded.append(result.excluded.assign(method=label))
            for holdout, row in result.accuracy.set_index("holdout").iterrows():
                part = result.excluded[result.excluded["holdout"] == holdout]
                notes.append(f"{label}: {profiling.describe_exclusions(part, holdout, int(row['treatments']))}")
            predictions.append(result.predictions.assign(method=label))
            reference_tables.append(result.whitening.assign(method=label, step="whiten (NSC/NSCB)", unit="cell"))
            notes += [f"{label}: {line}" for line in describe_fallbacks(result.whitening, "cell", "whitened")]
            timings.append((f"{label}: NSC/NSCB", time.perf_counter() - start))
        if "map" in evaluate:
            start = time.perf_counter()
            try:
                built = build_profiles(cells, settings)
            except NoInformativeFeatures as error:
                notes.append(f"{label}: no mAP ({error})")
                continue
            profiles[label] = built
            reference_tables.append(built.references.assign(method=label))
            for step, part in built.references.groupby("step", sort=False):
                what = "normalised" if step == "normalize" else "spherized"
                notes += [f"{label}: {line}" for line in describe_fallbacks(part, part["unit"].iloc[0], what)]
            notes.append(f"{label}: {len(built.features)} of {len(cells.features)} features kept by feature selection")
            timings.append((f"{label}: profiles", time.perf_counter() - start))
            start = time.perf_counter()
            replicates = (built.wells if map_level == "well"
                          else pseudo_replicates(built.cells, built.features, cells_per_replicate, seed, aggregate))
            options = dict(control=control, null_size=null_size, threshold=fdr, seed=seed, source=cells.source)
            activity += [
                mean_ap.phenotypic_activity(replicates, built.features, **options).assign(method=label),
                mean_ap.control_half_split(replicates, built.features, **options).assign(method=label),
            ]
            consistency.append(mean_ap.phenotypic_consistency(built.treatments, built.features, **options)
                               .assign(method=label))
            timings.append((f"{label}: mAP", time.perf_counter() - start))

    # 3. Write.
    for write in written:
        write()
    lines = []
    if accuracy:
        accuracy = pd.concat(accuracy, ignore_index=True)
        atomic.write_csv(out / "accuracy.csv", accuracy)
        atomic.write_text(out / "accuracy.md", profiling.accuracy_markdown(accuracy))
        atomic.write_csv(out / "predictions.csv", pd.concat(predictions, ignore_index=True))
        atomic.write_csv(out / "excluded.csv", pd.concat(excluded, ignore_index=True))
        lines.append(profiling.accuracy_markdown(accuracy))
    if activity:
        activity = pd.concat(activity, ignore_index=True)
        consistency = pd.concat(consistency, ignore_index=True)
        text = (report.activity_markdown(activity, map_level, control, fdr) + "\n"
                + report.consistency_markdown(consistency, fdr))
        atomic.write_csv(out / "activity.csv", activity[["method", *mean_ap.ACTIVITY_COLUMNS]].assign(level=map_level))
        atomic.write_csv(out / "consistency.csv", consistency[["method", *mean_ap.CONSISTENCY_COLUMNS]])
        atomic.write_text(out / "map.md", text)
        report.plot_activity(activity, out / "activity.png", fdr)
        report.plot_consistency(consistency, out / "consistency.png")
        for label, built in profiles.items():
            _write_parquet(out / "profiles" / f"{_file_name(label)}.wells.parquet", built.wells)
            _write_parquet(out / "profiles" / f"{_file_name(label)}.treatments.parquet", built.treatments)
        lines.append(text)
    if reference_tables:
        atomic.write_csv(out / "references.csv", pd.concat(reference_tables, ignore_index=True))
    for line in lines:
        click.echo(line)
    for note in notes:
        click.echo(note)
    click.echo("Wall time: " + "; ".join(f"{what} {seconds:.1f} s" for what, seconds in timings))
    click.echo(f"Wrote {out}")


def _default_names(paths) -> list[str]:
    """File stems; where two files share a stem, ``<folder>/<stem>``; still equal: an error."""
    stems = [Path(p).stem for p in paths]
    labels = [f"{Path(p).parent.name}/{s}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    if len(set(labels)) < len(labels):
        raise click.UsageError("two --embeddings files would get the same name; pass one --name per file")
    return labels


def _file_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _write_parquet(path: Path, frame) -> None:
    from statcell_tf import atomic

    with atomic.atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
