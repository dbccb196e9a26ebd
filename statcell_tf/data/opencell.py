"""OpenCell / cytoself data: per-protein channel files or the full release's shards.

Two layouts are read, both memory-mapped (nothing is loaded until a batch is gathered):

- a folder of ``<name>_pro.npy``, ``<name>_nuc.npy``, ``<name>_nucdist.npy`` (N, H, W), any
  float or integer dtype, per prefix (the cytoself repository ships one prefix per protein),
  with labels in ``<name>_label.csv`` (columns ensg, protein, localization[, fov]; spellings
  such as "Ensembl ID" or "protein name" are accepted) or ``<name>_label.npy`` (a 2-D string
  array with those columns in that order);
- the full release's shards ``Image_dataXX.npy`` (N, 100, 100, 4: protein, nucleus, nuclear
  distance, nuclear segmentation) with ``Label_dataXX.csv``.

The reference repository stores labels as pickled object arrays; unpickling runs code from
the file, so it is refused unless `allow_pickle` is set (``--allow-pickle``).
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.data import unfinished, validation
from statcell_tf.data.source import ArrayImages, CellImages, ConcatenatedImages, ImageArray, is_large
from statcell_tf.errors import UserError

CHANNELS = ("pro", "nuc", "nucdist")
SHARD_CHANNELS = ("pro", "nuc", "nucdist", "nucseg")
LABEL_COLUMNS = ("ensg", "protein", "localization", "fov")
_ALIASES = {
    "ensg": ("ensg", "ensembl id", "ensembl_id", "ensemblid", "ensembl", "gene_id", "ensg_id"),
    "protein": ("protein", "protein name", "protein_name", "name", "gene_name", "gene name", "gene"),
    "localization": ("localization", "localisation", "loc_grade1", "annotation", "family_label"),
    "fov": ("fov", "fov_id", "fov id", "field_of_view", "field of view"),
}
_CHANNEL_FILE = re.compile(r"^(?P<prefix>.+)_(?P<channel>pro|nuc|nucdist)\.npy$")
_SHARD_FILE = re.compile(r"^Image_data(?P<key>\w+)\.npy$")


def is_opencell_folder(path: Path) -> bool:
    """True when `path` is a folder with OpenCell channel files or release shards."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(_CHANNEL_FILE.match(p.name) or _SHARD_FILE.match(p.name) for p in path.glob("*.npy"))


class ChannelFiles(ImageArray):
    """Single-channel (n, H, W) arrays per prefix, seen as one (N, H, W, C) array.

    A batch is written straight into its (B, H, W, C) output, one image and channel at a
    time, from the memory maps: one copy, against three for stacking and concatenating
    (about 4× faster for 100×100 crops).

    Args:
        parts: list of lists of arrays. ``parts[p][c]`` is channel c of prefix p, (n_p, H, W).
    """

    def __init__(self, parts: Sequence[Sequence[np.ndarray]]):
        self.parts = [list(channels) for channels in parts]
        self.offsets = np.cumsum([0] + [len(channels[0]) for channels in self.parts])
        first = self.parts[0][0]
        self.shape = (int(self.offsets[-1]),) + tuple(first.shape[1:]) + (len(self.parts[0]),)
        self.dtype = np.result_type(*[array.dtype for channels in self.parts for array in channels])
        # Large data (a quarter of the memory, `is_large`): unmap what each batch read (see
        # `_release_pages`); smaller data stays mapped (re-reading mapped pages is ~2× cheaper).
        nbytes = sum(int(np.prod(array.shape)) * array.dtype.itemsize for channels in self.parts for array in channels)
        self.release_pages = is_large(nbytes)

    def _take(self, indices):
        out = np.empty((len(indices),) + self.shape[1:], self.dtype)
        self._fill(indices, lambda j, c: out[j, ..., c])
        return out

    def take_planar(self, indices) -> np.ndarray:
        """Images at sorted `indices` channel-first, (B, C, H, W): every image-channel is one
        contiguous copy (the channel-last `_take` writes every pixel 2 values apart)."""
        out = np.empty((len(indices), self.shape[-1]) + self.shape[1:-1], self.dtype)
        self._fill(indices, lambda j, c: out[j, c])
        return out

    def _fill(self, indices, target) -> None:
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        local = indices - self.offsets[part_of]
        if self.release_pages:  # data on disk: ask for every run of rows at once (see `_will_need`)
            for part in np.unique(part_of):
                rows = np.sort(local[part_of == part])
                for array in self.parts[part]:
                    _will_need(array, rows)
        for j, (part, row) in enumerate(zip(part_of, local)):
            for c, array in enumerate(self.parts[part]):
                target(j, c)[...] = array[row]
        if self.release_pages:
            for part in np.unique(part_of):
                for array in self.parts[part]:
                    _release_pages(array)


def _will_need(array, rows: np.ndarray) -> None:
    """Start reading the pages of `rows` of memory-mapped `array` now (MADV_WILLNEED, one call
    per run of consecutive rows), so the disk sees every block of a block-shuffled buffer at
    once instead of one page fault at a time as the copy reaches it."""
    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(mmap, "MADV_WILLNEED") or rows.size == 0:
        return
    try:
        base = np.frombuffer(handle, np.uint8).ctypes.data  # the mapping's first byte
    except (TypeError, ValueError):  # closed map
        return
    row_bytes = int(np.prod(array.shape[1:])) * array.dtype.itemsize
    for start, length in row_ranges(rows, array.ctypes.data - base, row_bytes, mmap.PAGESIZE, len(handle)):
        try:
            handle.madvise(mmap.MADV_WILLNEED, start, length)
        except (OSError, ValueError):  # only speed is at stake
            return


def row_ranges(rows: np.ndarray, offset: int, row_bytes: int, page: int, size: int) -> list[tuple[int, int]]:
    """(start, length) in the mapping of each run of consecutive sorted `rows`: the rows start
    at byte `offset` of a mapping of `size` bytes; `start` rounded down to a `page` boundary."""
    ranges = []
    for run in np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1):
        first = offset + int(run[0]) * row_bytes
        aligned = first - first % page
        ranges.append((aligned, min(offset + (int(run[-1]) + 1) * row_bytes, size) - aligned))
    return ranges


def _release_pages(array) -> None:
    """Unmap the pages of memory-mapped `array` that this process has read (MADV_DONTNEED).

    They stay in the kernel's page cache (shared, reclaimable, read again without disk I/O
    while there), but no longer count in the process's resident memory, which otherwise
    grows with every file page ever read: streaming a data set larger than memory then
    keeps a resident set of a few batches.
    """
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            handle.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # closed map or a platform without it: only memory is at stake
            pass


def read_opencell(
    path,
    allow_pickle: bool = False,
    channels: Sequence[str] | None = None,
    expected_shape: tuple[int, int] | None = None,
    check_finite: bool = True,
    allow_unfinished: bool = False,
) -> CellImages:
    """Read an OpenCell / cytoself folder.

    Args:
        path: str or Path. The folder.
        allow_pickle: bool. Allow pickled (object) label arrays. Defaults to False.
        channels: sequence of str or None. Channels to keep, in order (e.g.
            ``("pro", "nucdist")``); None keeps every channel present (pro, nuc, nucdist
            order; the shards add nucseg).
        expected_shape: (H, W) or None. Reject images of another size.
        check_finite: bool. Scan for NaN/inf pixels now when the images take less than
            512 MB (larger data is checked batch by batch by the pipeline). Defaults to True.
        allow_unfinished: bool. Read a folder marked unfinished (`statcell_tf.data.unfinished`)
            as it is. Defaults to False (refused).

    Returns:
        CellImages with metadata columns ensg, protein, localization, fov (when present),
        any extra label columns, ``prefix`` (the file prefix), ``label`` (= protein: the
        identification target) and ``group`` (= fov when present, else the file prefix:
        what splits keep together).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    unfinished.check(path, "--data", allow_unfinished)
    if not path.is_dir():
        raise UserError(f"--data {path} must be a folder of OpenCell .npy files. Received: a file")
    if channels is not None:
        channels = list(channels)
        unknown = [c for c in channels if c not in SHARD_CHANNELS]
        if unknown or not channels or len(set(channels)) != len(channels):
            raise UserError(
                f"--channels must name distinct OpenCell channels among {', '.join(SHARD_CHANNELS)}. "
                f"Received: {', '.join(channels) or 'none'}"
            )
    if any(_SHARD_FILE.match(p.name) for p in path.glob("Image_data*.npy")):
        cells, files = _read_shards(path, channels)
    else:
        cells, files = _read_prefixes(path, allow_pickle, channels)
    if expected_shape is not None and tuple(cells.image_shape[:2]) != tuple(expected_shape):
        raise UserError(
            f"{files[0][0]}: images must be {expected_shape[0]}x{expected_shape[1]} pixels. "
            f"Received: {cells.image_shape[0]}x{cells.image_shape[1]} (image shape {cells.image_shape})"
        )
    if check_finite:
        _check_files_finite(files)
    return cells


def _read_prefixes(folder: Path, allow_pickle: bool, wanted: list[str] | None):
    files: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.glob("*.npy")):
        match = _CHANNEL_FILE.match(file.name)
        if match:
            files.setdefault(match["prefix"], {})[match["channel"]] = file
    if not files:
        raise UserError(
            f"--data {folder} holds no OpenCell files: expected <name>_pro.npy, <name>_nuc.npy, "
            f"<name>_nucdist.npy (+ <name>_label.csv) or Image_dataXX.npy shards. "
            f"Received: {_describe(folder)}"
        )
    present = sorted({c for found in files.values() for c in found}, key=CHANNELS.index)
    if wanted is not None:
        absent = [c for c in wanted if c not in present]
        if absent:
            raise UserError(
                f"--channels {','.join(wanted)}: {folder} has no <name>_{absent[0]}.npy files. "
                f"Received channels: {', '.join(present)}"
            )
    used = present if wanted is None else wanted
    parts, tables, scan = [], [], []
    for prefix, found in files.items():
        missing = [c for c in present if c not in found]
        if missing:
            sibling = found[sorted(found, key=CHANNELS.index)[0]].name
            raise UserError(
                f"{folder / (prefix + '_' + missing[0] + '.npy')} is missing: it is the sibling of "
                f"{sibling}; every prefix needs the same channel files ({', '.join(present)}). "
                f"Received for {prefix}: {', '.join(sorted(found, key=CHANNELS.index))}"
            )
        arrays = {c: validation.load_npy(found[c]) for c in present}
        reference = found[present[0]]
        for channel, array in arrays.items():
            if array.ndim == 4 and array.shape[-1] == 1:
                array = arrays[channel] = array[..., 0]
            if array.ndim != 3:
                raise UserError(
                    f"{found[channel]} must hold single-channel images (N, H, W). Received: shape {array.shape}"
                )
            if array.shape != arrays[present[0]].shape:
                raise UserError(
                    f"{found[channel]} must match {reference.name} (same N, H, W). "
                    f"Received: shape {array.shape} vs {arrays[present[0]].shape}"
                )
        if not len(arrays[present[0]]):  # would silently drop the prefix's protein from the data
            raise UserError(
                f"{reference} holds 0 images; expected at least one per prefix (remove or regenerate the "
                f"{prefix}_* files). Received: shape {arrays[present[0]].shape}"
            )
        labels = _read_labels(folder, prefix, len(arrays[present[0]]), allow_pickle)
        labels["prefix"] = prefix
        parts.append([arrays[c] for c in used])
        scan.extend((found[c], arrays[c]) for c in used)
        tables.append(labels)
    shapes = {tuple(p[0].shape[1:]) for p in parts}
    if len(shapes) > 1:
        first = parts[0][0].shape[1:]
        odd = next(prefix for prefix, p in zip(files, parts) if p[0].shape[1:] != first)
        raise UserError(
            f"{folder / (odd + '_' + used[0] + '.npy')}: all images must have one size, "
            f"{first[0]}x{first[1]} like the first prefix. Received: {sorted(shapes)}"
        )
    metadata = _standardise(pd.concat(tables, ignore_index=True))
    return CellImages(ChannelFiles(parts), metadata, tuple(used), str(folder)), scan


def _read_labels(folder: Path, prefix: str, n: int, allow_pickle: bool) -> pd.DataFrame:
    csv, npy = folder / f"{prefix}_label.csv", folder / f"{prefix}_label.npy"
    if csv.exists():
        table, source = _read_label_csv(csv), csv
    elif npy.exists():
        table, source = _label_npy(npy, allow_pickle), npy
    else:
        raise UserError(
            f"{csv} is missing: labels are needed for {prefix}_*.npy "
            f"(CSV with columns ensg, protein, localization[, fov], or {npy.name})"
        )
    table = _rename(table, source)
    if len(table) != n:
        raise UserError(
            f"{source} must have one row per image of {prefix}_*.npy ({n}). Received: {len(table)} rows"
        )
    return table


def _label_npy(path: Path, allow_pickle: bool) -> pd.DataFrame:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" not in str(error).lower():
            raise UserError(f"{path} is not a readable .npy file ({str(error).splitlines()[0]})") from None
        if not allow_pickle:
            raise UserError(
                f"{path} holds pickled objects; unpickling runs code from the file, so it is refused. "
                "Pass --allow-pickle only if you trust its source, or save labels as CSV. "
                "Received: an object (pickled) array"
            ) from None
        try:
            array = np.load(path, allow_pickle=True)
        except Exception as error:  # a broken pickle raises many types
            raise UserError(f"{path} is not a readable .npy file ({type(error).__name__})") from None
    except (OSError, EOFError) as error:
        raise UserError(f"{path} cannot be read ({error})") from None
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= array.shape[1] <= len(LABEL_COLUMNS) + 8:
        raise UserError(
            f"{path} must be a 2-D array with columns ensg, protein, localization[, fov]. "
            f"Received: shape {array.shape}"
        )
    if array.shape[1] == 1:
        names = ["protein"]
    else:
        names = list(LABEL_COLUMNS[: array.shape[1]]) + [f"extra_{i}" for i in range(array.shape[1] - 4)]
    return pd.DataFrame(array.astype(str), columns=names)


def _simple(name) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def _standard_names(columns) -> dict:
    """{column as written: standard name} for the label columns spelled another way."""
    lowered = {}
    for column in columns:
        lowered.setdefault(_simple(column), column)
    mapping = {}
    for standard, aliases in _ALIASES.items():
        if standard in columns:
            continue
        for alias in aliases:
            column = lowered.get(_simple(alias))
            if column is not None and column not in mapping:
                mapping[column] = standard
                break
    return mapping


def _read_label_csv(path: Path) -> pd.DataFrame:
    """A label CSV with its identifier columns read as text (FOV "007" stays "007")."""
    header = validation.csv_header(path)
    text = [c for c in header if c in LABEL_COLUMNS or c in _standard_names(header)]
    return validation.read_csv(path, dtype={c: str for c in text})


def _rename(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Standard column names (ensg, protein, localization, fov) from accepted spellings."""
    table = table.rename(columns=_standard_names(list(table.columns)))
    if "protein" not in table.columns:
        raise UserError(
            f"{path} must have a protein column (any of: {', '.join(_ALIASES['protein'])}). "
            f"Received columns: {', '.join(map(str, table.columns))}"
        )
    empty = table["protein"].isna() | (table["protein"].astype(str).str.strip() == "")
    if empty.any():
        raise UserError(
            f"{path} must name a protein on every row. Received: {int(empty.sum())} empty value(s), "
            f"first at row {int(np.argmax(empty.to_numpy()))}"
        )
    return table


def _standardise(metadata: pd.DataFrame) -> pd.DataFrame:
    metadata = metadata.copy()
    for column in LABEL_COLUMNS:
        if column in metadata:
            metadata[column] = metadata[column].astype(str)
    metadata["label"] = metadata["protein"]
    if "fov" in metadata:
        metadata["group"] = metadata["fov"]
    else:  # no field of view: keep every file (one protein, one plate) together
        metadata["group"] = metadata["prefix"].astype(str)
    if "family" not in metadata and "localization" in metadata:
        metadata["family"] = metadata["localization"]
    return metadata


def _read_shards(folder: Path, wanted: list[str] | None):
    parts, tables, scan = [], [], []
    for image_file in sorted(folder.glob("Image_data*.npy")):
        match = _SHARD_FILE.match(image_file.name)
        if not match:
            continue
        key = match["key"]
        label_file = folder / f"Label_data{key}.csv"
        if not label_file.exists():
            raise UserError(f"{label_file} is missing: it holds the labels of {image_file.name}")
        array = validation.load_npy(image_file)
        if array.ndim != 4 or array.shape[-1] != 4:
            raise UserError(
                f"{image_file} must hold (N, H, W, 4) images (protein, nucleus, distance, "
                f"segmentation). Received: shape {array.shape}"
            )
        table = _rename(_read_label_csv(label_file), label_file)
        if len(table) != len(array):
            raise UserError(
                f"{label_file} must have one row per image of {image_file.name} ({len(array)}). "
                f"Received: {len(table)} rows"
            )
        table["prefix"] = f"Image_data{key}"
        parts.append(ArrayImages(array))
        scan.append((image_file, array))
        tables.append(table)
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise UserError(f"{folder}: shards must share one image size. Received: {sorted(shapes)}")
    metadata = _standardise(pd.concat(tables, ignore_index=True))
    images = parts[0] if len(parts) == 1 else ConcatenatedImages(parts)
    cells = CellImages(images, metadata, SHARD_CHANNELS, str(folder))
    if wanted is not None:
        cells = cells.select_channels(wanted)
    return cells, scan


def _check_files_finite(files) -> None:
    """Scan every image file for NaN/inf when all of them together are small enough."""
    total = sum(array.nbytes for _, array in files)
    if total > validation.FULL_SCAN_BYTES:
        return  # checked batch by batch by the pipeline
    for file, array in files:
        bad = validation.first_nonfinite(array)
        if bad is not None:
            values = np.asarray(array[bad])
            raise UserError(
                f"{file}: image {bad} has NaN or infinite pixels; expected finite values. "
                f"Received: {int(np.isnan(values).sum())} NaN and {int(np.isinf(values).sum())} inf pixels"
            )


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:5])
    return f"{len(names)} file(s): {shown}" + (", ..." if len(names) > 5 else "")
