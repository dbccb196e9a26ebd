"""VAE+ embeddings of cells: the posterior means μ(x) of a run's encoder (Lafarge et al. 2019, Sect. 4.2).

The encoder is the run's SavedModel ``encode`` endpoint, which takes crops as they are on
disk (the model applies its own per-image max normalisation, Sect. 4.1). Cells are read and
encoded one chunk at a time by `statcell_tf.data.embedding_files.write_embeddings`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statcell_tf.errors import UserError


def vaeplus_encoder(run, data, split: str = "all", flag: str = "RUN"):
    """A `CellEncoder` giving vector ``mu`` (N, latent_dim) for the cells of `data`.

    Args:
        run: str or Path. A ``train-vaeplus`` run folder (its ``saved_model/``).
        data: str or Path. Crops (68×68×C) in any format the package reads.
        split: str. ``all`` or a split recorded in the run's splits.csv (``train``, ``val``;
            the data must then be the run's training data).
        flag: str. How the run was named on the command line.
    """
    from statcell_tf.data.embedding_files import CellEncoder
    from statcell_tf.vaeplus.training import load_cells, load_endpoints

    run_directory, loaded = load_endpoints(run, flag=flag)
    cells = load_cells(data)
    rows = np.arange(len(cells)) if split == "all" else run_directory.split_rows(len(cells))[split]
    if split != "all" and not len(rows):
        raise UserError(f"--split {split}: {run_directory.splits} records no {split} cells (VAE+ runs have train and val)")

    def encode(positions):
        import tensorflow as tf

        images = np.asarray(cells.images[rows[positions]], dtype=np.float32)
        if not len(images):
            return {"mu": np.zeros((0, int(loaded.encode(tf.zeros((1, *cells.image_shape))).shape[-1])), np.float32)}
        return {"mu": loaded.encode(tf.constant(images)).numpy()}

    attrs = {"run": str(Path(run).resolve()), "paper": "vaeplus", "source": str(cells.source),
             "channels": ",".join(cells.channel_names)}
    return CellEncoder(cells.metadata.iloc[rows], encode, ["mu"], attrs)
