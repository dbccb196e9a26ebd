"""`impute-structures`: draw structures for one cell's membrane and DNA (Fig. 4b)."""

from __future__ import annotations

from pathlib import Path

import click

from statcell_tf.cli._options import existing_path, out_path, seed_option
from statcell_tf.naming import file_stem

run_path = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("impute-structures")
@click.argument("ref_run", type=run_path)
@click.argument("target_run", type=run_path)
@click.option("--cell", "cell_id", default=None, help="CellId of the cell whose reference is used.")
@click.option("--generated", is_flag=True, help="Use a reference cell sampled from REF_RUN instead of --cell.")
@click.option("--structures", default="all", show_default=True, help="Comma list of structure names, or all.")
@click.option("-n", "count", type=click.IntRange(min=1), default=3, show_default=True,
              help="Independent draws per structure.")
@click.option("--data", type=existing_path, default=None, help="Manifest holding --cell [the target run's data].")
@click.option("--out", type=out_path, default=None, help="Output folder [TARGET_RUN/imputed/<cell>].")
@seed_option
def command(ref_run, target_run, cell_id, generated, structures, count, data, out, seed):
    """Impute N draws of every structure in one cell geometry with the target model.

    The geometry is the membrane and DNA of the real cell --cell (Fig. 4b) or a cell sampled
    from the reference model (--generated; then the whole integrated cell is generated).
    Writes <structure>.tiff (N × 3 × [Z ×] Y × X: membrane, DNA, imputed structure) per
    structure and imputed.png (rows: structures; columns: the cell's membrane + DNA, its real
    structure when it has one, each draw of the structure alone, draw 1 over the cell; one
    display range per channel for the whole figure).
    """
    import numpy as np

    from statcell_tf import atomic
    from statcell_tf.statcell.latent_stats import channel_names, imputed_figure
    from statcell_tf.backend import keras
    from statcell_tf.errors import UserError
    from statcell_tf.layers.input_normalization import InputNormalization

    normalise = InputNormalization("max")
    from statcell_tf.statcell.training import data_for_run, load_run_pair, write_tiff

    if (cell_id is None) == (not generated):
        raise click.UsageError("pass exactly one of --cell ID or --generated")
    reference_model, model, config, run_dir = load_run_pair(ref_run, target_run)
    types = list(config.structure_types)
    chosen = types if structures == "all" else [s.strip() for s in structures.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in types]
    if unknown:
        raise UserError(f"--structures: unknown to the target model: {', '.join(unknown)}; known: {', '.join(types)}")
    generator = keras.random.SeedGenerator(seed)
    own_structure, own_name = None, None
    if generated:
        # The target model was trained on max-normalised channels: normalise the sample too.
        reference = np.asarray(normalise(np.asarray(reference_model.sample_prior(1, seed=generator))))[0]
        label = f"generated-seed{seed}"
    else:
        cells, target_data = data_for_run(config, data)
        ids = cells.metadata["CellId"].astype(str).to_numpy()
        hits = np.flatnonzero(ids == str(cell_id))
        if len(hits) == 0:
            raise UserError(f"--cell {cell_id} is not in {data or config.data}")
        images = target_data.images(hits[:1])[0]  # (*spatial, 3): membrane, DNA, structure
        reference = images[..., :2]
        own_structure, own_name = images[..., 2:3], str(cells.metadata.iloc[hits[0]].get("structure_name", ""))
        label = str(cell_id)
    out = Path(out or run_dir.path / "imputed" / file_stem(label))
    draws = {}
    for name in chosen:
        batch = {
            "reference": np.repeat(reference[None], count, axis=0),
            "target_type": np.full((count,), types.index(name), "int32"),
        }
        structure = np.asarray(model.sample_prior(batch=batch, seed=generator))
        write_tiff(out / f"{file_stem(name)}.tiff", np.concatenate([batch["reference"], structure], axis=-1))
        draws[name] = structure
    figure = imputed_figure(reference, draws, channel_names(3), observed=own_structure, observed_name=own_name,
                            title=f"structures imputed by the target model in cell {label}, {count} draws each; "
                                  f"real structure: {own_name or 'none'} (Fig. 4b)")
    atomic.save_figure(out / "imputed.png", figure)
    click.echo(f"Wrote {len(chosen)} structures × {count} draws to {out}")
