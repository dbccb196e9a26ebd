"""`embed-classical`: CellProfiler-style per-cell features (cp-measure), streamed to Parquet or HDF5."""

from __future__ import annotations

import click

from statcell_tf.cli._options import (
    allow_pickle_option,
    existing_path,
    out_path,
    shard_option,
    workers_option,
)
from statcell_tf.cli._progress import counter_bar


@click.command("embed-classical")
@click.option("--data", type=existing_path, required=True, help="Cells to measure (any format bin/inspect-data reads).")
@click.option("--out", type=out_path, required=True,
              help="Output file: .parquet (one row per cell, Metadata_* columns) or .h5.")
@click.option("--features", "groups", default="areashape,intensity,texture,correlation,radial", show_default=True,
              help="Comma-separated feature groups: areashape, intensity, texture, correlation, radial, granularity.")
@click.option("--nucleus-channel", default=None,
              help="Channel the nucleus mask is found on [default: the one named dna/dapi/hoechst/nuc, else the first].")
@click.option("--texture-scale", type=int, default=3, show_default=True, help="Haralick texture distance in pixels (1 to 32).")
@click.option("--min-area", type=int, default=16, show_default=True,
              help="Smallest mask in pixels; a smaller one falls back to a centred disk (Metadata_mask_fallback).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Cells read, measured and written at a time (memory stays flat).")
@workers_option("chunks of cells")
@shard_option("cells")
@allow_pickle_option
def command(data, out, groups, nucleus_channel, texture_scale, min_area, chunk_size, workers, shard, allow_pickle):
    """CellProfiler-style features of every cell of --data: the classical baseline.

    Per cell, a nucleus mask (Otsu on the DNA channel, component under the crop centre) and
    a cell mask (Otsu on all channels, component holding the nucleus) are derived from the
    crop; cp-measure (CellProfiler's measurements as a library) measures area and shape,
    intensity, Haralick texture, radial distribution and channel correlations per channel
    and compartment. Columns are named as CellProfiler does (Cells_Intensity_MeanIntensity_DNA,
    Nuclei_AreaShape_Area, ...) so pycytominer finds them; every metadata column of the data
    becomes Metadata_<column>. --workers N measures N chunks at a time in N processes (the
    file is byte-identical for any N). --shard K/N measures cells K of N into
    --out/part-K-of-N.<suffix> (--out names a folder; readers take it as one table once
    every part is there). The file is written under a temporary name and renamed when
    complete.
    """
    import time

    from statcell_tf.data.embedding_files import check_out_file
    from statcell_tf.data.readers import read_cells
    from statcell_tf.profiling.classical import (
        ClassicalSettings,
        nucleus_channel_index,
        write_classical,
    )

    chosen = tuple(g.strip() for g in groups.split(",") if g.strip())
    settings = ClassicalSettings(chosen, nucleus_channel, texture_scale, min_area)
    from statcell_tf.data.shards import part_path

    target = out if shard is None else part_path(out, shard)
    check_out_file(target, "--out", inputs=[data])
    cells = read_cells(data, allow_pickle)
    nucleus_channel_index(cells.channel_names, nucleus_channel)
    if shard is not None:
        cells = cells.subset(range(*shard.bounds(len(cells))))
    started = time.perf_counter()
    with counter_bar(len(cells), "Measuring cells") as advance:
        result = write_classical(cells, target, settings, chunk_size=chunk_size, progress=advance, workers=workers)
    seconds = time.perf_counter() - started
    click.echo(
        f"{result.features} features of {result.cells} cells written to {result.path} "
        f"({result.cells / max(seconds, 1e-9):.1f} cells/s)"
    )
    if result.fallbacks:
        click.echo(f"{result.fallbacks} cell(s) had no usable mask and were measured in a centred disk "
                   "(Metadata_mask_fallback)", err=True)
    if result.undefined:
        click.echo(f"{result.undefined} undefined feature value(s) (NaN) were written as 0", err=True)
