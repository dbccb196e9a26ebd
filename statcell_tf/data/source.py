"""`CellImages`: what every reader returns: lazily indexable images plus a metadata table.

Images are never loaded whole unless the user asks: readers hand back memory-mapped npy
arrays, HDF5 datasets or per-file loaders wrapped in an `ImageArray`, and pipelines gather
one batch at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# Data larger than this share of the machine's memory is treated as streaming data: the OpenCell
# reader unmaps the pages each batch read, and the pipeline shuffles it by blocks.
LARGE_DATA_FRACTION = 0.25
# How training data are shuffled (`statcell_tf.data.pipeline.make_dataset`): auto = block for
# large data (`is_large`), full otherwise.
SHUFFLES = ("auto", "full", "block")


def check_shuffle(value: str) -> str:
    """`value` if it names a shuffle (`SHUFFLES`), else a UserError naming ``--shuffle``."""
    if value not in SHUFFLES:
        from statcell_tf.errors import UserError

        raise UserError(f"--shuffle must be one of {', '.join(SHUFFLES)}. Received: {value!r}")
    return value


def physical_memory() -> int:
    """Bytes of physical memory (a huge number where the platform does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def is_large(nbytes: int) -> bool:
    """True for data larger than `LARGE_DATA_FRACTION` of the memory."""
    return nbytes > physical_memory() * LARGE_DATA_FRACTION


class ImageArray:
    """A read-only, lazily loaded stack of images, channel-last.

    Indexing with an int returns one image (H, W, C) or (D, H, W, C); with a slice or an
    integer array it returns a stacked batch. Subclasses implement `_take(indices)` for a
    sorted 1-D integer array.
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"image index {index} out of range for {n} images")
            return self._take(np.array([index % n]))[0]
        if isinstance(index, slice):
            indices = np.arange(len(self))[index]
        else:
            indices = np.asarray(index, dtype=np.int64)
        if indices.size == 0:
            return np.empty((0,) + tuple(self.shape[1:]), self.dtype)
        order = np.argsort(indices, kind="stable")
        batch = self._take(indices[order])  # sorted reads are sequential on disk
        out = np.empty_like(batch)
        out[order] = batch
        return out

    def _take(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ArrayImages(ImageArray):
    """Wrap one array-like (ndarray, np.memmap, h5py.Dataset) of shape (N, ..., C)."""

    def __init__(self, array):
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)

    def _take(self, indices):
        return np.asarray(self.array[indices])


class StackedChannels(ImageArray):
    """Stack single-channel arrays of equal shape (N, H, W) into (N, H, W, C) on access."""

    def __init__(self, channels: Sequence):
        first = channels[0]
        self.channels = list(channels)
        self.shape = tuple(first.shape) + (len(channels),)
        self.dtype = np.result_type(*[c.dtype for c in channels])

    def _take(self, indices):
        return np.stack([np.asarray(c[indices]) for c in self.channels], axis=-1).astype(
            self.dtype, copy=False
        )


class ConcatenatedImages(ImageArray):
    """Concatenate image arrays of equal trailing shape along N (e.g. shards)."""

    def __init__(self, parts: Sequence[ImageArray]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.offsets[-1]),) + tuple(parts[0].shape[1:])
        self.dtype = np.result_type(*[p.dtype for p in parts])

    def _take(self, indices):
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        pieces = [self.parts[p][indices[part_of == p] - self.offsets[p]] for p in np.unique(part_of)]
        return np.concatenate(pieces, axis=0).astype(self.dtype, copy=False)


class FileImages(ImageArray):
    """One file per image, read by `loader(path) -> ndarray` on access."""

    def __init__(self, paths: Sequence[str], loader: Callable[[str], np.ndarray], shape, dtype):
        self.paths = list(paths)
        self.loader = loader
        self.shape = (len(self.paths),) + tuple(shape)
        self.dtype = np.dtype(dtype)

    def _take(self, indices):
        return np.stack([self.loader(self.paths[i]) for i in indices]).astype(self.dtype, copy=False)


class ChannelSelection(ImageArray):
    """A view of some channels of another ImageArray."""

    def __init__(self, base: ImageArray, channels: Sequence[int]):
        self.base = base
        self.channels = list(channels)
        self.shape = tuple(base.shape[:-1]) + (len(self.channels),)
        self.dtype = base.dtype

    def _take(self, indices):
        return self.base[indices][..., self.channels]


@dataclasses.dataclass
class CellImages:
    """Images of single cells plus one metadata row per image.

    Attributes:
        images: ImageArray. (N, H, W, C) or (N, D, H, W, C), channel-last, lazily read.
        metadata: pandas.DataFrame. N rows in image order. Readers fill the columns their
            format has; common ones are ``label`` (the class a model predicts), ``group``
            (the key splits never break up: field of view, plate/well, cell id) and
            ``family`` (ground-truth localisation, where known).
        channel_names: tuple of str. One name per channel.
        source: str. Where the data came from (for messages and run records).
    """

    images: ImageArray
    metadata: pd.DataFrame
    channel_names: tuple[str, ...]
    source: str = ""

    def __post_init__(self):
        if len(self.metadata) != len(self.images):
            raise ValueError(
                f"metadata has {len(self.metadata)} rows but there are {len(self.images)} images "
                f"in {self.source}"
            )
        if len(self.channel_names) != self.images.shape[-1]:
            raise ValueError(
                f"{len(self.channel_names)} channel names for {self.images.shape[-1]} channels "
                f"in {self.source}"
            )
        self.metadata = self.metadata.reset_index(drop=True)
        self.channel_names = tuple(self.channel_names)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def select_channels(self, names: Sequence[str]) -> "CellImages":
        """Keep the named channels, in the given order."""
        missing = [n for n in names if n not in self.channel_names]
        if missing:
            from statcell_tf.errors import UserError

            raise UserError(
                f"--channels: unknown channel(s) {', '.join(missing)} in {self.source}; "
                f"available: {', '.join(self.channel_names)}"
            )
        index = [self.channel_names.index(n) for n in names]
        return CellImages(ChannelSelection(self.images, index), self.metadata, tuple(names), self.source)

    def subset(self, rows: np.ndarray) -> "CellImages":
        """Images and metadata rows at the given indices (lazily)."""
        rows = np.asarray(rows, dtype=np.int64)
        return CellImages(_Subset(self.images, rows), self.metadata.iloc[rows], self.channel_names, self.source)


class _Subset(ImageArray):
    def __init__(self, base: ImageArray, rows: np.ndarray):
        self.base = base
        self.rows = rows
        self.shape = (len(rows),) + tuple(base.shape[1:])
        self.dtype = base.dtype

    def _take(self, indices):
        return self.base[self.rows[indices]]
