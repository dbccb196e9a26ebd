"""`make-synthetic-data`: procedural cells with known localisation families (OpenCell or Allen Cell format),
drug-treated crops on a plate (BBBC021 format), or whole fields of view with known cell positions for
`prepare-crops` (also as an OME-Zarr HCS plate)."""

from __future__ import annotations


import click

from statcell_tf.cli._options import out_path, seed_option

# = statcell_tf.data.synthetic.TREATMENTS, not imported so that --help stays instant (a test checks).
TREATMENTS = ("none", "vehicle", "rounding")


@click.command("make-synthetic-data")
@click.option("--out", type=out_path, required=True, help="Output folder (must be empty or absent).")
@click.option("--format", "fmt", type=click.Choice(["opencell", "allencell", "bbbc021", "fov", "plate"]), required=True,
              help="opencell: <ENSG>_pro/_nuc/_nucdist.npy + _label.csv; allencell: manifest.csv + one TIFF per cell; "
              "bbbc021: metadata.csv + crops/<moa>/<file>.npy (DNA, actin, tubulin; DMSO and two drugs on two plates); "
              "fov: fields of view (OME-TIFF) + fovs_<layout>.csv for prepare-crops + cells.csv (true centroids); "
              "plate: the fov files plus the same fields as an OME-Zarr HCS plate (plate.zarr, one well per protein) "
              "+ plate_map.csv.")
@click.option("--ngff", type=click.Choice(["0.4", "0.5"]), default=None,
              help="plate only: NGFF version of plate.zarr (0.4: zarr v2 .zattrs; 0.5: zarr v3 zarr.json) [0.4].")
@click.option("--families", type=click.IntRange(1, 11), default=11, show_default=True,
              help="Localisation families (the first N of nucleoplasm, nucleolus, ..., centrosome).")
@click.option("--proteins-per-family", type=click.IntRange(min=1), default=None,
              help="Distinct proteins per family [opencell 3; allencell 1].")
@click.option("--cells", type=click.IntRange(min=1), default=None,
              help="Cells per protein [opencell 40; allencell 20]; bbbc021: cells per well [20]; fov, plate: cells per field [8].")
@click.option("--size", type=click.IntRange(min=16), default=None,
              help="Image side in pixels [opencell 100; bbbc021 68; allencell 64 in 2D, 48 in 3D, depth = size // 3; "
              "fov 512, depth = max(size // 32, 8)].")
@click.option("--dims", type=click.Choice(["2", "3"]), default=None, help="allencell, fov and plate: 2D or 3D [2].")
@click.option("--fields", type=click.IntRange(min=1), default=None, help="fov and plate: fields of view per protein (per well) [2].")
@click.option("--cell-size", type=click.IntRange(min=16), default=None,
              help="fov and plate: side of each cell's box in pixels (the nucleus is about a third of it) [64].")
@click.option("--multichannel", is_flag=True, default=None,
              help="fov and plate: one multi-channel OME-TIFF per field (membrane, dna, protein) instead of one per channel.")
@click.option("--mitotic-fraction", type=click.FloatRange(0.0, 1.0), default=None,
              help="allencell only: fraction of mitotic cells [0.15].")
@click.option("--treatment", type=click.Choice(TREATMENTS), default=None,
              help="allencell only: simulated drug treatment of every cell [none]. rounding: smaller, rounder "
              "cells with a slightly smaller nucleus and brighter DNA (a cytoskeleton drug); vehicle: unchanged "
              "cells (the control, like DMSO). The manifest gets a treatment column and CellIds '<treatment>-<n>', "
              "for bin/perturbation-embed --treated / --untreated.")
@seed_option
@click.option("--overwrite", is_flag=True, default=False, help="Replace a non-empty --out folder.")
def command(out, fmt, families, proteins_per_family, cells, size, dims, fields, cell_size, multichannel, ngff,
            mitotic_fraction, treatment, seed, overwrite):
    """Generate a synthetic data set of procedural cells for demos and tests.

    Every cell has a membrane-bounded body, a nucleus and a protein channel from one of 11
    localisation families, with --proteins-per-family distinct proteins per family (Allen Cell
    format: the manifest's structure_name stays the family, a protein column names the protein
    when there are several). Allen Cell format only: --treatment simulates a drug on every cell
    (compare with a --treatment vehicle set made with another --seed). --format fov writes whole
    fields of view (one protein each, --cells cells at random places) with their true nucleus
    centroids, for prepare-crops; --format plate writes the same fields also as a small OME-Zarr
    HCS plate (plate.zarr, NGFF --ngff, one well per protein) with plate_map.csv (well,
    compound, concentration, moa), for prepare-crops plate.zarr --plate-map plate_map.csv.
    --format bbbc021 writes crops of DMSO wells and of two drugs
    (rounded cells with brighter DNA) on two plates, for VAE+ and profile-moa. The same --seed
    gives the same files. Output is written to a temporary folder and renamed.
    """
    from statcell_tf.atomic import check_out

    out = check_out(out, "--out", new_folder=not overwrite, hint="pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} is a file; --overwrite replaces folders only")
    fov_only = (("--fields", fields), ("--cell-size", cell_size), ("--multichannel", multichannel))
    allen_only = (("--mitotic-fraction", mitotic_fraction), ("--treatment", treatment))
    if fmt == "bbbc021":
        families_given = click.get_current_context().get_parameter_source("families").name != "DEFAULT"
        for flag, value in (("--families", families if families_given else None),
                            ("--proteins-per-family", proteins_per_family)):
            if value is not None:
                raise click.UsageError(f"{flag} does not apply to --format bbbc021. Received: {flag} {value}")
    if fmt in ("opencell", "bbbc021"):
        for flag, value in (("--dims", dims), *allen_only):
            if value is not None:
                raise click.UsageError(f"{flag} applies to --format allencell only. Received: {flag} {value}")
    if fmt != "plate" and ngff is not None:
        raise click.UsageError(f"--ngff applies to --format plate only. Received: --ngff {ngff}")
    if fmt in ("fov", "plate"):
        for flag, value in allen_only:
            if value is not None:
                raise click.UsageError(f"{flag} applies to --format allencell only. Received: {flag} {value}")
    else:
        for flag, value in fov_only:
            if value is not None:
                raise click.UsageError(f"{flag} applies to --format fov and plate only. Received: {flag} {value}")

    from statcell_tf.data import synthetic

    if fmt in ("fov", "plate"):
        dims = int(dims or 2)
        side = size or 512
        shape = (side, side) if dims == 2 else (max(side // 32, 8), side, side)
        proteins_per_family = proteins_per_family or 1
        fields = fields or 2
        cells = cells or 8
        cell_size = cell_size or 64
        if cell_size > side:
            raise click.UsageError(f"--cell-size must fit in the field (--size {side}). Received: --cell-size {cell_size}")
        n = families * proteins_per_family * fields
        with click.progressbar(length=n, label="fields", file=click.get_text_stream("stderr")) as bar:
            synthetic.write_fovs(out, families, proteins_per_family, fields, cells, shape, cell_size,
                                 multichannel=bool(multichannel), seed=seed, progress=lambda: bar.update(1),
                                 plate=(ngff or "0.4") if fmt == "plate" else None)
        plate = (f", plate.zarr (NGFF {ngff or '0.4'}, {families * proteins_per_family} wells x {fields} fields), "
                 "plate_map.csv") if fmt == "plate" else ""
        click.echo(f"Wrote {n} synthetic {dims}D fields of view ({'x'.join(map(str, shape))}, up to {cells} cells of "
                   f"{cell_size} px each) to {out}: fovs_opencell.csv, fovs_bbbc021.csv, fovs_allencell.csv, "
                   f"cells.csv{plate}")
        return

    if fmt == "bbbc021":
        cells = cells or 20
        size = size or 68
        wells = synthetic.BBBC021_WELLS
        with click.progressbar(length=len(wells), label="wells", file=click.get_text_stream("stderr")) as bar:
            synthetic.write_bbbc021(out, wells, cells, size, seed, progress=lambda: bar.update(1))
        click.echo(f"Wrote {len(wells) * cells} BBBC021-format crops ({len(wells)} wells x {cells}, {size}x{size}, "
                   f"channels dna, actin, tubulin) to {out}")
        return

    if fmt == "opencell":
        proteins_per_family = proteins_per_family or 3
        cells = cells or 40
        size = size or 100
        with click.progressbar(length=families * proteins_per_family, label="proteins", file=click.get_text_stream("stderr")) as bar:
            synthetic.write_opencell(out, families, proteins_per_family, cells, size, seed, progress=lambda: bar.update(1))
        click.echo(f"Wrote {families * proteins_per_family * cells} OpenCell-format cells "
                   f"({families} families x {proteins_per_family} proteins x {cells}, {size}x{size}) to {out}")
        return
    dims = int(dims or 2)
    proteins_per_family = proteins_per_family or 1
    cells = cells or 20
    if proteins_per_family * cells >= synthetic.ALLEN_IDS_PER_FAMILY:
        raise click.UsageError(
            f"--proteins-per-family x --cells must be below {synthetic.ALLEN_IDS_PER_FAMILY} for --format allencell. "
            f"Received: --proteins-per-family {proteins_per_family} --cells {cells}"
        )
    shape = None if size is None else ((size, size) if dims == 2 else (max(size // 3, 4), size, size))
    fraction = 0.15 if mitotic_fraction is None else mitotic_fraction
    treatment = treatment or "none"
    with click.progressbar(length=families * proteins_per_family, label="proteins",
                           file=click.get_text_stream("stderr")) as bar:
        synthetic.write_allencell(out, families, cells, dims, shape, fraction, seed, progress=lambda: bar.update(1),
                                  proteins_per_family=proteins_per_family, treatment=treatment)
    shape = shape or ((64, 64) if dims == 2 else (16, 48, 48))
    per = f"{proteins_per_family} proteins x {cells}" if proteins_per_family > 1 else f"{cells}"
    treated = "" if treatment == "none" else f", treatment {treatment}"
    click.echo(f"Wrote {families * proteins_per_family * cells} Allen-Cell-format {dims}D cells ({families} structures "
               f"x {per}, {'x'.join(map(str, shape))}, mitotic fraction {fraction}{treated}) to {out / 'manifest.csv'}")
