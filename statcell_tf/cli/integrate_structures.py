"""`integrate-structures`: the most likely localisation of every structure in one cell (Fig. 3)."""

from __future__ import annotations

import click

from statcell_tf.cli._options import existing_dir, existing_path, out_path
from statcell_tf.naming import file_stem


@click.command()
@click.argument("run", type=existing_dir)
@click.option("--cell", "cells", required=True, multiple=True, help="CellId of the cell (repeat for several cells).")
@click.option("--data", type=existing_path, default=None, help="Allen Cell manifest CSV [default: the run's training data].")
@click.option("--out", type=out_path, default=None, help="Output folder [default: RUN/integrated].")
def command(run, cells, data, out):
    """Predict every structure of RUN's conditional model in one cell (Algorithm 3).

    From the cell's membrane and DNA, z_r = Enc_r(x^r); each structure y is decoded with z_s at
    the prior's mode (0). Writes, per cell, integrated_<CellId>.tif (float32, one page per
    structure, in the model's class order), integrated_<CellId>.png (montage: predicted
    structures in yellow on membrane magenta / DNA cyan, last column the observed cell) and
    compartments_<CellId>.csv (fraction of each predicted structure's intensity inside the
    nucleus, membrane-boundary and cell masks thresholded from the DNA / membrane channels).
    """
    import numpy as np
    import tifffile

    from statcell_tf import atomic
    from statcell_tf.integrated_cell import analysis
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import integrate_cells, load_model, read_data
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, paper="integrated_cell")
    model = load_model(run_dir, "conditional")
    names = model.class_names or [str(k) for k in range(model.num_classes)]
    data = data or run_dir.read_config()["settings"].get("data")
    view = icd.model_view(read_data(data), model.image_size, names)
    rows = [icd.find_cell(view, cell) for cell in cells]
    integrated = integrate_cells(model, view, rows)  # (N, K, H, W)
    out = out or run_dir.path / "integrated"
    for cell, row, predicted in zip(cells, rows, integrated):
        image = np.asarray(view.images[row])  # (H, W, 3) membrane, dna, structure
        stem = file_stem(cell)
        with atomic.atomic_path(out / f"integrated_{stem}.tif") as tmp:
            tifffile.imwrite(
                tmp, predicted.astype("float32"), imagej=True, metadata={"axes": "CYX", "Labels": list(names)}
            )
        observed_name = str(view.metadata[icd.NAME_COLUMN].iloc[row])
        figure = analysis.integration_montage(
            image[..., :2], predicted, names, observed=image[..., 2], observed_name=observed_name,
            title=f"cell {cell}: most likely localisation of each structure",
        )
        atomic.save_figure(out / f"integrated_{stem}.png", figure)
        table = analysis.integration_compartments(image[..., :2], predicted, names)
        atomic.write_csv(out / f"compartments_{stem}.csv", table)
        click.echo(f"cell {cell} ({observed_name}): wrote {out}/integrated_{stem}.tif, .png, compartments_{stem}.csv")
