"""`prepare-crops FOVS.csv` (or OME-Zarr HCS plates + a plate map): fields of view → single-cell crops in a
paper's layout."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import (
    commits_progress,
    out_path,
    seed_option,
    shard_option,
    workers_option,
)

# = statcell_tf.data.prepare.LAYOUTS, not imported so that --help stays instant.
LAYOUTS = ("opencell", "bbbc021", "allencell")


@commits_progress
@click.command("prepare-crops")
@click.argument("fovs", nargs=-1, required=True, metavar="FOVS.csv | PLATE.zarr...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--layout", type=click.Choice(LAYOUTS), required=True,
              help="opencell: cytoself crops (pro, nuc, nucdist .npy); bbbc021: VAE+ crops (.npy + metadata.csv); "
              "allencell: aligned per-cell OME-TIFFs + manifest.csv (Integrated Cell / Statistical Cell).")
@click.option("--out", type=out_path, required=True, help="Output folder (new or empty; with --resume, an earlier run's).")
@click.option("--channels", default=None,
              help="bbbc021 only: the FOVS.csv columns of the crop's channels in order, e.g. dna,actin,tubulin "
              "(with plates: the plate's channel names, or names given by --plate-channels).")
@click.option("--plate-map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Plates only: CSV / TSV / Parquet, one row per well (a well column: B03, B3 or B/3, or row and "
              "column columns; a plate column for several plates) whose other columns (compound, concentration, "
              "moa, ...) are copied onto every crop of the well.")
@click.option("--plate-channels", default=None, metavar="CHANNEL=NAME,...",
              help="Plates only: the plate channel (omero name or index) of each layout channel, e.g. "
              "dna=DAPI,actin=Phalloidin [channels matched by name, ignoring case].")
@click.option("--size", type=click.IntRange(min=8), default=None,
              help="Crop side in pixels after downsampling [opencell 100, bbbc021 68, allencell 128].")
@click.option("--downsample", type=click.IntRange(min=1), default=None,
              help="Block-mean downsampling in y and x before segmenting [opencell 2 (the paper's 1024 -> 512), else 1].")
@click.option("--projection", type=click.Choice(["max", "none"]), default="max", show_default=True,
              help="max: z max projection of z-stacks; none: keep 3D (allencell; opencell and bbbc021 then refuse z-stacks).")
@click.option("--nucleus-channel", default=None,
              help="Channel to segment nuclei on [opencell nuc, allencell dna, bbbc021 the channel named dna, else the first].")
@click.option("--cell-channel", default=None,
              help="Channel to grow cells on from the nuclei (QC cell area; allencell masks) or 'none' "
              "[allencell membrane, else none]. A cell_mask column overrides it.")
@click.option("--min-distance", type=click.IntRange(min=1), default=4, show_default=True,
              help="Smallest distance between two nucleus centres in pixels (about a nucleus radius; raise it if "
              "nuclei are split).")
@click.option("--qc", "qc", multiple=True, metavar="RULE",
              help="Keep crops passing RULE, e.g. nucleus_area>=50, neighbours<=2, touches_border==0, focus>=0.01, "
              "mean_dna>=200 (repeatable; drops are counted per rule in summary.csv).")
@click.option("--group-column", default=None,
              help="Metadata column with one montage per value [protein, compound, structure_name].")
@click.option("--montage-crops", type=click.IntRange(min=0), default=16, show_default=True,
              help="Random crops per montage (0: no montages).")
@workers_option("fields")
@click.option("--resume", is_flag=True, default=False,
              help="Continue the run in --out: skip the fields it finished (FOVS.csv rows, or plates and plate map, must "
              "be unchanged).")
@shard_option("fields of view (FOVS.csv rows, or plate fields)")
@click.option("--nonfinite", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="A field with NaN/inf pixels: stop naming file and field (error), or skip it and count it in "
              "summary.csv (skip).")
@click.option("--pages", type=click.Choice(["z", "channels"]), default=None,
              help="What the pages of a multi-page TIFF without axis names are: z-slices or channels (such a file "
              "is refused until you say).")
@seed_option
def command(fovs, layout, out, channels, plate_map, plate_channels, size, downsample, projection, nucleus_channel, cell_channel, min_distance,
            qc, group_column, montage_crops, workers, resume, shard, nonfinite, pages, seed):
    """Cut the fields of view listed in FOVS.csv into single-cell crops in a paper's layout.

    FOVS.csv has one row per field of view. Columns named after channels hold image paths
    (relative to the CSV or absolute; 2D/3D TIFF, OME-TIFF or OME-Zarr): opencell pro, nuc;
    allencell membrane, dna, structure; bbbc021 the --channels columns. A <channel>_channel
    column picks a channel of a multi-channel file (index or OME channel name). Optional
    nucleus_mask / cell_mask columns name label images (CellProfiler, Cellpose) used instead
    of the built-in segmentation. Every other column (protein, plate, well, compound, ...) is
    copied onto each crop; a fov column names the fields.

    Instead of FOVS.csv, give one or more OME-Zarr HCS plate folders (NGFF 0.4 or 0.5: plate
    → rows/columns → wells → fields) and --plate-map, a table with one row per well joined
    by well (and by plate if it has a plate column). Each field becomes a FOVS row: the
    layout's channels matched to the plate's channel names (or --plate-channels), and plate,
    well (B03), site and fov columns plus every plate-map column. Every plate well must be in
    the plate map. Fields are read one at a time, one channel at a time.

    Per field: z max projection, downsampling, nucleus segmentation, crops centred on each
    nucleus (border cells skipped), per-crop QC columns (qc_nucleus_area, qc_cell_area,
    qc_focus, qc_touches_border, qc_neighbours, qc_mean_<channel>). Every row is checked from
    the file headers before anything is written. Fields are processed one at a time (or in
    --workers processes) and committed in chunks, so memory stays flat; --resume skips
    finished fields. Writes summary.csv (one row per field) and montage/<group>.png beside
    the data, which inspect-data reads and the matching train-* command trains on. With
    --shard K/N this job prepares fields K of N into --out/part-K-of-N (a complete folder of
    the layout); every reader takes --out as one data set once all N parts are finished.
    """
    from statcell_tf.data import prepare

    config = prepare.PrepareConfig.for_layout(
        layout,
        channels=[c for c in channels.split(",") if c.strip()] if channels else None,
        size=size,
        downsample=downsample,
        projection=projection,
        nucleus_channel=nucleus_channel,
        cell_channel=cell_channel,
        min_distance=min_distance,
        qc=qc,
        group_column=group_column,
        nonfinite=nonfinite,
        pages=pages,
    )
    folders = [path for path in fovs if path.is_dir()]
    if folders and len(folders) != len(fovs):
        raise click.UsageError("give either one FOVS.csv or OME-Zarr plate folders, not both. "
                               f"Received: {' '.join(map(str, fovs))}")
    note = ""
    if folders:
        if plate_map is None:
            raise click.UsageError(f"a plate needs --plate-map (one row per well: well, compound, ...). Received: "
                                   f"{' '.join(map(str, fovs))} without --plate-map")
        fields, carried, plates = prepare.read_plates(fovs, plate_map, config, plate_channels)
        sources = plates.inputs
        if plates.unmatched:
            shown = ", ".join(plates.unmatched[:5]) + (", ..." if len(plates.unmatched) > 5 else "")
            note = f"plate map: {len(plates.unmatched)} well(s) are on no plate given (not used): {shown}"
    else:
        if len(fovs) > 1:
            raise click.UsageError(f"give one FOVS.csv (or plate folders). Received: {' '.join(map(str, fovs))}")
        for flag, value in (("--plate-map", plate_map), ("--plate-channels", plate_channels)):
            if value is not None:
                raise click.UsageError(f"{flag} applies to OME-Zarr plate input, not to a FOVS.csv. "
                                       f"Received: {fovs[0]} {flag} {value}")
        fields, carried = prepare.read_fields(fovs[0], config)
        sources = list(fovs)
    if shard is not None:
        from statcell_tf.data.shards import part_path

        fields, out = shard.select(fields), part_path(out, shard)
    prepare.check_out(out, sources, fields, resume)
    todo = len(prepare.pending_fields(out, fields)) if resume else len(fields)
    with click.progressbar(length=todo, label="fields", show_eta=True, file=click.get_text_stream("stderr")) as bar:
        summary = prepare.prepare_crops(
            fields, out, config, carried, workers=workers, resume=resume, progress=bar.update,
            montage_crops=montage_crops, seed=seed,
            finish=f"prepare-crops {' '.join(map(str, fovs))} --out {out} --resume (same options)",
        )
    counts = summary.counts
    skipped = ", ".join(f"{k.removeprefix('skipped_').replace('_', ' ')} {v}" for k, v in counts.items()
                        if k.startswith("skipped_") and v)
    dropped = ", ".join(f"{k.removeprefix('dropped: ')} {v}" for k, v in counts.items() if k.startswith("dropped: "))
    earlier = f" ({summary.skipped} fields done earlier were skipped)" if summary.skipped else ""
    click.echo(
        f"Wrote {summary.crops} {layout} crops from {summary.fields} fields of view{earlier} to {out} "
        f"({summary.total_crops} in all; {config.size}x{config.size} px, downsample {config.downsample}, "
        f"{counts.get('nuclei', 0)} nuclei found) in {summary.seconds:.1f} s"
    )
    if note:
        click.echo(note)
    if skipped:
        click.echo(f"skipped: {skipped}")
    if dropped:
        click.echo(f"dropped by --qc: {dropped}")
    if summary.empty:
        shown = ", ".join(summary.empty[:5]) + (", ..." if len(summary.empty) > 5 else "")
        click.echo(f"{len(summary.empty)} field(s) had no cells (status 'no cells found' in summary.csv): {shown}")
    click.echo(f"per-field summary: {Path(out) / prepare.SUMMARY_FILE}; montages: {Path(out) / prepare.MONTAGE_DIR}")
