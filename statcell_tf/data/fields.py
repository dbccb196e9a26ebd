"""Field-of-view readers: 2D / 3D TIFF, OME-TIFF and OME-Zarr images, one channel at a time.

A field of view arrives either as one file per channel or as one multi-channel file from which
a channel is picked by index (``0``, ``1``, ...) or, where the file names its channels (OME
metadata), by name. Every image comes back as ``(Y, X)`` or ``(Z, Y, X)``.

Axes are taken from the file's metadata:

- TIFF / OME-TIFF (``tifffile``, first series): OME and ImageJ files name their axes (``CZYX``,
  ``ZCYX``, ``TCZYX``, ...); samples (``S``, e.g. planar RGB) count as channels. Axes of
  length 1 are dropped. A file without axis names (axis ``Q`` / ``I``: a plain multi-page
  TIFF) is read as channels when the field names a channel index for it, else as a z-stack.
- OME-Zarr (``zarr``, NGFF 0.1–0.5): the first multiscale image's level 0 (its first
  ``datasets`` entry), axes from ``multiscales[0].axes`` (by name; by ``type`` channel /
  space when the names are unusual), channel names from ``omero.channels[].label``. Only the
  chunks of the requested channel are read. A plain zarr array without NGFF metadata is read
  with the same rules as a TIFF without axis names.

A time axis longer than 1 is refused (pick one time point first).

Dependency: OME-Zarr is read with ``zarr`` alone (zarr-python, the format's reference
implementation, whose only heavy dependency is numcodecs); the NGFF metadata is a few lines
of JSON read here. ``ome-zarr`` (ome-zarr-py) would add dask, fsspec, aiohttp and requests
for what those lines do, and bioio / aicsimageio a plugin system and many more packages. zarr
is imported only when a zarr path is read, so TIFF users never need it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from statcell_tf.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
_KNOWN = set("TCZYX")


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What a file holds, read from its header (no pixels).

    Attributes:
        path: str. The file (or zarr folder).
        kind: str. ``"tiff"`` or ``"zarr"``.
        shape: tuple of int. Array shape, axes of length 1 dropped.
        axes: str. One letter per axis of `shape`, from ``TCZYX`` or ``?`` (unnamed).
        dtype: numpy dtype.
        channel_names: tuple of str. Channel names from the metadata (may be empty).
        dataset: str. zarr only: the path of level 0 inside the group ("" for a plain array).
        stored_axes: str. zarr only: the axes of the stored array, length-1 axes included.
        pages: str. What the one unnamed axis of a file without axis names holds, as the user
            said: ``"z"``, ``"channels"``, or ``""`` (not said: such a file is refused unless a
            channel index is given, which says its pages are channels).
    """

    path: str
    kind: str
    shape: tuple[int, ...]
    axes: str
    dtype: np.dtype
    channel_names: tuple[str, ...] = ()
    dataset: str = ""
    stored_axes: str = ""
    pages: str = ""

    def resolved_axes(self, with_channel: bool) -> str:
        """Axes with the unnamed axis read as channels (`with_channel`, or ``pages="channels"``)
        or as z (``pages="z"``); not said: refused, never guessed."""
        if "?" not in self.axes:
            return self.axes
        if self.pages == "channels":
            with_channel = True
        elif not with_channel and self.pages != "z" and self.axes.count("?") == 1:
            raise UserError(
                f"{self.path}: a multi-page file without axis names ({self.shape[self.axes.index('?')]} pages): "
                "cannot tell z-slices from channels; pass --pages z (a z-stack) or --pages channels (then name "
                f"the channel in a <channel>_channel column). Received: shape {self.shape}, no axis names"
            )
        if self.axes.count("?") > 1 or ("C" if with_channel else "Z") in self.axes:
            raise UserError(
                f"{self.path}: cannot tell which axis is which; expected axis names (OME-TIFF, ImageJ or "
                f"OME-Zarr metadata) or at most one unnamed axis besides Y and X. Received: shape {self.shape}, "
                f"axes {self.axes.replace('?', 'Q')}"
            )
        return self.axes.replace("?", "C" if with_channel else "Z")

    def n_channels(self, with_channel: bool = False) -> int:
        """Number of channels (1 when the file has no channel axis)."""
        axes = self.resolved_axes(with_channel)
        return self.shape[axes.index("C")] if "C" in axes else 1

    def spatial_shape(self, with_channel: bool = False) -> tuple[int, ...]:
        """``(Y, X)`` or ``(Z, Y, X)`` of one channel."""
        axes = self.resolved_axes(with_channel)
        return tuple(self.shape[axes.index(a)] for a in "ZYX" if a in axes)


def _error_text(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def image_kind(path: str | Path) -> str:
    """``"tiff"`` or ``"zarr"`` from the name (and, for folders, the zarr metadata files)."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        if name.endswith(ZARR_SUFFIXES) or any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zarray")):
            return "zarr"
        raise UserError(
            f"{path} is a folder but not a zarr store; expected a TIFF / OME-TIFF file or an OME-Zarr folder. "
            "Received: a folder without zarr.json, .zgroup or .zarray"
        )
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    raise UserError(
        f"{path}: unsupported image file; expected .tif, .tiff, .ome.tif(f) or an .ome.zarr folder. "
        f"Received: {path.suffix or 'no suffix'}"
    )


def _squeeze(shape, axes):
    kept = [(n, a) for n, a in zip(shape, axes) if n != 1 or a in "YX"]
    return tuple(n for n, _ in kept), "".join(a for _, a in kept)


def _check_axes(path: str, shape: tuple[int, ...], axes: str) -> None:
    if "T" in axes:
        raise UserError(
            f"{path} is a time series ({shape[axes.index('T')]} time points); expected one time point per "
            f"field of view. Received: shape {shape}, axes {axes}"
        )
    if not ({"Y", "X"} <= set(axes)) or len(set(axes.replace("?", ""))) != len(axes.replace("?", "")):
        raise UserError(f"{path} must hold a 2D or 3D image with Y and X axes. Received: shape {shape}, axes {axes}")
    if len(axes) > 4:
        raise UserError(f"{path} has more axes than C, Z, Y, X. Received: shape {shape}, axes {axes}")


def _tiff_header(path: str) -> ImageHeader:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes.upper()
            dtype = np.dtype(series.dtype)
            names: tuple[str, ...] = ()
            if tif.is_ome and tif.ome_metadata:
                names = _ome_channel_names(tif.ome_metadata)
    except UserError:
        raise
    except Exception as error:  # tifffile raises many types for broken files
        raise UserError(f"{path} is not a readable TIFF ({_error_text(error)})") from None
    if "S" in axes:
        # Samples (RGB, planar or interleaved) are channels; with a C axis too, they must be 1.
        axes = axes.replace("S", "C") if "C" not in axes else axes
    axes = "".join(a if a in _KNOWN else "?" for a in axes)
    shape, axes = _squeeze(shape, axes)
    _check_axes(path, shape, axes)
    return ImageHeader(str(path), "tiff", shape, axes, dtype, names if "C" in axes else ())


def _ome_channel_names(xml: str) -> tuple[str, ...]:
    import tifffile

    try:
        pixels = tifffile.xml2dict(xml)["OME"]["Image"]
        pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
        channels = pixels.get("Channel", [])
        channels = channels if isinstance(channels, list) else [channels]
        return tuple(str(c.get("Name", "")) for c in channels)
    except Exception:  # names are a convenience; a file without them still reads
        return ()


def _zarr_open(path: str):
    try:
        import zarr
    except ImportError:
        raise UserError(
            f"{path} is an OME-Zarr image; reading it needs the zarr package (pip install 'zarr>=3.1'). "
            "Received: zarr is not installed"
        ) from None
    try:
        return zarr.open(path, mode="r")
    except Exception as error:
        raise UserError(f"{path} is not a readable zarr store ({_error_text(error)})") from None


def ngff_attributes(attrs: dict) -> dict:
    """The NGFF attributes of a zarr node: 0.5 (zarr v3) nests them under ``"ome"``, 0.1–0.4 do not."""
    attrs = dict(attrs)
    return attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs


def zarr_attributes(path: str | Path) -> dict:
    """The NGFF attributes of the zarr group at `path` (`ngff_attributes`); a plain array has none.

    Raises:
        UserError: `path` is not a readable zarr store, or zarr is not installed.
    """
    return ngff_attributes(_zarr_open(str(path)).attrs)


def _ngff(attrs: dict) -> dict | None:
    """The NGFF attributes of an image (0.5 nests them under "ome"), or None."""
    ngff = ngff_attributes(attrs)
    return ngff if "ome" in attrs or "multiscales" in ngff else None


def _zarr_axes(path: str, multiscale: dict, ndim: int) -> str:
    axes = multiscale.get("axes")
    if axes is None:  # NGFF 0.1 / 0.2: always 5D TCZYX
        return "TCZYX"[-ndim:]
    letters = []
    for axis in axes:
        name = (axis if isinstance(axis, str) else str(axis.get("name", ""))).lower()
        kind = "" if isinstance(axis, str) else str(axis.get("type", "")).lower()
        if name in ("t", "c", "z", "y", "x"):
            letters.append(name.upper())
        elif kind == "time":
            letters.append("T")
        elif kind == "channel":
            letters.append("C")
        else:
            letters.append("?")
    if len(letters) != ndim:
        raise UserError(
            f"{path}: multiscales axes name {len(letters)} axes but level 0 has {ndim}. Received: axes {axes}"
        )
    return "".join(letters)


def _zarr_header(path: str) -> ImageHeader:
    node = _zarr_open(path)
    dataset = ""
    names: tuple[str, ...] = ()
    if hasattr(node, "shape"):  # a plain array
        array = node
        axes = {2: "YX", 3: "?YX", 4: "CZYX", 5: "TCZYX"}.get(array.ndim, "?" * array.ndim)
    else:
        ngff = _ngff(dict(node.attrs))
        if ngff is None or not ngff.get("multiscales"):
            raise UserError(
                f"{path} is a zarr group without OME-Zarr multiscales metadata; expected an OME-Zarr image. "
                f"Received: attributes {sorted(dict(node.attrs))}"
            )
        multiscale = ngff["multiscales"][0]
        try:
            dataset = str(multiscale["datasets"][0]["path"])
            array = node[dataset]
        except Exception as error:
            raise UserError(f"{path}: level 0 of the multiscale image cannot be opened ({_error_text(error)})") from None
        axes = _zarr_axes(path, multiscale, array.ndim)
        channels = (ngff.get("omero") or {}).get("channels") or []
        names = tuple(str(c.get("label", "")) for c in channels if isinstance(c, dict))
    stored = axes
    shape, axes = _squeeze(tuple(int(n) for n in array.shape), axes)
    _check_axes(path, shape, axes)
    names = names if "C" in axes else ()
    return ImageHeader(str(path), "zarr", shape, axes, np.dtype(array.dtype), names, dataset, stored)


def read_header(path: str | Path, pages: str = "") -> ImageHeader:
    """Shape, axes, dtype and channel names of an image file, from its header only.

    Args:
        path: str or Path. A TIFF / OME-TIFF file or an OME-Zarr folder.
        pages: str. What an unnamed axis holds: ``"z"``, ``"channels"`` or ``""`` (unknown;
            see `ImageHeader.pages`).

    Returns:
        ImageHeader.

    Raises:
        UserError: the file is missing, of an unsupported kind, unreadable, or not an image
            with Y and X axes (or a time series).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; expected an image file. Received: a missing path")
    kind = image_kind(path)
    header = _tiff_header(str(path)) if kind == "tiff" else _zarr_header(str(path))
    return dataclasses.replace(header, pages=pages) if pages else header


def channel_index(header: ImageHeader, channel: int | str | None, what: str = "channel") -> int | None:
    """The channel axis index named by `channel` (index or metadata name), checked.

    Args:
        header: ImageHeader. The file.
        channel: int, str or None. Index (``2`` or ``"2"``), a channel name from the file's
            metadata, or None for a single-channel file.
        what: str. How to name the setting in messages (e.g. ``"column dna_channel"``).

    Returns:
        int index along the channel axis, or None when the file has no channel axis.
    """
    with_channel = channel is not None
    n = header.n_channels(with_channel)
    axes = header.resolved_axes(with_channel)
    if channel is None:
        if "C" in axes and n > 1:
            names = f" ({', '.join(header.channel_names)})" if any(header.channel_names) else ""
            raise UserError(
                f"{header.path} has {n} channels{names}; expected a single-channel file or a channel index in "
                f"{what}. Received: no channel index"
            )
        return None
    text = str(channel).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
    elif text in header.channel_names:
        index = header.channel_names.index(text)
    else:
        names = ", ".join(header.channel_names) if any(header.channel_names) else "none in its metadata"
        raise UserError(
            f"{what} must be a channel index (0..{n - 1}) or a channel name of {header.path} ({names}). "
            f"Received: {text!r}"
        )
    if not 0 <= index < n:
        raise UserError(
            f"{what} must be a channel index from 0 to {n - 1} for {header.path}. Received: {index}"
        )
    return index if "C" in axes else None


def read_channel(header: ImageHeader, index: int | None) -> np.ndarray:
    """One channel of an image as ``(Y, X)`` or ``(Z, Y, X)``, in the file's dtype.

    Args:
        header: ImageHeader. From `read_header`.
        index: int or None. From `channel_index` (None: the file has no channel axis).

    Returns:
        ndarray.
    """
    return read_channels(header, [index])[0]


def read_channels(header: ImageHeader, indices: list[int | None]) -> list[np.ndarray]:
    """Several channels of one image, each ``(Y, X)`` or ``(Z, Y, X)``; a TIFF is read once.

    Args:
        header: ImageHeader. From `read_header`.
        indices: list of int or None. From `channel_index`, one per channel wanted.

    Returns:
        list of ndarrays in the file's dtype.
    """
    with_channel = any(index is not None for index in indices)
    axes = header.resolved_axes(with_channel)
    kept = axes.replace("C", "") if "C" in axes else axes
    order = [kept.index(a) for a in "ZYX" if a in kept]
    out = []
    try:
        if header.kind == "tiff":
            import tifffile

            with tifffile.TiffFile(header.path) as tif:
                whole = tif.series[0].asarray().reshape(header.shape)
            for index in indices:
                out.append(whole if "C" not in axes else np.take(whole, index or 0, axis=axes.index("C")))
        else:
            node = _zarr_open(header.path)
            array = node[header.dataset] if header.dataset else node
            unnamed = "C" if with_channel else "Z"
            for index in indices:
                # Index the stored array: length-1 axes dropped, the channel picked, the rest whole.
                selection = []
                for letter, n in zip(header.stored_axes, array.shape):
                    letter = unnamed if letter == "?" else letter
                    if n == 1 and letter not in "YX":
                        selection.append(0)
                    elif letter == "C":
                        selection.append(index or 0)
                    else:
                        selection.append(slice(None))
                out.append(np.asarray(array[tuple(selection)]))
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"{header.path}: pixels cannot be read ({_error_text(error)})") from None
    return [np.ascontiguousarray(np.transpose(a, order)) for a in out]
