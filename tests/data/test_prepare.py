"""prepare-crops library: known-answer cell finding on synthetic fields, layouts, QC, streaming, resume."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy.spatial import cKDTree
from skimage.measure import regionprops

from statcell_tf.data import prepare
from statcell_tf.data.allencell import read_allencell
from statcell_tf.data.bbbc021 import read_bbbc021
from statcell_tf.data.opencell import read_opencell
from statcell_tf.data.synthetic import write_fovs
from statcell_tf.errors import UserError


@pytest.fixture(scope="module")
def fovs(tmp_path_factory):
    """4 fields of 256×256 (2 families), 6 cells each, one file per channel."""
    return write_fovs(tmp_path_factory.mktemp("fovs") / "fovs", n_families=2, fields_per_protein=2,
                      cells_per_field=6, size=(256, 256), cell_size=64, seed=3)


def _run(csv, out, workers=1, resume=False, chunk_crops=1000, montage_crops=0, **settings):
    config = prepare.PrepareConfig.for_layout(**settings)
    fields, carried = prepare.read_fields(csv, config)
    prepare.check_out(out, csv, fields, resume)
    return prepare.prepare_crops(fields, out, config, carried, workers=workers, resume=resume,
                                 chunk_crops=chunk_crops, montage_crops=montage_crops)


def _match(truth, found, names=("centroid_y", "centroid_x")):
    """Per true cell: distance to the nearest found centroid of its field, and that crop's row."""
    distances, rows = [], []
    for fov, cells in truth.groupby("fov"):
        mine = found[found["field"] == fov].reset_index(drop=True)
        d, i = cKDTree(mine[list(names)].to_numpy(float)).query(cells[list(names)].to_numpy(float))
        distances.extend(d)
        rows.append(mine.iloc[i].assign(true_family=cells["family"].to_numpy()))
    return np.array(distances), pd.concat(rows)


def test_known_answer_opencell(fovs, tmp_path):
    summary = _run(fovs / "fovs_opencell.csv", tmp_path / "oc", layout="opencell", size=48, downsample=1,
                   montage_crops=4)
    truth = pd.read_csv(fovs / "cells.csv")
    assert len(truth) == 24 and summary.crops == summary.total_crops
    cells = read_opencell(tmp_path / "oc")
    labels = cells.metadata
    distances, matched = _match(truth, labels)
    # Every cell box lies inside the field and the crop (48) is smaller than the box (64): all fit.
    assert (distances <= 2).mean() >= 0.95, distances
    assert np.median(distances) < 1.0 and len(labels) <= len(truth)
    assert (matched["family"] == matched["true_family"]).all() and (matched["localization"] == matched["family"]).all()
    images = cells.images[np.arange(len(cells))]
    assert images.shape == (len(labels), 48, 48, 3)
    pro, nuc, nucdist = images[..., 0], images[..., 1], images[..., 2]
    assert 0 <= pro.min() and pro.max() <= 1 and 0 <= nuc.min() and nuc.max() <= 1
    assert nucdist.min() == -1 and nucdist.max() == 1 and (nucdist[:, 24, 24] > 0).all()  # centred nucleus
    assert set(labels["group"]) == set(truth["fov"])  # fov groups: splits never divide a field
    qc = labels[[c for c in labels if c.startswith("qc_")]].astype(float)
    assert (qc["qc_nucleus_area"] > 100).all() and qc["qc_cell_area"].isna().all() and (qc["qc_focus"] > 0).all()
    assert len(list((tmp_path / "oc" / "montage").glob("*.png"))) == 2
    table = pd.read_csv(tmp_path / "oc" / "summary.csv")
    assert (table["status"] == "ok").all() and table["crops"].sum() == len(labels)


@pytest.mark.slow
def test_known_answer_3d_multichannel_and_downsample(tmp_path):
    fovs = write_fovs(tmp_path / "fovs3", n_families=2, fields_per_protein=1, cells_per_field=4,
                      size=(10, 192, 192), cell_size=64, multichannel=True, seed=1)
    truth = pd.read_csv(fovs / "cells.csv")
    # 3D OME-TIFF with channel indices → z max projection → ×2 block mean → BBBC021 crops.
    _run(fovs / "fovs_bbbc021.csv", tmp_path / "bb", layout="bbbc021", channels=("dna", "membrane", "protein"),
         size=24, downsample=2)
    cells = read_bbbc021(tmp_path / "bb")
    distances, matched = _match(truth, cells.metadata)
    assert (distances <= 2).mean() >= 0.95, distances  # centroids reported in full-resolution pixels
    assert (matched["moa"] == matched["true_family"]).all()
    crop = cells.images[0]
    assert crop.shape == (24, 24, 3) and crop.dtype == np.uint16  # raw intensities kept
    # 3D kept for the Allen layout: (5, Z, S, S) cells, nuclei found in 3D.
    _run(fovs / "fovs_allencell.csv", tmp_path / "ac3", layout="allencell", size=96, projection="none")
    allen = read_allencell(tmp_path / "ac3")
    assert allen.image_shape == (10, 96, 96, 3) and "centroid_z" in allen.metadata
    distances, _ = _match(truth, allen.metadata, ("centroid_z", "centroid_y", "centroid_x"))
    assert (distances <= 2).mean() >= 0.95, distances


def test_allencell_cells_are_masked_and_aligned(fovs, tmp_path):
    _run(fovs / "fovs_allencell.csv", tmp_path / "ac", layout="allencell", size=96)
    manifest = pd.read_csv(tmp_path / "ac" / "manifest.csv")
    assert len(manifest) >= 23 and set(manifest["structure_name"]) == {"NUCLEOPLASM", "NUCLEOLUS"}
    assert (manifest["qc_cell_area"] > manifest["qc_nucleus_area"]).all()
    for path in manifest["path"][:6]:
        cell = tifffile.imread(tmp_path / "ac" / path)  # (membrane, dna, structure, cell mask, nucleus mask)
        assert cell.shape == (5, 96, 96)
        mask, nucleus = cell[3] > 0, cell[4] > 0
        assert (cell[:3][:, ~mask] == 0).all()  # the cell mask is applied
        region = regionprops(mask.astype(np.uint8))[0]
        assert abs(abs(region.orientation) - np.pi / 2) < 0.1  # major axis along x
        assert np.allclose(np.argwhere(nucleus).mean(axis=0), 47.5, atol=1.5)  # nucleus centred
    assert read_allencell(tmp_path / "ac").image_shape == (96, 96, 3)


def test_qc_rules_and_empty_field(fovs, tmp_path):
    csv = pd.read_csv(fovs / "fovs_opencell.csv")
    blank = np.full((256, 256), 900, np.uint16)
    tifffile.imwrite(tmp_path / "blank.tif", blank)
    extra = csv.iloc[:1].assign(pro=str(tmp_path / "blank.tif"), nuc=str(tmp_path / "blank.tif"), fov="empty")
    csv["pro"] = [str(fovs / p) for p in csv["pro"]]
    csv["nuc"] = [str(fovs / p) for p in csv["nuc"]]
    pd.concat([csv, extra]).to_csv(tmp_path / "fovs.csv", index=False)
    summary = _run(tmp_path / "fovs.csv", tmp_path / "qc", layout="opencell", size=48, downsample=1,
                   qc=("nucleus_area>=600", "qc_neighbours<=0"))
    table = pd.read_csv(tmp_path / "qc" / "summary.csv")
    row = table.set_index("field").loc["empty"]
    assert row["status"] == "no cells found" and row["crops"] == 0 and summary.empty == ["empty"]
    dropped = table["dropped: nucleus_area>=600"].sum()
    assert 0 < dropped < 24 and summary.counts["dropped: nucleus_area>=600"] == dropped
    labels = read_opencell(tmp_path / "qc").metadata
    assert (labels["qc_nucleus_area"].astype(float) >= 600).all() and (labels["qc_neighbours"].astype(int) == 0).all()
    assert len(labels) == table["crops"].sum() == (table["crops_found"] - table["dropped_qc"]).sum()
    assert table["dropped_qc"].sum() <= dropped + table["dropped: neighbours<=0"].sum()
    with pytest.raises(UserError, match=r"--qc measures are .*mean_pro.*Received: --qc 'size>3'"):
        prepare.parse_qc(["size>3"], ("pro", "nuc"))
    with pytest.raises(UserError, match=r"--qc must be MEASURE OP VALUE"):
        prepare.parse_qc(["focus"], ("pro",))
    with pytest.raises(UserError, match=r"--qc cell_area needs cells"):
        _run(tmp_path / "fovs.csv", tmp_path / "x", layout="opencell", qc=("cell_area>10",))


def _outputs(folder):
    cells = read_opencell(folder)
    keep = [c for c in cells.metadata if c not in ("prefix",)]
    return cells.images[np.arange(len(cells))], cells.metadata[keep].reset_index(drop=True)


@pytest.mark.slow
def test_chunks_resume_and_workers_give_the_same_output(fovs, tmp_path):
    csv = fovs / "fovs_opencell.csv"
    settings = {"layout": "opencell", "size": 48, "downsample": 1}
    _run(csv, tmp_path / "one", **settings)
    reference_images, reference_table = _outputs(tmp_path / "one")
    # Small chunks: several committed chunks, each at most chunk_crops plus one field's crops.
    _run(csv, tmp_path / "chunked", chunk_crops=5, **settings)
    sizes = [len(pd.read_csv(p)) for p in sorted((tmp_path / "chunked").glob("*_label.csv"))]
    assert len(sizes) >= 3 and max(sizes) <= 5 + 6 and sum(sizes) == len(reference_table)
    # A killed run: half the fields committed, an uncommitted chunk left behind, a torn journal line.
    half = pd.read_csv(csv).iloc[:2]
    half.to_csv(fovs / "half.csv", index=False)
    _run(fovs / "half.csv", tmp_path / "killed", chunk_crops=5, **settings)
    np.save(tmp_path / "killed" / "crops_00099_pro.npy", np.zeros((1, 48, 48), np.float32))
    with open(tmp_path / "killed" / prepare.PROGRESS_FILE, "a") as journal:
        journal.write('{"chunk": "crops_00099", "fie')
    with pytest.raises(UserError, match="is not empty; pass --resume"):
        _run(csv, tmp_path / "killed", **settings)
    config = prepare.PrepareConfig.for_layout(**settings)
    fields, _ = prepare.read_fields(csv, config)
    assert [f.field for f in prepare.pending_fields(tmp_path / "killed", fields)] == ["fov0002", "fov0003"]
    summary = _run(csv, tmp_path / "killed", resume=True, workers=2, **settings)
    assert summary.skipped == 2 and summary.fields == 2
    assert not (tmp_path / "killed" / "crops_00099_pro.npy").exists()
    images, table = _outputs(tmp_path / "killed")
    np.testing.assert_array_equal(images, reference_images)
    pd.testing.assert_frame_equal(table, reference_table)
    # Resuming with other settings, or a changed row, is refused.
    with pytest.raises(UserError, match=r"--resume must use the settings of the run .*size was 48. Received: 64"):
        _run(csv, tmp_path / "killed", resume=True, **{**settings, "size": 64})
    changed = pd.read_csv(csv)
    changed.loc[0, "protein"] = "RENAMED"
    changed.to_csv(fovs / "changed.csv", index=False)
    with pytest.raises(UserError, match=r"row 1 \(field fov0000\) differs from the one written"):
        _run(fovs / "changed.csv", tmp_path / "killed", resume=True, **settings)
    entries = [json.loads(line) for line in (tmp_path / "killed" / prepare.PROGRESS_FILE).read_text().splitlines()]
    assert sum(len(e["fields"]) for e in entries) == 4  # the torn line was cut off, not merged


def test_user_masks_replace_segmentation(fovs, tmp_path):
    from statcell_tf.data.preprocess import segment_nuclei

    csv = pd.read_csv(fovs / "fovs_opencell.csv")
    rows = []
    for _, row in csv.iterrows():
        nuclei = segment_nuclei(tifffile.imread(fovs / row["nuc"]))
        shuffled = np.where(nuclei > 0, nuclei * 7 + 100, 0).astype(np.uint16)  # other numbering
        tifffile.imwrite(tmp_path / f"{row['fov']}_nuclei.tif", shuffled)
        cells = np.where(nuclei > 0, nuclei * 3 + 1, 0)
        from skimage.segmentation import expand_labels

        tifffile.imwrite(tmp_path / f"{row['fov']}_cells.tif", expand_labels(cells, 6).astype(np.uint16))
        rows.append({**row, "pro": str(fovs / row["pro"]), "nuc": str(fovs / row["nuc"]),
                     "nucleus_mask": str(tmp_path / f"{row['fov']}_nuclei.tif"),
                     "cell_mask": str(tmp_path / f"{row['fov']}_cells.tif")})
    pd.DataFrame(rows).to_csv(tmp_path / "masks.csv", index=False)
    _run(tmp_path / "masks.csv", tmp_path / "out", layout="opencell", size=48, downsample=1)
    labels = read_opencell(tmp_path / "out").metadata
    assert len(labels) == 24 and set(labels["nucleus_label"].astype(int) % 7) == {100 % 7}
    cell_area = labels["qc_cell_area"].astype(float)
    assert (cell_area > labels["qc_nucleus_area"].astype(float)).all()  # cells matched to their nuclei


def test_match_cells_by_overlap():
    nuclei = np.array([[1, 1, 0, 2, 2, 0, 3]])
    cells = np.array([[5, 5, 5, 9, 9, 9, 0]])
    np.testing.assert_array_equal(prepare.match_cells(nuclei, cells), [[1, 1, 1, 2, 2, 2, 0]])
    # A cell holding two nuclei goes to the one it overlaps most.
    np.testing.assert_array_equal(prepare.match_cells(np.array([[1, 2, 2, 0]]), np.array([[4, 4, 4, 4]])),
                                  [[2, 2, 2, 2]])


def test_mixed_tiff_and_ome_zarr_rows(fovs, tmp_path):
    """One row per-channel TIFFs, one row a multi-channel OME-Zarr with channels picked by name."""
    zarr = pytest.importorskip("zarr")
    table = pd.read_csv(fovs / "fovs_opencell.csv").iloc[:2].copy()
    images = np.stack([tifffile.imread(fovs / table.loc[1, c]) for c in ("nuc", "pro")])  # (C, Y, X)
    group = zarr.open_group(tmp_path / "f1.ome.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=images.shape, dtype=images.dtype, chunks=(1, 128, 128))[:] = images
    group.attrs.update({
        "multiscales": [{"version": "0.4", "datasets": [{"path": "0"}],
                         "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
                                  {"name": "x", "type": "space"}]}],
        "omero": {"channels": [{"label": "Hoechst"}, {"label": "mNG"}]},
    })
    table["pro"] = [str(fovs / table.loc[0, "pro"]), str(tmp_path / "f1.ome.zarr")]
    table["nuc"] = [str(fovs / table.loc[0, "nuc"]), str(tmp_path / "f1.ome.zarr")]
    table["pro_channel"], table["nuc_channel"] = ["", "mNG"], ["", "Hoechst"]
    table.to_csv(tmp_path / "mixed.csv", index=False)
    _run(tmp_path / "mixed.csv", tmp_path / "out", layout="opencell", size=48, downsample=1)
    _run(fovs / "fovs_opencell.csv", tmp_path / "tiff", layout="opencell", size=48, downsample=1)
    from_zarr = read_opencell(tmp_path / "out")
    from_tiff = read_opencell(tmp_path / "tiff")
    assert list(from_zarr.metadata["field"]) == list(from_tiff.metadata["field"][from_tiff.metadata["field"] <= "fov0001"])
    n = len(from_zarr)
    np.testing.assert_array_equal(from_zarr.images[np.arange(n)], from_tiff.images[np.arange(n)])
    assert "pro_channel" not in from_zarr.metadata  # channel columns are not metadata


def test_nonfinite_field_stops_naming_it_or_is_skipped_and_counted(fovs, tmp_path):
    table = pd.read_csv(fovs / "fovs_opencell.csv", dtype=str, keep_default_na=False)
    for row in range(len(table)):  # float copies; field 2's protein channel gets one NaN
        for column in ("pro", "nuc"):
            image = tifffile.imread(fovs / table.loc[row, column]).astype(np.float32)
            if row == 2 and column == "pro":
                image[5, 5] = np.nan
            tifffile.imwrite(tmp_path / f"{row}_{column}.tif", image)
            table.loc[row, column] = f"{row}_{column}.tif"
    table.to_csv(tmp_path / "fovs.csv", index=False)
    with pytest.raises(UserError, match=r"2_pro.tif: channel pro of field fov0002 \(FOVS.csv row 3\) holds 1 NaN"):
        _run(tmp_path / "fovs.csv", tmp_path / "stopped", layout="opencell")
    assert (tmp_path / "stopped" / "UNFINISHED.json").is_file()  # fields 0-1 kept, marked unfinished
    summary = _run(tmp_path / "fovs.csv", tmp_path / "skipped", layout="opencell", nonfinite="skip")
    assert summary.counts["skipped_nonfinite_field"] == 1 and summary.empty == []
    rows = pd.read_csv(tmp_path / "skipped" / prepare.SUMMARY_FILE).set_index("field")
    assert rows.loc["fov0002", "status"].startswith("skipped: NaN/inf") and rows.loc["fov0002", "crops"] == 0
    assert not rows.drop(index="fov0002")["status"].str.startswith("skipped").any()
    assert not (tmp_path / "skipped" / "UNFINISHED.json").exists()
    with pytest.raises(UserError, match="unfinished data set"):
        read_opencell(tmp_path / "stopped")
    assert len(read_opencell(tmp_path / "skipped")) == summary.total_crops
