"""Every command against hostile input: one table row per (command, how the input is broken).

Each row runs the command in-process (as ``bin/<command> ARGS``) and asserts the README's
promise: the expected exit status, exactly one ``Error:`` line containing the row's
fragment (the file or flag, and what was wrong), no traceback, no warning, and nothing new or
changed on disk (every file under the row's folder and the shared inputs, by size and
modification time). Usage errors (click's own) may add click's ``Usage:`` / ``Try`` lines.

Failure classes: missing / empty / unrelated / file-instead-of-folder inputs; damaged run
folders (config.json, best.keras); bad values in tables (text, NaN, inf, empty ids);
``--out`` onto the input, non-empty, under a file, read-only or full (the last two on a
small tmpfs when the tests run as root, skipped otherwise); list-valued flags checked
before any work. No silent wrong result: data sets whose writing command was stopped
(UNFINISHED.json), --resume on a changed FOVS.csv, NaN/inf pixels and unnamed pages in fields,
requests the data cannot meet and parameters out of their range, control labels that nearly
match, header-only tables, and side-by-side tables that hold different cells.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf.cli import command_names, run_command


# ----- the shared inputs (built once, never changed by any row) -----------------------------------
def _fake_run(folder: Path, paper: str, role: str | None = None, best: bytes | None = None) -> Path:
    """A run folder with a valid config.json of `paper` (and optionally a best.keras)."""
    folder.mkdir(parents=True)
    config = {"format": 2, "paper": paper, "role": role or paper, "preset": None, "version": "0.1.0",
              "settings": {}, "data": {}}
    (folder / "config.json").write_text(json.dumps(config))
    if best is not None:
        (folder / "best.keras").write_bytes(best)
    return folder


def _write_bbbc021(folder: Path, plates=("Week1_1", "Week1_2"), size=68) -> Path:
    """A BBBC021-layout folder: uint16 crops + metadata.csv (DMSO and two compounds)."""
    rng = np.random.default_rng(0)
    rows = []
    for plate in plates:
        for well, (compound, concentration, moa) in enumerate(
            [("DMSO", 0.0, "DMSO"), ("taxol", 1.0, "Microtubule stabilizers"), ("cytochalasin B", 3.0, "Actin disruptors")]
        ):
            for cell in range(3):
                name = f"{plate}_{well}_{cell}.npy"
                path = folder / "crops" / moa.replace(" ", "_") / name
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, rng.integers(300, 4000, (size, size, 3)).astype(np.uint16))
                rows.append({"file": name, "plate": plate, "well": f"W{well}", "site": 1, "replicate": 1,
                             "compound": compound, "concentration": concentration, "moa": moa, "cell_index": cell})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


def _embedding_table(path: Path, edit: Callable[[pd.DataFrame], None] | None = None) -> Path:
    """A cell embedding CSV for profile-moa (4 plates, 3 MoAs + DMSO), optionally edited."""
    rng = np.random.default_rng(0)
    rows = []
    for plate in range(4):  # compounds a, c on plates 0-1 and b, d on 2-3: NSCB has references
        for compound, moa in (("DMSO", "DMSO"), ("a", "A"), ("b", "A"), ("c", "B"), ("d", "B")):
            if compound != "DMSO" and (plate < 2) != (compound in "ac"):
                continue
            for cell in range(3):
                rows.append({"plate": f"P{plate}", "well": f"{compound}{plate}", "compound": compound,
                             "concentration": 1.0, "moa": moa, **{f"z_{j}": rng.normal() for j in range(4)}})
    table = pd.DataFrame(rows)
    if edit is not None:
        edit(table)
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs every row may read: small data sets of each layout and damaged run folders."""
    from statcell_tf.data.synthetic import write_allencell, write_fovs, write_opencell

    root = tmp_path_factory.mktemp("world")
    write_opencell(root / "opencell", n_families=2, proteins_per_family=2, cells_per_protein=6, size=16, seed=0)
    write_allencell(root / "allen", n_families=2, cells_per_structure=4, dims=2, size=(16, 16), seed=0)
    write_fovs(root / "fovs", n_families=1, fields_per_protein=1, cells_per_field=2, size=(256, 256), cell_size=64)
    for version in ("0.4", "0.5"):  # 2 wells (A/1, A/2) x 1 field as an OME-Zarr HCS plate + plate_map.csv
        write_fovs(root / f"plate{version}", n_families=2, fields_per_protein=1, cells_per_field=2, size=(128, 128),
                   cell_size=48, plate=version)
    _write_bbbc021(root / "bbbc021")
    (root / "empty").mkdir()
    (root / "unrelated").mkdir()
    (root / "unrelated" / "notes.txt").write_text("shopping list\n")
    (root / "file.txt").write_text("not a folder\n")
    for paper, role in (("cytoself", "cytoself"), ("statcell", "reference"), ("integrated_cell", "reference"),
                        ("vaeplus", "vaeplus")):
        _fake_run(root / "runs" / paper, paper, role)
    _fake_run(root / "runs" / "truncated_best", "cytoself", best=b"PK\x03\x04 truncated")
    for role in ("reference", "target"):  # config and (damaged) best.keras: checks before loading
        _fake_run(root / "runs" / f"statcell_{role}", "statcell", role, best=b"PK\x03\x04 truncated")
    (root / "runs" / "bad_config").mkdir()
    (root / "runs" / "bad_config" / "config.json").write_text("{not json")
    _embedding_table(root / "cells.csv")
    write_fovs(root / "fovs3", n_families=1, fields_per_protein=3, cells_per_field=2, size=(256, 256), cell_size=64)
    for layout in ("opencell", "bbbc021", "allencell"):
        _stopped_prepare(root / "fovs3" / f"fovs_{layout}.csv", root / f"stopped_{layout}", layout)
    _runs_that_know_their_data(root)
    return root


class _Stop(Exception):
    """Stands for a kill: raised after the first field is committed."""


def _stopped_prepare(fovs: Path, out: Path, layout: str) -> Path:
    """prepare-crops stopped after its first field (chunk) was committed: marked unfinished."""
    from statcell_tf.data import prepare

    channels = ("dna", "membrane", "protein") if layout == "bbbc021" else None
    config = prepare.PrepareConfig.for_layout(layout, channels=channels, size=32 if layout != "allencell" else 64)
    fields, carried = prepare.read_fields(fovs, config)

    def stop(_):
        raise _Stop

    with pytest.raises(_Stop):
        prepare.prepare_crops(fields, out, config, carried, progress=stop, chunk_crops=1, montage_crops=0,
                              finish=f"prepare-crops {fovs} --out {out} --resume")
    return out


ROLES = {"statcell": "reference", "integrated_cell": "reference"}


def _runs_that_know_their_data(root: Path) -> None:
    """A run of each paper recording the identity of the world's data set it "trained" on (and
    its splits.csv, but no model: the data checks come before any model is loaded), plus data
    sets of the same layouts that are not those: the same size, the same ids or another image size."""
    from statcell_tf.data.identity import data_identity
    from statcell_tf.data.readers import read_cells
    from statcell_tf.data.synthetic import write_allencell, write_opencell

    write_opencell(root / "opencell_other", n_families=2, proteins_per_family=2, cells_per_protein=6, size=16, seed=1)
    write_allencell(root / "allen_other", n_families=2, cells_per_structure=4, dims=2, size=(16, 16), seed=1)
    write_allencell(root / "allen32", n_families=2, cells_per_structure=4, dims=2, size=(32, 32), seed=0)
    _write_bbbc021(root / "bbbc021_other", plates=("Week2_1", "Week2_2"))
    for paper, data in (("cytoself", "opencell"), ("statcell", "allen"), ("integrated_cell", "allen"),
                        ("vaeplus", "bbbc021")):
        cells = read_cells(root / data)
        folder = _fake_run(root / "runs" / f"{paper}_knows", paper, ROLES.get(paper))
        config = json.loads((folder / "config.json").read_text())
        config["data"]["identity"] = data_identity(cells)
        (folder / "config.json").write_text(json.dumps(config))
        split = np.array(["train", "val", "test"])[np.arange(len(cells)) % 3]
        pd.DataFrame({"row": np.arange(len(cells)), "cell_id": np.arange(len(cells)), "group": np.arange(len(cells)),
                      "split": split}).to_csv(folder / "splits.csv", index=False)


@pytest.fixture(scope="module")
def cytoself_run(tiny_cytoself):
    """The tiny trained cytoself run shared with the other CLI tests."""
    return tiny_cytoself


# ----- the rows ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One hostile input: `args(w, tmp)` builds the command line from the shared inputs `w`
    and the row's own folder `tmp` (where `setup(w, tmp)` may put broken files first)."""

    command: str
    case: str
    args: Callable[[Path, Path], list]
    fragment: str
    setup: Callable[[Path, Path], None] | None = None
    code: int = 2
    usage: bool = False  # a click usage error: Usage:/Try lines allowed
    filesystem: str | None = None  # "readonly" or "full": `tmp` is a small tmpfs mounted so
    needs_cytoself: bool = False

    @property
    def id(self) -> str:
        return f"{self.command}:{self.case}"


def _write(relative: str, text: str):
    def setup(w, tmp):
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return setup


def _table(relative: str, edit):
    def setup(w, tmp):
        _embedding_table(tmp / relative, edit)
    return setup


def _set(row: int, column: str, value):
    def edit(table):
        table[column] = table[column].astype(object)
        table.loc[row, column] = value
    return edit


RUN_COMMANDS = {  # command → (paper whose run it takes, the other arguments)
    "classify-structures": ("integrated_cell", lambda w: ["--data", w / "allen" / "manifest.csv"]),
    "embed-cytoself": ("cytoself", lambda w: ["--data", w / "opencell", "--split", "all"]),
    "feature-interpret": ("cytoself", lambda w: ["ER_1", "--feature", "1", "--data", w / "opencell"]),
    "generate-cells": ("statcell", lambda w: []),
    "integrate-structures": ("integrated_cell", lambda w: ["--cell", "x"]),
    "interpolate": ("vaeplus", lambda w: ["--from-cell", "x", "--to-compound", "taxol", "--data", w / "bbbc021"]),
    "latent-stats": ("statcell", lambda w: []),
    "latent-walk": ("statcell", lambda w: []),
    "realism-quiz": ("statcell", lambda w: ["--data", w / "allen", "--out", w.parent / "quiz-never-written"]),
    "umap-cytoself": ("cytoself", lambda w: ["--color-by", "family"]),
}
TWO_RUN_COMMANDS = {
    "coupling": lambda w: ["--data", w / "allen" / "manifest.csv"],
    "impute-structures": lambda w: ["--cell", "x"],
}


def _run_rows() -> list[Row]:
    """Damaged or wrong run folders given to every command that reads a run."""
    rows = []
    wrong = {"cytoself": "vaeplus", "statcell": "cytoself", "integrated_cell": "statcell", "vaeplus": "cytoself"}
    for command, (paper, rest) in RUN_COMMANDS.items():
        first = (lambda rest: lambda run: lambda w, tmp: [run(w), *rest(w)])(rest)
        rows += [
            Row(command, "run-missing", first(lambda w: w / "nowhere"), "does not exist", usage=True),
            Row(command, "run-is-a-file", first(lambda w: w / "file.txt"), "file.txt", usage=True),
            Row(command, "run-empty-folder", first(lambda w: w / "empty"), "config.json"),
            Row(command, "run-unrelated-folder", first(lambda w: w / "unrelated"), "config.json"),
            Row(command, "run-bad-config", first(lambda w: w / "runs" / "bad_config"), "config.json"),
            Row(command, "run-of-another-paper", first((lambda o: lambda w: w / "runs" / o)(wrong[paper])),
                "run"),
            # a config.json alone: the error names a file of that run folder
            Row(command, "run-config-only", first((lambda p: lambda w: w / "runs" / p)(paper)), f"runs/{paper}"),
        ]
    for command, rest in TWO_RUN_COMMANDS.items():
        rows += [
            Row(command, "reference-run-unrelated",
                (lambda rest: lambda w, tmp: [w / "unrelated", w / "runs" / "statcell", *rest(w)])(rest), "config.json"),
            Row(command, "target-run-of-another-paper",
                (lambda rest: lambda w, tmp: [w / "runs" / "statcell", w / "runs" / "cytoself", *rest(w)])(rest),
                "cytoself"),
        ]
    rows.append(Row("embed-cytoself", "truncated-best-keras",
                    lambda w, tmp: [w / "runs" / "truncated_best", "--data", w / "opencell", "--split", "all"],
                    "best.keras"))
    rows.append(Row("feature-spectrum", "run-unrelated", lambda w, tmp: ["ER_1", "--run", w / "unrelated"],
                    "config.json"))
    rows.append(Row("perturbation-embed", "run-unrelated",
                    lambda w, tmp: [w / "unrelated", "--treated", w / "allen" / "manifest.csv"], "config.json"))
    return rows


TRAINERS = {  # command → arguments besides --data and --out
    "train-cytoself": [],
    "train-statcell": ["--model", "reference", "--beta", "1"],
    "train-integrated-cell": ["--stage", "reference"],
    "train-vaeplus": [],
}
# Settings that keep a trainer short should a row's input wrongly be accepted.
QUICK = {
    "train-cytoself": ["--preset", "demo", "--epochs", "1"],
    "train-statcell": ["--preset", "tiny", "--epochs", "1", "--batch-size", "4", "--eval-samples", "1"],
    "train-integrated-cell": ["--epochs", "1", "--batch-size", "4", "--quiet", "--size", "16", "--filters", "2"],
    "train-vaeplus": ["--preset", "demo", "--iterations", "2", "--quiet"],
}
TRAINER_DATA = {"train-cytoself": "opencell", "train-statcell": "allen/manifest.csv",
                "train-integrated-cell": "allen/manifest.csv", "train-vaeplus": "bbbc021"}


def _data_rows() -> list[Row]:
    """Missing, empty, unrelated and wrongly typed data inputs; --out problems."""
    rows = []
    for command, rest in TRAINERS.items():
        data, rest = TRAINER_DATA[command], rest + QUICK[command]
        rows += [
            Row(command, "data-missing", lambda w, tmp, r=rest: ["--data", w / "nowhere", *r, "--out", tmp / "o"],
                "does not exist", usage=True),
            Row(command, "data-empty-folder", lambda w, tmp, r=rest: ["--data", w / "empty", *r, "--out", tmp / "o"],
                "empty"),
            Row(command, "data-unrelated-folder",
                lambda w, tmp, r=rest: ["--data", w / "unrelated", *r, "--out", tmp / "o"], "unrelated"),
            Row(command, "out-under-a-file",
                lambda w, tmp, r=rest, d=data: ["--data", w / d, *r, "--out", w / "file.txt" / "run"], "is a file"),
            Row(command, "out-is-the-input",
                lambda w, tmp, r=rest, d=data: ["--data", w / d, *r, "--out", (w / d) if (w / d).is_dir() else (w / d).parent],
                "overlaps the input"),
            Row(command, "out-read-only",
                lambda w, tmp, r=rest, d=data: ["--data", w / d, *r, "--out", tmp / "run"], "read-only",
                filesystem="readonly"),
            Row(command, "out-full",  # fails before its first epoch is committed: nothing is kept
                lambda w, tmp, r=rest, d=data: ["--data", w / d, *r, "--out", tmp / "run"], "space",
                filesystem="full"),
        ]
    rows += [
        Row("inspect-data", "path-missing", lambda w, tmp: [w / "nowhere"], "does not exist", usage=True),
        Row("inspect-data", "empty-folder", lambda w, tmp: [w / "empty"], "PATH"),
        Row("inspect-data", "unrelated-folder", lambda w, tmp: [w / "unrelated"], "PATH"),
        Row("inspect-data", "bbbc021-without-well",
            lambda w, tmp: [tmp / "b"], "well",
            setup=lambda w, tmp: _copy_bbbc021(w, tmp / "b", drop="well")),
        Row("inspect-data", "manifest-path-is-a-folder", lambda w, tmp: [tmp / "m" / "manifest.csv"],
            "is an empty folder", setup=lambda w, tmp: (tmp / "m" / "manifest.csv").mkdir(parents=True)),
        Row("add-control-structures", "data-missing", lambda w, tmp: [w / "nowhere", "--out", tmp / "o"],
            "does not exist", usage=True),
        Row("add-control-structures", "data-is-a-folder-without-manifest", lambda w, tmp: [w / "empty", "--out", tmp / "o"],
            "manifest"),
        Row("add-control-structures", "out-is-the-input-folder",
            lambda w, tmp: [w / "allen" / "manifest.csv", "--out", w / "allen"], "overlaps the input"),
        Row("add-control-structures", "out-not-empty",
            lambda w, tmp: [w / "allen" / "manifest.csv", "--out", w / "unrelated"], "not empty"),
        Row("add-control-structures", "out-under-a-file",
            lambda w, tmp: [w / "allen" / "manifest.csv", "--out", w / "file.txt" / "o"], "is a file"),
        Row("add-control-structures", "unknown-kind",
            lambda w, tmp: [w / "allen" / "manifest.csv", "--out", tmp / "o", "--kinds", "blank,purple"], "--kinds"),
        Row("add-control-structures", "out-full", lambda w, tmp: [w / "allen" / "manifest.csv", "--out", tmp / "o"],
            "space", filesystem="full"),
        Row("make-synthetic-data", "out-under-a-file",
            lambda w, tmp: ["--out", w / "file.txt" / "d", "--format", "opencell"], "is a file"),
        Row("make-synthetic-data", "out-not-empty",
            lambda w, tmp: ["--out", w / "unrelated", "--format", "opencell"], "not empty"),
        Row("make-synthetic-data", "out-read-only",
            lambda w, tmp: ["--out", tmp / "d", "--format", "opencell"], "read-only", filesystem="readonly"),
        Row("make-synthetic-data", "out-full",
            lambda w, tmp: ["--out", tmp / "d", "--format", "opencell", "--size", "100"], "space", filesystem="full"),
        Row("prepare-crops", "fovs-missing", lambda w, tmp: [w / "nowhere.csv", "--layout", "opencell", "--out", tmp / "o"],
            "does not exist", usage=True),
        Row("prepare-crops", "fovs-unrelated-file",
            lambda w, tmp: [w / "unrelated" / "notes.txt", "--layout", "opencell", "--out", tmp / "o"], "notes.txt"),
        Row("prepare-crops", "out-under-a-file",
            lambda w, tmp: [w / "fovs" / "fovs_opencell.csv", "--layout", "opencell", "--out", w / "file.txt" / "o"],
            "is a file"),
        Row("prepare-crops", "out-is-the-input",
            lambda w, tmp: [w / "fovs" / "fovs_opencell.csv", "--layout", "opencell", "--out", w / "fovs"],
            "overlaps the input"),
        Row("prepare-crops", "unknown-channel",
            lambda w, tmp: [w / "fovs" / "fovs_opencell.csv", "--layout", "opencell", "--out", tmp / "o",
                            "--channels", "pro,purple"], "purple"),
    ]
    return rows


def _unfinished_rows() -> list[Row]:
    """A data set whose writing command was stopped (UNFINISHED.json): every reader refuses it."""
    fragment = "is an unfinished data set"
    rows = [
        Row("inspect-data", f"stopped-{layout}", lambda w, tmp, kind=layout: [w / f"stopped_{kind}"], fragment)
        for layout in ("opencell", "bbbc021", "allencell")
    ]
    for command, layout in (("train-cytoself", "opencell"), ("train-vaeplus", "bbbc021"),
                            ("train-integrated-cell", "allencell"), ("train-statcell", "allencell")):
        rest = TRAINERS[command] + QUICK[command]
        rows.append(Row(command, "data-stopped-prepare",
                        lambda w, tmp, r=rest, kind=layout: ["--data", w / f"stopped_{kind}", *r, "--out", tmp / "run"],
                        fragment))
    rows += [
        Row("embed-classical", "data-stopped-prepare",
            lambda w, tmp: ["--data", w / "stopped_bbbc021", "--out", tmp / "f.parquet"], fragment),
        Row("prepare-crops", "resume-after-rows-removed",
            lambda w, tmp: [tmp / "fovs.csv", "--layout", "opencell", "--size", "32", "--out", tmp / "o", "--resume"],
            "no longer in FOVS.csv", setup=lambda w, tmp: _resume_case(w, tmp, drop_first=True)),
        Row("prepare-crops", "resume-after-a-row-changed",
            lambda w, tmp: [tmp / "fovs.csv", "--layout", "opencell", "--size", "32", "--out", tmp / "o", "--resume"],
            "differs from the one written", setup=lambda w, tmp: _resume_case(w, tmp, drop_first=False)),
    ]
    return rows


def _limit_rows() -> list[Row]:
    """Requests the data cannot meet in full are refused (asked, possible, why), never capped
    silently; parameters whose cost explodes are checked against their documented range."""
    manifest = lambda w: w / "allen" / "manifest.csv"  # noqa: E731  (8 cells)
    classical = lambda scale: (lambda w, tmp: ["--data", w / "bbbc021", "--out", tmp / "f.parquet",  # noqa: E731
                                               "--texture-scale", scale])
    return [
        Row("add-control-structures", "cells-far-above-the-data",
            lambda w, tmp: [manifest(w), "--out", tmp / "o", "--cells", "1000"], "--cells 1000 cannot be met: at most 8"),
        Row("add-control-structures", "cells-one-above-the-data",
            lambda w, tmp: [manifest(w), "--out", tmp / "o", "--cells", "9"], "--cells 9 cannot be met: at most 8"),
        Row("embed-classical", "texture-scale-exploding", classical("500"), "--texture-scale must be in [1, 32]"),
        Row("embed-classical", "texture-scale-one-too-many", classical("33"), "--texture-scale must be in [1, 32]"),
        Row("embed-classical", "texture-scale-zero", classical("0"), "--texture-scale must be in [1, 32]"),
        Row("feature-spectrum", "clusters-above-the-features",
            lambda w, tmp: ["NUCLEOLUS_1", "--run", w, "--out", tmp / "fs", "--clusters", "100000"],
            "--clusters 100000 cannot be met", needs_cytoself=True),
        Row("umap-cytoself", "neighbours-above-the-data",
            lambda w, tmp: [w, "--color-by", "family", "--n-neighbors", "100000"],
            "--n-neighbors 100000 cannot be met", needs_cytoself=True),
    ]


def _where(condition, column: str, value):
    """Edit: set `column` to `value` on the rows where `condition(table)` holds."""
    def edit(table):
        table[column] = table[column].astype(object)
        table.loc[condition(table), column] = value
    return edit


def _control_and_pairing_rows() -> list[Row]:
    """Control labels match exactly (near misses named; a control with a mechanism or doses pointed
    out); tables compared side by side describe the same cells."""
    moa = lambda *names: (lambda w, tmp: [a for n in names for a in ("--embeddings", tmp / n)]  # noqa: E731
                          + ["--out", tmp / "moa"])
    dmso_on = lambda plate: (lambda t: (t["compound"] == "DMSO") & (t["plate"] == plate))  # noqa: E731
    first_dmso = lambda t: t.index == t.index[t["compound"] == "DMSO"][0]  # noqa: E731
    return [
        Row("profile-moa", "control-lower-case-on-a-plate", moa("t.csv"), "spell it 'dmso'",
            setup=_table("t.csv", _where(dmso_on("P1"), "compound", "dmso"))),
        Row("profile-moa", "control-trailing-space", moa("t.csv"), "spell it 'DMSO '",
            setup=_table("t.csv", _where(dmso_on("P2"), "compound", "DMSO "))),
        Row("profile-moa", "control-capitalised-everywhere", moa("t.csv"), "spell it 'Dmso'",
            setup=_table("t.csv", _where(lambda t: t["compound"] == "DMSO", "compound", "Dmso"))),
        Row("profile-moa", "control-with-a-mechanism", moa("t.csv"), "carry the mechanism 'A'",
            setup=_table("t.csv", _where(dmso_on("P3"), "moa", "A"))),
        Row("profile-moa", "control-with-two-doses", moa("t.csv"), "several concentrations (0.1, 1)",
            setup=_table("t.csv", _where(first_dmso, "concentration", 0.1))),
        Row("profile-moa", "header-only-table", moa("h.csv"), "holds no cells (a header without rows)",
            setup=_write("h.csv", "plate,well,compound,concentration,moa,z_0,z_1\n")),
        Row("profile-moa", "header-only-metadata-convention", moa("h.csv"), "holds no cells",
            setup=_write("h.csv", "Metadata_plate,Metadata_well,Metadata_compound,Metadata_concentration,"
                                  "Metadata_moa,f_1\n")),
        Row("profile-moa", "control-name-absent", lambda w, tmp: ["--embeddings", w / "cells.csv", "--out", tmp / "o",
                                                                 "--control", "vehicle"], "no control cells"),
        Row("profile-moa", "side-by-side-fewer-cells", moa("a.csv", "b.csv"), "must describe the same cells",
            setup=lambda w, tmp: (_embedding_table(tmp / "a.csv"),
                                  _embedding_table(tmp / "b.csv", lambda t: t.drop(index=t.index[:6], inplace=True)))),
        Row("profile-moa", "side-by-side-other-plate-names", moa("a.csv", "b.csv"), "b: 36 cells, 9 not in every table",
            setup=lambda w, tmp: (_embedding_table(tmp / "a.csv"),
                                  _embedding_table(tmp / "b.csv", _where(lambda t: t["plate"] == "P0", "plate", "p0")))),
        Row("profile-moa", "side-by-side-third-table-differs", moa("a.csv", "b.csv", "c.csv"),
            "must describe the same cells",
            setup=lambda w, tmp: [_embedding_table(tmp / n) for n in ("a.csv", "b.csv")]
            + [_embedding_table(tmp / "c.csv", lambda t: t.drop(index=t.index[-1:], inplace=True))]),
    ]


def _nonfinite_field(channel: str, value: float):
    """Setup: the world's field as float32 OME-TIFFs with one `value` pixel in `channel`, and its FOVS.csv."""
    def setup(w, tmp):
        import tifffile

        table = pd.read_csv(w / "fovs" / "fovs_opencell.csv", dtype=str, keep_default_na=False)
        for column in ("pro", "nuc"):
            image = tifffile.imread(w / "fovs" / table.loc[0, column]).astype(np.float32)
            if column == channel:
                image[10, 20] = value
            tifffile.imwrite(tmp / f"{column}.tif", image)
            table[column] = f"{column}.tif"
        table.to_csv(tmp / "fovs.csv", index=False)
    return setup


def _unnamed_pages(pages: int, both: bool):
    """Setup: a plain multi-page TIFF (no axis names) of the world's field as pro (and nuc when `both`)."""
    def setup(w, tmp):
        import tifffile

        table = pd.read_csv(w / "fovs" / "fovs_opencell.csv", dtype=str, keep_default_na=False)
        image = tifffile.imread(w / "fovs" / table.loc[0, "pro"])
        tifffile.imwrite(tmp / "pages.tif", np.stack([image] * pages), metadata=None, photometric="minisblack")
        table["pro"] = "pages.tif"
        table["nuc"] = "pages.tif" if both else str(w / "fovs" / table.loc[0, "nuc"])
        table.to_csv(tmp / "fovs.csv", index=False)
    return setup


def _empty_prefix(w: Path, out: Path) -> None:
    """The world's OpenCell set with one prefix's arrays emptied (0 images, labels header only)."""
    import shutil

    shutil.copytree(w / "opencell", out)
    prefix = sorted(out.glob("*_label.csv"))[0].name[: -len("_label.csv")]
    for key in ("pro", "nuc", "nucdist"):
        np.save(out / f"{prefix}_{key}.npy", np.zeros((0, 16, 16), np.float32))
    labels = pd.read_csv(out / f"{prefix}_label.csv")
    labels.iloc[:0].to_csv(out / f"{prefix}_label.csv", index=False)


def _field_rows() -> list[Row]:
    """Fields with NaN/inf pixels: one line naming file and field (nothing left on disk)."""
    args = lambda w, tmp: [tmp / "fovs.csv", "--layout", "opencell", "--out", tmp / "o"]  # noqa: E731
    return [
        Row("prepare-crops", "nan-pixel-in-protein-field", args, "pro.tif: channel pro of field fov0000",
            setup=_nonfinite_field("pro", np.nan)),
        Row("prepare-crops", "nan-pixel-in-nucleus-field", args, "nuc.tif: channel nuc of field fov0000",
            setup=_nonfinite_field("nuc", np.nan)),
        Row("prepare-crops", "inf-pixel-in-protein-field", args, "holds 1 NaN/inf pixel(s)",
            setup=_nonfinite_field("pro", -np.inf)),
        Row("prepare-crops", "unnamed-3-pages-as-pro-and-nuc", args, "pages.tif: a multi-page file without axis names "
            "(3 pages): cannot tell z-slices from channels; pass --pages z", setup=_unnamed_pages(3, both=True)),
        Row("prepare-crops", "unnamed-5-pages-as-pro", args, "(5 pages)", setup=_unnamed_pages(5, both=False)),
        Row("inspect-data", "opencell-prefix-with-0-images", lambda w, tmp: [tmp / "d"], "holds 0 images",
            setup=lambda w, tmp: _empty_prefix(w, tmp / "d")),
        Row("train-cytoself", "opencell-prefix-with-0-images",
            lambda w, tmp: ["--data", tmp / "d", *QUICK["train-cytoself"], "--out", tmp / "run"], "holds 0 images",
            setup=lambda w, tmp: _empty_prefix(w, tmp / "d")),
        Row("prepare-crops", "unnamed-pages-said-channels-without-index",
            lambda w, tmp: [*args(w, tmp), "--pages", "channels"], "has 3 channels",
            setup=_unnamed_pages(3, both=True)),
    ]


def _resume_case(w: Path, tmp: Path, drop_first: bool) -> None:
    """The stopped opencell run copied to tmp/o, and its FOVS.csv with the committed row removed or changed."""
    import shutil

    shutil.copytree(w / "stopped_opencell", tmp / "o")
    table = pd.read_csv(w / "fovs3" / "fovs_opencell.csv", dtype=str, keep_default_na=False)
    for column in ("pro", "nuc"):
        table[column] = [str(w / "fovs3" / p) for p in table[column]]
    if drop_first:
        table = table.iloc[1:]
    else:
        table.loc[0, "localization"] = "elsewhere"
    table.to_csv(tmp / "fovs.csv", index=False)


def _copy_bbbc021(w: Path, out: Path, drop: str | None = None, edit=None) -> None:
    import shutil

    shutil.copytree(w / "bbbc021", out)
    table = pd.read_csv(out / "metadata.csv", dtype=str, keep_default_na=False)
    if drop:
        table = table.drop(columns=[drop])
    if edit:
        edit(table)
    table.to_csv(out / "metadata.csv", index=False)


def _table_rows() -> list[Row]:
    """Bad values in the tables a command reads."""
    moa = lambda name: (lambda w, tmp: ["--embeddings", tmp / name, "--out", tmp / "moa"])  # noqa: E731
    return [
        Row("profile-moa", "embeddings-missing", lambda w, tmp: ["--embeddings", w / "nowhere.csv", "--out", tmp / "o"],
            "does not exist", usage=True),
        Row("profile-moa", "embeddings-is-a-folder", lambda w, tmp: ["--embeddings", w / "empty", "--out", tmp / "o"],
            "folder"),
        Row("profile-moa", "embeddings-empty-file", moa("e.csv"), "e.csv", setup=_write("e.csv", "")),
        Row("profile-moa", "embeddings-unrelated-text", moa("e.csv"), "e.csv",
            setup=_write("e.csv", "hello world\nthis is not a table\n")),
        Row("profile-moa", "text-cell-in-feature", moa("t.csv"), "'z_2' must hold numbers",
            setup=_table("t.csv", _set(5, "z_2", "abc"))),
        Row("profile-moa", "inf-in-feature", moa("t.csv"), "'z_1' must hold finite numbers",
            setup=_table("t.csv", _set(5, "z_1", np.inf))),
        Row("profile-moa", "nan-in-feature", moa("t.csv"), "'z_0' must hold finite numbers",
            setup=_table("t.csv", _set(7, "z_0", np.nan))),
        Row("profile-moa", "empty-plate", moa("t.csv"), "'plate' must name every row",
            setup=_table("t.csv", _set(3, "plate", ""))),
        Row("profile-moa", "text-concentration", moa("t.csv"), "'concentration' must hold numbers",
            setup=_table("t.csv", _set(3, "concentration", "high"))),
        Row("profile-moa", "missing-moa-column", moa("t.csv"), "moa",
            setup=_table("t.csv", lambda t: t.drop(columns=["moa"], inplace=True))),
        Row("profile-moa", "out-is-the-input", lambda w, tmp: ["--embeddings", w / "cells.csv", "--out", w / "cells.csv"],
            "overlaps the input"),
        Row("profile-moa", "out-under-a-file", lambda w, tmp: ["--embeddings", w / "cells.csv", "--out", w / "file.txt" / "o"],
            "is a file"),
        Row("profile-moa", "out-read-only", lambda w, tmp: ["--embeddings", w / "cells.csv", "--out", tmp / "o"],
            "read-only", filesystem="readonly"),
        Row("profile-moa", "out-full", lambda w, tmp: ["--embeddings", w / "cells.csv", "--out", tmp / "o"],
            "space", filesystem="full"),
        Row("train-vaeplus", "metadata-text-concentration",
            lambda w, tmp: ["--data", tmp / "b", "--out", tmp / "run", *QUICK["train-vaeplus"]], "concentration",
            setup=lambda w, tmp: _copy_bbbc021(w, tmp / "b", edit=lambda t: t.__setitem__("concentration", "lots"))),
        Row("train-statcell", "manifest-empty-structure-name",
            lambda w, tmp: ["--data", tmp / "m.csv", "--model", "reference", "--beta", "1", "--out", tmp / "run",
                            *QUICK["train-statcell"]],
            "structure_name", setup=lambda w, tmp: _edit_manifest(w, tmp / "m.csv", "structure_name", "")),
        Row("coupling", "manifest-empty-structure-name",
            lambda w, tmp: [w / "runs" / "statcell_reference", w / "runs" / "statcell_target", "--data", tmp / "m.csv"],
            "structure_name", setup=lambda w, tmp: _edit_manifest(w, tmp / "m.csv", "structure_name", "")),
    ]


def _edit_manifest(w: Path, out: Path, column: str, value) -> None:
    table = pd.read_csv(w / "allen" / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[1, column] = value
    table["path"] = [str(w / "allen" / p) for p in table["path"]]
    table.to_csv(out, index=False)


def _list_flag_rows() -> list[Row]:
    """Every list-valued flag is checked whole before any work starts."""
    sweep = lambda betas: (lambda w, tmp: ["--data", w / "allen" / "manifest.csv", "--betas", betas,  # noqa: E731
                                           "--preset", "tiny", "--epochs", "1", "--out", tmp / "sweep"])
    return [
        Row("beta-sweep", "betas-second-not-a-number", sweep("0.5,abc"), "--betas"),
        Row("beta-sweep", "betas-second-negative", sweep("0.5,-2"), "--betas"),
        Row("beta-sweep", "betas-second-nan", sweep("0.5,nan"), "--betas"),
        Row("beta-sweep", "betas-duplicate", sweep("0.5,0.5"), "--betas"),
        Row("beta-sweep", "betas-empty", sweep(""), "--betas"),
        Row("latent-walk", "dims-not-numbers", lambda w, tmp: [w / "runs" / "statcell_reference", "--dims", "1,x"],
            "--dims"),
        Row("latent-walk", "truncated-best-keras", lambda w, tmp: [w / "runs" / "statcell_reference"], "best.keras"),
        Row("train-cytoself", "channels-unknown",
            lambda w, tmp: ["--data", w / "opencell", "--channels", "pro,purple", "--out", tmp / "run"], "purple"),
        Row("train-statcell", "size-not-numbers",
            lambda w, tmp: ["--data", w / "allen" / "manifest.csv", "--model", "reference", "--beta", "1",
                            "--size", "16,x", "--out", tmp / "run"], "--size"),
        Row("train-statcell", "beta-nan",
            lambda w, tmp: ["--data", w / "allen" / "manifest.csv", "--model", "reference", "--beta", "nan",
                            "--out", tmp / "run"], "--beta"),
        Row("umap-cytoself", "exclude-without-run",
            lambda w, tmp: [w / "unrelated", "--exclude", "a", "--color-by", "family"], "config.json"),
    ]


def _cytoself_rows() -> list[Row]:
    """Rows that need a trained run (the shared tiny cytoself run)."""
    return [
        Row("feature-spectrum", "unknown-protein", lambda w, tmp: ["NOT_A_PROTEIN", "--run", w, "--out", tmp / "fs"],
            "NOT_A_PROTEIN", needs_cytoself=True),
        Row("feature-spectrum", "out-under-a-file", lambda w, tmp: ["NUCLEOLUS_1", "--run", w, "--out", tmp / "f.txt" / "fs"],
            "is a file", setup=_write("f.txt", "x"), needs_cytoself=True),
        Row("feature-spectrum", "out-full", lambda w, tmp: ["NUCLEOLUS_1", "--run", w, "--out", tmp / "fs", "--heatmap"],
            "space", filesystem="full", needs_cytoself=True),
        Row("embed-cytoself", "out-read-only",
            lambda w, tmp: [w, "--data", w.parent / "data", "--out", tmp / "e.h5"], "read-only",
            filesystem="readonly", needs_cytoself=True),
        Row("embed-cytoself", "out-is-the-data",
            lambda w, tmp: [w, "--data", w.parent / "data", "--out", w.parent / "data" / "e.h5"], "overlaps the input",
            needs_cytoself=True),
        Row("embed-cytoself", "data-of-another-layout",
            lambda w, tmp: [w, "--data", tmp / "b", "--split", "all"], "holds images of 68×68 px",
            setup=lambda w, tmp: _write_bbbc021(tmp / "b"), needs_cytoself=True),
    ]


def _embedding_rows() -> list[Row]:
    """bin/embed (a run of any paper) and bin/embed-classical: inputs and the output file."""
    classical = lambda out: (lambda w, tmp: ["--data", w / "bbbc021", "--out", out(w, tmp)])  # noqa: E731
    return [
        Row("embed", "run-unrelated-folder", lambda w, tmp: [w / "unrelated", "--data", w / "bbbc021", "--out",
                                                             tmp / "e.parquet"], "config.json"),
        Row("embed", "run-bad-config", lambda w, tmp: [w / "runs" / "bad_config", "--data", w / "bbbc021", "--out",
                                                       tmp / "e.parquet"], "config.json"),
        Row("embed", "truncated-best-keras", lambda w, tmp: [w / "runs" / "truncated_best", "--data", w / "opencell",
                                                             "--out", tmp / "e.parquet"], "best.keras"),
        Row("embed", "out-unknown-suffix", lambda w, tmp: [w / "runs" / "vaeplus", "--data", w / "bbbc021", "--out",
                                                           tmp / "e.xlsx"], ".xlsx"),
        Row("embed-classical", "data-unrelated-folder",
            lambda w, tmp: ["--data", w / "unrelated", "--out", tmp / "f.parquet"], "unrelated"),
        Row("embed-classical", "out-unknown-suffix", classical(lambda w, tmp: tmp / "f.txt"), ".txt"),
        Row("embed-classical", "out-is-a-folder", classical(lambda w, tmp: tmp / "f.parquet"), "is a folder",
            setup=lambda w, tmp: (tmp / "f.parquet").mkdir()),
        Row("embed-classical", "out-inside-the-data", classical(lambda w, tmp: w / "bbbc021" / "f.parquet"),
            "overlaps the input"),
        Row("embed-classical", "out-under-a-file", classical(lambda w, tmp: w / "file.txt" / "f.parquet"), "is a file"),
        Row("embed-classical", "out-read-only", classical(lambda w, tmp: tmp / "f.parquet"), "read-only",
            filesystem="readonly"),
        Row("embed-classical", "out-full", classical(lambda w, tmp: tmp / "f.parquet"), "space", filesystem="full"),
        Row("embed-classical", "unknown-feature-group",
            lambda w, tmp: ["--data", w / "bbbc021", "--out", tmp / "f.parquet", "--features", "intensity,colour"],
            "colour"),
    ]


def _run_data_rows() -> list[Row]:
    """A run knows its data: --split on other data (same size, same ids, regenerated pixels) and
    images of another size are refused in one line, for every paper."""
    def embed(paper, data, split="test"):
        return lambda w, tmp: [w / "runs" / f"{paper}_knows", "--data", w / data, "--out", tmp / "e.parquet",
                               "--split", split]

    rows = []
    for paper, other, what in (("cytoself", "opencell_other", "other "), ("statcell", "allen_other", "other "),
                               ("integrated_cell", "allen_other", "other "),
                               ("vaeplus", "bbbc021_other", "other cell ids")):
        for split in ("test", "val"):
            rows.append(Row("embed", f"{paper}-split-{split}-of-other-data", embed(paper, other, split),
                            "is not the data RUN"))
        rows.append(Row("embed", f"{paper}-other-data-says-what-differs", embed(paper, other), what))
    rows.append(Row("embed", "statcell-32px-cells-for-a-16px-run", embed("statcell", "allen32", "all"),
                    "holds images of 32×32 px, but RUN"))
    rows.append(Row("embed", "integrated_cell-other-size", embed("integrated_cell", "allen32", "test"),
                    "trained on 16×16 px images"))
    rows.append(Row("embed", "cytoself-other-data-as-test", embed("cytoself", "allen", "test"), "--split test"))
    return rows


def _ngff_edit(group: Path, edit) -> None:
    """Apply `edit` to the NGFF attributes of a zarr group (0.4: .zattrs; 0.5: zarr.json under "ome")."""
    if (group / ".zattrs").is_file():
        attrs = json.loads((group / ".zattrs").read_text())
        edit(attrs)
        (group / ".zattrs").write_text(json.dumps(attrs))
    else:
        meta = json.loads((group / "zarr.json").read_text())
        edit(meta["attributes"]["ome"])
        (group / "zarr.json").write_text(json.dumps(meta))


def _plate_case(version: str, edit=None, edit_map=None):
    """Setup: the world's plate of NGFF `version` copied to tmp/p, then `edit(plate folder)` and
    `edit_map(plate map table)`."""
    def setup(w, tmp):
        import shutil

        shutil.copytree(w / f"plate{version}" / "plate.zarr", tmp / "p" / "plate.zarr")
        table = pd.read_csv(w / f"plate{version}" / "plate_map.csv", dtype=str, keep_default_na=False)
        if edit is not None:
            edit(tmp / "p" / "plate.zarr")
        if edit_map is not None:
            table = edit_map(table)
        table.to_csv(tmp / "p" / "plate_map.csv", index=False)
    return setup


def _other_channels(plate: Path) -> None:
    """A second plate (renamed) whose fields name their channels otherwise."""
    import shutil

    other = plate.parent / "other.zarr"
    shutil.copytree(plate, other)
    _ngff_edit(other, lambda a: a["plate"].update(name="SYN02"))
    for field in (other / "A" / "1" / "0", other / "A" / "2" / "0"):
        _ngff_edit(field, lambda a: a["omero"]["channels"][1].update(label="Hoechst"))


def _text_concentration(w: Path, tmp: Path) -> None:
    """Setup: the world's fovs_bbbc021.csv (absolute paths) with concentration 'high'."""
    table = pd.read_csv(w / "fovs" / "fovs_bbbc021.csv", dtype=str, keep_default_na=False)
    for column in ("dna", "membrane", "protein"):
        table[column] = [str(w / "fovs" / p) for p in table[column]]
    table["concentration"] = "high"
    table.to_csv(tmp / "fovs.csv", index=False)


def _plate_rows() -> list[Row]:
    """OME-Zarr HCS plates + plate maps: broken plate or well metadata, missing wells, plate maps that do
    not cover the plate, channels that do not match (all before anything is written)."""
    def args(*extra, plates=("plate.zarr",)):
        return lambda w, tmp: [*(tmp / "p" / p for p in plates), "--plate-map", tmp / "p" / "plate_map.csv",
                               "--layout", "bbbc021", "--channels", "dna,membrane,protein", "--out", tmp / "o", *extra]

    def world(*inputs, plate_map=True):
        return lambda w, tmp: [*(w / i for i in inputs), *(["--plate-map", w / "plate0.4" / "plate_map.csv"]
                                                           if plate_map else []),
                               "--layout", "bbbc021", "--channels", "dna,membrane,protein", "--out", tmp / "o"]

    drop = lambda column: (lambda t: t.drop(columns=[column]))  # noqa: E731
    return [
        Row("prepare-crops", "plate-is-a-well-group", world("plate0.4/plate.zarr/A/1"), "is not an OME-Zarr HCS plate"),
        Row("prepare-crops", "plate-is-an-unrelated-folder", world("unrelated"), "is not an OME-Zarr HCS plate"),
        Row("prepare-crops", "plate-without-plate-map", world("plate0.5/plate.zarr", plate_map=False),
            "a plate needs --plate-map", usage=True),
        Row("prepare-crops", "fovs-csv-with-plate-map", world("fovs/fovs_bbbc021.csv"),
            "--plate-map applies to OME-Zarr plate input", usage=True),
        Row("prepare-crops", "fovs-csv-and-plate", world("fovs/fovs_bbbc021.csv", "plate0.4/plate.zarr"),
            "not both", usage=True),
        Row("prepare-crops", "same-plate-twice", world("plate0.4/plate.zarr", "plate0.4/plate.zarr"),
            "are all named 'SYN01'"),
        Row("prepare-crops", "out-inside-the-plate",
            lambda w, tmp: [*world("plate0.4/plate.zarr")(w, tmp)[:-1], w / "plate0.4" / "plate.zarr" / "crops"],
            "overlaps the input"),
        Row("prepare-crops", "plate-metadata-without-wells", args(), "must list its wells",
            setup=_plate_case("0.5", lambda p: _ngff_edit(p, lambda a: a["plate"].pop("wells")))),
        Row("prepare-crops", "plate-well-index-names-another-well", args(), "which name another well",
            setup=_plate_case("0.4", lambda p: _ngff_edit(p, lambda a: a["plate"]["wells"][0].update(columnIndex=1)))),
        Row("prepare-crops", "plate-well-missing-on-disk", args(), "well A/2 is listed in the plate metadata but "
            "missing on disk", setup=_plate_case("0.4", lambda p: __import__("shutil").rmtree(p / "A" / "2"))),
        Row("prepare-crops", "well-without-well-metadata", args(), "expected NGFF well metadata",
            setup=_plate_case("0.5", lambda p: _ngff_edit(p / "A" / "2", lambda a: a.pop("well")))),
        Row("prepare-crops", "field-missing-on-disk", args(), "field 0 is listed in the well metadata but missing",
            setup=_plate_case("0.5", lambda p: __import__("shutil").rmtree(p / "A" / "1" / "0"))),
        Row("prepare-crops", "first-field-without-multiscales", args(), "without OME-Zarr multiscales metadata",
            setup=_plate_case("0.4", lambda p: _ngff_edit(p / "A" / "1" / "0", lambda a: a.pop("multiscales")))),
        Row("prepare-crops", "later-field-without-multiscales", args(), "A/2/0 is a zarr group without OME-Zarr "
            "multiscales", setup=_plate_case("0.5", lambda p: _ngff_edit(p / "A" / "2" / "0",
                                                                          lambda a: a.pop("multiscales")))),
        Row("prepare-crops", "plates-with-different-channels", args(plates=("plate.zarr", "other.zarr")),
            "expected plates of one screen with the same channels", setup=_plate_case("0.4", _other_channels)),
        Row("prepare-crops", "plate-map-without-well-column", args(), "needs a well column",
            setup=_plate_case("0.4", edit_map=drop("well"))),
        Row("prepare-crops", "plate-map-bad-well-name", args(), "row 2: expected a well name such as B03",
            setup=_plate_case("0.4", edit_map=lambda t: t.assign(well=["A01", "second"]))),
        Row("prepare-crops", "plate-map-duplicate-well", args(), "well A01 is listed more than once (rows 1 and 2)",
            setup=_plate_case("0.5", edit_map=lambda t: t.assign(well=["A01", "A1"]))),
        Row("prepare-crops", "plate-well-absent-from-plate-map", args(), "1 well(s) are not in it: A02",
            setup=_plate_case("0.5", edit_map=lambda t: t.iloc[:1])),
        Row("prepare-crops", "plate-map-column-made-from-the-plate", args(), "column site is made from the plates",
            setup=_plate_case("0.4", edit_map=lambda t: t.assign(site="1"))),
        Row("prepare-crops", "plate-map-text-concentration", args(), "column concentration must hold a finite number",
            setup=_plate_case("0.5", edit_map=lambda t: t.assign(concentration=["0.1", "lots"]))),
        Row("prepare-crops", "fovs-csv-text-concentration",
            lambda w, tmp: [tmp / "fovs.csv", "--layout", "bbbc021", "--channels", "dna,membrane,protein", "--out",
                            tmp / "o"], "fovs.csv row 1: column concentration must hold a finite number",
            setup=_text_concentration),
        Row("prepare-crops", "plate-map-missing-compound", args(), "needs the column(s) compound",
            setup=_plate_case("0.4", edit_map=drop("compound"))),
        Row("prepare-crops", "plate-channel-unknown", args("--channels", "dna,actin"),
            "channel actin: no such channel in plate", setup=_plate_case("0.4")),
        Row("prepare-crops", "plate-channels-names-unknown-plate-channel", args("--plate-channels", "dna=DAPI"),
            "--plate-channels dna=DAPI: no such channel", setup=_plate_case("0.5")),
        Row("prepare-crops", "plate-channels-names-no-layout-channel", args("--plate-channels", "purple=DNA"),
            "--plate-channels names the layout's channels", setup=_plate_case("0.5")),
        Row("prepare-crops", "plate-channels-index-out-of-range", args("--plate-channels", "dna=7"),
            "--plate-channels dna=7: plate", setup=_plate_case("0.4")),
    ]


ROWS = (_run_data_rows() + _run_rows() + _data_rows() + _table_rows() + _list_flag_rows() + _cytoself_rows()
        + _embedding_rows() + _unfinished_rows() + _limit_rows() + _control_and_pairing_rows() + _field_rows()
        + _plate_rows())


def test_every_command_has_rows():
    covered = {row.command for row in ROWS}
    missing = set(command_names()) - covered
    assert not missing, f"commands without hostile-input rows: {sorted(missing)}"


def test_row_ids_are_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))


# ----- running a row -----------------------------------------------------------------------------------
def _snapshot(*roots: Path) -> dict:
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                info = path.lstat()
                state[str(path)] = (path.is_dir(), info.st_size if not path.is_dir() else 0, info.st_mtime_ns
                                    if not path.is_dir() else 0)
    return state


@contextlib.contextmanager
def _filesystem(kind: str | None, folder: Path):
    """Mount a read-only or tiny tmpfs at `folder` (root only; the row is skipped otherwise)."""
    if kind is None:
        yield
        return
    options = "ro,size=1m" if kind == "readonly" else "size=200k"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        if kind == "full":  # leave 8 KiB: the first output of any size fills the disk
            stat = os.statvfs(folder)
            (folder / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 8192))
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_hostile_input(row, world, tmp_path, capfd, request):
    base = world
    roots = [world, tmp_path]
    if row.needs_cytoself:
        run_dir, data_dir = request.getfixturevalue("cytoself_run")
        base = run_dir
        roots += [run_dir, data_dir]
    case = tmp_path / "case"
    case.mkdir()
    with _filesystem(row.filesystem, case):
        if row.setup is not None:
            row.setup(base, case)
        args = [str(a) for a in row.args(base, case)]
        before = _snapshot(*roots)
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = run_command(row.command, args)
        out, err = capfd.readouterr()
        after = _snapshot(*roots)
    shown = f"$ {row.command} {' '.join(args)}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert code == row.code, shown
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, shown
    assert row.fragment in errors[0], shown
    assert "Traceback" not in out + err, shown
    noise = [line for line in (out + err).splitlines() if "warning" in line.lower() or "Traceback" in line]
    assert not noise, shown
    if not row.usage:
        assert not any(line.startswith(("Usage:", "Try ")) for line in err.splitlines()), shown
    leaked = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert not leaked, [str(w.message) for w in leaked]
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"files changed on disk: {changed}\n{shown}"
