"""Cells for the Integrated Cell model from any Allen-style `CellImages`.

The paper's preprocessing (section 3.1): per channel, subtract the most populous pixel
intensity, zero negative values, rescale to [0, 1]; max-project 3D stacks along z. Here each
image is reduced to the model's view lazily, one batch at a time: channels (membrane, DNA,
structure) in that order, 3D stacks max-projected over z, that normalisation, then a centre
crop or zero pad to the model's image size.
Structure classes are indexed by name in a fixed, sorted list saved with the model, so a
data set holding only some structures maps onto the trained classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from statcell_tf.data.source import CellImages, ImageArray
from statcell_tf.errors import UserError

CHANNELS = ("membrane", "dna", "structure")
NAME_COLUMN = "structure_name"
LABEL_COLUMN = "structure_label"  # index of structure_name in the model's class list
ID_COLUMN = "CellId"


def normalise(images: np.ndarray) -> np.ndarray:
    """Section 3.1 per image and channel: subtract the most populous intensity (the
    background), zero negative values, rescale to [0, 1]. The same layer the models'
    SavedModel endpoints apply (`InputNormalization("mode")`)."""
    from statcell_tf.layers.input_normalization import InputNormalization

    return np.asarray(InputNormalization("mode")(np.asarray(images, "float32")))


def fit_size(images: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre-crop or zero-pad (N, H, W, C) images to `size` = (H', W')."""
    pads, crops = [(0, 0)], [slice(None)]
    for have, want in zip(images.shape[1:3], size):
        start = max(0, (have - want) // 2)
        crops.append(slice(start, start + min(have, want)))
        missing = max(0, want - have)
        pads.append((missing // 2, missing - missing // 2))
    images = images[tuple(crops)]
    return np.pad(images, pads + [(0, 0)]) if any(p != (0, 0) for p in pads) else images


class ModelViewImages(ImageArray):
    """(N, H, W, 3) float32 view of Allen-style images: membrane, DNA, structure in [0, 1].

    Args:
        base: ImageArray. (N, H, W, C) or (N, D, H, W, C) source images.
        channels: list of int. Indices of membrane, DNA and structure in `base`.
        size: (H', W'). The model's image size.
    """

    def __init__(self, base: ImageArray, channels: Sequence[int], size: Sequence[int]):
        self.base = base
        self.channels = list(channels)
        self.size = tuple(int(s) for s in size)
        self.shape = (len(base), *self.size, len(self.channels))
        self.dtype = np.dtype("float32")

    def _take(self, indices):
        raw = np.asarray(self.base[indices], "float32")[..., self.channels]
        if raw.ndim == 5:  # (N, D, H, W, C): max projection along z (section 3.1)
            raw = raw.max(axis=1)
        return normalise(fit_size(raw, self.size))


def class_names_of(cells: CellImages, flag: str = "--data") -> list[str]:
    """Sorted structure names of the data set (the class order of a new model)."""
    _require_columns(cells, (NAME_COLUMN,), flag)
    return sorted(cells.metadata[NAME_COLUMN].astype(str).unique().tolist())


def _require_columns(cells: CellImages, columns, flag):
    missing = [c for c in columns if c not in cells.metadata.columns]
    if missing:
        raise UserError(
            f"{flag} {cells.source}: metadata needs column(s) {', '.join(missing)}. "
            f"Received: columns={', '.join(map(str, cells.metadata.columns))}"
        )


def model_view(
    cells: CellImages, size: Sequence[int], class_names: Sequence[str] | None = None, flag: str = "--data"
) -> CellImages:
    """`cells` as the model sees them, with a ``structure_label`` column.

    Args:
        cells: CellImages with channels membrane, dna, structure and a ``structure_name``
            column (and ``CellId``).
        size: (H, W) of the model.
        class_names: list of str or None. The model's classes in label order; rows whose
            structure is not among them get label −1 (None = every structure of `cells`).
        flag: str. How the user passed the data (for messages).
    """
    missing = [c for c in CHANNELS if c not in cells.channel_names]
    if missing:
        raise UserError(
            f"{flag} {cells.source}: the Integrated Cell needs channels {', '.join(CHANNELS)}; missing "
            f"{', '.join(missing)}. Received: channels={', '.join(cells.channel_names)}"
        )
    if len(cells.images.shape) not in (4, 5):
        raise UserError(
            f"{flag} {cells.source}: expected 2D (N, H, W, C) or 3D (N, D, H, W, C) images. "
            f"Received: shape={tuple(cells.images.shape)}"
        )
    _require_columns(cells, (NAME_COLUMN, ID_COLUMN), flag)
    names = list(class_names) if class_names is not None else class_names_of(cells, flag)
    lookup = {name: i for i, name in enumerate(names)}
    metadata = cells.metadata.reset_index(drop=True).copy()
    metadata[LABEL_COLUMN] = np.array([lookup.get(n, -1) for n in metadata[NAME_COLUMN].astype(str)], "int32")
    images = ModelViewImages(cells.images, [cells.channel_names.index(c) for c in CHANNELS], size)
    return CellImages(images, metadata, CHANNELS, cells.source)


def find_cell(cells: CellImages, cell_id: str, flag: str = "--cell") -> int:
    """Row index of the cell whose ``CellId`` is `cell_id` (compared as text)."""
    ids = cells.metadata[ID_COLUMN].astype(str).to_numpy()
    rows = np.flatnonzero(ids == str(cell_id))
    if len(rows) == 0:
        examples = ", ".join(ids[:5])
        raise UserError(
            f"{flag}: no cell with CellId {cell_id!r} in {cells.source} (e.g. {examples}). Received: {cell_id!r}"
        )
    return int(rows[0])


