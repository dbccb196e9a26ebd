"""cytoself on real cells in `make test`: BBBC021 MCF-7 crops (../shared/data), DMSO against
cycloheximide, label = compound, trained through `bin/train-cytoself` (demo preset) with a whole
plate held out (``--group-column plate``). What a scientist asks of the embedding: on the
held-out plate, cells of one compound lie nearer each other than cells of the other (the
5-nearest-neighbour vote of the global embedding names a held-out cell's compound, measured
against the fraction of the commoner compound), and the clustering score by mechanism of action
of the UMAP is above 1 (class centres spread wider than the classes). The longer run, the no-ID
ablation and the feature spectra are the `science` test in test_science_cytoself.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cytoself.test_science_cytoself import _embed, _scores, _test_rows, _train

EPOCHS = 3


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour (cosine) majority vote: the fraction of points whose
    neighbours name their own label."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    votes = labels[neighbours]
    predicted = np.array([max(set(row), key=list(row).count) for row in votes])
    return float(np.mean(predicted == labels))


@pytest.mark.slow
def test_cytoself_embeds_real_cells_by_compound_on_a_held_out_plate(tmp_path, shared_data):
    from statcell_tf.data.bbbc021 import read_bbbc021

    source = shared_data("bbbc021-dmso-cycloheximide")
    cells = read_bbbc021(source)
    run_dir = _train(source, tmp_path / "run", extra=("--group-column", "plate"), epochs=EPOCHS)
    arrays, metadata = _embed(run_dir, cells)
    rows = _test_rows(run_dir, arrays, len(cells))
    test = metadata.iloc[rows].reset_index(drop=True)
    assert test["compound"].nunique() == 2 and test["plate"].nunique() == 1
    compound = test["compound"].astype(str).to_numpy()
    vectors = np.asarray(arrays["global"])[rows].reshape(len(rows), -1)
    majority = test["compound"].value_counts(normalize=True).max()
    accuracy = knn_accuracy(vectors, compound)
    scores = _scores(vectors, test["moa"].astype(str).to_numpy(), seeds=(0,))
    print(f"\n[cytoself BBBC021, {EPOCHS} epochs] held-out plate {test['plate'].iloc[0]}, {len(rows)} cells "
          f"{test['compound'].value_counts().to_dict()}: 5-NN compound accuracy {accuracy:.3f} "
          f"(commoner compound {majority:.3f}); clustering score by MoA {scores[0]:.2f}")
    assert accuracy > majority + 0.2  # measured 0.943 against 0.568 (2 CPU cores, 97 s in all)
    assert scores[0] > 1.0  # measured 1.40
