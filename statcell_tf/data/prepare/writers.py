"""prepare-crops' chunk writers: one chunk of finished fields at a time, per layout.

The files of each layout are written by `statcell_tf.data.layout_files` (shared with
make-synthetic-data); these classes add the chunking (staging folder, atomic rename, removal
of uncommitted chunks) and the index file (metadata.csv / manifest.csv).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.atomic import atomic_path
from statcell_tf.data import layout_files
from statcell_tf.data.prepare.crops import FieldResult
from statcell_tf.data.prepare.montage import composite
from statcell_tf.data.prepare.settings import PrepareConfig


class _Writer:
    """Writes chunks of crops in one layout; a chunk is named ``<prefix>_NNNNN``."""

    prefix = "chunk"

    def __init__(self, out: Path, config: PrepareConfig, columns: list[str]):
        self.out, self.config, self.columns = out, config, columns

    def chunk_names_on_disk(self) -> set[str]:
        raise NotImplementedError

    def remove_chunk(self, name: str) -> None:
        raise NotImplementedError

    def write_chunk(self, name: str, results: list[FieldResult]) -> None:
        raise NotImplementedError

    def finish(self, chunks: list[str]) -> None:
        """Assemble the index file (metadata.csv / manifest.csv) from the chunks' parts."""

    def tables(self, chunks: list[str]) -> Iterator[tuple[str, pd.DataFrame]]:
        raise NotImplementedError

    def display(self, chunk: str, row: pd.Series, position: int) -> np.ndarray:
        """One crop as (H, W, 3) floats in [0, 1] for a montage."""
        raise NotImplementedError

    def _table(self, results: list[FieldResult]) -> pd.DataFrame:
        tables = [r.table for r in results if len(r.table)]
        return pd.concat(tables, ignore_index=True).reindex(columns=self.columns)


class _OpenCellWriter(_Writer):
    prefix = "crops"
    _FILE = re.compile(r"^(crops_\d{5})_(pro|nuc|nucdist)\.npy$|^(crops_\d{5})_label\.csv$")

    def chunk_names_on_disk(self):
        names = set()
        for path in self.out.iterdir():
            match = self._FILE.match(path.name)
            if match:
                names.add(match.group(1) or match.group(3))
        return names

    def remove_chunk(self, name):
        for suffix in layout_files.OPENCELL_SUFFIXES:
            (self.out / f"{name}{suffix}").unlink(missing_ok=True)

    def write_chunk(self, name, results):
        staging = self.out / f".tmp-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        arrays = {key: np.concatenate([r.arrays[key] for r in results]) for key in layout_files.OPENCELL_ARRAYS}
        layout_files.write_opencell_set(staging, name, arrays, self._table(results))
        for suffix in layout_files.OPENCELL_SUFFIXES:  # labels last
            os.replace(staging / f"{name}{suffix}", self.out / f"{name}{suffix}")
        staging.rmdir()

    def tables(self, chunks):
        for name in chunks:
            yield name, pd.read_csv(self.out / f"{name}_label.csv", dtype=str, keep_default_na=False)

    def display(self, chunk, row, position):
        pro = np.load(self.out / f"{chunk}_pro.npy", mmap_mode="r")[position]
        nuc = np.load(self.out / f"{chunk}_nuc.npy", mmap_mode="r")[position]
        return composite(np.stack([pro, nuc], -1), [(0.0, 1.0, 0.0), (0.8, 0.0, 0.8)])


class _FolderWriter(_Writer):
    """Chunks as folders ``<root>/chunk_NNNNN/`` with a ``part.csv``; one index CSV at the end."""

    root = ""
    index = ""

    def _root(self) -> Path:
        return self.out / self.root

    def chunk_names_on_disk(self):
        root = self._root()
        return {p.name for p in root.iterdir() if re.fullmatch(r"chunk_\d{5}", p.name)} if root.is_dir() else set()

    def remove_chunk(self, name):
        shutil.rmtree(self._root() / name, ignore_errors=True)

    def write_chunk(self, name, results):
        staging = self.out / f".tmp-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        table = self._table(results)
        self._write_files(staging, name, results, table)
        table.to_csv(staging / "part.csv", index=False)
        self._root().mkdir(exist_ok=True)
        os.replace(staging, self._root() / name)  # the chunk appears whole

    def _write_files(self, folder: Path, name: str, results: list[FieldResult], table: pd.DataFrame) -> None:
        raise NotImplementedError

    def finish(self, chunks):
        """Concatenate the parts line by line (never the whole table in memory)."""
        with atomic_path(self.out / self.index) as tmp, open(tmp, "w", newline="") as target:
            target.write(pd.DataFrame(columns=self.columns).to_csv(index=False))
            for name in chunks:
                with open(self._root() / name / "part.csv", newline="") as part:
                    next(part, None)  # the header
                    shutil.copyfileobj(part, target)
        return None

    def tables(self, chunks):
        for name in chunks:
            yield name, pd.read_csv(self._root() / name / "part.csv", dtype=str, keep_default_na=False)


class _BBBC021Writer(_FolderWriter):
    root, index = "crops", "metadata.csv"

    def _write_files(self, folder, name, results, table):
        crops = [c for r in results for c in r.arrays["crops"]]
        names = [f"{f}_{int(label)}.npy" for f, label in zip(table["field"], table["nucleus_label"])]
        for crop, file_name in zip(crops, names):
            layout_files.write_bbbc021_crop(folder / file_name, crop)
        table["file"] = names

    def display(self, chunk, row, position):
        crop = np.load(self._root() / chunk / row["file"])
        colors = [(0.2, 0.4, 1.0), (1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0)]
        return composite(crop, colors[: crop.shape[-1]] + [(1.0, 1.0, 1.0)] * max(0, crop.shape[-1] - 5))


class _AllenWriter(_FolderWriter):
    root, index = "cells", "manifest.csv"
    CHANNEL_NAMES = ("membrane", "dna", "structure", "cell_mask", "nucleus_mask")

    def _write_files(self, folder, name, results, table):
        cells = [c for r in results for c in r.arrays["cells"]]
        ids = [f"{f}_{int(label)}" for f, label in zip(table["field"], table["nucleus_label"])]
        for cell, cell_id in zip(cells, ids):
            layout_files.write_allen_cell(folder / f"{cell_id}.ome.tiff", cell, self.CHANNEL_NAMES)
        table["CellId"] = ids
        table["path"] = [f"{self.root}/{name}/{cell_id}.ome.tiff" for cell_id in ids]
        for column, index in layout_files.allen_channel_columns(self.CHANNEL_NAMES).items():
            table[column] = index

    def display(self, chunk, row, position):
        import tifffile

        cell = tifffile.imread(self.out / row["path"])  # (C, [Z,] S, S)
        if cell.ndim == 4:
            cell = cell.max(axis=1)
        return composite(np.moveaxis(cell[:3], 0, -1), [(1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)])


WRITERS = {"opencell": _OpenCellWriter, "bbbc021": _BBBC021Writer, "allencell": _AllenWriter}
