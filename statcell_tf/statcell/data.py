"""Batches for the Statistical Cell models from any `CellImages` with membrane/DNA/structure.

Turns channel-last cell images into the model's dict batches: reference model
``{"image": [membrane, dna]}``; target model ``{"image": [structure], "reference":
[membrane, dna], "target_type": int}``. Each channel of each image is scaled to [0, 1] by its
maximum (the paper's per-channel rescaling, §6.1.2; backgrounds are assumed subtracted) and
centre-cropped or zero-padded to the model's image shape (the paper pads to 128×96×64).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from statcell_tf.data.source import CellImages
from statcell_tf.errors import UserError
from statcell_tf.layers.input_normalization import InputNormalization

REFERENCE_CHANNELS = ("membrane", "dna")
STRUCTURE_CHANNEL = "structure"
TYPE_COLUMN = "structure_name"
BACKGROUNDS = ("none", "mode")


def fit_shape(images: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Centre-crop or zero-pad the spatial axes of (N, *spatial, C) to `shape`."""
    images = np.asarray(images)
    spatial = images.shape[1:-1]
    if len(spatial) != len(shape):
        raise UserError(
            f"the data has {len(spatial)}D images but the model expects {len(shape)}D. "
            f"Received: image shape={tuple(spatial)}, model shape={tuple(shape)}"
        )
    if tuple(spatial) == tuple(shape):
        return images
    crop = []
    pad = [(0, 0)]
    for have, want in zip(spatial, shape):
        start = max(0, (have - want) // 2)
        crop.append(slice(start, start + min(have, want)))
        missing = max(0, want - have)
        pad.append((missing // 2, missing - missing // 2))
    pad.append((0, 0))
    images = images[(slice(None), *crop, slice(None))]
    return np.pad(images, pad)


def default_image_shape(cells: CellImages, rank: int, depth: int) -> tuple[int, ...]:
    """The data's spatial shape (z dropped for a 2D model of 3D data) rounded up to a
    multiple of 2**depth, so every encoder block halves it exactly."""
    spatial = tuple(cells.image_shape[:-1])
    if len(spatial) == rank + 1:
        spatial = spatial[1:]
    if len(spatial) != rank:
        raise UserError(
            f"--dims {rank}: the data {cells.source} has {len(spatial)}D images; a 3D model needs 3D data. "
            f"Received: image shape={spatial}"
        )
    factor = 2**depth
    return tuple(int(-(-s // factor) * factor) for s in spatial)


def structure_types(metadata: pd.DataFrame) -> list[str]:
    """Sorted structure names (the target types)."""
    if TYPE_COLUMN not in metadata.columns:
        raise UserError(
            f"the metadata has no {TYPE_COLUMN!r} column (needed for the target model). "
            f"Received: columns={', '.join(map(str, metadata.columns))}"
        )
    return sorted(metadata[TYPE_COLUMN].astype(str).unique().tolist())


class StatcellData:
    """Model batches from a `CellImages` (lazy reads, one batch at a time).

    Args:
        cells: CellImages with channels ``membrane``, ``dna`` (and ``structure`` for the
            target model).
        role: str. ``"reference"`` or ``"target"``.
        image_shape: spatial shape of the model.
        types: list of str or None. Target types in model order (None = from the metadata).
        background: str. ``"none"`` (data already preprocessed, like the Allen data package)
            or ``"mode"`` (subtract each channel's most populous intensity first, §6.1.2).
    """

    def __init__(self, cells: CellImages, role: str, image_shape: Sequence[int], types: list[str] | None = None,
                 background: str = "none"):
        if background not in BACKGROUNDS:
            raise UserError(f"--background must be one of {', '.join(BACKGROUNDS)}. Received: {background!r}")
        self.background = background
        # The same layer the model owns (ConditionalBetaVAE.preprocessing): one implementation.
        self.preprocessing = InputNormalization("mode" if background == "mode" else "max")
        needed = REFERENCE_CHANNELS + ((STRUCTURE_CHANNEL,) if role == "target" else ())
        missing = [c for c in needed if c not in cells.channel_names]
        if missing:
            raise UserError(
                f"--data {cells.source}: the {role} model needs channels {', '.join(needed)}; missing "
                f"{', '.join(missing)}. Received: channels={', '.join(cells.channel_names)}"
            )
        self.cells = cells
        self.role = role
        self.image_shape = tuple(int(s) for s in image_shape)
        self.channel_index = [cells.channel_names.index(c) for c in needed]
        self.types = list(types) if types is not None else (structure_types(cells.metadata) if role == "target" else [])
        self.type_index = np.full(len(cells), -1, "int32")
        if role == "target":
            lookup = {name: i for i, name in enumerate(self.types)}
            names = cells.metadata[TYPE_COLUMN].astype(str) if TYPE_COLUMN in cells.metadata else None
            if names is None:
                structure_types(cells.metadata)  # raises the clear error
            self.type_index = np.array([lookup.get(n, -1) for n in names], "int32")

    def __len__(self) -> int:
        return len(self.cells)

    def raw_images(self, indices) -> np.ndarray:
        """Shape-fitted, unnormalised images (n, *shape, 2 or 3): [membrane, dna(, structure)].

        3D data given to a 2D model is max-projected along z first (the paper's 2D data, §4.3).
        """
        raw = np.asarray(self.cells.images[np.asarray(indices, "int64")])[..., self.channel_index]
        if raw.ndim == len(self.image_shape) + 3:  # (n, Z, Y, X, C) for a 2D model
            raw = raw.max(axis=1)
        return fit_shape(raw, self.image_shape)

    def images(self, indices) -> np.ndarray:
        """Normalised, shape-fitted images (n, *shape, 2 or 3): [membrane, dna(, structure)]."""
        return np.asarray(self.preprocessing(self.raw_images(indices)))

    def batch(self, indices) -> dict:
        """The model batch (numpy) for these rows."""
        return self.batch_from_images(self.images(indices), self.type_index[np.asarray(indices, "int64")])

    def batch_from_images(self, images: np.ndarray, type_index=None) -> dict:
        """Model batch from normalised [membrane, dna(, structure)] images."""
        if self.role == "reference":
            return {"image": images[..., :2]}
        type_index = np.asarray(type_index, "int32")
        if (type_index < 0).any():
            raise UserError(
                f"--data {self.cells.source}: structure types unknown to the model; known: {', '.join(self.types)}"
            )
        return {"image": images[..., 2:3], "reference": images[..., :2], "target_type": type_index}

    def iterate(self, indices, batch_size: int):
        """Yield (row indices, batch) over `indices` in order."""
        indices = np.asarray(indices, "int64")
        for start in range(0, len(indices), batch_size):
            rows = indices[start : start + batch_size]
            yield rows, self.batch(rows)

    def dataset(self, indices, batch_size: int, shuffle: bool = False, seed: int = 0,
                repeat: bool = False, drop_remainder: bool = False, epoch: int | None = None):
        """tf.data.Dataset of dict batches over `indices` (reshuffled every pass); with `epoch`
        (from 1) only that epoch, ordered by (`seed`, `epoch`) alone, so a resumed run reads
        what an uninterrupted one reads."""
        from statcell_tf.backend import tf

        indices = np.asarray(indices, "int64")
        if len(indices) == 0:
            raise UserError(f"--data {self.cells.source}: no cells in this split")
        channels = 2 if self.role == "reference" else 1
        spec = {"image": tf.TensorSpec([None, *self.image_shape, channels], tf.float32)}
        if self.role == "target":
            spec["reference"] = tf.TensorSpec([None, *self.image_shape, 2], tf.float32)
            spec["target_type"] = tf.TensorSpec([None], tf.int32)
        stop = len(indices) - (len(indices) % batch_size if drop_remainder else 0)
        num_batches = -(-stop // batch_size)
        if num_batches == 0:
            raise UserError(f"--batch-size {batch_size} is larger than the {len(indices)} cells of this split")

        def generate(key):
            # Epoch key from the dataset below: a new order per pass, replayed on resume.
            order = np.random.default_rng([seed, abs(int(key))]).permutation(indices) if shuffle else indices
            for start in range(0, stop, batch_size):
                yield self.batch(order[start : min(start + batch_size, stop)])

        def one_epoch(key):
            epoch = tf.data.Dataset.from_generator(generate, args=(key,), output_signature=spec)
            return epoch.apply(tf.data.experimental.assert_cardinality(num_batches))

        if epoch is not None:
            return one_epoch(tf.constant(int(epoch), tf.int64)).prefetch(2)
        epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = epochs.flat_map(one_epoch) if repeat else epochs.take(1).flat_map(one_epoch)
        if not repeat:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
        return dataset.prefetch(2)


TOY_STRUCTURES = ("Nucleoli", "Mitochondria", "Plasma membrane")


def toy_cells(
    n: int,
    spatial: Sequence[int] = (32, 32),
    seed: int = 0,
    mitotic_fraction: float = 0.15,
    structures: Sequence[str] = TOY_STRUCTURES,
) -> CellImages:
    """Small in-memory Allen-style cells (for tests, benchmarks and quick experiments).

    Each cell is an ellipse (2D) or ellipsoid (3D) of random size, elongation and position;
    the membrane channel is a bright rim over a dim interior, the DNA a filled nucleus whose
    size and offset vary independently of the cell, the structure one of `structures`:
    ``Nucleoli`` (blobs inside the nucleus), ``Mitochondria`` (blobs in the cytoplasm),
    ``Plasma membrane`` (the rim). Mitotic cells are round with condensed chromatin.

    Returns:
        CellImages with channels (membrane, dna, structure), float32 in [0, 1], and metadata
        CellId, structure_name, cell_cycle_phase, label, group.
    """
    rng = np.random.default_rng(seed)
    spatial = tuple(int(s) for s in spatial)
    grids = np.meshgrid(*[np.arange(s, dtype="float32") for s in spatial], indexing="ij")
    centre = np.array([(s - 1) / 2 for s in spatial], "float32")
    images = np.zeros((n, *spatial, 3), "float32")
    rows = []
    for i in range(n):
        mitotic = rng.random() < mitotic_fraction
        base = np.array(spatial, "float32") / 2
        if mitotic:
            radii_cell = base * 0.55 * rng.uniform(0.9, 1.0)
            radii_cell[:] = radii_cell.min()
        else:
            radii_cell = base * rng.uniform(0.55, 0.9, size=len(spatial))
        shift = rng.uniform(-0.1, 0.1, size=len(spatial)) * np.array(spatial)
        c = centre + shift
        r_cell = np.sqrt(sum(((g - c[k]) / radii_cell[k]) ** 2 for k, g in enumerate(grids)))
        inside = r_cell <= 1.0
        rim = np.exp(-(((r_cell - 1.0) / 0.12) ** 2)) * (r_cell < 1.3)
        membrane = 0.25 * inside + rim
        if mitotic:  # condensed chromatin: a small bright plate at the centre
            radii_nuc = radii_cell * np.array([0.18] + [0.45] * (len(spatial) - 1), "float32")
            nuc_c = c
        else:
            radii_nuc = radii_cell * rng.uniform(0.35, 0.6, size=len(spatial))
            nuc_c = c + rng.uniform(-0.25, 0.25, size=len(spatial)) * radii_cell
        r_nuc = np.sqrt(sum(((g - nuc_c[k]) / radii_nuc[k]) ** 2 for k, g in enumerate(grids)))
        nucleus = r_nuc <= 1.0
        dna = nucleus * (0.6 + 0.4 * np.clip(1.0 - r_nuc, 0, 1)) * (1.6 if mitotic else 1.0)
        name = structures[i % len(structures)]
        structure = np.zeros(spatial, "float32")
        if name == "Plasma membrane":
            structure = rim.astype("float32")
        else:
            region = (nucleus if name == "Nucleoli" and not mitotic else inside & ~nucleus) if name in (
                "Nucleoli", "Mitochondria") else inside
            points = np.argwhere(region)
            if len(points):
                for point in points[rng.choice(len(points), size=min(len(points), 4 if name == "Nucleoli" else 8))]:
                    d2 = sum((g - point[k]) ** 2 for k, g in enumerate(grids))
                    structure += np.exp(-d2 / (2 * 1.2**2))
        stack = np.stack([membrane, dna, structure], axis=-1).astype("float32")
        images[i] = stack / np.maximum(stack.max(axis=tuple(range(len(spatial))), keepdims=True), 1e-6)
        rows.append({
            "CellId": f"toy{seed}_{i}",
            "structure_name": name,
            "cell_cycle_phase": "mitosis" if mitotic else "interphase",
        })
    metadata = pd.DataFrame(rows)
    metadata["label"] = metadata["structure_name"]
    metadata["group"] = metadata["CellId"]
    from statcell_tf.data.source import ArrayImages

    return CellImages(ArrayImages(images), metadata, ("membrane", "dna", "structure"), source=f"toy_cells(seed={seed})")
