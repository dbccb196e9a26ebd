"""Statistical Cell embeddings: posterior means in the reference space (z_ref) and, for a target
run, in the structure space conditioned on the cell's own reference channels (z_target)
(Donovan-Maiye et al. 2022, §2: z_r of membrane + DNA; z_t of the structure given the
reference channels).

A target run records the reference run it is paired with (``reference_run`` in its
config.json); embedding with a target run writes both z_ref (from that reference run) and
z_target, so that every cell's geometry and its structure sit side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statcell_tf.errors import UserError


def statcell_encoder(run, cells, reference=None, split: str = "all", flag: str = "RUN"):
    """A `CellEncoder` giving ``z_ref`` (and ``z_target`` for a target run), each (N, latent_dim).

    Args:
        run: str or Path. A ``train-statcell`` run folder (reference or target).
        cells: CellImages. Allen-style cells (membrane, dna, structure).
        reference: str, Path or None. The reference run of a target run; None = the one its
            config.json records.
        split: str. ``all`` or ``train`` / ``val`` / ``test`` (the run's split of the cells).
        flag: str. How the run was named on the command line.
    """
    from statcell_tf.data.embedding_files import CellEncoder
    from statcell_tf.statcell.data import StatcellData
    from statcell_tf.statcell.training import load_run
    from statcell_tf.training.run_dir import open_run

    rows = open_run(run, flag, paper="statcell").rows_of(cells, split)  # before any model is loaded
    model, config, run_dir = load_run(run, flag)
    data_view = StatcellData(cells, config.model, config.image_shape, config.structure_types or None, config.background)
    if config.model == "target":
        reference = reference or config.reference_run
        if not reference:
            raise UserError(f"{flag} {run} is a target run that records no reference run; pass --reference RUN")
        if not Path(reference).is_dir():
            raise UserError(f"--reference {reference}: the target run's reference run does not exist "
                            f"(recorded in {run_dir.config}; pass --reference RUN)")
        reference_model, reference_config, _ = load_run(reference, "--reference")
        if reference_config.model != "reference":
            raise UserError(f"--reference {reference} is a {reference_config.model} run; expected a reference run")
        reference_view = StatcellData(cells, "reference", reference_config.image_shape, None,
                                      reference_config.background)
    elif reference is not None:
        raise UserError(f"--reference is for target runs; {flag} {run} is a reference run. Received: --reference {reference}")
    else:
        reference_model, reference_view = model, data_view
    if config.model == "target":  # refuse before anything is written, not at the first unknown cell
        unknown = sorted(set(cells.metadata["structure_name"].astype(str).to_numpy()[rows[data_view.type_index[rows] < 0]]))
        if unknown:
            raise UserError(f"--data {cells.source}: structure(s) {', '.join(unknown[:5])} unknown to the target run "
                            f"{run}; it knows {', '.join(data_view.types)}")
    vectors = ["z_ref"] + (["z_target"] if config.model == "target" else [])

    def encode(positions):
        chosen = rows[positions]
        if not len(chosen):
            return {name: np.zeros((0, m.latent_dim), np.float32)
                    for name, m in zip(vectors, (reference_model, model))}
        out = {"z_ref": np.asarray(reference_model.encode(reference_view.batch(chosen))[0], np.float32)}
        if config.model == "target":
            out["z_target"] = np.asarray(model.encode(data_view.batch(chosen))[0], np.float32)
        return out

    attrs = {"run": str(Path(run).resolve()), "paper": "statcell", "role": config.model, "source": str(cells.source)}
    if config.model == "target":
        attrs["reference_run"] = str(Path(reference).resolve())
    return CellEncoder(cells.metadata.iloc[rows], encode, vectors, attrs)
