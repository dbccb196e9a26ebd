"""The tiny trained cytoself run shared by the CLI tests (feature-spectrum, feature-interpret,
umap-cytoself, embed, the hostile-input table)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_FAMILIES = 4
PROTEINS_PER_FAMILY = 2
CELLS_PER_PROTEIN = 6
SIZE = 16
TINY = dict(
    image_shape=(SIZE, SIZE, 2),
    stem_filters=4,
    encoder1_stages=[[1, 3, 1, 4, 1], [2, 3, 2, 6, 1]],  # 16 → 8 → 4: local 4×4×8
    local_filters=8,
    encoder2_stages=[[2, 3, 2, 8, 1]],  # global 2×2×16, split in 2
    global_filters=16,
    local_num_embeddings=16,
    global_num_embeddings=8,
    global_num_splits=2,
    decoder_filters=4,
    decoder_min_filters=4,
    decoder_units_per_block=1,
    classifier_units=8,
    seed=0,
)


def build_tiny_run(root: Path) -> tuple[Path, Path]:
    """Synthetic OpenCell data (16 px) and a cytoself run folder for it (config.json,
    best.keras, RUN/embeddings.h5), built directly with `CytoselfModel` and a few training
    steps: ``bin/train-cytoself`` takes minutes even for tiny data, too long for these tests.

    Returns:
        ``(run_dir, data_dir)``; reused when `root` already holds them.
    """
    run_dir, data_dir = root / "run", root / "data"
    if (run_dir / "embeddings.h5").exists():
        return run_dir, data_dir
    from statcell_tf.cytoself.embeddings import embed_cytoself
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.data.readers import read_cells
    from statcell_tf.data.splits import save_splits
    from statcell_tf.data.synthetic import write_opencell
    from statcell_tf.training.export import save_keras

    write_opencell(data_dir, N_FAMILIES, PROTEINS_PER_FAMILY, CELLS_PER_PROTEIN, size=SIZE, seed=0)
    cells = read_cells(data_dir).select_channels(["pro", "nucdist"])
    values = sorted(cells.metadata["protein"].unique())
    labels = cells.metadata["protein"].map({v: i for i, v in enumerate(values)}).to_numpy(np.int32)
    model = CytoselfModel(num_classes=len(values), **TINY)
    images = np.asarray(cells.images[np.arange(len(cells))], dtype=np.float32)
    model.prepare({"image": images[:8], "label": labels[:8]})
    rng = np.random.default_rng(0)
    # Data-driven codebooks (random encoder outputs): a random untrained codebook maps every
    # position of these tiny images to one code, and a spectrum needs codes that vary.
    out = model(images, training=False)
    for layer, key in ((model.vq1, "local_pre"), (model.vq2, "global_pre")):
        vectors = np.asarray(out[key]).reshape(-1, layer.embedding_dim)
        layer.embeddings.assign(vectors[rng.choice(len(vectors), layer.num_embeddings, replace=False)])
    for _ in range(3):
        pick = rng.choice(len(cells), 16, replace=False)
        model.train_step_fn({"image": images[pick], "label": labels[pick]})
    run_dir.mkdir(parents=True, exist_ok=True)
    save_keras(model, run_dir / "best.keras")
    from statcell_tf.data.identity import data_identity
    from statcell_tf.training.run_dir import make_config

    facts = {"channels": ["pro", "nucdist"], "label_column": "protein", "label_values": values,
             "num_cells": len(cells), "identity": data_identity(read_cells(data_dir))}
    (run_dir / "config.json").write_text(json.dumps(make_config("cytoself", "cytoself", "demo", {}, facts)))
    # Test split: the first 2 cells of every protein (a grouped split of so few cells would
    # leave a single protein in test).
    position = np.arange(len(cells)) % CELLS_PER_PROTEIN
    splits = {"train": np.flatnonzero(position > 2), "val": np.flatnonzero(position == 2),
              "test": np.flatnonzero(position < 2)}
    save_splits(run_dir / "splits.csv", cells.metadata, splits)
    embed_cytoself(run_dir, cells, run_dir / "embeddings.h5", progress=False)
    return run_dir, data_dir
