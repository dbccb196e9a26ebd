"""One field of view → its crops in a layout, with QC columns and counts (runs in worker processes)."""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np
import pandas as pd

from statcell_tf.data import fields as fieldio
from statcell_tf.data.prepare.fovs import Field, _shape_text
from statcell_tf.data.prepare.settings import LAYOUT_CHANNELS, PrepareConfig, output_columns, parse_qc
from statcell_tf.errors import UserError


@dataclasses.dataclass
class FieldResult:
    """The crops of one field and its counts (what a worker sends back).

    Attributes:
        field: str. Field id.
        arrays: dict of ndarrays, one row per crop (layout-specific).
        table: DataFrame. One row per crop: metadata, positions, ``qc_*``.
        counts: dict. nuclei, crops, skipped_* and ``dropped: <rule>`` counts.
        seconds: float. Processing time.
    """

    field: str
    arrays: dict
    table: pd.DataFrame
    counts: dict
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


def _downsample(image: np.ndarray, factor: int, labels: bool = False) -> np.ndarray:
    """Block mean (images, back in their dtype) or every factor-th pixel (label images) in y, x."""
    if factor == 1:
        return image
    h, w = (image.shape[-2] // factor) * factor, (image.shape[-1] // factor) * factor
    image = image[..., :h, :w]
    if labels:
        return np.ascontiguousarray(image[..., ::factor, ::factor])
    from skimage.transform import downscale_local_mean

    mean = downscale_local_mean(image, (1,) * (image.ndim - 2) + (factor, factor))
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.round(mean), info.min, info.max).astype(image.dtype)
    return mean.astype(np.float32)


def _labels_from_mask(mask: np.ndarray) -> np.ndarray:
    """A label image; a binary mask (values 0 and 1 only) gets its connected components labelled."""
    from skimage.measure import label

    mask = np.asarray(mask)
    if mask.dtype == bool or (mask.size and mask.max() <= 1):
        return label(mask > 0).astype(np.int32)
    if np.issubdtype(mask.dtype, np.floating):
        mask = np.round(mask)
    return mask.astype(np.int32)


def segment_nuclei_3d(volume: np.ndarray, sigma: float = 2.0, min_distance: int = 4) -> np.ndarray:
    """Nuclei of a z-stack of a cell monolayer: found in 2D, given their z extent in 3D.

    The z max projection is segmented (`preprocess.segment_nuclei`: one label per nucleus,
    touching nuclei split); each label then keeps the voxels of its (y, x) footprint that
    are above the stack's Li threshold after Gaussian smoothing. A 3D watershed splits a
    nucleus elongated along the coarser z axis into several, which this avoids.

    Args:
        volume: array ``(Z, Y, X)``. DNA stack.
        sigma: float. Gaussian sigma in pixels. Defaults to 2.0.
        min_distance: int. Smallest distance between nucleus centres (pixels). Defaults to 4.

    Returns:
        int32 label image ``(Z, Y, X)``.
    """
    from skimage.filters import gaussian, threshold_li

    from statcell_tf.data import preprocess

    volume = np.asarray(volume, np.float32)
    flat = preprocess.segment_nuclei(volume.max(axis=0), sigma=sigma, min_distance=min_distance)
    smooth = gaussian(volume, sigma=(max(sigma / 3.0, 0.5), sigma, sigma), preserve_range=True)
    if smooth.max() <= smooth.min():
        return np.zeros(volume.shape, np.int32)
    inside = smooth > threshold_li(smooth)
    return np.where(inside, flat[None], 0).astype(np.int32)


def segment_cells(image: np.ndarray, nuclei: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Cells grown from the nuclei over a cell (membrane or cytoplasm) channel.

    Gaussian smoothing → Otsu threshold → holes filled (a membrane ring encloses its cell) →
    watershed of the gradient magnitude (Sobel) seeded by the nuclei, inside that foreground
    and the nuclei. Cell k holds nucleus k.

    Args:
        image: array. Cell channel, 2D or 3D.
        nuclei: int array. Nucleus labels, same shape.
        sigma: float. Gaussian sigma in pixels. Defaults to 2.0.

    Returns:
        int32 label image, same shape.
    """
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, sobel, threshold_otsu
    from skimage.segmentation import watershed

    smooth = gaussian(np.asarray(image, np.float32), sigma=sigma, preserve_range=True)
    foreground = nuclei > 0
    if smooth.max() > smooth.min():
        foreground = foreground | ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    return watershed(sobel(smooth), markers=nuclei, mask=foreground).astype(np.int32)


def match_cells(nuclei: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Renumber a cell label image so that cell k is the cell holding most of nucleus k.

    Cells without a nucleus are dropped; a cell holding several nuclei goes to the nucleus it
    overlaps most (the others get no cell).

    Args:
        nuclei: int array. Nucleus labels.
        cells: int array. Cell labels (any numbering), same shape.

    Returns:
        int32 label image.
    """
    nuclei, cells = np.asarray(nuclei, np.int64), np.asarray(cells, np.int64)
    pairs = (nuclei > 0) & (cells > 0)
    out = np.zeros(cells.shape, np.int32)
    if not pairs.any():
        return out
    n, c = nuclei[pairs], cells[pairs]
    keys, counts = np.unique(n * (int(cells.max()) + 1) + c, return_counts=True)
    n_of, c_of = keys // (int(cells.max()) + 1), keys % (int(cells.max()) + 1)
    order = np.lexsort((-counts, c_of))  # per cell, its largest-overlap nucleus first
    lookup = np.zeros(int(cells.max()) + 1, np.int32)
    taken = set()
    for i in order:
        if c_of[i] in taken:
            continue
        taken.add(c_of[i])
        lookup[c_of[i]] = n_of[i]
    return lookup[cells]


def _crop_yx(array: np.ndarray, y0: int, x0: int, size: int, yx_axes: tuple[int, int]) -> np.ndarray:
    """A size×size window of `array` over its axes `yx_axes`, zero-filled outside."""
    ay, ax = yx_axes
    h, w = array.shape[ay], array.shape[ax]
    shape = list(array.shape)
    shape[ay] = shape[ax] = size
    out = np.zeros(shape, array.dtype)
    ys, ye, xs, xe = max(y0, 0), min(y0 + size, h), max(x0, 0), min(x0 + size, w)
    if ys >= ye or xs >= xe:
        return out
    src = [slice(None)] * array.ndim
    dst = [slice(None)] * array.ndim
    src[ay], src[ax] = slice(ys, ye), slice(xs, xe)
    dst[ay], dst[ax] = slice(ys - y0, ye - y0), slice(xs - x0, xe - x0)
    out[tuple(dst)] = array[tuple(src)]
    return out


def _border_labels(labels: np.ndarray) -> set:
    """Labels touching the y / x edges of the field."""
    edges = [labels[..., 0, :], labels[..., -1, :], labels[..., :, 0], labels[..., :, -1]]
    return set(np.unique(np.concatenate([e.ravel() for e in edges])).tolist()) - {0}


def _focus(image: np.ndarray) -> float:
    """Normalised variance of the Laplacian (scale-free; blur lowers it)."""
    from scipy import ndimage as ndi

    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image.max(axis=0)
    mean = float(image.mean())
    return float(ndi.laplace(image).var() / (mean * mean)) if mean > 0 else 0.0


class _NonFiniteField(Exception):
    """A channel of the field holds NaN/inf pixels and ``config.nonfinite == "skip"``."""


def _load_field(field: Field, config: PrepareConfig) -> tuple[dict, dict]:
    """The field's channels and masks, projected and downsampled: ({name: image}, {mask: labels})."""
    images: dict[str, np.ndarray] = {}
    by_file: dict[str, list] = collections.defaultdict(list)
    for name, header, index in field.channels:
        by_file[header.path].append((name, header, index))
    for entries in by_file.values():
        arrays = fieldio.read_channels(entries[0][1], [index for _, _, index in entries])
        for (name, _, _), array in zip(entries, arrays):
            if array.shape != field.spatial:
                raise UserError(
                    f"{entries[0][1].path}: channel {name} is {_shape_text(array.shape)} but its header said "
                    f"{_shape_text(field.spatial)}. Received: a file that changed or is damaged"
                )
            if np.issubdtype(array.dtype, np.floating):
                bad = int(array.size - np.count_nonzero(np.isfinite(array)))
                if bad:
                    if config.nonfinite == "skip":
                        raise _NonFiniteField(name)
                    raise UserError(
                        f"{entries[0][1].path}: channel {name} of field {field.field} (FOVS.csv row {field.row + 1}) "
                        f"holds {bad} NaN/inf pixel(s); fix the image, or pass --nonfinite skip to skip such fields "
                        "(counted in summary.csv)"
                    )
            images[name] = array
    masks: dict[str, np.ndarray] = {}
    for name, header, index in field.masks:
        masks[name] = _labels_from_mask(fieldio.read_channel(header, index))
    project = config.projection == "max"
    for name, image in images.items():
        image = image.max(axis=0) if project and image.ndim == 3 else image
        images[name] = _downsample(image, config.downsample)
    for name, mask in masks.items():
        if mask.ndim == 3 and (project or len(field.spatial) == 2):
            mask = mask.max(axis=0)
        masks[name] = _downsample(mask, config.downsample, labels=True)
    return images, masks


def process_field(field: Field, config: PrepareConfig) -> FieldResult:
    """Crops of one field of view in `config.layout`'s layout, with QC columns and counts.

    Args:
        field: Field. From `read_fields`.
        config: PrepareConfig.

    Returns:
        FieldResult.
    """
    from skimage.measure import regionprops

    from statcell_tf.data import preprocess

    started = time.perf_counter()
    try:
        images, masks = _load_field(field, config)
    except _NonFiniteField:  # --nonfinite skip: no crops, counted
        counts = {"nuclei": 0, "skipped_nonfinite_field": 1, "crops_found": 0, "dropped_qc": 0, "crops": 0}
        table = pd.DataFrame(columns=output_columns(config, [c for c, _ in field.metadata]))
        return FieldResult(field.field, {}, table, counts, time.perf_counter() - started)
    if "nucleus_mask" in masks:
        nuclei = masks["nucleus_mask"]
    elif images[config.nucleus_channel].ndim == 3:
        nuclei = segment_nuclei_3d(images[config.nucleus_channel], min_distance=config.min_distance)
    else:
        nuclei = preprocess.segment_nuclei(images[config.nucleus_channel], min_distance=config.min_distance)
    if "cell_mask" in masks:
        cells = match_cells(nuclei, masks["cell_mask"])
    elif config.cell_channel is not None:
        cells = segment_cells(images[config.cell_channel], nuclei)
    else:
        cells = None
    regions = {r.label: r for r in regionprops(nuclei)}
    counts = {"nuclei": len(regions), "skipped_border": 0, "skipped_too_large": 0, "skipped_no_cell": 0}
    size = config.size
    if config.layout == "opencell":
        out = preprocess.fov_to_opencell_crops(images["pro"], images["nuc"], size, labels=nuclei)
        table = out["table"]
        arrays = {k: out[k] for k in ("pro", "nuc", "nucdist")}
        counts["skipped_border"] = len(regions) - len(table)
        starts = table[["start_y", "start_x"]].to_numpy(int) if len(table) else np.zeros((0, 2), int)
        labels = table["label"].to_numpy(int)
    elif config.layout == "bbbc021":
        stack = np.stack([images[c] for c in config.channels], axis=-1)
        crops, table = preprocess.crop_cells(stack, nuclei, size)
        arrays = {"crops": crops}
        counts["skipped_border"] = len(regions) - len(table)
        starts = table[["start_y", "start_x"]].to_numpy(int) if len(table) else np.zeros((0, 2), int)
        labels = table["label"].to_numpy(int)
    else:
        arrays, labels, starts = _allen_cells(images, nuclei, cells, regions, config, counts)
    table = _crop_table(field, config, images, nuclei, cells, regions, labels, starts)
    counts["crops_found"] = len(table)
    keep = np.ones(len(table), bool)
    for rule in parse_qc(config.qc, config.channels):
        passed = rule.keep(table[rule.column]) if len(table) else np.ones(0, bool)
        counts[f"dropped: {rule.text}"] = int((~passed).sum())
        keep &= passed
    counts["dropped_qc"] = int((~keep).sum())
    if not keep.all():
        table = table[keep].reset_index(drop=True)
        arrays = {k: v[keep] for k, v in arrays.items()}
    counts["crops"] = len(table)
    return FieldResult(field.field, arrays, table, counts, time.perf_counter() - started)


def _allen_cells(images, nuclei, cells, regions, config, counts):
    """Masked, aligned per-cell stacks (N, C + 2, [Z,] S, S) in the input dtype."""
    from statcell_tf.data import preprocess

    size = config.size
    stack = np.stack([images[c] for c in LAYOUT_CHANNELS["allencell"]], axis=-1)  # ([Z,] Y, X, 3)
    dtype = stack.dtype
    yx = (stack.ndim - 3, stack.ndim - 2)
    border = _border_labels(cells)
    out, labels, starts = [], [], []
    for label, region in regions.items():
        cell = cells == label
        if not cell.any():
            counts["skipped_no_cell"] += 1
            continue
        if label in border:
            counts["skipped_border"] += 1
            continue
        cy, cx = region.centroid[-2:]
        ys, xs = np.nonzero(cell.any(axis=0) if cell.ndim == 3 else cell)
        if 2 * np.sqrt(((ys - cy) ** 2 + (xs - cx) ** 2).max()) + 2 > size:
            counts["skipped_too_large"] += 1
            continue
        y0, x0 = int(round(cy - size / 2.0)), int(round(cx - size / 2.0))
        window = _crop_yx(stack, y0, x0, size, yx).astype(np.float32)
        mask_yx = (cell.ndim - 2, cell.ndim - 1)
        cell_window = _crop_yx(cell, y0, x0, size, mask_yx)
        nucleus_window = _crop_yx(nuclei == label, y0, x0, size, mask_yx)
        window *= cell_window[..., None]
        aligned, cell_aligned, nucleus_aligned = preprocess.align_cell(window, cell_window, nucleus_window)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            aligned = np.clip(np.round(aligned), info.min, info.max)
        aligned *= cell_aligned[..., None]  # the rotation's interpolation spreads a pixel past the mask
        channels = [aligned[..., i] for i in range(aligned.shape[-1])] + [cell_aligned, nucleus_aligned]
        out.append(np.stack([c.astype(dtype) for c in channels]))  # (C + 2, [Z,] S, S)
        labels.append(label)
        starts.append((y0, x0))
    spatial = ((stack.shape[0],) if stack.ndim == 4 else ()) + (size, size)
    arrays = {"cells": np.stack(out) if out else np.zeros((0, 5, *spatial), dtype)}
    return arrays, np.array(labels, int), np.array(starts, int).reshape(-1, 2)


def _crop_table(field, config, images, nuclei, cells, regions, labels, starts) -> pd.DataFrame:
    """Metadata, positions (field pixels before downsampling) and ``qc_*`` columns per crop."""
    size, factor = config.size, config.downsample
    nucleus_area = np.bincount(nuclei.ravel())
    cell_area = np.bincount(cells.ravel(), minlength=len(nucleus_area)) if cells is not None else None
    border = _border_labels(nuclei) | (_border_labels(cells) if cells is not None else set())
    yx_axes = (nuclei.ndim - 2, nuclei.ndim - 1)
    rows = []
    for label, (y0, x0) in zip(labels, starts):
        region = regions[int(label)]
        row = dict(field.metadata)
        if config.layout == "opencell" and not row.get("fov"):
            row["fov"] = field.field
        row.update({"fovs_row": field.row, "field": field.field, "nucleus_label": int(label)})
        centroid = region.centroid
        if len(centroid) == 3:
            row["centroid_z"] = float(centroid[0])
        # Processed pixel i covers original pixels [f·i, f·i + f - 1]: its centre is f·i + (f - 1) / 2.
        row["centroid_y"] = float(centroid[-2] * factor + (factor - 1) / 2.0)
        row["centroid_x"] = float(centroid[-1] * factor + (factor - 1) / 2.0)
        row["crop_y"], row["crop_x"] = int(y0), int(x0)
        inside = _crop_yx(nuclei, y0, x0, size, yx_axes)
        row["qc_nucleus_area"] = int(nucleus_area[label])
        row["qc_cell_area"] = float(cell_area[label]) if cell_area is not None and label < len(cell_area) else np.nan
        row["qc_focus"] = _focus(_crop_yx(images[config.nucleus_channel], y0, x0, size, yx_axes))
        row["qc_touches_border"] = int(int(label) in border)
        row["qc_neighbours"] = len(set(np.unique(inside).tolist()) - {0, int(label)})
        for channel in config.channels:
            row[f"qc_mean_{channel}"] = float(_crop_yx(images[channel], y0, x0, size, yx_axes).mean())
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=output_columns(config, [c for c, _ in field.metadata]))
