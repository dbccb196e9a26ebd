"""`interpolate`: move a cell towards a compound's typical cell in VAE+ latent space (Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from statcell_tf.cli._options import existing_dir, out_path
from statcell_tf.errors import UserError


def resolve_cell(metadata, cell: str, flag: str = "--from-cell") -> int:
    """Row of `cell`: a crop file name (with or without .npy), a ``cell_id``, or a row number."""
    for column in ("file", "cell_id"):
        if column in metadata.columns:
            values = metadata[column].astype(str)
            hits = np.flatnonzero((values == cell).to_numpy() | (values.str.replace(r"\.npy$", "", regex=True) == cell).to_numpy())
            if len(hits) == 1:
                return int(hits[0])
            if len(hits) > 1:
                raise UserError(f"{flag} {cell!r} matches {len(hits)} cells in column {column!r}; use a row number")
    if cell.isdigit() and int(cell) < len(metadata):
        return int(cell)
    example = metadata["file"].iloc[0] if "file" in metadata.columns and len(metadata) else "0"
    raise UserError(
        f"{flag}: no cell {cell!r} (expected a crop file name like {example!r} or a row number < {len(metadata)}). "
        f"Received: {cell!r}"
    )


def compound_rows(metadata, compound: str, concentration: float | None) -> np.ndarray:
    """Rows of `compound` (exact, else case-insensitive name) at `concentration` if given."""
    if "compound" not in metadata.columns:
        raise UserError("--to-compound: the data's metadata has no 'compound' column")
    names = metadata["compound"].astype(str)
    mask = (names == compound).to_numpy().copy()
    if not mask.any():
        mask = (names.str.lower() == compound.lower()).to_numpy()
    if not mask.any():
        known = ", ".join(sorted(names.unique())[:15])
        raise UserError(f"--to-compound: no cells of {compound!r}; compounds include {known}. Received: {compound!r}")
    if concentration is not None:
        mask = mask & np.isclose(metadata["concentration"].astype(float).to_numpy(), concentration)
        if not mask.any():
            levels = sorted(metadata.loc[(names.str.lower() == compound.lower()).to_numpy(), "concentration"].unique())
            raise UserError(
                f"--concentration: {compound} has no cells at {concentration:g}; available: "
                f"{', '.join(f'{c:g}' for c in levels)}. Received: {concentration:g}"
            )
    return np.flatnonzero(mask)


@click.command()
@click.argument("run", type=existing_dir)
@click.option("--from-cell", "from_cell", required=True, help="Source cell: crop file name (metadata 'file') or row number.")
@click.option("--to-compound", "to_compound", required=True, help="Target compound name (e.g. cytochalasin D).")
@click.option("--concentration", type=float, default=None, help="Only the target compound's cells at this concentration.")
@click.option("--data", required=True, type=existing_dir, help="The crops (BBBC021 layout) holding both cells.")
@click.option("--steps", type=click.IntRange(1), default=8, show_default=True, help="Interpolation steps.")
@click.option("--out", type=out_path, default=None,
              help="PNG to write [default: RUN/figures/interpolation_<cell>_to_<compound>.png]; a .csv goes beside it.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Crops per encoder call.")
def command(run, from_cell, to_compound, concentration, data, steps, out, batch_size):
    """Translate a cell towards a compound's phenotype in latent space (VAE+ Fig. 3).

    The target is the compound's cell whose embedding (posterior mean) is closest to the
    compound's mean embedding. Each step copies the target's value into more of the
    source's features, those with the largest absolute difference first; every frame is
    decoded. The strip shows the real source, the decoded frames with their cosine
    similarity to the target's embedding, and the real target; the CSV lists the steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from statcell_tf import atomic
    from statcell_tf.vaeplus import interpolation
    from statcell_tf.vaeplus.training import batched, load_cells, load_endpoints, normalize, to_rgb

    run_directory, loaded = load_endpoints(run)
    cells = load_cells(data)
    source_row = resolve_cell(cells.metadata, from_cell)
    rows = compound_rows(cells.metadata, to_compound, concentration)
    embeddings = batched(loaded.encode, cells.images[rows], batch_size)
    target_row = int(rows[interpolation.closest_to_mean(embeddings)])
    source_image, target_image = normalize(cells.images[np.array([source_row, target_row])])
    source_z, target_z = batched(loaded.encode, np.stack([source_image, target_image]))
    path, shifted = interpolation.feature_shift_path(source_z, target_z, steps)
    similarity = interpolation.cosine_similarity(path, target_z)
    frames = batched(loaded.decode, path.astype(np.float32))

    name = Path(str(cells.metadata["file"].iloc[source_row]) if "file" in cells.metadata else str(source_row)).stem
    out = Path(out) if out else run_directory.figures / f"interpolation_{name}_to_{to_compound.replace(' ', '_')}.png"
    pictures = [source_image, *frames, target_image]
    figure, axes = plt.subplots(1, len(pictures), figsize=(1.3 * len(pictures), 1.8), squeeze=False)
    for j, (axis, picture) in enumerate(zip(axes[0], pictures)):
        axis.imshow(to_rgb(picture, cells.channel_names))
        axis.set_xticks([])
        axis.set_yticks([])
        if j == 0:
            axis.set_xlabel("source (real)", fontsize=7)
        elif j == len(pictures) - 1:
            axis.set_xlabel("target (real)", fontsize=7)
        else:
            axis.set_xlabel(f"{similarity[j - 1]:.3f}", fontsize=8)
    target_meta = cells.metadata.iloc[target_row]
    figure.suptitle(
        f"{name} → {target_meta.get('compound', to_compound)} "
        f"{target_meta.get('concentration', '')} (cosine similarity to the target)", fontsize=8,
    )
    atomic.save_figure(out, figure)
    import pandas as pd

    table = pd.DataFrame({"step": np.arange(steps + 1), "features_shifted": shifted, "cosine_similarity": similarity})
    table["source_cell"] = name
    table["target_cell"] = str(target_meta.get("file", target_row))
    atomic.write_csv(out.with_suffix(".csv"), table)
    click.echo(f"Wrote {out} and {out.with_suffix('.csv')} (target cell {table['target_cell'].iloc[0]})")
