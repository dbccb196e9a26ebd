"""VAE+ embeddings of cells: the posterior means μ(x) of a run's encoder (Lafarge et al. 2019, Sect. 4.2).

The encoder is the run's SavedModel ``encode`` endpoint, which takes crops as they are on
disk (the model applies its own per-image max normalisation, Sect. 4.1). Cells are read and
encoded one chunk at a time by `statcell_tf.data.embedding_files.write_embeddings`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def vaeplus_encoder(run, cells, split: str = "all", flag: str = "RUN"):
    """A `CellEncoder` giving vector ``mu`` (N, latent_dim) for `cells`.

    Args:
        run: str or Path. A ``train-vaeplus`` run folder (its ``saved_model/``).
        cells: CellImages. Crops (68×68×C), in any format the package reads.
        split: str. ``all`` or a split recorded in the run's splits.csv (``train``, ``val``;
            the data must then be the run's training data).
        flag: str. How the run was named on the command line.
    """
    from statcell_tf.data.embedding_files import CellEncoder
    from statcell_tf.training.run_dir import open_run
    from statcell_tf.vaeplus.training import check_cells, load_endpoints

    check_cells(cells)
    rows = open_run(run, flag, paper="vaeplus").rows_of(cells, split)  # before the model is loaded
    run_directory, loaded = load_endpoints(run, flag=flag)

    def encode(positions):
        import tensorflow as tf

        images = np.asarray(cells.images[rows[positions]], dtype=np.float32)
        if not len(images):
            return {"mu": np.zeros((0, int(loaded.encode(tf.zeros((1, *cells.image_shape))).shape[-1])), np.float32)}
        return {"mu": loaded.encode(tf.constant(images)).numpy()}

    attrs = {"run": str(Path(run).resolve()), "paper": "vaeplus", "source": str(cells.source),
             "channels": ",".join(cells.channel_names)}
    return CellEncoder(cells.metadata.iloc[rows], encode, ["mu"], attrs)
