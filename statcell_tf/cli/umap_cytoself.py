"""`umap-cytoself`: UMAP localisation atlas of a cytoself run, with the paper's clustering score."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from statcell_tf.cli._options import allow_pickle_option, existing_dir, existing_path, seed_option
from statcell_tf.cli._progress import echo_err
from statcell_tf.errors import UserError
from statcell_tf.naming import file_stem


def attach_labels(metadata, labels_csv: Path, key: str, column: str):
    """Join one column of an external label table (e.g. organelle or complex) by `key`.

    Returns:
        pandas Series aligned with `metadata` (missing = NaN, drawn as "others").
    """
    import pandas as pd

    try:
        table = pd.read_csv(labels_csv)
    except (OSError, ValueError) as error:
        raise UserError(f"--labels {labels_csv} could not be read as CSV ({error})") from None
    for name, flag in ((key, "--label-key"), (column, "--label-column")):
        if name not in table.columns:
            raise UserError(
                f"{flag}: column {name!r} is not in {labels_csv}. Received: columns={list(table.columns)}"
            )
    if key not in metadata.columns:
        raise UserError(
            f"--label-key: column {key!r} is not in the embeddings metadata. "
            f"Received: columns={list(metadata.columns)}"
        )
    table = table.dropna(subset=[key]).drop_duplicates(subset=[key], keep="first")
    lookup = pd.Series(table[column].to_numpy(), index=table[key].astype(str).to_numpy())
    joined = metadata[key].astype(str).map(lookup)
    if joined.notna().sum() == 0:
        raise UserError(
            f"--labels {labels_csv}: no {key!r} value matches the embeddings. "
            f"Received: e.g. {list(lookup.index[:3])} vs {list(metadata[key].astype(str).unique()[:3])}"
        )
    return joined


def _majority(values):
    values = values.dropna()
    return values.value_counts().index[0] if len(values) else np.nan


@click.command()
@click.argument("run", type=existing_dir)
@click.option("--data", type=existing_dir, default=None,
              help="Data to embed when RUN/embeddings.h5 is missing (its test split when it is the training data).")
@click.option("--level", type=click.Choice(["global", "local"]), default="global", show_default=True,
              help="Which representation.")
@click.option("--color-by", "color_by", default=None,
              help="Metadata column to colour (and score) by, e.g. family, localization, moa.")
@click.option("--score", is_flag=True, help="Print the clustering score of the UMAP for the colour labels.")
@click.option(
    "--per",
    type=click.Choice(["image", "protein"]),
    default="image",
    show_default=True,
    help="One point per image (paper, Fig. 2) or per protein (mean vector of its images).",
)
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Cells of the run's split to map (the paper's atlas: test images); all = every embedded cell.")
@click.option("--labels", "labels_csv", type=existing_path, default=None,
              help="External label table (CSV) joined by --label-key.")
@click.option("--label-key", default="protein", show_default=True,
              help="Column shared by --labels and the embeddings.")
@click.option("--label-column", default=None, help="Column of --labels to colour by [default: --color-by].")
@click.option("--exclude", multiple=True, default=("others",), show_default=True, help="Labels ignored by the score.")
@click.option("--n-neighbors", type=click.IntRange(2, None), default=None,
              help="UMAP neighbourhood size, below the number of points [default: 15, capped for tiny sets].")
@click.option("--min-dist", type=click.FloatRange(0.0, None), default=0.1, show_default=True)
@click.option("--pca", type=click.IntRange(0, None), default=0, show_default=True,
              help="Reduce to N principal components before UMAP (0 = off, as the paper).")
@seed_option
@allow_pickle_option
def command(
    run, data, level, color_by, score, per, split, labels_csv, label_key, label_column, exclude, n_neighbors, min_dist,
    pca, seed, allow_pickle,
):
    """UMAP of RUN's global or local embeddings, coloured by a label column.

    Writes RUN/umap/umap_<level>_<split>_<per>_<label>.png and .csv (coordinates + labels). With
    --score, prints the paper's clustering score (spread of class centres ÷ median class
    size on the 2-D UMAP; unlabelled points and --exclude labels are ignored). Labels come
    from the embeddings metadata (--color-by) or from any table joined by protein name
    (--labels CSV --label-column X), e.g. organelle-level or protein-complex annotations.
    """
    import pandas as pd

    from statcell_tf import atomic
    from statcell_tf.cytoself.clustering_score import clustering_score
    from statcell_tf.cytoself.embeddings import load_embeddings
    from statcell_tf.cytoself.umap_atlas import OTHERS, compute_umap, mean_per_group, plot_umap
    from statcell_tf.limits import check_request
    from statcell_tf.cytoself.runs import (
        PROTEIN_COLUMNS,
        ensure_embeddings,
        pick_column,
        require_arrays,
        split_rows,
    )

    if labels_csv is None and label_column is not None:
        raise click.UsageError("--label-column needs --labels CSV")
    label_name = label_column or color_by
    if label_name is None:
        raise click.UsageError("give --color-by COLUMN (or --labels CSV --label-column X)")
    embeddings = ensure_embeddings(run, data, allow_pickle, log=echo_err)
    require_arrays(embeddings, [level], f"--level {level} needs it (embed with the local vectors)")
    arrays, metadata = load_embeddings(embeddings, keys=[level, "index"])
    rows = split_rows(run, arrays["index"], metadata, split)
    metadata = metadata.iloc[rows].reset_index(drop=True)
    arrays = {level: np.asarray(arrays[level])[rows]}
    if labels_csv is not None:
        labels = attach_labels(metadata, labels_csv, label_key, label_name)
    elif color_by in metadata.columns:
        labels = metadata[color_by]
    else:
        raise UserError(
            f"--color-by: column {color_by!r} is not in the embeddings metadata. "
            f"Received: columns={list(metadata.columns)}"
        )
    vectors = np.asarray(arrays[level], dtype=np.float32).reshape(len(metadata), -1)
    if per == "protein":
        protein = pick_column(metadata, PROTEIN_COLUMNS, "--per protein")
        keys, vectors = mean_per_group(vectors, metadata[protein].astype(str).to_numpy())
        grouped = labels.groupby(metadata[protein].astype(str).to_numpy()).agg(_majority)
        counts = metadata[protein].astype(str).value_counts()
        table = pd.DataFrame(
            {protein: keys, label_name: grouped.reindex(keys).to_numpy(), "n_images": counts.reindex(keys).to_numpy()}
        )
    else:
        table = metadata.copy()
        table[label_name] = labels.to_numpy()
    click.echo(f"UMAP of {len(vectors)} {level} vectors ({vectors.shape[1]} values each)...", err=True)
    if n_neighbors is not None:  # asked for: a neighbourhood larger than the data is refused, not capped
        check_request("--n-neighbors", n_neighbors, len(vectors) - 1, f"{len(vectors)} {level} vectors, minus the point itself")
    coords = compute_umap(vectors, n_neighbors=n_neighbors or 15, min_dist=min_dist, seed=seed, pca_components=pca or None)
    table["umap1"], table["umap2"] = coords[:, 0], coords[:, 1]
    stem = f"umap_{level}_{split}_{per}_{file_stem(label_name)}"
    out_dir = run / "umap"
    atomic.write_csv(out_dir / f"{stem}.csv", table)
    point_labels = table[label_name]
    title = f"{run.name}: {level} embeddings per {per}, by {label_name}"
    plot_umap(coords, point_labels, out_dir / f"{stem}.png", title=title)
    if score:
        names = point_labels.astype(object).where(point_labels.notna(), OTHERS).astype(str).to_numpy()
        value = clustering_score(coords, names, exclude=list(exclude) + [OTHERS])
        kept = len(set(names) - set(exclude) - {OTHERS})
        click.echo(f"clustering score ({label_name}, {level}, {split} cells, per {per}, {kept} classes): {value:.3f}")
    click.echo(f"Wrote {out_dir / stem}.png and .csv")
