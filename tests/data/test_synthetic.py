"""Synthetic cells: deterministic, fast, the right file formats, and families that differ by construction."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi

from statcell_tf.data import synthetic
from statcell_tf.data.synthetic import FAMILIES, PHASES, make_cell, write_allencell, write_opencell

SMALL = {"n_families": 11, "proteins_per_family": 2, "cells_per_protein": 12, "size": 64, "seed": 0}


@pytest.fixture(scope="module")
def opencell(tmp_path_factory):
    return write_opencell(tmp_path_factory.mktemp("opencell") / "data", **SMALL)


def _load(folder):
    """(pro, nuc, nucdist, labels) of every protein in an OpenCell-format folder."""
    frames, arrays = [], {"pro": [], "nuc": [], "nucdist": []}
    for label_file in sorted(folder.glob("*_label.csv")):
        prefix = label_file.name[: -len("_label.csv")]
        frames.append(pd.read_csv(label_file))
        for key in arrays:
            arrays[key].append(np.load(folder / f"{prefix}_{key}.npy"))
    return (*(np.concatenate(arrays[k]) for k in ("pro", "nuc", "nucdist")), pd.concat(frames, ignore_index=True))


def test_family_names():
    assert FAMILIES == (
        "nucleoplasm", "nucleolus", "nuclear_envelope", "chromatin", "cytoplasm", "mitochondria", "er",
        "golgi", "vesicles", "plasma_membrane", "centrosome",
    )
    assert PHASES == ("interphase", "prophase", "metaphase", "anaphase")


def test_opencell_files_and_labels(opencell):
    pro, nuc, nucdist, labels = _load(opencell)
    n_files = len(list(opencell.glob("*.npy")))
    assert n_files == 3 * 11 * 2
    assert pro.shape == nuc.shape == nucdist.shape == (11 * 2 * 12, 64, 64)
    assert pro.dtype == nuc.dtype == nucdist.dtype == np.float32
    assert list(labels.columns) == ["ensg", "protein", "localization", "fov", "family"]
    assert labels["family"].nunique() == 11 and (labels["family"] == labels["localization"]).all()
    assert labels["ensg"].str.fullmatch(r"ENSG\d{11}").all()
    assert set(labels["protein"]) >= {"NUCLEOLUS_1", "NUCLEOLUS_2", "CENTROSOME_2"}
    # Several cells per field of view, fov ids unique per protein.
    per_fov = labels.groupby("fov").size()
    assert per_fov.max() > 1 and labels.groupby("fov")["protein"].nunique().max() == 1
    assert all(f.startswith(f"{p}_fov") for f, p in zip(labels["fov"], labels["protein"]))
    assert 0 <= pro.min() and pro.max() <= 1 and 0 <= nuc.min() and nuc.max() <= 1
    assert nucdist.min() == -1 and nucdist.max() == 1
    # nucdist is positive exactly where the DNA is bright (inside the nucleus).
    inside = nucdist > 0
    assert nuc[inside].mean() > 5 * nuc[~inside].mean()


def test_deterministic_by_seed(tmp_path):
    kwargs = {"n_families": 2, "proteins_per_family": 1, "cells_per_protein": 3, "size": 48}
    a = write_opencell(tmp_path / "a", seed=3, **kwargs)
    b = write_opencell(tmp_path / "b", seed=3, **kwargs)
    c = write_opencell(tmp_path / "c", seed=4, **kwargs)
    for name in sorted(p.name for p in a.glob("*.npy")):
        np.testing.assert_array_equal(np.load(a / name), np.load(b / name))
        assert not np.array_equal(np.load(a / name), np.load(c / name))
    cell_a = make_cell("golgi", shape=(40, 40), seed=1)
    cell_b = make_cell("golgi", shape=(40, 40), seed=1)
    np.testing.assert_array_equal(cell_a["protein"], cell_b["protein"])


def test_nuclear_families_inside_and_membrane_at_boundary():
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        fractions, ring = [], []
        for _ in range(6):
            cell = make_cell(family, synthetic.protein_parameters(family, 1), (80, 80), seed=rng)
            signal = cell["protein"] - np.median(cell["protein"][~cell["cell_mask"]])  # background-subtracted
            fractions.append(signal[cell["nucleus_mask"]].sum() / signal.sum())
            edge = cell["cell_mask"] ^ ndi.binary_erosion(cell["cell_mask"], iterations=2)
            ring.append(signal[edge].mean() / max(signal[cell["cell_mask"] & ~edge].mean(), 1e-3))
        if family in ("nucleoplasm", "nucleolus", "chromatin"):
            assert np.mean(fractions) > 0.8, family
        elif family == "nuclear_envelope":  # a ring on the boundary: about half on each side
            assert np.mean(fractions) > 0.35, family
        else:
            assert np.mean(fractions) < 0.3, family
        if family == "plasma_membrane":
            assert np.mean(ring) > 4, ring
        else:
            assert np.mean(ring) < 2, (family, np.mean(ring))


def _features(pro, nucdist):
    """Simple per-cell features: radial profile over nucdist bins, intensity quantiles, spottiness."""
    edges = np.array([-1.01, -0.8, -0.6, -0.45, -0.3, -0.2, -0.1, 0.0, 0.1, 0.3, 0.6, 1.01])
    feats = []
    for p, d in zip(pro, nucdist):
        bins = np.digitize(d.ravel(), edges) - 1
        profile = np.bincount(bins, weights=p.ravel(), minlength=len(edges) - 1)[: len(edges) - 1]
        counts = np.maximum(np.bincount(bins, minlength=len(edges) - 1)[: len(edges) - 1], 1)
        profile = profile / counts
        profile = profile / (profile.max() + 1e-6)
        q = np.quantile(p, [0.5, 0.9, 0.99, 0.999])
        lap = np.abs(ndi.gaussian_laplace(p, 1.0)).mean() / (p.mean() + 1e-6)
        top = np.sort(p.ravel())[-20:].sum() / (p.sum() + 1e-6)
        feats.append(np.concatenate([profile, q, [lap, top]]))
    return np.array(feats)


def test_families_separable_by_simple_features(opencell):
    pro, _, nucdist, labels = _load(opencell)
    x = _features(pro, nucdist)
    y = labels["family"].to_numpy()
    train = labels["protein"].str.endswith("_1").to_numpy()  # held-out proteins, not just held-out cells
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mean) / std
    centroids = np.stack([z[train & (y == f)].mean(0) for f in FAMILIES])
    predicted = np.array(FAMILIES)[np.argmin(((z[~train, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    accuracy = (predicted == y[~train]).mean()
    print(f"nearest-centroid family accuracy on held-out proteins: {accuracy:.3f} (chance {1 / 11:.3f})")
    assert accuracy > 0.7


def test_proteins_within_a_family_differ():
    a, b = (synthetic.protein_parameters("vesicles", i) for i in (0, 1))
    assert a != b and a["level"] != b["level"]
    with pytest.raises(ValueError, match="family"):
        synthetic.protein_parameters("lysosome", 0)


@pytest.mark.parametrize("dims", [2, 3])
def test_allencell_manifest_and_tiffs(tmp_path, dims):
    size = (32, 32) if dims == 2 else (8, 24, 24)
    out = write_allencell(tmp_path / "allen", n_families=4, cells_per_structure=3, dims=dims, size=size, seed=0)
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == [
        "CellId", "structure_name", "path", "ch_membrane", "ch_dna", "ch_structure", "cell_cycle_phase", "family",
    ]
    assert len(manifest) == 12 and manifest["CellId"].is_unique
    assert set(manifest["family"]) == set(FAMILIES[:4])
    with tifffile.TiffFile(out / manifest["path"][0]) as tif:
        assert tif.series[0].axes == ("CYX" if dims == 2 else "CZYX")
        image = tif.series[0].asarray()
    assert image.shape == (3, *size) and image.dtype == np.uint16
    # Channel order: membrane brightest on the cell boundary, DNA inside, structure present.
    assert image[1].max() > 0 and image[2].max() > 0
    assert not list(tmp_path.glob(".allen*"))  # no temporary folder left behind


def _allen_files(folder):
    """{relative path: bytes} of every file of an Allen-format folder."""
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_allencell_several_proteins_per_family(tmp_path):
    from statcell_tf.data.allencell import read_allencell

    kwargs = {"n_families": 3, "cells_per_structure": 4, "size": (32, 32), "mitotic_fraction": 0.2}
    two = write_allencell(tmp_path / "two", seed=5, proteins_per_family=2, **kwargs)
    manifest = pd.read_csv(two / "manifest.csv")
    assert list(manifest.columns)[-1] == "protein" and len(manifest) == 3 * 2 * 4 and manifest["CellId"].is_unique
    # Two distinct proteins per family; the structure label stays the family's.
    assert (manifest.groupby("family")["protein"].nunique() == 2).all()
    assert set(manifest["protein"]) == {f"{f.upper()}_{k}" for f in FAMILIES[:3] for k in (1, 2)}
    assert (manifest["structure_name"] == manifest["family"].str.upper()).all()
    cells = read_allencell(two)
    assert set(cells.metadata["label"]) == {f.upper() for f in FAMILIES[:3]}
    assert cells.metadata["protein"].nunique() == 6
    for family in FAMILIES[:3]:
        first, second = (synthetic.protein_parameters(family, k, 5) for k in (0, 1))
        assert first != second and first["level"] != second["level"]
    # The proteins' cells differ (parameters and random stream).
    by_protein = manifest.groupby("protein")["path"].first()
    a, b = (tifffile.imread(two / by_protein[f"NUCLEOPLASM_{k}"]) for k in (1, 2))
    assert not np.array_equal(a, b)
    # Deterministic by seed.
    again = write_allencell(tmp_path / "again", seed=5, proteins_per_family=2, **kwargs)
    other = write_allencell(tmp_path / "other", seed=6, proteins_per_family=2, **kwargs)
    assert _allen_files(again) == _allen_files(two)
    assert _allen_files(other)["manifest.csv"] != _allen_files(two)["manifest.csv"]
    # One protein per family is the default and the format as before: no protein column, and
    # its cells are exactly the first protein's cells of the two-protein set (same ids, bytes).
    one = write_allencell(tmp_path / "one", seed=5, proteins_per_family=1, **kwargs)
    default = write_allencell(tmp_path / "default", seed=5, **kwargs)
    assert _allen_files(one) == _allen_files(default)
    single = pd.read_csv(one / "manifest.csv")
    assert "protein" not in single.columns and len(single) == 3 * 4
    firsts = manifest[manifest["protein"].str.endswith("_1")].drop(columns="protein").reset_index(drop=True)
    pd.testing.assert_frame_equal(firsts, single)
    for rel in single["path"]:
        assert (one / rel).read_bytes() == (two / rel).read_bytes()
    with pytest.raises(ValueError, match="proteins_per_family"):
        write_allencell(tmp_path / "bad", proteins_per_family=0)


def _membrane_and_nucleus_props(folder):
    """Per interphase cell of an Allen-format folder: regionprops of the cell segmented from the
    membrane channel (smoothed, Otsu, holes filled) and of the nucleus from the DNA channel."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    manifest = pd.read_csv(folder / "manifest.csv")
    rows = []
    for rel in manifest.loc[manifest["cell_cycle_phase"] == "interphase", "path"]:
        membrane, dna = tifffile.imread(folder / rel)[:2].astype(np.float32) / 60000
        membrane = ndi.gaussian_filter(membrane, 0.7)
        cell = max(regionprops(label(ndi.binary_fill_holes(membrane > threshold_otsu(membrane)))), key=lambda r: r.area)
        nuclei = label(ndi.binary_fill_holes(dna > threshold_otsu(dna)))
        nucleus = max(regionprops(nuclei), key=lambda r: r.area)
        rows.append({"CellId": manifest.loc[manifest["path"] == rel, "CellId"].iloc[0], "area": cell.area,
                     "eccentricity": cell.eccentricity, "nucleus_area": nucleus.area,
                     "dna": dna[nuclei == nucleus.label].mean()})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_rounding_treatment_makes_cells_smaller_and_rounder(tmp_path):
    kwargs = {"n_families": 4, "cells_per_structure": 12, "size": (48, 48)}
    untreated = write_allencell(tmp_path / "untreated", seed=0, **kwargs)
    treated = write_allencell(tmp_path / "treated", seed=1, treatment="rounding", **kwargs)
    manifest = pd.read_csv(treated / "manifest.csv")
    base = pd.read_csv(untreated / "manifest.csv")
    assert list(manifest.columns) == [*base.columns, "treatment"] and (manifest["treatment"] == "rounding").all()
    assert manifest["CellId"].str.fullmatch(r"rounding-\d+").all()
    assert not set(manifest["CellId"]) & set(base["CellId"].astype(str))
    assert (manifest["path"] == "cells/" + manifest["CellId"] + ".tiff").all()
    # Measured as a biologist would, on the membrane and DNA channels (~40 interphase cells each;
    # untreated vs treated at 48x48: area ~910 vs ~670 px, eccentricity ~0.65 vs ~0.36).
    u, t = _membrane_and_nucleus_props(untreated), _membrane_and_nucleus_props(treated)
    assert len(u) > 30 and len(t) > 30
    assert t["area"].mean() < 0.85 * u["area"].mean()
    assert t["eccentricity"].mean() < u["eccentricity"].mean() - 0.15
    assert t["nucleus_area"].mean() < 0.95 * u["nucleus_area"].mean()  # slightly condensed ...
    assert t["nucleus_area"].mean() > 0.7 * u["nucleus_area"].mean()  # ... not shrunk like the cell
    assert t["dna"].mean() > 1.1 * u["dna"].mean()
    # Same seed: the same cells, rounded (the random stream is shared); mitotic cells, round
    # already, are untouched, byte for byte.
    same = write_allencell(tmp_path / "same", seed=0, treatment="rounding", **kwargs)
    paired = _membrane_and_nucleus_props(same)
    assert (paired["CellId"] == "rounding-" + u["CellId"].astype(str)).all()
    assert (paired["area"].to_numpy() < u["area"].to_numpy()).mean() > 0.9
    mitotic = base.loc[base["cell_cycle_phase"] != "interphase", "path"]
    assert len(mitotic) > 0
    for rel in mitotic:
        assert (same / rel.replace("cells/", "cells/rounding-")).read_bytes() == (untreated / rel).read_bytes()
    # treatment="none" is the default output, without a treatment column; "vehicle" has the
    # same cells, labelled.
    none = write_allencell(tmp_path / "none", seed=0, treatment="none", **kwargs)
    assert _allen_files(none) == _allen_files(untreated) and "treatment" not in base.columns
    vehicle = write_allencell(tmp_path / "vehicle", seed=0, treatment="vehicle", **kwargs)
    labelled = pd.read_csv(vehicle / "manifest.csv")
    assert (labelled["treatment"] == "vehicle").all()
    assert (labelled["CellId"] == "vehicle-" + base["CellId"].astype(str)).all()
    same_columns = ["structure_name", "cell_cycle_phase", "family"]
    pd.testing.assert_frame_equal(labelled[same_columns], base[same_columns])
    for rel in base["path"]:
        assert (vehicle / rel.replace("cells/", "cells/vehicle-")).read_bytes() == (untreated / rel).read_bytes()
    with pytest.raises(ValueError, match="treatment"):
        write_allencell(tmp_path / "bad", treatment="brefeldin")
    with pytest.raises(ValueError, match="treatment"):
        make_cell("er", treatment="brefeldin")


def test_allencell_default_sizes(tmp_path):
    out = write_allencell(tmp_path / "a3", n_families=1, cells_per_structure=1, dims=3, seed=0)
    manifest = pd.read_csv(out / "manifest.csv")
    assert tifffile.imread(out / manifest["path"][0]).shape == (3, 16, 48, 48)


def test_mitotic_subset(tmp_path):
    out = write_allencell(tmp_path / "m", n_families=11, cells_per_structure=8, size=(40, 40), mitotic_fraction=0.3, seed=2)
    phases = pd.read_csv(out / "manifest.csv")["cell_cycle_phase"]
    assert set(phases) == set(PHASES)
    assert 0.15 < (phases != "interphase").mean() < 0.45
    none = write_allencell(tmp_path / "n", n_families=2, cells_per_structure=5, size=(32, 32), mitotic_fraction=0.0)
    assert (pd.read_csv(none / "manifest.csv")["cell_cycle_phase"] == "interphase").all()


def test_mitotic_cells_are_round_with_condensed_chromatin():
    rng = np.random.default_rng(1)

    def elongation(mask):
        from skimage.measure import regionprops

        region = regionprops(mask.astype(np.uint8))[0]
        return region.major_axis_length / region.minor_axis_length

    inter = [make_cell("er", shape=(64, 64), seed=rng) for _ in range(8)]
    meta = [make_cell("er", shape=(64, 64), phase="metaphase", seed=rng) for _ in range(8)]
    assert np.mean([elongation(c["cell_mask"]) for c in meta]) < 1.1 < np.mean([elongation(c["cell_mask"]) for c in inter])
    # Condensed: the metaphase plate is much brighter and smaller than an interphase nucleus.
    assert np.mean([c["nucleus_mask"].sum() for c in meta]) < 0.6 * np.mean([c["nucleus_mask"].sum() for c in inter])
    # No nuclear envelope in mitosis: the nuclear_envelope protein is no longer a ring.
    envelope = make_cell("nuclear_envelope", shape=(64, 64), phase="prophase", seed=3)
    signal = envelope["protein"]
    assert signal[envelope["cell_mask"] & ~envelope["nucleus_mask"]].mean() > 0.5 * signal[envelope["nucleus_mask"]].mean()


def test_3d_cell_shapes():
    cell = make_cell("mitochondria", shape=(12, 40, 40), seed=0)
    for key in ("protein", "dna", "membrane", "nucdist"):
        assert cell[key].shape == (12, 40, 40) and cell[key].dtype == np.float32
    assert cell["nucleus_mask"].any() and not (cell["nucleus_mask"] & ~cell["cell_mask"]).any()
    assert cell["cell_mask"][0].sum() < cell["cell_mask"][6].sum()  # an ellipsoid: thinner at the top


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_families"):
        write_opencell(tmp_path / "x", n_families=12)
    with pytest.raises(ValueError, match="dims"):
        write_allencell(tmp_path / "y", dims=4)
    with pytest.raises(ValueError, match="phase"):
        make_cell("er", phase="telophase")


def test_bbbc021_layout_design_and_rounded_drug_cells(tmp_path):
    from statcell_tf.data.bbbc021 import is_bbbc021
    from statcell_tf.data.readers import read_cells

    out = synthetic.write_bbbc021(tmp_path / "b", cells_per_well=6, seed=3)
    assert is_bbbc021(out) and sorted(p.name for p in (out / "crops").iterdir()) == [
        "DMSO", "Microtubule_destabilizers", "Microtubule_stabilizers"]
    cells = read_cells(out)
    meta = cells.metadata
    assert len(cells) == 24 and list(meta["compound"].unique()) == ["DMSO", "taxol", "nocodazole"]
    # DMSO on both plates: replicates 1 and 2; each drug once
    assert meta.groupby(["plate", "compound"])["replicate"].first().to_dict() == {
        ("Week1_101", "DMSO"): 1, ("Week1_101", "taxol"): 1, ("Week2_201", "DMSO"): 2, ("Week2_201", "nocodazole"): 1}
    assert meta["file"].iloc[7] == "C03_s1_w1Week1_101_1.npy" and meta["cell_index"].tolist() == list(range(6)) * 4
    images = np.asarray(cells.images[np.arange(len(cells))])
    assert images.shape == (24, 68, 68, 3) and images.dtype == np.uint16
    # Drug wells hold rounded cells: smaller actin-bounded bodies (radius × 0.8 → about 0.64 × the area)
    area = (images[..., 1] > 1000).mean(axis=(1, 2))
    drug = (meta["compound"] != "DMSO").to_numpy()
    assert area[drug].mean() < 0.85 * area[~drug].mean()
    # Deterministic, and each well its own stream: the first well alone has the same crops
    again = synthetic.write_bbbc021(tmp_path / "again", cells_per_well=6, seed=3)
    first = synthetic.write_bbbc021(tmp_path / "first", wells=synthetic.BBBC021_WELLS[:1], cells_per_well=6, seed=3)
    for name in meta["file"][:6]:
        expected = np.load(out / "crops" / "DMSO" / name)
        assert np.array_equal(np.load(again / "crops" / "DMSO" / name), expected)
        assert np.array_equal(np.load(first / "crops" / "DMSO" / name), expected)
    other = synthetic.write_bbbc021(tmp_path / "other", wells=synthetic.BBBC021_WELLS[:1], cells_per_well=6, seed=4)
    assert not np.array_equal(np.load(other / "crops" / "DMSO" / meta["file"][0]), np.load(first / "crops" / "DMSO" / meta["file"][0]))
    with pytest.raises(ValueError, match="distinct"):
        synthetic.write_bbbc021(tmp_path / "twice", wells=synthetic.BBBC021_WELLS[:1] * 2)
    assert not (tmp_path / "twice").exists()
