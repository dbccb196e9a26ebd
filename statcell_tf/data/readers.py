"""`read_cells`: open any supported data set by looking at what the path holds."""

from __future__ import annotations

from pathlib import Path

from statcell_tf.data import allencell, bbbc021, opencell
from statcell_tf.data.source import CellImages
from statcell_tf.errors import UserError


def detect_format(path) -> str:
    """``"opencell"``, ``"bbbc021"``, ``"allencell"`` or ``"deeploc"`` for `path`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    if opencell.is_opencell_folder(path):
        return "opencell"
    if bbbc021.is_bbbc021(path):
        return "bbbc021"
    if allencell.is_manifest(path) or (path.is_dir() and allencell.is_manifest(path / "manifest.csv")):
        return "allencell"
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        return "deeploc"
    if path.is_dir() and not any(path.iterdir()):
        raise UserError(f"--data {path} is an empty folder")
    raise UserError(
        f"--data {path}: no supported data found. Expected an OpenCell folder (*_pro.npy or "
        "Image_data*.npy), a BBBC021 folder (metadata.csv + crops), an Allen manifest CSV "
        "(CellId, structure_name, path) or a DeepLoc .hdf5"
    )


def read_cells(path, allow_pickle: bool = False, **kwargs) -> CellImages:
    """Read `path` with the reader its format needs; `kwargs` go to that reader."""
    kind = detect_format(path)
    if kind == "opencell":
        return opencell.read_opencell(path, allow_pickle=allow_pickle, **kwargs)
    if kind == "bbbc021":
        return bbbc021.read_bbbc021(path, **kwargs)
    if kind == "allencell":
        return allencell.read_allencell(path, **kwargs)
    from statcell_tf.data.deeploc import read_deeploc

    return read_deeploc(path, **kwargs)
