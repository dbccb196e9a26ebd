"""`read_cells`: open any supported data set by looking at what the path holds.

Formats, in the order they are tried:

- ``opencell``: a folder with ``<name>_pro.npy`` / ``_nuc.npy`` / ``_nucdist.npy`` files or
  ``Image_dataXX.npy`` shards (`statcell_tf.data.opencell`);
- ``bbbc021``: a folder with ``metadata.csv`` (columns file, plate, well, compound) and its
  crops, or that CSV itself (`statcell_tf.data.bbbc021`);
- ``allencell``: a manifest CSV with CellId, structure_name and path columns, or a folder
  holding ``manifest.csv`` (`statcell_tf.data.allencell`);
- ``deeploc``: an ``.h5`` / ``.hdf5`` file (`statcell_tf.data.deeploc`).

A folder of ``part-K-of-N`` folders (``prepare-crops --shard K/N``, `statcell_tf.data.shards`)
is read as one data set of any of these formats once every part is finished.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd

from statcell_tf.data import allencell, bbbc021, opencell, unfinished, validation
from statcell_tf.data.shards import is_sharded, part_files
from statcell_tf.data.source import CellImages, ConcatenatedImages
from statcell_tf.errors import UserError

FORMATS = ("opencell", "bbbc021", "allencell", "deeploc")


def detect_format(path, flag: str = "--data") -> str:
    """``"opencell"``, ``"bbbc021"``, ``"allencell"`` or ``"deeploc"`` for `path` (named
    `flag` in error messages); a sharded folder has the format of its parts, once all are finished."""
    path = Path(path)
    if is_sharded(path):
        return detect_format(_finished_parts(path, flag)[0], flag)
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist")
    if opencell.is_opencell_folder(path):
        return "opencell"
    if bbbc021.is_bbbc021(path):
        return "bbbc021"
    if allencell.is_manifest(path) or (path.is_dir() and allencell.is_manifest(path / "manifest.csv")):
        return "allencell"
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        return "deeploc"
    if path.is_dir() and not any(path.iterdir()):
        raise UserError(
            f"{flag} {path} is an empty folder; expected OpenCell .npy files, a BBBC021 "
            "metadata.csv with crops, or an Allen manifest.csv"
        )
    _near_miss(path, flag)
    raise UserError(
        f"{flag} {path}: no supported data found. Expected an OpenCell folder (<name>_pro.npy, "
        "_nuc.npy, _nucdist.npy + _label.csv, or Image_dataXX.npy + Label_dataXX.csv), a BBBC021 "
        "folder or CSV (metadata.csv with file, plate, well, compound + .npy crops), an Allen "
        "manifest CSV (CellId, structure_name, path) or a DeepLoc .h5/.hdf5. "
        f"Received: {_describe(path)}"
    )


def _near_miss(path: Path, flag: str) -> None:
    """A UserError naming the missing columns when `path` holds (or is) a metadata.csv or
    manifest.csv that lacks some of its format's required columns."""
    for name, required, kind in (("metadata.csv", bbbc021.REQUIRED_COLUMNS, "BBBC021"),
                                 ("manifest.csv", allencell.REQUIRED_COLUMNS, "Allen Cell")):
        table = path / name if path.is_dir() else path
        if table.name != name or not table.is_file():
            continue
        header = validation.csv_header(table)
        missing = [c for c in required if c not in header]
        if missing:
            raise UserError(
                f"{flag} {path}: {table} lacks column(s) {', '.join(missing)} (a {kind} table needs "
                f"{', '.join(required)}). Received columns: {', '.join(header[:12]) or 'none'}"
            )


def _reader(kind: str):
    if kind == "opencell":
        return opencell.read_opencell
    if kind == "bbbc021":
        return bbbc021.read_bbbc021
    if kind == "allencell":
        return allencell.read_allencell
    from statcell_tf.data.deeploc import read_deeploc

    return read_deeploc


def read_cells(path, allow_pickle: bool = False, flag: str = "--data", **kwargs) -> CellImages:
    """Read `path` with the reader its format needs.

    Args:
        path: str or Path. A folder or file in one of the supported formats.
        allow_pickle: bool. Let OpenCell readers unpickle object label arrays.
        flag: str. How error messages name `path` (``--data``, ``PATH``).
        **kwargs: passed to the format's reader (e.g. ``expected_shape``, ``channels``,
            ``check_finite``, ``membrane``, ``allow_unfinished``: read a folder marked
            unfinished, `statcell_tf.data.unfinished`). Options a format does not have are an
            error unless their value is None.

    Returns:
        CellImages.
    """
    if is_sharded(path):  # every part is read (and checked to be finished) by this function
        return _read_parts(Path(path), allow_pickle, flag, **kwargs)
    # Before the format: a stopped run may lack the index file the format is recognised by.
    unfinished.check(path, flag, bool(kwargs.pop("allow_unfinished", False)))
    kind = detect_format(path, flag)
    reader = _reader(kind)
    accepted = inspect.signature(reader).parameters
    if "allow_pickle" in accepted:
        kwargs["allow_pickle"] = allow_pickle
    if "allow_unfinished" in accepted:
        kwargs["allow_unfinished"] = True  # checked above
    unknown = sorted(k for k, v in kwargs.items() if k not in accepted and v is not None)
    if unknown:
        raise UserError(
            f"{flag} {path} is {kind} data, which has no option {', '.join(unknown)}. "
            f"Its options: {', '.join(list(accepted)[1:])}"
        )
    return reader(path, **{k: v for k, v in kwargs.items() if k in accepted})


def _describe(path: Path) -> str:
    if path.is_file():
        return f"a {path.suffix or 'extension-less'} file"
    names = sorted(p.name for p in path.iterdir())
    return f"{len(names)} entries: " + ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _finished_parts(folder: Path, flag: str) -> list[Path]:
    from statcell_tf.data.prepare.run import SUMMARY_FILE  # written when a part's run completes

    return part_files(folder, flag, finished=lambda part: (part / SUMMARY_FILE).is_file())


def _read_parts(folder: Path, allow_pickle: bool, flag: str, **kwargs) -> CellImages:
    """The parts of a ``prepare-crops --shard K/N`` output, once all are finished, as one data set
    (parts in K order: the cells of one unsharded run, in its order)."""
    parts = _finished_parts(folder, flag)
    cells = [read_cells(part, allow_pickle, flag, **kwargs) for part in parts]
    for part, other in zip(parts[1:], cells[1:]):
        if other.channel_names != cells[0].channel_names or other.image_shape != cells[0].image_shape:
            raise UserError(
                f"{flag} {part}: channels {', '.join(other.channel_names)} and image shape {other.image_shape} "
                f"differ from {parts[0].name}'s ({', '.join(cells[0].channel_names)}, {cells[0].image_shape}); "
                "expected the parts of one prepare-crops run"
            )
    metadata = pd.concat([c.metadata for c in cells], ignore_index=True)
    return CellImages(ConcatenatedImages([c.images for c in cells]), metadata, cells[0].channel_names, str(folder))
