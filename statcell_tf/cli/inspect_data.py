"""`inspect-data PATH`: what the reader sees in a data set, and the problems it finds."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import allow_pickle_option

_CHUNK_BYTES = 64 * 2**20
_TOP_CLASSES = 20
_TOP_SUMMARY = 12  # classes shown on the one-line summaries (family, moa, ...)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@allow_pickle_option
@click.option("--group-column", default="group", show_default=True, help="Column splits keep together.")
@click.option("--label-column", default="label", show_default=True, help="Column to count classes of.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Scan at most this many images.")
@click.option("--allow-unfinished", is_flag=True,
              help="Describe a data set whose writing command was stopped (UNFINISHED.json) as it is.")
def command(path: Path, allow_pickle: bool, group_column: str, label_column: str, max_images: int | None,
            allow_unfinished: bool):
    """Describe the data set at PATH: format, number of images, shape, dtype, value ranges
    per channel, counts per label, the 80/10/10 split sizes by --group-column, and problems
    found (NaN/inf pixels, constant images, classes with fewer than 3 images).

    Run this first on your own data: it reads PATH exactly as training will (PATH may be an
    OpenCell folder, a BBBC021 folder or metadata.csv, an Allen manifest CSV or a DeepLoc
    .hdf5). Exits 0 when the data can be read, even if problems are listed.
    """
    import numpy as np

    from statcell_tf.data import unfinished
    from statcell_tf.data.readers import detect_format, read_cells
    from statcell_tf.data.splits import split_indices

    unfinished.check(path, "PATH", allow_unfinished)
    kind = detect_format(path, "PATH")
    # NaN/inf pixels are listed below as problems instead of stopping the reader.
    cells = read_cells(path, allow_pickle=allow_pickle, flag="PATH", check_finite=False,
                       allow_unfinished=allow_unfinished)
    n = len(cells)
    names = cells.channel_names
    click.echo(f"{path}: {kind} format, {n} images of shape {cells.image_shape}, dtype {cells.images.dtype}")
    click.echo(f"channels: {', '.join(names)}")

    scanned = n if max_images is None else min(n, max_images)
    per_image = int(np.prod(cells.image_shape)) * max(np.dtype(cells.images.dtype).itemsize, 4)
    step = max(1, _CHUNK_BYTES // per_image)
    low = np.full(len(names), np.inf)
    high = np.full(len(names), -np.inf)
    total = np.zeros(len(names))
    nonfinite, constant = [], np.zeros(len(names), dtype=np.int64)
    first_constant = None
    with click.progressbar(
        range(0, scanned, step), label="scanning images", file=click.get_text_stream("stderr")
    ) as chunks:
        for begin in chunks:
            rows = np.arange(begin, min(begin + step, scanned))
            batch = np.asarray(cells.images[rows])
            flat = batch.reshape(len(batch), -1, batch.shape[-1])  # (B, pixels, C)
            if np.issubdtype(flat.dtype, np.floating):
                finite = np.isfinite(flat).all(axis=(1, 2))
                nonfinite.extend(rows[~finite].tolist())
                flat, rows = flat[finite], rows[finite]
            if not len(flat):
                continue
            lo, hi = flat.min(axis=1), flat.max(axis=1)  # (B, C)
            low = np.minimum(low, lo.min(axis=0))
            high = np.maximum(high, hi.max(axis=0))
            total += flat.mean(axis=1, dtype=np.float64).sum(axis=0)
            flat_channels = lo == hi
            constant += flat_channels.sum(axis=0)
            if first_constant is None and flat_channels.any():
                first_constant = int(rows[np.argmax(flat_channels.any(axis=1))])
    valid = max(1, scanned - len(nonfinite))
    click.echo("value range per channel:")
    for i, name in enumerate(names):
        click.echo(f"  {name}: min {low[i]:.4g}, max {high[i]:.4g}, mean {total[i] / valid:.4g}")

    metadata = cells.metadata
    problems = []
    if label_column in metadata:
        counts = metadata[label_column].astype(str).value_counts()
        click.echo(f"{label_column}: {len(counts)} classes")
        for name, count in counts.head(_TOP_CLASSES).items():
            click.echo(f"  {name}: {count}")
        if len(counts) > _TOP_CLASSES:
            click.echo(f"  ... and {len(counts) - _TOP_CLASSES} more")
        rare = counts[counts < 3]
        if len(rare):
            problems.append(
                f"{len(rare)} {label_column} class(es) have fewer than 3 images "
                f"(e.g. {', '.join(map(str, rare.index[:5]))})"
            )
    else:
        problems.append(f"no {label_column!r} column: classes cannot be counted")
    for column in ("family", "localization", "moa", "structure_name", "cell_cycle_phase"):
        if column in metadata and column != label_column:
            counts = metadata[column].astype(str).value_counts()
            summary = ", ".join(f"{k} {v}" for k, v in counts.head(_TOP_SUMMARY).items())
            more = f", ... and {len(counts) - _TOP_SUMMARY} more" if len(counts) > _TOP_SUMMARY else ""
            click.echo(f"{column}: {len(counts)} classes: {summary}{more}")
    identity = next((c for c in ("file", "CellId", "cell_id", "path") if c in metadata), None)
    if identity is not None:
        repeated = metadata[identity].astype(str).duplicated()
        if repeated.any():
            first = metadata[identity].astype(str)[repeated].iloc[0]
            problems.append(
                f"{int(repeated.sum())} row(s) repeat an earlier {identity} (first: {first}); each image "
                "would be counted, split and trained on more than once"
            )
    if group_column in metadata:
        splits = split_indices(metadata, group_column)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        click.echo(f"split by {group_column} ({metadata[group_column].nunique()} groups): {sizes}")
        empty = [k for k, v in splits.items() if len(v) == 0]
        if empty:
            problems.append(f"split by {group_column} leaves {', '.join(empty)} empty (too few groups)")
    else:
        problems.append(f"no {group_column!r} column: splits cannot be grouped")
    if nonfinite:
        problems.append(
            f"{len(nonfinite)} image(s) with NaN/inf pixels (first: {nonfinite[0]}); training stops at them"
        )
    if constant.any():
        detail = ", ".join(f"{name} {count}" for name, count in zip(names, constant) if count)
        problems.append(f"constant images (every pixel equal) per channel: {detail}; first: image {first_constant}")
    if scanned < n:
        problems.append(f"only the first {scanned} of {n} images were scanned (--max-images)")
    marker = (path if path.is_dir() else path.parent) / unfinished.MARKER
    if marker.is_file():
        problems.append(f"unfinished data set ({marker} is there): its writing command was stopped; what is read "
                        "here is part of it")
    click.echo("problems: " + ("none found" if not problems else ""))
    for problem in problems:
        click.echo(f"  - {problem}")
