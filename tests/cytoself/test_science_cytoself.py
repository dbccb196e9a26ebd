"""cytoself science experiments (``make science``): the paper's key ablation and feature spectra.

1. Known-answer synthetic OpenCell data (11 localisation families × 3 proteins): the demo
   preset trained with and without the protein-identification task; on held-out cells, the
   clustering score of the 2-D UMAP of global embeddings by family must be clearly higher for
   the full model (paper, Supp. Table 1: 3.41 vs 1.13), and feature spectra of proteins of the
   same family must correlate more than across families.
2. Real BBBC021 crops (MCF-7, DMSO vs cycloheximide; label = compound), a whole plate held
   out: the clustering score by mechanism of action, and the DMSO and cycloheximide feature
   spectra: cycloheximide must move the spectrum further than the sampling noise of either
   compound (random halves of the held-out cells).

Numbers are printed (run with ``-s``); the closing note reports them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.science

SYNTHETIC = {"n_families": 11, "proteins_per_family": 3, "cells_per_protein": 40, "size": 100, "seed": 0}
EPOCHS = 12
UMAP_SEEDS = (0, 1, 2)


def _train(data_dir, out_dir, ablation=None, extra=(), epochs=EPOCHS):
    from statcell_tf.cli import run_command

    args = ["--data", str(data_dir), "--preset", "demo", "--epochs", str(epochs), "--out", str(out_dir), *extra]
    if ablation:
        args += ["--ablation", ablation]
    assert run_command("train-cytoself", args) == 0
    return out_dir


def _test_rows(run_dir, arrays, num_cells):
    """Rows of the embeddings (of all cells) that belong to the run's held-out test split."""
    from statcell_tf.training.run_dir import RunDirectory

    rows = np.flatnonzero(np.isin(arrays["index"], RunDirectory(run_dir).split_rows(num_cells)["test"]))
    assert len(rows) > 0
    return rows


def _scores(vectors, labels, seeds=UMAP_SEEDS):
    from statcell_tf.cytoself.clustering_score import clustering_score
    from statcell_tf.cytoself.umap_atlas import compute_umap

    return [clustering_score(compute_umap(vectors, seed=s), labels) for s in seeds]


def _embed(run_dir, cells):
    from statcell_tf.cytoself.embeddings import embed_cytoself, load_embeddings

    path = run_dir / "embeddings.h5"
    if not path.exists():
        embed_cytoself(run_dir, cells, path)
    return load_embeddings(path)


def test_identification_task_drives_family_clustering(tmp_path_factory):
    from statcell_tf.cytoself.feature_spectrum import build_feature_spectrum
    from statcell_tf.data.readers import read_cells
    from statcell_tf.data.synthetic import write_opencell

    root = tmp_path_factory.mktemp("cytoself_science")
    data_dir = root / "opencell"
    write_opencell(data_dir, **SYNTHETIC)
    cells = read_cells(data_dir)
    results = {}
    for variant, ablation in (("full", None), ("no_id", "no_id")):
        run_dir = _train(data_dir, root / variant, ablation)
        arrays, metadata = _embed(run_dir, cells)
        rows = _test_rows(run_dir, arrays, len(cells))
        family = metadata["family"].astype(str).to_numpy()
        scores = _scores(np.asarray(arrays["global"])[rows], family[rows])
        results[variant] = {"scores": scores, "arrays": arrays, "metadata": metadata, "rows": rows}
        print(f"\n[cytoself synthetic] {variant}: clustering score by family (test cells, "
              f"{len(rows)} images, UMAP seeds {UMAP_SEEDS}): "
              + ", ".join(f"{s:.2f}" for s in scores) + f"; mean {np.mean(scores):.2f}")
    full, no_id = np.mean(results["full"]["scores"]), np.mean(results["no_id"]["scores"])
    print(f"[cytoself synthetic] full / no-ID = {full:.2f} / {no_id:.2f} = {full / no_id:.2f}x "
          "(paper, organelle level: 3.41 / 1.13)")
    assert full > 1.5 * no_id
    assert min(results["full"]["scores"]) > max(results["no_id"]["scores"])

    # Feature spectra of the full model, from the held-out test cells.
    arrays, metadata, rows = (results["full"][k] for k in ("arrays", "metadata", "rows"))
    spectrum = build_feature_spectrum(
        np.asarray(arrays["local_hist"])[rows],
        metadata["protein"].astype(str).to_numpy()[rows],
        metadata["family"].astype(str).to_numpy()[rows],
    )
    spectra = np.array([spectrum.spectrum(p) for p in spectrum.proteins])
    r = np.corrcoef(spectra)
    same = spectrum.families[:, None] == spectrum.families[None, :]
    off = ~np.eye(len(r), dtype=bool)
    within, across = r[same & off].mean(), r[~same].mean()
    # Fig. 4e: the rank of the protein's own family among the family consensus spectra (its own
    # spectrum left out). Only proteins with another held-out protein of their family have one.
    tables = [spectrum.family_correlations(p) for p in spectrum.proteins]
    ranks = np.array([np.flatnonzero(t["is_own_family"])[0] + 1 for t in tables if t["is_own_family"].any()])
    families_ranked = np.mean([len(t) for t in tables])
    top1, chance_rank = np.mean(ranks == 1), (families_ranked + 1) / 2
    print(f"[cytoself synthetic] spectra Pearson r: same family {within:.3f}, different families {across:.3f}; "
          f"own family ranked first for {top1:.0%} of {len(ranks)} proteins with a held-out family mate "
          f"(chance {1 / families_ranked:.0%}), mean rank {ranks.mean():.2f} of {families_ranked:.0f} "
          f"(chance {chance_rank:.1f}) ({len(spectrum.cluster_numbers)} feature clusters, "
          f"{int(spectrum.informative.sum())}/{spectrum.num_codes} informative codes)")
    everyone = build_feature_spectrum(
        np.asarray(arrays["local_hist"]), metadata["protein"].astype(str), metadata["family"].astype(str)
    )
    r_all = np.corrcoef(np.array([everyone.spectrum(p) for p in everyone.proteins]))
    same_all = everyone.families[:, None] == everyone.families[None, :]
    top1_all = np.mean([everyone.family_correlations(p).loc[0, "is_own_family"] for p in everyone.proteins])
    print(f"[cytoself synthetic] (all {len(metadata)} cells, training cells included: same family "
          f"{r_all[same_all & ~np.eye(len(r_all), dtype=bool)].mean():.3f}, different {r_all[~same_all].mean():.3f}, "
          f"own family first for {top1_all:.0%} of {len(everyone.proteins)} proteins)")
    assert within > across + 0.1
    assert len(ranks) >= 10 and top1 > 3 / families_ranked and ranks.mean() < chance_rank / 2


def test_bbbc021_moa_score_and_cycloheximide_spectrum(tmp_path_factory, shared_data):
    """Held-out plate: the split groups by plate (seed 0 puts plate Week4_27821, with DMSO and
    cycloheximide wells, in test), the strictest hold-out this 10-well subset allows."""
    from statcell_tf.cytoself.feature_spectrum import build_feature_spectrum
    from statcell_tf.data.bbbc021 import read_bbbc021

    source = shared_data("bbbc021-dmso-cycloheximide")
    root = tmp_path_factory.mktemp("cytoself_bbbc021")
    cells = read_bbbc021(source)
    run_dir = _train(source, root / "run", extra=("--group-column", "plate"))
    arrays, metadata = _embed(run_dir, cells)
    rows = _test_rows(run_dir, arrays, len(cells))
    test = metadata.iloc[rows].reset_index(drop=True)
    assert test["compound"].nunique() == 2 and test["plate"].nunique() == 1
    moa = test["moa"].astype(str).to_numpy()
    scores = _scores(np.asarray(arrays["global"])[rows], moa)
    print(f"\n[cytoself BBBC021] clustering score by MoA (held-out plate {test['plate'].iloc[0]}, "
          f"{len(rows)} cells: {test['compound'].value_counts().to_dict()}): "
          + ", ".join(f"{s:.2f}" for s in scores) + f"; mean {np.mean(scores):.2f}")
    # The paper's key ablation on real cells: the same run without the identification task.
    no_id_dir = _train(source, root / "no_id", "no_id", extra=("--group-column", "plate"))
    no_id_arrays, _ = _embed(no_id_dir, cells)
    assert np.array_equal(_test_rows(no_id_dir, no_id_arrays, len(cells)), rows)  # the same held-out plate
    no_id_scores = _scores(np.asarray(no_id_arrays["global"])[rows], moa)
    print("[cytoself BBBC021] no-ID ablation, clustering score by MoA: "
          + ", ".join(f"{s:.2f}" for s in no_id_scores) + f"; mean {np.mean(no_id_scores):.2f} "
          f"(full / no-ID = {np.mean(scores) / np.mean(no_id_scores):.2f}x)")

    # Spectra of the held-out plate: DMSO vs cycloheximide against DMSO vs DMSO (random halves).
    hist = np.asarray(arrays["local_hist"])[rows]
    compound = test["compound"].astype(str).to_numpy()
    half = np.random.default_rng(0).permutation(len(test)) % 2
    key = np.char.add(compound.astype(str), np.where(half == 0, "#a", "#b"))
    spectrum = build_feature_spectrum(hist, key, compound)
    dmso = ("DMSO#a", "DMSO#b")
    chx = [k for k in spectrum.proteins if not k.startswith("DMSO")]
    r = {(a, b): np.corrcoef(spectrum.spectrum(a), spectrum.spectrum(b))[0, 1] for a in spectrum.proteins
         for b in spectrum.proteins if a < b}
    replicate = r[dmso]
    treated = [r[tuple(sorted((d, c)))] for d in dmso for c in chx]
    chx_replicate = r[tuple(sorted(chx))]
    whole = build_feature_spectrum(hist, compound)
    r_compounds = np.corrcoef(whole.spectrum("DMSO"), whole.spectrum(chx[0].split("#")[0]))[0, 1]
    top = np.argsort(-np.abs(whole.spectrum("DMSO") - whole.spectrum(chx[0].split("#")[0])))[:5]
    print(f"[cytoself BBBC021] held-out spectra r: DMSO half vs half {replicate:.3f}, cycloheximide half vs half "
          f"{chx_replicate:.3f}, DMSO vs cycloheximide halves {np.mean(treated):.3f} (min {np.min(treated):.3f}); "
          f"pooled DMSO vs cycloheximide {r_compounds:.3f}; most changed spectrum positions {[int(p) for p in top]} "
          f"in clusters {[fsm_roman(int(whole.clusters[whole.order[p]])) for p in top]}")
    assert np.mean(scores) > 1.5
    assert max(treated) < min(replicate, chx_replicate)


def fsm_roman(number):
    from statcell_tf.cytoself.feature_spectrum import roman

    return roman(number)
