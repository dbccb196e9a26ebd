"""`inspect-data PATH`: what the reader sees in a data set, and the problems it finds."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import allow_pickle_option

_CHUNK_IMAGES = 256


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@allow_pickle_option
@click.option("--group-column", default="group", show_default=True, help="Column splits keep together.")
@click.option("--label-column", default="label", show_default=True, help="Column to count classes of.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Scan at most this many images.")
def command(path: Path, allow_pickle: bool, group_column: str, label_column: str, max_images: int | None):
    """Describe the data set at PATH: format, counts per label, shapes, dtypes, value ranges
    per channel, split sizes and problems found (NaN/inf pixels, blank images, rare classes).

    Run this first on your own data: it reads PATH exactly as training will.
    """
    import numpy as np

    from statcell_tf.data.readers import detect_format, read_cells
    from statcell_tf.data.splits import split_indices

    kind = detect_format(path)
    cells = read_cells(path, allow_pickle=allow_pickle)
    n = len(cells)
    click.echo(f"{path}: {kind} format, {n} images of shape {cells.image_shape}, dtype {cells.images.dtype}")
    click.echo(f"channels: {', '.join(cells.channel_names)}")

    scanned = n if max_images is None else min(n, max_images)
    low = np.full(len(cells.channel_names), np.inf)
    high = np.full(len(cells.channel_names), -np.inf)
    total = np.zeros(len(cells.channel_names))
    nonfinite, blank = [], []
    with click.progressbar(range(0, scanned, _CHUNK_IMAGES), label="scanning", file=click.get_text_stream("stderr")) as chunks:
        for begin in chunks:
            rows = np.arange(begin, min(begin + _CHUNK_IMAGES, scanned))
            batch = np.asarray(cells.images[rows], dtype=np.float64)
            flat = batch.reshape(len(batch), -1, batch.shape[-1])
            finite = np.isfinite(flat).all(axis=(1, 2))
            nonfinite.extend(rows[~finite].tolist())
            good = flat[finite]
            if len(good):
                low = np.minimum(low, good.min(axis=(0, 1)))
                high = np.maximum(high, good.max(axis=(0, 1)))
                total += good.mean(axis=1).sum(axis=0)
                constant = (good.max(axis=1) == good.min(axis=1)).all(axis=1)
                blank.extend(rows[finite][constant].tolist())
    valid = max(1, scanned - len(nonfinite))
    for i, name in enumerate(cells.channel_names):
        click.echo(f"  {name}: min {low[i]:.4g}, max {high[i]:.4g}, mean {total[i] / valid:.4g}")

    metadata = cells.metadata
    problems = []
    if label_column in metadata:
        counts = metadata[label_column].value_counts()
        click.echo(f"{label_column}: {len(counts)} classes")
        for name, count in counts.head(20).items():
            click.echo(f"  {name}: {count}")
        if len(counts) > 20:
            click.echo(f"  ... and {len(counts) - 20} more")
        rare = counts[counts < 3]
        if len(rare):
            problems.append(f"{len(rare)} {label_column} class(es) have fewer than 3 images (e.g. {rare.index[0]})")
    for column in ("family", "localization", "moa", "structure_name", "cell_cycle_phase"):
        if column in metadata and column != label_column:
            summary = ", ".join(f"{k} {v}" for k, v in metadata[column].value_counts().head(12).items())
            click.echo(f"{column}: {summary}")
    if group_column in metadata:
        splits = split_indices(metadata, group_column)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        click.echo(f"split by {group_column} ({metadata[group_column].nunique()} groups): {sizes}")
    else:
        problems.append(f"no {group_column!r} column: splits cannot be grouped")
    if nonfinite:
        problems.append(f"{len(nonfinite)} image(s) with NaN/inf pixels (first: {nonfinite[0]})")
    if blank:
        problems.append(f"{len(blank)} blank image(s) (every pixel equal; first: {blank[0]})")
    if scanned < n:
        problems.append(f"only the first {scanned} of {n} images were scanned (--max-images)")
    click.echo("problems: " + ("none found" if not problems else ""))
    for problem in problems:
        click.echo(f"  - {problem}")
