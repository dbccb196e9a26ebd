"""Science: the Integrated Cell on synthetic Allen-style cells with 10 structure families.

Trains the reference stage, then the conditional stage (through the same library call as
`bin/train-integrated-cell`), then asks the two questions of the paper's sections 3.4.3–3.4.4:

1. Can the conditional encoder tell which structure is labelled in held-out cells (Table S9)?
2. Does Algorithm 3 put each structure where it belongs in a cell it has only seen the
   membrane and DNA of (Fig. 3)? Measured as the fraction of the integrated structure's
   intensity inside the nucleus mask (Otsu threshold of the DNA channel) and inside the
   plasma-membrane mask (Otsu threshold of the membrane channel, dilated 1 px).

The CI test is a short run (small images, few epochs); the `science` test trains longer and
prints the full numbers (accuracy, confusion matrix, compartment fractions).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

NUCLEAR = ("NUCLEOPLASM", "NUCLEOLUS", "CHROMATIN", "NUCLEAR_ENVELOPE")
INSIDE_NUCLEUS = ("NUCLEOPLASM", "NUCLEOLUS", "CHROMATIN")  # the envelope straddles the mask edge
MEMBRANE = "PLASMA_MEMBRANE"


def run_experiment(
    root,
    *,
    cells_per_structure: int,
    size: int,
    filters: int,
    reference_epochs: int,
    conditional_epochs: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    **overrides,
) -> dict:
    """Train both stages on fresh synthetic data; classify and integrate the test cells."""
    from statcell_tf.data.synthetic import write_allencell
    from statcell_tf.integrated_cell import analysis
    from statcell_tf.integrated_cell import data as icd
    from statcell_tf.integrated_cell.training import (
        IntegratedCellSettings,
        classify_cells,
        integrate_cells,
        load_model,
        read_data,
        train,
    )
    from statcell_tf.training.run_dir import RunDirectory

    started = time.time()
    data = write_allencell(
        root / "data", n_families=10, cells_per_structure=cells_per_structure, dims=2, size=(size, size),
        mitotic_fraction=0.0, seed=seed,
    )
    manifest = data / "manifest.csv"
    # Paper settings except: 1e-3 learning rate (CPU step budget) and no BN before the decoder's
    # sigmoid (the authors' code; with it the decoder needs many more steps to fit sparse images).
    reference = IntegratedCellSettings(
        stage="reference", data=str(manifest), epochs=reference_epochs, batch_size=batch_size, image_size=(size, size),
        filters=filters, learning_rate=learning_rate, output_batchnorm=False, split_fractions=(0.7, 0.1, 0.2),
        seed=seed, strategy="one", precision="float32", **overrides,
    )
    train(reference, root / "reference", verbose=0)
    conditional = dataclasses.replace(
        reference, stage="conditional", reference_run=str(root / "reference"), epochs=conditional_epochs
    )
    history = train(conditional, root / "conditional", verbose=0).history

    run = RunDirectory(root / "conditional")
    model = load_model(run, "conditional")
    names = model.class_names
    view = icd.model_view(read_data(manifest), model.image_size, names)
    rows = run.rows_of(read_data(manifest), "test")
    labels = view.metadata[icd.LABEL_COLUMN].to_numpy()[rows]
    _, predicted = classify_cells(model, view, rows)
    matrix = analysis.confusion_matrix(labels, predicted, len(names))

    integrated = integrate_cells(model, view, rows)  # (N, K, H, W)
    predicted_tables, observed_rows = [], []
    for i, row in enumerate(rows):
        image = np.asarray(view.images[row])
        predicted_tables.append(analysis.integration_compartments(image[..., :2], integrated[i], names))
        masks = analysis.compartment_masks(image[..., 0], image[..., 1])
        observed_rows.append({"structure": names[labels[i]], **analysis.intensity_fractions(image[..., 2], masks)})
    columns = ["nucleus_fraction", "boundary_fraction", "nucleus_area", "boundary_area"]
    integrated_table = pd.concat(predicted_tables).groupby("structure", sort=False)[columns].mean()
    observed_table = pd.DataFrame(observed_rows).groupby("structure")[columns[:2]].mean()
    return {
        "names": names,
        "accuracy": float(np.mean(predicted == labels)),
        "cells": len(rows),
        "matrix": analysis.confusion_frame(matrix, names),
        "integrated": integrated_table,
        "observed": observed_table.reindex(names),
        "train_accuracy": float(history["accuracy"].iloc[-1]),
        "seconds": time.time() - started,
    }


def report(result: dict) -> None:
    short = {n: n[:6] for n in result["names"]}
    print(f"\nIntegrated Cell on synthetic cells ({result['seconds']:.0f} s)")
    print(f"held-out accuracy {result['accuracy']:.3f} on {result['cells']} cells "
          f"(chance {1 / len(result['names']):.3f}; last-epoch train accuracy {result['train_accuracy']:.3f})")
    print("confusion matrix (rows true, columns predicted):")
    print(result["matrix"].rename(index=short, columns=short).to_string())
    table = result["integrated"].join(result["observed"], rsuffix="_observed")
    print("fraction of intensity inside each mask: integrated (Algorithm 3) vs observed structure channel")
    print(table.round(3).to_string())


def assert_compartments(result: dict, nucleus_enrichment: float, boundary_enrichment: float, membrane_highest: bool):
    """Nuclear structures inside the nucleus mask, the plasma membrane at the boundary.

    `membrane_highest`: the membrane also has the largest boundary fraction of all structures
    and more than every nuclear one (at 32 px the cytoplasm is a ~3 px band that fills the
    boundary mask too, and the nuclear structures come within noise of the membrane there).
    """
    table = result["integrated"]
    nucleus, boundary = table["nucleus_fraction"], table["boundary_fraction"]
    cytoplasmic = [n for n in table.index if n not in NUCLEAR and n != MEMBRANE]
    for name in INSIDE_NUCLEUS:
        # More than `enrichment` × a uniform spread, and more than any non-nuclear structure.
        assert nucleus[name] > nucleus_enrichment * table.loc[name, "nucleus_area"], (name, nucleus.to_dict())
        assert nucleus[name] > nucleus[cytoplasmic + [MEMBRANE]].max(), (name, nucleus.to_dict())
    assert nucleus["NUCLEAR_ENVELOPE"] > nucleus[cytoplasmic + [MEMBRANE]].median(), nucleus.to_dict()
    assert nucleus[MEMBRANE] < nucleus[list(NUCLEAR)].min(), nucleus.to_dict()
    assert boundary[MEMBRANE] > boundary_enrichment * table.loc[MEMBRANE, "boundary_area"], boundary.to_dict()
    if membrane_highest:
        assert boundary[MEMBRANE] > boundary[list(NUCLEAR)].max(), boundary.to_dict()
        assert boundary[MEMBRANE] == boundary.max(), boundary.to_dict()


# The paper's γ_Dec = 1e-5 leaves the decoder ignoring y for the first ~600 steps (measured: every
# structure integrated identically); γ_Dec = 0.01 lets the (K+1)-way image discriminator teach
# the decoder to draw structure y from a prior z_s within a CPU budget.
# This short adversarial run is chaotic: float32 rounding alone (oneDNN against Eigen kernels,
# which agree to 3e-7 on a first step) moves where it ends. Measured at seeds 0/1/2 with oneDNN
# and seed 0 with Eigen: held-out accuracy 0.40-0.50; nuclear structures 0.49-0.68 of their
# intensity inside a nucleus that is 0.069 of the cell (7-10x); the membrane's boundary
# enrichment 1.42/1.58/2.07/1.93x, hence 1.3 here and 2.0 in the longer science run.
@pytest.mark.slow
def test_integrated_cell_classifies_and_places_structures(tmp_path):
    result = run_experiment(
        tmp_path, cells_per_structure=24, size=32, filters=8, reference_epochs=4, conditional_epochs=30,
        batch_size=8, gamma_dec=0.01,
    )
    report(result)
    assert result["accuracy"] >= 0.3  # 10 structures: chance is 0.1
    assert_compartments(result, nucleus_enrichment=3.0, boundary_enrichment=1.3, membrane_highest=False)


@pytest.mark.science
def test_integrated_cell_science(tmp_path):
    result = run_experiment(
        tmp_path, cells_per_structure=60, size=64, filters=8, reference_epochs=6, conditional_epochs=40,
        batch_size=16, gamma_dec=0.01,
    )
    report(result)
    assert result["accuracy"] >= 0.6
    assert_compartments(result, nucleus_enrichment=4.0, boundary_enrichment=2.0, membrane_highest=True)
