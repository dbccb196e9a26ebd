"""Integrated Cell embeddings (Johnson et al. 2017): the reference latent z_r of the membrane + DNA
model, or, for a conditional run, its encoder's ẑ_r, structure latent z_s and structure
probabilities ŷ (Eq. 7).

Images go through the same model view as training and classification (`model_view`:
channel order, z max projection, size fit, section 3.1 normalisation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def integrated_cell_encoder(run, cells, split: str = "all", flag: str = "RUN"):
    """A `CellEncoder` of an Integrated Cell run: ``z_r`` (reference stage), or ``z_r``, ``z_s``
    and ``probabilities`` (conditional stage), each (N, dims).

    Args:
        run: str or Path. A ``train-integrated-cell`` run folder.
        cells: CellImages. Allen-style cells (membrane, dna, structure; structure_name, CellId).
        split: str. ``all`` or ``train`` / ``val`` / ``test`` (the run's splits.csv).
        flag: str. How the run was named on the command line.
    """
    from statcell_tf.data.embedding_files import CellEncoder
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import load_model
    from statcell_tf.training.run_dir import open_run

    run_dir = open_run(run, flag, paper="integrated_cell")
    rows = run_dir.rows_of(cells, split)  # before the model is loaded
    stage = "reference" if run_dir.read_config()["role"] == "reference" else "conditional"
    model = load_model(run_dir, stage)
    names = getattr(model, "class_names", None) or None
    view = icd.model_view(cells, model.image_size, names)
    vectors = ["z_r"] if stage == "reference" else ["z_r", "z_s", "probabilities"]

    def encode(positions):
        images = np.asarray(view.images[rows[positions]], np.float32)  # normalised, model-sized
        if stage == "reference":
            if not len(images):
                return {"z_r": np.zeros((0, model.latent_dim), np.float32)}
            return {"z_r": np.asarray(model.encode(model.reference_images(images)), np.float32)}
        if not len(images):
            sizes = (model.reference_latent_dim, model.latent_dim, model.num_classes)
            return {name: np.zeros((0, size), np.float32) for name, size in zip(vectors, sizes)}
        out = model.encode(model.images(images))
        return {name: np.asarray(out[name], np.float32) for name in vectors}

    attrs = {"run": str(Path(run).resolve()), "paper": "integrated_cell", "role": stage, "source": str(view.source)}
    if stage == "conditional":
        attrs["class_names"] = ",".join(map(str, model.class_names or []))
    return CellEncoder(view.metadata.iloc[rows], encode, vectors, attrs)
