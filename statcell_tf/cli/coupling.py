"""`coupling`: coupling of each structure to the membrane and the nucleus (Eq. 4–5, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path, seed_option

run_path = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("coupling")
@click.argument("ref_run", type=run_path)
@click.argument("target_run", type=run_path)
@click.option("--data", type=existing_path, required=True, help="Manifest of the cells to evaluate.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True)
@click.option("--permutations", type=click.IntRange(min=1), default=10, show_default=True,
              help="Reference-channel swaps per cell and channel (the authors' notebook: 100).")
@click.option("--samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="Posterior samples per ELBO (paper: 10).")
@click.option("--elbo", "elbo_kind", type=click.Choice(["conditional", "joint"]), default="conditional",
              show_default=True,
              help="conditional = ELBO(x_t | x_r, t) of TARGET_RUN; joint adds ELBO(x_r) of REF_RUN (Eq. 2).")
@click.option("--differential", "differential_from", type=click.Choice(["strength", "ratio"]), default="strength",
              show_default=True,
              help="Terms of Eq. 5: strength = 1 − Eq. 4 (the authors' notebook; membrane side > 0), "
              "ratio = the Eq. 4 ratios as Eq. 5 is printed (membrane side < 0).")
@click.option("--structures", default="all", show_default=True, help="Comma list of structures, or all.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--out", type=out_path, default=None, help="Output folder [TARGET_RUN/coupling].")
@seed_option
def command(ref_run, target_run, data, split, permutations, samples, elbo_kind, differential_from, structures,
            batch_size, out, seed):
    """Per cell and reference channel, Eq. 4: the ELBO of the cell over the mean ELBO with
    that channel (membrane or DNA) taken from other cells of the same structure; per
    structure and cell-cycle phase, Eq. 5: the normalised membrane − nucleus difference
    (terms clipped at 0; cells coupled to neither channel are left out and counted in
    n_undefined). Writes per_cell.csv, summary.csv, fig5a_scatter.png and fig5b_differential.png."""
    import numpy as np

    from statcell_tf.statcell.coupling import per_cell_coupling, write_coupling
    from statcell_tf.errors import UserError
    from statcell_tf.cli._progress import progress
    from statcell_tf.statcell.training import check_run_pair, data_for_run, load_run_pair

    _, config, _ = check_run_pair(ref_run, target_run)
    cells, dataset = data_for_run(config, data)  # the data is checked before the models load
    reference_model, model, config, run_dir = load_run_pair(ref_run, target_run)
    rows = run_dir.rows_of(cells, split)
    names = cells.metadata["structure_name"].astype(str).to_numpy()
    known = set(config.structure_types)
    if structures != "all":
        wanted = {s.strip() for s in structures.split(",") if s.strip()}
        unknown = sorted(wanted - known)
        if unknown:
            raise UserError(f"--structures: unknown to the target model: {', '.join(unknown)}")
        known = wanted
    skipped = sorted(set(names[rows]) - set(config.structure_types))
    rows = rows[np.isin(names[rows], sorted(known))]
    if len(rows) == 0:
        raise UserError(f"no cells of known structures in the {split} split of {data}")
    per_cell = per_cell_coupling(
        model, dataset, rows, n_permutations=permutations, n_samples=samples, batch_size=batch_size, seed=seed,
        progress=progress("structures"), reference_model=reference_model if elbo_kind == "joint" else None,
    )
    out = Path(out or run_dir.path / "coupling")
    summary = write_coupling(per_cell, out, differential_from=differential_from)
    shown = summary[["structure_name"] + (["cell_cycle_phase"] if "cell_cycle_phase" in summary else [])
                    + ["n_cells", "n_undefined", "coupling_membrane", "coupling_dna", "differential"]]
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if skipped:
        click.echo(f"Skipped structures unknown to the target model: {', '.join(skipped)}", err=True)
    click.echo(f"Wrote {out / 'per_cell.csv'} and {out / 'summary.csv'}")
