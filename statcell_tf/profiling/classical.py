"""Classical (CellProfiler-style) per-cell features: the baseline every learned embedding is shown beside.

Measurements come from cp-measure (CellProfiler's MeasureObjectIntensity, MeasureObjectSizeShape,
MeasureTexture, MeasureObjectIntensityDistribution, MeasureGranularity and MeasureColocalization
as a library), on masks derived from each crop:

- **Masks.** Single-cell crops carry no segmentation, so each crop gets two, CellProfiler's
  usual compartments:

  - ``Nuclei``: the nucleus channel (named dna / dapi / hoechst / nuc / nucleus, else the
    first channel; ``nucleus_channel`` overrides) above its Otsu threshold (computed on the
    crop smoothed with a Gaussian of σ = 1 px, applied to the crop itself), holes filled,
    and the connected component under the crop centre (crops are centred on their
    nucleus), else the largest component;
  - ``Cells``: the mean of all channels, each scaled by its own maximum in the crop,
    thresholded the same way, united with the nucleus, holes filled, and
    the component holding the nucleus.

  A mask smaller than ``min_area`` pixels (a blank or debris crop) is replaced by a centred
  disk of radius min(H, W) / 6 and the cell's ``mask_fallback`` metadata names the
  compartment(s) concerned (``none`` otherwise), so such cells can be filtered. Data with
  one channel gets ``Cells`` only.
- **Intensities** are measured as CellProfiler loads images: integer images divided by the
  maximum of their dtype (uint16 → /65535), float images as they are. 3D crops are
  maximum-projected along z first. Texture quantises ``clip(x, 0, 1)`` to 256 grey levels.
- **Features** (names as CellProfiler writes them, so pycytominer's ``infer_cp_features``
  finds them: ``<Compartment>_<Module>_<Feature>[_<Channel>...]``):

  - ``areashape``: ``AreaShape_*`` (area, perimeter, axes, solidity, moments, Zernike shape
    moments, Feret diameters), per compartment;
  - ``intensity``: ``Intensity_*_<Channel>`` (integrated, mean, SD, min, max, quartiles,
    MAD, mass displacement, edge intensities);
  - ``texture``: Haralick ``Texture_<Feature>_<Channel>_<scale>_<direction>_256``;
  - ``correlation`` (Cells, channel pairs): ``Correlation_Correlation`` (Pearson),
    ``Correlation_Slope``, ``Correlation_Manders``, ``Correlation_RWC``;
  - ``radial`` (Cells): ``RadialDistribution_{FracAtD,MeanFrac,RadialCV}_<Channel>_<k>of4``;
  - ``granularity`` (Cells): ``Granularity_<k>_<Channel>``.

  Position features (``Center_*``, ``BoundingBox*``, ``Location_*``) are left out: they
  describe where the cell sits in its crop, not the cell; so are the normalised moments of
  order < 2, undefined for every object. An undefined value (NaN: e.g.
  a Pearson correlation inside a constant mask, or texture in an object thinner than the
  texture scale) is written as 0 and counted (`ClassicalResult.undefined`).

Each cell is measured on its own (no statistic crosses cells), so the output does not
depend on the chunk size.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from statcell_tf.errors import UserError
from statcell_tf.limits import check_range
from statcell_tf.parallel import map_ordered

GROUPS = ("areashape", "intensity", "texture", "correlation", "radial", "granularity")
DEFAULT_GROUPS = ("areashape", "intensity", "texture", "correlation", "radial")
NUCLEUS_NAMES = ("dna", "dapi", "hoechst", "nuc", "nucleus", "nuclei")
POSITION_FEATURES = re.compile(r"^(Center_|BoundingBox|Location_)")
# skimage's normalised moments of order < 2 are undefined (NaN) for every object
UNDEFINED_FEATURES = re.compile(r"^NormalizedMoment_(0_0|0_1|1_0)$")
_KNOWN_LABELS = {"dna": "DNA", "dapi": "DAPI", "rna": "RNA", "er": "ER", "agp": "AGP", "gfp": "GFP"}


MAX_TEXTURE_SCALE = 32  # pixels: a texture distance beyond it costs minutes per crop and spans the cell

@dataclasses.dataclass(frozen=True)
class ClassicalSettings:
    """What `measure_cells` measures.

    Args:
        groups: tuple of str. Feature groups (`GROUPS`). Defaults to `DEFAULT_GROUPS`.
        nucleus_channel: str or None. Channel the nucleus mask is found on; None = the first
            channel named like DNA (`NUCLEUS_NAMES`), else the first channel.
        texture_scale: int. Haralick co-occurrence distance in pixels, 1 to `MAX_TEXTURE_SCALE`.
            Defaults to 3.
        min_area: int. Smallest mask (pixels) accepted before the centred-disk fallback.
    """

    groups: tuple[str, ...] = DEFAULT_GROUPS
    nucleus_channel: str | None = None
    texture_scale: int = 3
    min_area: int = 16

    def __post_init__(self):
        unknown = sorted(set(self.groups) - set(GROUPS))
        if unknown or not self.groups:
            raise UserError(
                f"--features must name one or more of {', '.join(GROUPS)}. Received: {','.join(self.groups) or 'nothing'}"
            )
        check_range("--texture-scale", self.texture_scale, 1, MAX_TEXTURE_SCALE,
                    "Haralick co-occurrence distance in pixels; its cost grows with it, and crops are ~68 px")
        if self.min_area < 1:
            raise UserError(f"--min-area must be >= 1. Received: {self.min_area}")


def channel_label(name: str) -> str:
    """CellProfiler-style channel label: ``dna`` → ``DNA``, ``actin`` → ``Actin``; names
    with capitals are kept; characters other than letters and digits are dropped."""
    text = re.sub(r"[^0-9A-Za-z]", "", str(name)) or "Channel"
    if text.lower() in _KNOWN_LABELS:
        return _KNOWN_LABELS[text.lower()]
    return text if any(c.isupper() for c in text) else text.capitalize()


def nucleus_channel_index(channel_names: Sequence[str], requested: str | None = None) -> int:
    """Index of the channel the nucleus mask is found on (see `ClassicalSettings`)."""
    names = [str(n) for n in channel_names]
    if requested is not None:
        if requested not in names:
            raise UserError(f"--nucleus-channel {requested}: the data has channels {', '.join(names)}")
        return names.index(requested)
    for index, name in enumerate(names):
        if name.lower() in NUCLEUS_NAMES:
            return index
    return 0


def to_unit(images: np.ndarray) -> np.ndarray:
    """Images as CellProfiler loads them: integers / dtype maximum, floats unchanged (float64)."""
    images = np.asarray(images)
    if images.dtype.kind in "ui":
        return images.astype(np.float64) / float(np.iinfo(images.dtype).max)
    if images.dtype.kind == "b":
        return images.astype(np.float64)
    return images.astype(np.float64, copy=False)


# ----- masks -------------------------------------------------------------------------------------
def _otsu_component(image: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
    """Otsu foreground of a smoothed image, holes filled; the component under `seed` (the
    one overlapping it most) or, without a seed, under the centre, else the largest."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(image, 1.0)
    if not np.isfinite(smooth).all() or np.ptp(smooth) <= 0:
        return np.zeros(image.shape, bool)
    foreground = image > threshold_otsu(smooth)  # a threshold robust to noise, the crop's own edges
    if seed is not None:
        foreground |= seed
    foreground = ndimage.binary_fill_holes(foreground)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return foreground
    if seed is not None and seed.any():
        keep = np.bincount(labels[seed], minlength=count + 1)[1:].argmax() + 1
    else:
        centre = labels[image.shape[0] // 2, image.shape[1] // 2]
        keep = centre or np.bincount(labels.ravel(), minlength=count + 1)[1:].argmax() + 1
    return labels == keep


def _disk(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    radius = max(2.0, min(shape) / 6)
    return (rows - (shape[0] - 1) / 2) ** 2 + (cols - (shape[1] - 1) / 2) ** 2 <= radius**2


def crop_masks(crop: np.ndarray, nucleus_channel: int, min_area: int, compartments: Sequence[str]) -> tuple[dict, list[str]]:
    """``({compartment: bool mask}, [compartments that fell back to the disk])`` for one
    (H, W, C) crop in unit intensities (see module docstring)."""
    fallback = []
    nucleus = _otsu_component(crop[..., nucleus_channel])
    if nucleus.sum() < min_area:
        nucleus = _disk(crop.shape[:2])
        fallback.append("Nuclei")
    masks = {"Nuclei": nucleus}
    if "Cells" in compartments:
        peaks = crop.reshape(-1, crop.shape[-1]).max(axis=0)
        scaled = crop / np.where(peaks > 0, peaks, 1.0)
        cell = _otsu_component(scaled.mean(axis=-1), seed=nucleus) if crop.shape[-1] > 1 else nucleus
        if cell.sum() < min_area:
            cell = _disk(crop.shape[:2]) | nucleus
            fallback.append("Cells")
        masks["Cells"] = cell
    return {c: masks[c] for c in compartments}, fallback


# ----- measuring ----------------------------------------------------------------------------------
def _functions() -> dict[str, Callable]:
    from cp_measure.bulk import get_core_measurements, get_correlation_measurements

    core = get_core_measurements(sanitize=False)
    correlation = get_correlation_measurements(sanitize=False)
    return {**core, "pearson": correlation["pearson"], "manders_fold": correlation["manders_fold"],
            "rwc": correlation["rwc"]}


def _channel_name(key: str, channel: str) -> str:
    """cp-measure's per-channel key with the channel inserted where CellProfiler puts it."""
    if key.startswith("Intensity_"):
        return f"{key}_{channel}"
    if key.startswith("RadialDistribution_"):  # RadialDistribution_FracAtD_1of4
        module, feature, ring = key.split("_", 2)
        return f"{module}_{feature}_{channel}_{ring}"
    if key.startswith("Granularity_"):
        return f"{key}_{channel}"
    feature, rest = key.split("_", 1)  # texture: Contrast_3_00_256
    return f"Texture_{feature}_{channel}_{rest}"


def _pair_names(key: str, first: str, second: str) -> str:
    """Correlation_Pearson → Correlation_Correlation_A_B; *_1 → A_B, *_2 → B_A."""
    name = key.split("_", 1)[1]
    if name == "Pearson":
        return f"Correlation_Correlation_{first}_{second}"
    if name.endswith("_2"):
        return f"Correlation_{name[:-2]}_{second}_{first}"
    return f"Correlation_{name.removesuffix('_1')}_{first}_{second}"


def _scalar(value) -> float:
    value = np.asarray(value, dtype=np.float64).ravel()
    return float(value[0]) if value.size else float("nan")


def measure_crop(
    crop: np.ndarray,
    labels: Sequence[str],
    settings: ClassicalSettings,
    nucleus_channel: int,
    functions: dict[str, Callable] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """Every feature of one (H, W, C) crop in unit intensities (ordered name → value) and
    the compartments whose mask fell back to the disk."""
    functions = functions or _functions()
    compartments = ("Cells", "Nuclei") if crop.shape[-1] > 1 else ("Cells",)
    masks, fallback = crop_masks(crop, nucleus_channel, settings.min_area, compartments)
    texture_pixels = np.clip(crop, 0.0, 1.0)
    features: dict[str, float] = {}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cp-measure's 0/0 in empty radial bins
        for compartment, mask in masks.items():
            features.update(_measure_compartment(compartment, mask, crop, texture_pixels, labels, settings, functions))
    return features, fallback


def _measure_compartment(compartment, mask, crop, texture_pixels, labels, settings, functions) -> dict[str, float]:
    """The features of one compartment's mask, named ``<Compartment>_<Module>_...``."""
    groups = set(settings.groups)
    label = mask.astype(np.int32)  # one object, label 1
    found: dict[str, float] = {}
    if "areashape" in groups:
        for name in ("sizeshape", "zernike", "feret"):
            for key, value in functions[name](label, None).items():
                if not POSITION_FEATURES.match(key) and not UNDEFINED_FEATURES.match(key):
                    found[f"AreaShape_{key}"] = _scalar(value)
    whole_cell = compartment == "Cells"
    for c, channel in enumerate(labels):
        pixels = crop[..., c]
        measured = []
        if "intensity" in groups:
            measured.append(functions["intensity"](label, pixels))
        if "texture" in groups:
            measured.append(functions["texture"](label, texture_pixels[..., c], scale=settings.texture_scale))
        if whole_cell and "radial" in groups:
            measured.append(functions["radial_distribution"](label, pixels))
        if whole_cell and "granularity" in groups:
            measured.append(functions["granularity"](label, pixels))
        for result in measured:
            for key, value in result.items():
                if not key.startswith("Location_"):
                    found[_channel_name(key, channel)] = _scalar(value)
    if whole_cell and "correlation" in groups:
        for (i, first), (j, second) in itertools.combinations(enumerate(labels), 2):
            for name in ("pearson", "manders_fold", "rwc"):
                for key, value in functions[name](crop[..., i], crop[..., j], label).items():
                    found[_pair_names(key, first, second)] = _scalar(value)
    return {f"{compartment}_{k}": v for k, v in found.items()}


@dataclasses.dataclass
class ClassicalChunk:
    """Features of consecutive cells: `values` (B, F) float32, `fallback` (B,) text."""

    values: np.ndarray
    fallback: list[str]
    undefined: int


def measure_cells(
    images: np.ndarray,
    channel_names: Sequence[str],
    settings: ClassicalSettings,
    names: list[str] | None = None,
) -> tuple[list[str], ClassicalChunk]:
    """Measure a batch of crops (B, H, W, C) or (B, D, H, W, C) (z max-projected).

    Args:
        images: array of crops as stored on disk.
        channel_names: one name per channel (labels via `channel_label`).
        settings: ClassicalSettings.
        names: the feature names of an earlier chunk (every chunk must give the same).

    Returns:
        (feature names, ClassicalChunk); undefined (NaN/inf) values are 0 in `values` and
        counted in `ClassicalChunk.undefined`.
    """
    images = np.asarray(images)
    if images.ndim == 5:
        images = images.max(axis=1)
    if images.ndim != 4:
        raise UserError(f"classical features need (H, W, C) or (D, H, W, C) crops. Received: shape {images.shape[1:]}")
    unit = to_unit(images)
    labels = [channel_label(n) for n in channel_names]
    if len(set(labels)) != len(labels):
        labels = [f"{label}{i}" for i, label in enumerate(labels)]
    nucleus = nucleus_channel_index(channel_names, settings.nucleus_channel)
    functions = _functions()
    rows, fallback = [], []
    for crop in unit:
        features, fell = measure_crop(crop, labels, settings, nucleus, functions)
        if names is None:
            names = list(features)
        if list(features) != names:
            raise RuntimeError("cp-measure returned a different feature set for one crop")
        rows.append([features[n] for n in names])
        fallback.append(",".join(fell) or "none")
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names or []))
    bad = ~np.isfinite(values)
    values[bad] = 0.0
    return names or [], ClassicalChunk(values.astype(np.float32), fallback, int(bad.sum()))


@dataclasses.dataclass
class ClassicalResult:
    """What `write_classical` wrote: path, cells, feature count, undefined values, fallbacks."""

    path: object
    cells: int
    features: int
    undefined: int
    fallbacks: int


def write_classical(
    cells,
    out,
    settings: ClassicalSettings | None = None,
    chunk_size: int = 256,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> ClassicalResult:
    """Measure every cell of `cells` and stream the features into `out` (Parquet or HDF5).

    Cells are read, measured and written `chunk_size` at a time (memory stays flat whatever
    the number of cells). Parquet: one row per cell, ``Metadata_*`` columns (the data's
    metadata plus ``mask_fallback``) and float32 features named as in the module docstring;
    HDF5: dataset ``features`` (N, F), attribute ``feature_names`` (JSON) and group
    ``metadata`` (`statcell_tf.data.embedding_files`).

    Args:
        cells: CellImages. Any reader's output.
        out: str or Path. Destination; the suffix chooses the format.
        settings: ClassicalSettings or None (defaults).
        chunk_size: int. Cells per chunk. Defaults to 256.
        progress: callable or None. Called with the number of cells done after each chunk.
        workers: int. Processes measuring chunks in parallel (`statcell_tf.parallel.map_ordered`);
            chunks are written in order, so the file is the same for any number. Defaults to 1.
    """
    import json

    from statcell_tf.data.embedding_files import EmbeddingWriter

    settings = settings or ClassicalSettings()
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1. Received: chunk_size={chunk_size}")
    metadata = cells.metadata.reset_index(drop=True).copy()
    if "mask_fallback" in metadata:
        raise UserError(f"--data {cells.source}: its metadata already has a column 'mask_fallback'")
    metadata["mask_fallback"] = "none"
    n = len(cells)
    names, undefined, fallbacks = None, 0, 0
    attrs = {"source": str(cells.source), "kind": "classical", "groups": ",".join(settings.groups),
             "channels": json.dumps(list(cells.channel_names))}
    starts = range(0, max(n, 1), chunk_size)
    # Chunks are read here and measured in `workers` processes (at most 2·workers in flight).
    chunks = (cells.images[start:min(n, start + chunk_size)] if n
              else np.zeros((1,) + tuple(cells.image_shape), dtype=cells.images.dtype) for start in starts)
    measure = functools.partial(measure_cells, channel_names=tuple(cells.channel_names), settings=settings)
    with EmbeddingWriter(out, metadata, attrs=attrs) as writer:
        for start, (chunk_names, chunk) in zip(starts, map_ordered(measure, chunks, workers)):
            stop = min(n, start + chunk_size)
            if names is not None and chunk_names != names:
                raise RuntimeError("cp-measure returned a different feature set for one chunk")
            names = chunk_names
            if not n:  # no cells: the column names from a blank crop, zero rows
                chunk = ClassicalChunk(chunk.values[:0], [], 0)
            undefined += chunk.undefined
            fallbacks += sum(f != "none" for f in chunk.fallback)
            writer.attrs["feature_names"] = json.dumps(names)
            writer.write({"features": chunk.values}, metadata={"mask_fallback": chunk.fallback},
                         columns={"features": names})
            if progress is not None:
                progress(stop)
    return ClassicalResult(writer.path, n, len(names or []), undefined, fallbacks)
