"""DeepLoc yeast HDF5 sets (Kraus et al. 2017): tagged protein + brightfield, 11 classes.

``data1`` is (N, 8192): two flattened 64×64 channels one after the other (RFP-tagged protein,
then DIC), each row-major (checked by eye: both orders give cells, row-major matches the
authors' reshape to (N, 2, 64, 64)). ``Index1`` is the (N, 11) one-hot localisation.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from statcell_tf.data.source import ArrayImages, CellImages
from statcell_tf.errors import UserError

CLASSES = (
    "ER", "Bud", "Bud Neck", "Cell Periphery", "Cytosol", "Mitochondria",
    "Nuclear Periphery", "Nucleus", "Punctate", "Vacuole", "Vacuole Membrane",
)
CHANNELS = ("protein", "brightfield")
SIZE = 64


def read_deeploc(path, images_key: str = "data1", labels_key: str = "Index1") -> CellImages:
    """Read a DeepLoc HDF5 file into (N, 64, 64, 2) images with class-name labels.

    The set is small (the public test sets hold a few thousand cells), so it is read whole.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in (images_key, labels_key) if k not in f]
            if missing:
                raise UserError(
                    f"{path} has no dataset {missing[0]!r}. Received datasets: {', '.join(f.keys())}"
                )
            flat = np.asarray(f[images_key], dtype=np.float32)
            onehot = np.asarray(f[labels_key])
    except OSError as error:
        raise UserError(f"{path} is not a readable HDF5 file ({error})") from None
    if flat.ndim != 2 or flat.shape[1] != 2 * SIZE * SIZE:
        raise UserError(f"{path}:{images_key} must be (N, {2 * SIZE * SIZE}). Received: {flat.shape}")
    if onehot.shape != (len(flat), len(CLASSES)):
        raise UserError(
            f"{path}:{labels_key} must be (N, {len(CLASSES)}) one-hot. Received: {onehot.shape}"
        )
    if not np.isfinite(flat).all():
        raise UserError(f"{path}:{images_key} has NaN or infinite pixels")
    images = flat.reshape(len(flat), 2, SIZE, SIZE).transpose(0, 2, 3, 1)
    labels = [CLASSES[i] for i in onehot.argmax(axis=1)]
    metadata = pd.DataFrame({"label": labels, "group": [f"cell{i}" for i in range(len(flat))]})
    return CellImages(ArrayImages(np.ascontiguousarray(images)), metadata, CHANNELS, str(path))
