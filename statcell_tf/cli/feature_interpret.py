"""`feature-interpret`: where in the image a feature lives: decode without it (Fig. 5)."""

from __future__ import annotations

import click
import numpy as np

from statcell_tf.cli._options import allow_pickle_option, existing_dir, out_path
from statcell_tf.cli._progress import echo_err
from statcell_tf.naming import file_stem


@click.command()
@click.argument("run", type=existing_dir)
@click.argument("protein")
@click.option("--feature", type=click.IntRange(1, None), default=None,
              help="Top-level feature cluster number (1 = i, ..., 11 = xi).")
@click.option("--code", type=click.IntRange(0, None), default=None,
              help="A single local code index instead of a cluster.")
@click.option("--data", type=existing_dir, default=None,
              help="The images (and the data to embed when RUN/embeddings.h5 is missing).")
@click.option("-n", "count", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Images of PROTEIN to show.")
@click.option("--clusters", type=click.IntRange(1, None), default=11, show_default=True,
              help="Top-level feature clusters (as in feature-spectrum).")
@click.option("--split", type=click.Choice(["all", "test", "val", "train"]), default="all", show_default=True,
              help="Cells the feature spectrum (and the images shown) come from, as in feature-spectrum.")
@click.option("--out", type=out_path, default=None, help="Output folder [default: RUN/feature_interpretation].")
@allow_pickle_option
def command(run, protein, feature, code, data, count, clusters, split, out, allow_pickle):
    """Difference maps after zeroing a feature before decoding (Fig. 5).

    The local vectors of PROTEIN's images that are quantised to the feature's codes (a
    top-level cluster of the feature spectrum with --feature K, or one code with --code C)
    are set to zero and the image decoded again; the panel shows original, reconstruction,
    reconstruction without the feature and the difference in red. The images shown are the
    PROTEIN images (from the embedded set) that use the feature most.
    """
    from statcell_tf.cytoself import interpretation as fi
    from statcell_tf.cytoself.embeddings import load_embeddings, select_run_channels
    from statcell_tf.cytoself.runs import (
        PROTEIN_COLUMNS,
        data_images,
        ensure_embeddings,
        load_spectrum,
        pick_column,
        split_rows,
    )
    from statcell_tf.errors import UserError

    if (feature is None) == (code is None):
        raise click.UsageError("give exactly one of --feature K and --code C")
    if data is None:
        raise click.UsageError("--data DIR is needed: the images of PROTEIN are decoded again")
    embeddings = ensure_embeddings(run, data, allow_pickle, log=echo_err)
    spectrum = load_spectrum(run, embeddings, clusters, split=split)
    spectrum.protein_index(protein)  # unknown protein: error listing the closest names
    codes = fi.feature_codes(spectrum, feature=feature, code=code)
    arrays, metadata = load_embeddings(embeddings, keys=["local_hist", "index"])
    column = spectrum.info.get("protein_column") or pick_column(metadata, PROTEIN_COLUMNS, "PROTEIN")
    rows = split_rows(run, arrays["index"], metadata, split)
    rows = rows[metadata[column].astype(str).to_numpy()[rows] == protein]
    usage = np.asarray(arrays["local_hist"])[rows][:, codes].sum(axis=1)
    chosen = rows[np.argsort(-usage, kind="stable")[:count]]
    if usage.max(initial=0) == 0:
        click.echo(f"Note: no image of {protein} uses this feature; the difference maps will be empty.", err=True)
    from statcell_tf.cytoself.model import load_run

    model, config = load_run(run)
    cells = select_run_channels(data_images(data, embeddings, metadata, arrays["index"], allow_pickle), config)
    images = np.asarray(cells.images[arrays["index"][chosen]], np.float32)  # the model normalises
    if not getattr(model, "use_vq", True) or not getattr(model, "use_decoder", True):
        raise UserError(f"RUN {run} was trained without vector quantisation or decoder: nothing to remove")
    removal = fi.remove_feature(images, model.reconstruct_with_codes_removed, codes)
    out = run / "feature_interpretation" if out is None else out
    what = f"feature_{fi.roman(feature)}" if feature is not None else f"code_{code}"
    path = out / f"{file_stem(protein)}_{what}.png"
    title = fi.feature_title(feature, code, codes, protein)
    captions = [f"{protein} #{i}" for i in chosen]
    fi.plot_feature_removal(removal, path, title=title, captions=captions)
    differences = ", ".join(f"{v:.3g}" for v in removal.mean_abs_difference())
    click.echo(f"{title}: mean |difference| per image {differences}")
    click.echo(f"Wrote {path}")
