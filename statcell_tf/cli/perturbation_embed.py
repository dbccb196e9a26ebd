"""`perturbation-embed`: embed drug-treated cells in trained latent spaces (Fig. 6)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path, seed_option


@click.command("perturbation-embed")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--treated", type=existing_path, required=True, help="Manifest of the treated (and maybe control) cells.")
@click.option("--untreated", type=existing_path, default=None,
              help="Manifest of untreated cells [rows of --treated whose treatment is --control-value, "
              "else the test split of the first run's training data].")
@click.option("--treatment-column", default="treatment", show_default=True,
              help="Manifest column naming the treatment (absent = every --treated cell is 'treated').")
@click.option("--control-value", default="untreated", show_default=True,
              help="Value of --treatment-column marking untreated cells (e.g. DMSO).")
@click.option("--permutations", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--images", "n_images", type=click.IntRange(min=2), default=12, show_default=True,
              help="Cells shown along each shift (Fig. 6c).")
@click.option("--out", type=out_path, default=None, help="Output folder [<first run>/perturbation].")
@seed_option
def command(runs, treated, untreated, treatment_column, control_value, permutations, n_images, out, seed):
    """Embed untreated and treated cells with the reference run (z_r) and, per structure,
    the target run (z_t) among RUNS; test each centroid shift with a permutation test,
    Bonferroni-corrected, and show cells along the shift. Writes perturbation_tests.csv,
    embedding_<space>.csv, fig6b_embedding.png and fig6c_*.png."""
    import numpy as np

    from statcell_tf.statcell.latent_stats import embed
    from statcell_tf.statcell.perturbation import write_perturbation
    from statcell_tf.errors import UserError
    from statcell_tf.statcell.data import StatcellData
    from statcell_tf.data.readers import read_cells
    from statcell_tf.statcell.training import load_run

    loaded = {}
    for run in runs:
        model, config, run_dir = load_run(run)
        if config.model in loaded:
            raise UserError(f"RUNS holds two {config.model} runs ({loaded[config.model][2].path} and {run}); "
                            "pass at most one reference and one target run")
        loaded[config.model] = (model, config, run_dir)
    first = loaded.get("reference", loaded.get("target"))

    treated_cells = read_cells(treated)
    treatments = _treatments(treated, treated_cells, treatment_column)
    if untreated is not None:
        untreated_cells, untreated_rows = read_cells(untreated), None
    elif (treatments == control_value).any():
        untreated_cells, untreated_rows = treated_cells, np.flatnonzero(treatments == control_value)
    else:
        _, config, run_dir = first
        if not config.data or not Path(config.data).exists():
            raise UserError("no untreated cells: pass --untreated MANIFEST or mark them with --control-value")
        untreated_cells = read_cells(config.data)
        untreated_rows = run_dir.rows_of(untreated_cells, "test")
    if untreated_rows is None:
        untreated_rows = np.arange(len(untreated_cells))
    treated_rows = np.flatnonzero(treatments != control_value)
    if len(treated_rows) == 0 or len(untreated_rows) == 0:
        raise UserError(f"need treated and untreated cells. Received: {len(treated_rows)} treated, "
                        f"{len(untreated_rows)} untreated")

    groups = []
    for space in ("reference", "target"):
        if space not in loaded:
            continue
        model, config, _ = loaded[space]
        types = config.structure_types or None
        data_u = StatcellData(untreated_cells, space, config.image_shape, types, config.background)
        data_t = StatcellData(treated_cells, space, config.image_shape, types, config.background)
        names_u = untreated_cells.metadata["structure_name"].astype(str).to_numpy()
        names_t = treated_cells.metadata["structure_name"].astype(str).to_numpy()
        structures = ["all"] if space == "reference" else sorted(set(names_t[treated_rows]) & set(config.structure_types))
        if space == "reference":  # membrane + DNA only: a cell's control copies are the same image
            rows_by_space = (_one_row_per_cell(untreated_cells.metadata, untreated_rows),
                             _one_row_per_cell(treated_cells.metadata, treated_rows))
        else:
            rows_by_space = (untreated_rows, treated_rows)
        for structure in structures:
            rows_u = rows_by_space[0] if structure == "all" else untreated_rows[names_u[untreated_rows] == structure]
            if len(rows_u) < 2:
                continue
            z_u = embed(model, data_u, rows_u, config.batch_size)[0]
            for treatment in sorted(set(treatments[treated_rows])):
                rows_t = rows_by_space[1][treatments[rows_by_space[1]] == treatment]
                if structure != "all":
                    rows_t = rows_t[names_t[rows_t] == structure]
                if len(rows_t) < 2:
                    continue
                groups.append({
                    "space": space, "structure": structure, "treatment": str(treatment),
                    "untreated": z_u, "treated": embed(model, data_t, rows_t, config.batch_size)[0],
                    "images_untreated": data_u.images(rows_u), "images_treated": data_t.images(rows_t),
                    "ids_untreated": untreated_cells.metadata["CellId"].astype(str).to_numpy()[rows_u],
                    "ids_treated": treated_cells.metadata["CellId"].astype(str).to_numpy()[rows_t],
                })
    if not groups:
        raise UserError("no structure has at least 2 untreated and 2 treated cells known to the runs")
    out = Path(out or first[2].path / "perturbation")
    frame = write_perturbation(groups, out, permutations, seed, n_images)
    click.echo(frame.drop(columns=["significant"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    click.echo(f"Wrote {out / 'perturbation_tests.csv'}")


def _one_row_per_cell(metadata, rows):
    """`rows` with one row per physical cell: the control copies that add-control-structures
    makes of a cell (same ``source_CellId``) share its membrane and DNA, and counting them
    as separate cells would make the permutation test's p-values too small."""
    import numpy as np

    if "source_CellId" not in metadata:
        return rows
    source = metadata["source_CellId"].where(metadata["source_CellId"].notna(), metadata["CellId"])
    _, first = np.unique(source.astype(str).to_numpy()[rows], return_index=True)
    return rows[np.sort(first)]


def _treatments(manifest, cells, column):
    """The treatment of every row of `cells` (from the reader's metadata or the raw manifest)."""
    import numpy as np
    import pandas as pd

    if column in cells.metadata.columns:
        return cells.metadata[column].astype(str).to_numpy()
    table = pd.read_csv(manifest)
    if column not in table.columns:
        return np.full(len(cells), "treated", object)
    if len(table) == len(cells) and "CellId" in table and (
        table["CellId"].astype(str).to_numpy() == cells.metadata["CellId"].astype(str).to_numpy()
    ).all():
        return table[column].astype(str).to_numpy()
    lookup = dict(zip(table["CellId"].astype(str), table[column].astype(str)))
    return np.array([lookup.get(i, "treated") for i in cells.metadata["CellId"].astype(str)], object)
