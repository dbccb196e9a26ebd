"""DeepLoc yeast HDF5 sets (Kraus et al. 2017): tagged protein + brightfield, one-hot classes.

``data1`` (or ``data``) is (N, 2·S·S) float: two flattened S×S channels one after the other,
the RFP-tagged protein first, then DIC (brightfield), each row-major: row i of channel c is
``flat[c·S² + i·S : c·S² + (i+1)·S]``. Checked by eye on the 36-cell Schuldiner test set
(64×64): the first block shows bright fluorescent spots on a dark background, the second the
grey DIC cell outlines; it matches the authors' ``flatBatch2Tensor`` (each block reshaped to
(S, S)). ``Index1`` (or ``Index``) is the (N, K) one-hot localisation; K = 11 for the
Schuldiner / Chong localisation sets read here, named in `CLASSES` order.
"""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from statcell_tf.data import validation
from statcell_tf.data.source import CellImages, ImageArray
from statcell_tf.errors import UserError

CLASSES = (
    "ER", "Bud", "Bud Neck", "Cell Periphery", "Cytosol", "Mitochondria",
    "Nuclear Periphery", "Nucleus", "Punctate", "Vacuole", "Vacuole Membrane",
)  # fmt: skip
CHANNELS = ("protein", "brightfield")
IMAGE_KEYS = ("data1", "data")
LABEL_KEYS = ("Index1", "Index")


class FlatChannelImages(ImageArray):
    """Rows of an HDF5 dataset (N, C·S·S) seen as (N, S, S, C) float32 images, read lazily."""

    def __init__(self, path: Path, key: str, size: int, channels: int):
        self.path, self.key, self.size, self.channels = Path(path), key, size, channels
        self._file = None
        self._lock = threading.Lock()
        with h5py.File(self.path, "r") as file:
            n = file[key].shape[0]
        self.shape = (n, size, size, channels)
        self.dtype = np.dtype(np.float32)

    @property
    def rows(self):
        """The HDF5 dataset of flat rows (opened on first use, kept open)."""
        with self._lock:  # the pipeline gathers batches from several threads
            if self._file is None:
                self._file = h5py.File(self.path, "r")
        return self._file[self.key]

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def _take(self, indices):
        unique, inverse = np.unique(indices, return_inverse=True)  # h5py needs increasing rows
        flat = np.asarray(self.rows[unique], dtype=np.float32)[inverse]
        # (B, C·S·S) -> (B, C, S, S) -> (B, S, S, C)
        return flat.reshape(len(indices), self.channels, self.size, self.size).transpose(0, 2, 3, 1)


def read_deeploc(
    path,
    images_key: str | None = None,
    labels_key: str | None = None,
    expected_shape: tuple[int, int] | None = None,
    check_finite: bool = True,
) -> CellImages:
    """Read a DeepLoc HDF5 file into lazily read (N, S, S, 2) images with class-name labels.

    Args:
        path: str or Path. The ``.h5`` / ``.hdf5`` file.
        images_key: str or None. Dataset of flat images; default the first of data1, data.
        labels_key: str or None. One-hot dataset; default the first of Index1, Index.
        expected_shape: (S, S) or None. Reject images of another size.
        check_finite: bool. Scan for NaN/inf now when the images take less than 512 MB.

    Returns:
        CellImages with channels protein, brightfield and metadata ``label`` (class name),
        ``class_index`` and ``group`` (one per cell: the file records no field of view).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    try:
        with h5py.File(path, "r") as file:
            images_key = _pick(file, path, images_key, IMAGE_KEYS)
            labels_key = _pick(file, path, labels_key, LABEL_KEYS)
            flat_shape = file[images_key].shape
            onehot = np.asarray(file[labels_key])
    except OSError as error:
        raise UserError(f"{path} is not a readable HDF5 file ({str(error).splitlines()[0]})") from None
    size = int(round(np.sqrt(flat_shape[1] / 2))) if len(flat_shape) == 2 else 0
    if len(flat_shape) != 2 or size == 0 or 2 * size * size != flat_shape[1]:
        raise UserError(
            f"{path}:{images_key} must be (N, 2·S·S): two flattened square channels. Received: {flat_shape}"
        )
    if expected_shape is not None and (size, size) != tuple(expected_shape):
        raise UserError(f"{path}: images must be {expected_shape[0]}x{expected_shape[1]}. Received: {size}x{size}")
    if onehot.ndim != 2 or len(onehot) != flat_shape[0]:
        raise UserError(
            f"{path}:{labels_key} must be (N, K) one-hot with N = {flat_shape[0]}. Received: {onehot.shape}"
        )
    bad = (onehot != 0).sum(axis=1) != 1
    if bad.any():
        raise UserError(
            f"{path}:{labels_key} must have exactly one 1 per row. Received: row {int(np.argmax(bad))} "
            f"= {onehot[int(np.argmax(bad))].tolist()}"
        )
    classes = CLASSES if onehot.shape[1] == len(CLASSES) else tuple(f"class_{k}" for k in range(onehot.shape[1]))
    index = onehot.argmax(axis=1)
    metadata = pd.DataFrame(
        {
            "label": [classes[i] for i in index],
            "class_index": index.astype(np.int64),
            "group": [f"cell{i}" for i in range(len(index))],
        }
    )
    images = FlatChannelImages(path, images_key, size, 2)
    if check_finite and 4 * int(np.prod(images.shape)) <= validation.FULL_SCAN_BYTES:
        bad_row = validation.first_nonfinite(images.rows)
        if bad_row is not None:
            raise UserError(
                f"{path}:{images_key} row {bad_row} has NaN or infinite pixels; expected finite values"
            )
    return CellImages(images, metadata, CHANNELS, str(path))


def _pick(file, path: Path, key: str | None, candidates) -> str:
    for name in [key] if key is not None else candidates:
        if name in file:
            return name
    raise UserError(
        f"{path} must hold a dataset named {' or '.join([key] if key else candidates)}. "
        f"Received datasets: {', '.join(file.keys()) or 'none'}"
    )
