"""`feature-spectrum`: a protein's feature spectrum and its closest localisation families (Fig. 4).

The helpers it shares with the other cytoself commands (finding the run, making sure
``RUN/embeddings.h5`` exists, building/caching the run's `FeatureSpectrum`) live in
`statcell_tf.cytoself.runs`.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from statcell_tf.cli._options import allow_pickle_option, existing_dir, out_path
from statcell_tf.cli._progress import echo_err
from statcell_tf.naming import file_stem
from statcell_tf.cytoself.runs import (
    PROTEIN_COLUMNS,
    data_images,
    ensure_embeddings,
    load_spectrum,
    pick_column,
    resolve_protein,
    resolve_run,
    split_rows,
)


# ----- the command -------------------------------------------------------------------------------
@click.command()
@click.argument("protein")
@click.option("--run", "run", type=existing_dir, default=None,
              help="Run folder [default: newest under models/cytoself/].")
@click.option("--data", type=existing_dir, default=None,
              help="Data to embed when RUN/embeddings.h5 is missing; images for --cluster-examples.")
@click.option("--clusters", type=click.IntRange(1, None), default=None,
              help="Top-level feature clusters, at most the informative features [default: 11 (the paper), fewer "
                   "when the run has fewer informative features].")
@click.option(
    "--distance",
    type=click.Choice(["euclidean", "correlation"]),
    default="euclidean",
    show_default=True,
    help="Code distance for the clustering: euclidean between correlation rows (authors' code) or 1 - r.",
)
@click.option("--split", type=click.Choice(["all", "test", "val", "train"]), default="all", show_default=True,
              help="Cells of the run's split to use (the paper's figures use test cells; small data sets "
              "leave many proteins without test cells).")
@click.option("--heatmap", is_flag=True,
              help="Also write the clustered code-code correlation (Fig. 4a) and family spectra (Fig. 4b).")
@click.option("--cluster-examples", is_flag=True,
              help="Also write the 4 images that use each feature cluster most (needs --data).")
@click.option("--out", type=out_path, default=None, help="Output folder [default: RUN/feature_spectrum].")
@allow_pickle_option
def command(protein, run, data, clusters, distance, split, heatmap, cluster_examples, out, allow_pickle):
    """Feature spectrum of PROTEIN and its correlation with each localisation family.

    Builds (once, cached in the run folder) the protein × code matrix of mean local-index
    histograms, the code-code Pearson correlation, its average-linkage clustering order and
    the top-level feature clusters; writes PROTEIN's spectrum (CSV + PNG with the cluster
    bands, Fig. 4c) and prints its Pearson correlation with every family's consensus
    spectrum, ranked (Fig. 4e; PROTEIN is left out of its own family's consensus).
    """
    from statcell_tf import atomic
    from statcell_tf.limits import check_request
    from statcell_tf.cytoself import feature_spectrum as fsm

    if cluster_examples and data is None:
        raise click.UsageError("--cluster-examples needs --data DIR (the images)")
    run_dir = resolve_run(run)
    embeddings = ensure_embeddings(run_dir, data, allow_pickle, log=echo_err)
    spectrum = load_spectrum(run_dir, embeddings, clusters or 11, distance, split)
    if clusters is not None:  # asked for: more clusters than features is refused, not capped
        check_request("--clusters", clusters, int((spectrum.clusters > 0).sum()), "informative codebook features")
    protein = resolve_protein(protein, spectrum, embeddings)  # a name or an ENSG id; unknown: stop here
    out = run_dir / "feature_spectrum" if out is None else out
    stem = file_stem(protein)
    atomic.write_csv(out / f"{stem}_spectrum.csv", spectrum.spectrum_table(protein))
    fsm.plot_spectrum(spectrum, protein, out / f"{stem}_spectrum.png")
    ranking = spectrum.family_correlations(protein)
    family = spectrum.families[spectrum.protein_index(protein)]
    if len(ranking):
        atomic.write_csv(out / f"{stem}_family_correlation.csv", ranking.assign(protein=protein)[["protein", *ranking]])
        click.echo(f"{protein} (family: {family or 'unknown'}): correlation with family consensus spectra")
        for rank, row in enumerate(ranking.itertuples(), start=1):
            mark = "  <- own family" if row.is_own_family else ""
            click.echo(f"{rank:3d}. {row.family:<30s} r = {row.pearson_r:+.3f}  ({row.n_proteins} proteins){mark}")
    else:
        click.echo(f"{protein}: no family labels in the embeddings, so no consensus ranking.")
    if heatmap:
        fsm.plot_correlation_heatmap(spectrum, out / "correlation_heatmap.png")
        if len(ranking):
            fsm.plot_family_spectra(spectrum, out / "family_spectra.png")
    if cluster_examples:
        _write_cluster_examples(run_dir, spectrum, embeddings, data, out / "cluster_examples.png", allow_pickle)
    click.echo(f"Wrote {out}/{stem}_spectrum.csv and .png ({len(spectrum.cluster_numbers)} feature clusters)")


def _write_cluster_examples(
    run_dir: Path, spectrum, embeddings: Path, data: Path, path: Path, allow_pickle: bool
) -> None:
    from statcell_tf.cytoself import feature_spectrum as fsm
    from statcell_tf.cytoself.embeddings import load_embeddings

    arrays, metadata = load_embeddings(embeddings, keys=["local_hist", "index"])
    rows = split_rows(run_dir, arrays["index"], metadata, spectrum.info.get("split", "all"))
    protein = spectrum.info.get("protein_column") or pick_column(metadata, PROTEIN_COLUMNS, "--cluster-examples")
    names = metadata[protein].astype(str).to_numpy()[rows]
    examples = fsm.cluster_examples(np.asarray(arrays["local_hist"])[rows], spectrum, names, top=4)
    cells = data_images(data, embeddings, metadata, arrays["index"], allow_pickle)
    index = arrays["index"][rows]
    images = {c: cells.images[index[idx]] for c, idx in examples.items()}
    captions = {c: list(names[idx]) for c, idx in examples.items()}
    fsm.plot_cluster_examples(images, path, captions)
