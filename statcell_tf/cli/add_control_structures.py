"""`add-control-structures`: add the Statistical Cell's five synthetic control structures."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path, seed_option

KINDS = ("blank", "dna", "membrane", "noise", "random")


@click.command("add-control-structures")
@click.argument("data", type=existing_path)
@click.option("--out", type=out_path, required=True, help="Folder for the control TIFFs and the new manifest.")
@click.option("--cells", "n_cells", type=click.IntRange(min=1), default=None,
              help="Cells per control [the median number of cells per structure].")
@click.option("--kinds", default=",".join(KINDS), show_default=True,
              help="Controls to add (comma list of blank, dna, membrane, noise, random).")
@seed_option
def command(data, out, n_cells, kinds, seed):
    """Add control structures (blank, DNA copy, membrane copy, in-cell Gaussian noise,
    another cell's structure; paper §4.1, Table 1) to the Allen-style manifest DATA.

    Writes OUT/cells/<CellId>_control_<kind>.tiff and OUT/manifest.csv listing the original
    cells (paths rewritten relative to OUT) followed by the controls.
    """
    from statcell_tf.data.controls import write_controls
    from statcell_tf.data.validation import read_csv
    from statcell_tf.atomic import check_out
    from statcell_tf.errors import UserError
    from statcell_tf.cli._progress import progress
    from statcell_tf.data.readers import read_cells

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    unknown = [k for k in chosen if k not in KINDS]
    if not chosen or unknown:
        raise UserError(f"--kinds must be a comma list of {', '.join(KINDS)}. Received: {kinds!r}")
    data = Path(data)
    manifest_path = data / "manifest.csv" if data.is_dir() else data
    if not manifest_path.exists():
        raise UserError(f"DATA {data} has no manifest.csv")
    out = check_out(out, "--out", inputs=[manifest_path], new_folder=True)
    cells = read_cells(manifest_path)
    manifest = read_csv(manifest_path)
    combined = write_controls(cells, manifest, manifest_path.parent, out, n_cells, chosen, seed,
                              progress=progress("controls"))
    added = len(combined) - len(manifest)
    click.echo(f"Wrote {added} control cells ({', '.join(chosen)}) and {out / 'manifest.csv'} "
               f"({len(combined)} cells)")
