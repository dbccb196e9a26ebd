"""Integrated Cell on real cells: BBBC021 MCF-7 DMSO crops (../shared/data) in the Allen roles
membrane := F-actin, dna := DNA, structure := β-tubulin (one structure class, K = 1).

The paper's point (section 2.4, Algorithm 3): predict an unobserved structure from the cell and
nucleus alone. Both stages are trained through the library call of `bin/train-integrated-cell`
(`training.train`, Allen-format manifest, cells split by CellId into the run's splits.csv);
on the held-out cells of the run's own test split (`RunDirectory.rows_of(cells, "test")`):

1. the reference model (Algorithm 1) reconstructs each cell's membrane and DNA better than the
   mean training image does (pixel MSE);
2. Algorithm 3 (z_r = Enc_r(x^r), z_s = 0, y = β-tubulin) predicts each cell's tubulin from its
   F-actin and DNA: the prediction correlates (Pearson, over pixels) with the cell's OWN observed
   tubulin better than with the other held-out cells' tubulin (a prediction that ignored the
   cell would score the same on both).

Measured at seeds 0/1/2 (2 CPU cores, about 70 s each): reference MSE 0.82/0.56/0.66 of the
mean image's; own-cell Pearson 0.23/0.23/0.28 against 0.14/0.10/0.20 with other cells. Not
asserted, because at this budget it does not hold: the prediction does not yet beat the mean
training tubulin image (Pearson 0.28/0.30/0.36 with each cell's tubulin), the best
cell-independent guess; the paper trained for days on a GPU. Numbers are printed (``-s``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from tests._support.bbbc021 import write_bbbc021_allen


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Pearson correlations over pixels between (N, H, W) images `a` and (M, H, W) `b`."""

    def standardised(x):
        x = x.reshape(len(x), -1).astype("float64")
        x = x - x.mean(axis=1, keepdims=True)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return standardised(a) @ standardised(b).T


def run_experiment(root, crops, *, cells: int, size: int, filters: int, reference_steps: int,
                   conditional_steps: int, batch_size: int = 16, learning_rate: float = 1e-3, seed: int = 0,
                   **overrides) -> dict:
    """Train both stages on `cells` real DMSO crops at `size` px; score the test split."""
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import (
        IntegratedCellSettings,
        integrate_cells,
        load_model,
        read_data,
        train,
    )
    from statcell_tf.training.run_dir import RunDirectory

    started = time.time()
    manifest = write_bbbc021_allen(crops, root / "data", cells, size, seed=seed)
    # Paper settings except: 1e-3 learning rate (CPU step budget), no BN before the decoder's
    # sigmoid (the authors' code), and epochs of `steps` steps (one epoch-end pass per stage).
    reference = IntegratedCellSettings(
        stage="reference", data=str(manifest), epochs=1, steps_per_epoch=reference_steps, batch_size=batch_size,
        image_size=(size, size), filters=filters, learning_rate=learning_rate, output_batchnorm=False,
        split_fractions=(0.7, 0.1, 0.2), seed=seed, strategy="one", precision="float32", **overrides,
    )
    train(reference, root / "reference", verbose=0)
    conditional = dataclasses.replace(
        reference, stage="conditional", reference_run=str(root / "reference"), steps_per_epoch=conditional_steps
    )
    train(conditional, root / "conditional", verbose=0)
    trained = time.time() - started

    data = read_data(manifest)
    reference_run, conditional_run = RunDirectory(root / "reference"), RunDirectory(root / "conditional")
    model = load_model(conditional_run, "conditional")
    view = icd.model_view(data, model.image_size, model.class_names)
    assert model.class_names == ["BETA_TUBULIN"]

    # 1. Reference model: held-out membrane + DNA vs the mean training image.
    test = reference_run.rows_of(data, "test")
    observed = np.asarray(view.images[test])[..., :2]
    mean_image = np.asarray(view.images[reference_run.rows_of(data, "train")])[..., :2].mean(axis=0)
    reconstruction = np.asarray(load_model(reference_run, "reference")(observed))

    # 2. Algorithm 3 on the conditional run's held-out cells.
    test = conditional_run.rows_of(data, "test")
    tubulin = np.asarray(view.images[test])[..., 2]
    mean_tubulin = np.asarray(view.images[conditional_run.rows_of(data, "train")])[..., 2].mean(axis=0)
    predicted = integrate_cells(model, view, test)[:, 0]  # (N, H, W): the one structure
    correlations = pearson(predicted, tubulin)
    paired = np.diag(correlations)
    unpaired = correlations[~np.eye(len(test), dtype=bool)]
    return {
        "cells": len(test),
        "mse_model": float(np.mean((reconstruction - observed) ** 2)),
        "mse_mean_image": float(np.mean((mean_image - observed) ** 2)),
        "paired": float(paired.mean()),
        "paired_min": float(paired.min()),
        "unpaired": float(unpaired.mean()),
        "mean_tubulin": float(pearson(mean_tubulin[None], tubulin).mean()),
        "own_rank": float(np.mean(correlations.argmax(axis=1) == np.arange(len(test)))),
        "train_seconds": trained,
        "seconds": time.time() - started,
    }


def report(result: dict) -> None:
    print(f"\nIntegrated Cell on BBBC021 DMSO crops: {result['cells']} held-out cells "
          f"(trained in {result['train_seconds']:.0f} s, {result['seconds']:.0f} s in all)")
    print(f"reference model: membrane+DNA MSE {result['mse_model']:.5f} vs mean training image "
          f"{result['mse_mean_image']:.5f}")
    print(f"Algorithm 3 tubulin, Pearson with the cell's own tubulin {result['paired']:.3f} "
          f"(min {result['paired_min']:.3f}), with other cells' {result['unpaired']:.3f}; "
          f"mean training tubulin with each cell's {result['mean_tubulin']:.3f}; "
          f"own cell the best match for {result['own_rank']:.0%}")


@pytest.mark.slow
def test_integrated_cell_predicts_each_real_cells_tubulin(tmp_path, shared_data):
    result = run_experiment(
        tmp_path, shared_data("bbbc021-dmso-cycloheximide"), cells=200, size=32, filters=8,
        reference_steps=150, conditional_steps=150,
    )
    report(result)
    assert result["mse_model"] < 0.9 * result["mse_mean_image"]
    assert result["paired"] > result["unpaired"] + 0.03
