"""Fields of view → single-cell crops in the OpenCell, BBBC021 or Allen Cell layout, streaming.

Input: a FOVS.csv table, one row per field of view. Columns named after the layout's channels
hold image paths (relative to the CSV's folder or absolute; TIFF, OME-TIFF or OME-Zarr, read by
`statcell_tf.data.fields`); ``<channel>_channel`` picks a channel of a multi-channel file (an
index, or a name from its metadata); optional ``nucleus_mask`` / ``cell_mask`` columns name
label images (CellProfiler, Cellpose, ...) used instead of the built-in segmentation. Every
other column is metadata, carried onto each crop of the field.

Per field (one at a time, in worker processes with ``workers > 1``): read the channels →
max projection along z (``projection="max"``; ``"none"`` keeps 3D stacks for the Allen layout and
refuses them for the 2D layouts)
→ downsample by block mean → nuclei (`preprocess.segment_nuclei`, or the nucleus mask) →
cells (watershed of the cell channel seeded by the nuclei, or the cell mask) → crops centred
on each nucleus, following each paper's methods section:

- ``opencell`` (cytoself, Kobayashi et al. 2022): ``size``×``size`` crops (100) of the protein
  and nucleus channels, each min-max scaled to [0, 1], and the signed distance to the crop's
  own nucleus in [-1, 1] (`preprocess.fov_to_opencell_crops`); the paper's fields are
  z max-projected and downsampled ×2, the defaults here. Nuclei whose crop crosses the
  field's border are skipped. Written as ``crops_NNNNN_{pro,nuc,nucdist}.npy`` +
  ``crops_NNNNN_label.csv`` chunks (`statcell_tf.data.opencell`).
- ``bbbc021`` (VAE+, Lafarge et al. 2019): 68×68 crops centred on each nucleus, the channels
  in ``channels`` order, raw intensities in the input dtype; one ``.npy`` per crop under
  ``crops/chunk_NNNNN/`` + ``metadata.csv`` (`statcell_tf.data.bbbc021`).
- ``allencell`` (Integrated Cell, Johnson et al. 2017; Statistical Cell, Donovan-Maiye et al.
  2022): per cell, membrane, DNA and structure inside its cell mask, centred on the nuclear
  centroid, the cell's major axis along x and flipped so the intensity skew is positive
  (`preprocess.align_cell`), ``size``×``size`` (2D, or the whole z range in 3D); one
  OME-TIFF per cell (channels membrane, dna, structure, cell_mask, nucleus_mask; raw
  intensities) under ``cells/chunk_NNNNN/`` + ``manifest.csv``
  (`statcell_tf.data.allencell`). Cells touching the field's border, and cells that do not
  fit in the crop, are skipped. Training normalises (the papers' mode subtraction).

Streaming: finished fields are appended to the output in chunks (at most ``chunk_crops`` crops
or ``chunk_bytes`` bytes held), so memory does not grow with the number of fields. A chunk is
committed by one line in ``prepare_progress.jsonl``; ``resume`` skips the fields listed there
and removes chunk files a killed run left uncommitted. Per crop, quality columns ``qc_*`` are
recorded (`QC_MEASURES`) and ``qc`` rules drop crops, counted per rule in ``summary.csv``
(one row per field; empty fields say so there). ``montage/<group>.png`` shows random crops
per group.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import operator
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf.atomic import atomic_path, save_figure, write_csv, write_json, write_text
from statcell_tf.atomic import check_out as atomic_check_out
from statcell_tf.data import fields as fieldio
from statcell_tf.errors import UserError
from statcell_tf.naming import file_stem

LAYOUTS: tuple[str, ...] = ("opencell", "bbbc021", "allencell")
LAYOUT_CHANNELS: dict[str, tuple[str, ...]] = {"opencell": ("pro", "nuc"), "allencell": ("membrane", "dna", "structure")}
MASK_COLUMNS: tuple[str, ...] = ("nucleus_mask", "cell_mask")
PROJECTIONS: tuple[str, ...] = ("max", "none")
# Metadata each layout's reader needs on every crop.
REQUIRED_METADATA: dict[str, tuple[str, ...]] = {
    "opencell": ("protein",),
    "bbbc021": ("plate", "well", "compound"),
    "allencell": ("structure_name",),
}
# Paper defaults per layout (cytoself: 100×100 after ×2 downsampling; VAE+: 68×68).
DEFAULT_SIZE = {"opencell": 100, "bbbc021": 68, "allencell": 128}
DEFAULT_DOWNSAMPLE = {"opencell": 2, "bbbc021": 1, "allencell": 1}
DEFAULT_GROUP = {"opencell": "protein", "bbbc021": "compound", "allencell": "structure_name"}
QC_MEASURES: tuple[str, ...] = ("nucleus_area", "cell_area", "focus", "touches_border", "neighbours")
CONFIG_FILE = "prepare.json"
PROGRESS_FILE = "prepare_progress.jsonl"
SUMMARY_FILE = "summary.csv"
MONTAGE_DIR = "montage"
MAX_MONTAGE_GROUPS = 100
_POSITION_COLUMNS = ("fovs_row", "field", "nucleus_label", "centroid_z", "centroid_y", "centroid_x", "crop_y", "crop_x")
_LAYOUT_COLUMNS = {
    "opencell": ("fov",),
    "bbbc021": ("file",),
    "allencell": ("CellId", "path", "ch_membrane", "ch_dna", "ch_structure", "ch_cell_mask", "ch_nucleus_mask"),
}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_QC_RULE = re.compile(r"^\s*(?:qc_)?([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


# ---------------------------------------------------------------------------------------------
# Settings


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Settings of one preparation; saved as ``prepare.json`` and checked on resume.

    Build it with `PrepareConfig.for_layout`, which fills each layout's defaults.

    Attributes:
        layout: str. One of `LAYOUTS`.
        channels: tuple of str. Channel columns, in crop order.
        size: int. Crop side in pixels (after downsampling).
        downsample: int. Block-mean downsampling factor in y and x.
        projection: str. ``"max"`` (z max projection of 3D stacks) or ``"none"`` (keep them:
            Allen layout only; the other layouts then refuse z-stacks).
        nucleus_channel: str. The channel nuclei are segmented on.
        cell_channel: str or None. The channel cells are segmented on (None: no cells unless a
            ``cell_mask`` column gives them).
        min_distance: int. Smallest distance between two nucleus centres, in pixels after
            downsampling (`segment_nuclei`'s watershed seeds; about a nucleus radius).
        qc: tuple of str. Rules crops must pass, like ``"nucleus_area>=50"`` (`parse_qc`).
        group_column: str. Metadata column of the montages (one PNG per value).
    """

    layout: str
    channels: tuple[str, ...]
    size: int
    downsample: int = 1
    projection: str = "max"
    nucleus_channel: str = ""
    cell_channel: str | None = None
    min_distance: int = 4
    qc: tuple[str, ...] = ()
    group_column: str = ""

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}. Received: {self.layout!r}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise UserError(f"--channels must name distinct channel columns. Received: {','.join(self.channels)!r}")
        if self.size < 8:
            raise UserError(f"--size must be at least 8 pixels. Received: --size {self.size}")
        if self.downsample < 1:
            raise UserError(f"--downsample must be a whole factor >= 1. Received: --downsample {self.downsample}")
        if self.projection not in PROJECTIONS:
            raise UserError(f"--projection must be one of {', '.join(PROJECTIONS)}. Received: {self.projection!r}")
        if self.nucleus_channel not in self.channels:
            raise UserError(
                f"--nucleus-channel must be one of the channels ({', '.join(self.channels)}). "
                f"Received: {self.nucleus_channel!r}"
            )
        if self.cell_channel is not None and self.cell_channel not in self.channels:
            raise UserError(
                f"--cell-channel must be one of the channels ({', '.join(self.channels)}) or none. "
                f"Received: {self.cell_channel!r}"
            )
        if self.min_distance < 1:
            raise UserError(f"--min-distance must be >= 1 pixel. Received: {self.min_distance}")
        parse_qc(self.qc, self.channels)

    @classmethod
    def for_layout(
        cls,
        layout: str,
        channels: Sequence[str] | None = None,
        size: int | None = None,
        downsample: int | None = None,
        projection: str = "max",
        nucleus_channel: str | None = None,
        cell_channel: str | None = None,
        min_distance: int = 4,
        qc: Sequence[str] = (),
        group_column: str | None = None,
    ) -> PrepareConfig:
        """The settings of `layout` with its defaults for every argument left None.

        Args:
            layout: str. One of `LAYOUTS`.
            channels: sequence of str or None. bbbc021 only (required there): the channel
                columns in crop order, e.g. ``("dna", "actin", "tubulin")``.
            size: int or None. Crop side; None = `DEFAULT_SIZE` (100, 68, 128).
            downsample: int or None. None = `DEFAULT_DOWNSAMPLE` (opencell 2, as the paper).
            projection: str. ``"max"`` or ``"none"``. Defaults to ``"max"``.
            nucleus_channel: str or None. None = ``nuc`` (opencell), ``dna`` (allencell), or the
                bbbc021 channel named dna / DNA, else its first.
            cell_channel: str or None. ``"none"`` for no cell segmentation; None = ``membrane``
                for allencell, none for the others.
            min_distance: int. See the class. Defaults to 4.
            qc: sequence of str. QC rules. Defaults to none.
            group_column: str or None. None = protein / compound / structure_name.

        Returns:
            PrepareConfig.
        """
        if layout not in LAYOUTS:
            raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}. Received: {layout!r}")
        if layout == "bbbc021":
            if not channels:
                raise UserError(
                    "--layout bbbc021 needs --channels: the FOVS.csv columns of the crop's channels in order, "
                    "e.g. dna,actin,tubulin. Received: no --channels"
                )
            channels = tuple(str(c).strip() for c in channels)
        else:
            if channels and tuple(channels) != LAYOUT_CHANNELS[layout]:
                raise UserError(
                    f"--channels applies to --layout bbbc021 only; --layout {layout} reads the columns "
                    f"{', '.join(LAYOUT_CHANNELS[layout])}. Received: --channels {','.join(channels)}"
                )
            channels = LAYOUT_CHANNELS[layout]
        if nucleus_channel is None:
            named = [c for c in channels if c.lower() in ("dna", "nuc", "nucleus", "dapi", "hoechst")]
            nucleus_channel = named[0] if named else channels[0]
        if cell_channel is None:
            cell_channel = "membrane" if layout == "allencell" else None
        elif str(cell_channel).lower() == "none":
            cell_channel = None
        return cls(
            layout=layout,
            channels=tuple(channels),
            size=int(DEFAULT_SIZE[layout] if size is None else size),
            downsample=int(DEFAULT_DOWNSAMPLE[layout] if downsample is None else downsample),
            projection=projection,
            nucleus_channel=nucleus_channel,
            cell_channel=cell_channel,
            min_distance=int(min_distance),
            qc=tuple(qc),
            group_column=DEFAULT_GROUP[layout] if group_column is None else group_column,
        )

    def to_dict(self) -> dict:
        """JSON-able settings (``prepare.json``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class QCRule:
    """One QC rule: keep crops whose ``qc_<measure> <op> <value>`` holds."""

    measure: str
    op: str
    value: float
    text: str

    @property
    def column(self) -> str:
        return f"qc_{self.measure}"

    def keep(self, values: pd.Series) -> np.ndarray:
        """Boolean mask of the crops that pass (NaN, e.g. a nucleus without a cell, fails)."""
        numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        return np.asarray(_OPS[self.op](numbers, self.value)) & ~np.isnan(numbers)


def parse_qc(rules: Iterable[str], channels: Sequence[str]) -> tuple[QCRule, ...]:
    """Parse QC rules like ``nucleus_area>=50``, ``neighbours<=2``, ``touches_border==0``.

    Measures: ``nucleus_area`` and ``cell_area`` (pixels after downsampling), ``focus``
    (normalised variance of the Laplacian of the nucleus channel in the crop; blurred crops
    score low), ``touches_border`` (1 when the nucleus or cell touches the field's edge),
    ``neighbours`` (other nuclei inside the crop), ``mean_<channel>`` (mean raw intensity of
    the channel in the crop). A ``qc_`` prefix is accepted. Values are numbers (or true /
    false for touches_border).

    Args:
        rules: iterable of str. One rule each.
        channels: sequence of str. The channel names (for ``mean_<channel>``).

    Returns:
        tuple of QCRule.
    """
    measures = list(QC_MEASURES) + [f"mean_{c}" for c in channels]
    parsed = []
    for text in rules:
        match = _QC_RULE.match(str(text))
        if match is None:
            raise UserError(
                f"--qc must be MEASURE OP VALUE with OP one of >=, <=, >, <, ==, != (e.g. nucleus_area>=50). "
                f"Received: --qc {text!r}"
            )
        measure, op, raw = match.groups()
        if measure not in measures:
            raise UserError(f"--qc measures are {', '.join(measures)}. Received: --qc {text!r}")
        lowered = raw.lower()
        try:
            value = {"true": 1.0, "false": 0.0}[lowered] if lowered in ("true", "false") else float(raw)
        except ValueError:
            raise UserError(f"--qc needs a number after {op}. Received: --qc {text!r}") from None
        parsed.append(QCRule(measure, op, value, f"{measure}{op}{raw}"))
    return tuple(parsed)


# ---------------------------------------------------------------------------------------------
# FOVS.csv


@dataclasses.dataclass(frozen=True)
class Field:
    """One validated field of view (row of FOVS.csv); pickled to worker processes.

    Attributes:
        field: str. Its id: the ``fov`` column (file-name safe) or ``row<NNNNN>``.
        row: int. 0-based data row of FOVS.csv.
        channels: tuple of (name, ImageHeader, index). The channels, in config order.
        masks: tuple of (name, ImageHeader, index). ``nucleus_mask`` / ``cell_mask`` label images.
        metadata: tuple of (column, value). Carried columns, as text.
        spatial: tuple of int. ``(Y, X)`` or ``(Z, Y, X)`` of every channel.
        fingerprint: str. Hash of the paths, channel indices and metadata (resume check).
    """

    field: str
    row: int
    channels: tuple
    masks: tuple
    metadata: tuple
    spatial: tuple[int, ...]
    fingerprint: str


def read_fields(fovs_csv: str | Path, config: PrepareConfig) -> tuple[list[Field], list[str]]:
    """Read and validate every row of FOVS.csv from the files' headers (no pixels, nothing written).

    Checks, naming the row, column and file: the channel (and mask) columns exist, every path
    exists and is a readable image, multi-channel files have a valid channel index, all
    channels of a field share one shape, 2D fields where the layout needs them (z-stacks are
    fine with ``projection="max"``), one depth for 3D Allen output, masks of the field's
    shape, a crop of ``size`` fits in the (downsampled) field, the metadata the layout's reader
    needs is there, field ids are unique, and no metadata column clashes with an output column.

    Args:
        fovs_csv: str or Path. The table.
        config: PrepareConfig.

    Returns:
        (fields, carried metadata column names).
    """
    from statcell_tf.data import validation

    fovs_csv = Path(fovs_csv)
    if not fovs_csv.is_file():
        raise UserError(f"FOVS.csv {fovs_csv} does not exist; expected a CSV with one row per field of view")
    table = validation.read_csv(fovs_csv, dtype=str, keep_default_na=False)
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise UserError(f"{fovs_csv} must list at least one field of view. Received: a header without rows")
    missing = [c for c in config.channels if c not in table.columns]
    if missing:
        raise UserError(
            f"{fovs_csv} must have a column of image paths per channel of --layout {config.layout} "
            f"({', '.join(config.channels)}); missing: {', '.join(missing)}. Received columns: {', '.join(table.columns)}"
        )
    index_columns = {c: f"{c}_channel" for c in (*config.channels, *MASK_COLUMNS) if f"{c}_channel" in table}
    masks = [c for c in MASK_COLUMNS if c in table.columns]
    used = set(config.channels) | set(masks) | set(index_columns.values())
    carried = [c for c in table.columns if c not in used]
    needed = [c for c in REQUIRED_METADATA[config.layout] if c not in carried]
    if needed:
        raise UserError(
            f"{fovs_csv} needs the column(s) {', '.join(needed)} for --layout {config.layout} (its reader and "
            f"trainer use them). Received columns: {', '.join(table.columns)}"
        )
    if config.group_column not in carried:
        raise UserError(
            f"--group-column must be a metadata column of {fovs_csv}. Received: {config.group_column!r}; "
            f"metadata columns: {', '.join(carried) or 'none'}"
        )
    generated = set(output_columns(config, []))
    clash = [c for c in carried if c in generated and not (c == "fov" and config.layout == "opencell")]
    if clash:
        raise UserError(
            f"{fovs_csv}: column {clash[0]} is written by prepare-crops; rename it in FOVS.csv. "
            f"Received columns: {', '.join(table.columns)}"
        )
    if "cell_mask" not in masks and config.cell_channel is None and config.layout == "allencell":
        raise UserError(
            "--layout allencell needs cells: a cell_mask column in FOVS.csv or --cell-channel (e.g. membrane). "
            "Received: --cell-channel none and no cell_mask column"
        )
    if any(rule.measure == "cell_area" for rule in parse_qc(config.qc, config.channels)):
        if "cell_mask" not in masks and config.cell_channel is None:
            raise UserError(
                "--qc cell_area needs cells: a cell_mask column in FOVS.csv or --cell-channel. "
                "Received: no cell segmentation"
            )
    headers: dict[str, fieldio.ImageHeader] = {}
    fields, seen, depth = [], {}, None
    for row, values in enumerate(table.to_dict("records")):
        where = f"{fovs_csv} row {row + 1}"
        field_id = file_stem(values["fov"].strip()) if values.get("fov", "").strip() else f"row{row:05d}"
        if field_id in seen:
            raise UserError(
                f"{where}: field id {field_id!r} (from the fov column) is also row {seen[field_id] + 1}'s; "
                "expected one row per field of view. Received: a repeated fov"
            )
        seen[field_id] = row
        channels, shapes = [], {}
        for name in (*config.channels, *masks):
            text = str(values[name]).strip()
            if not text:
                if name in masks:
                    continue
                raise UserError(f"{where}: column {name} must name an image file. Received: an empty value")
            path = Path(text) if Path(text).is_absolute() else fovs_csv.parent / text
            if not path.exists():
                raise UserError(f"{where}: column {name} names {path}, which does not exist. Received: {text!r}")
            key = str(path)
            if key not in headers:
                headers[key] = fieldio.read_header(path)
            header = headers[key]
            raw = str(values.get(index_columns.get(name, ""), "")).strip() or None
            index = fieldio.channel_index(header, raw, f"{where}: column {name}_channel")
            shapes[name] = header.spatial_shape(raw is not None)
            channels.append((name, header, index))
        image_shapes = {n: s for n, s in shapes.items() if n in config.channels}
        first = config.channels[0]
        for name, shape in image_shapes.items():
            if shape != image_shapes[first]:
                raise UserError(
                    f"{where}: channel {name} ({_describe(channels, name)}) must have the shape of channel {first} "
                    f"{_shape_text(image_shapes[first])}. Received: {_shape_text(shape)}"
                )
        spatial = image_shapes[first]
        for name in masks:
            if name in shapes and shapes[name][-2:] != spatial[-2:]:
                raise UserError(
                    f"{where}: {name} ({_describe(channels, name)}) must have the field's y, x size "
                    f"{_shape_text(spatial[-2:])}. Received: {_shape_text(shapes[name])}"
                )
            if name in shapes and len(shapes[name]) == 3 and shapes[name] != spatial:
                raise UserError(
                    f"{where}: the 3D {name} ({_describe(channels, name)}) must have the field's shape "
                    f"{_shape_text(spatial)}. Received: {_shape_text(shapes[name])}"
                )
            if name in shapes and len(shapes[name]) == 2 and len(spatial) == 3 and config.projection == "none":
                raise UserError(
                    f"{where}: {name} is 2D but the channels are 3D stacks kept in 3D (--projection none); expected a "
                    f"3D label image {_shape_text(spatial)}. Received: {_shape_text(shapes[name])}"
                )
        if config.projection == "none" and len(spatial) == 3 and config.layout != "allencell":
            raise UserError(
                f"{where}: channel {first} ({_describe(channels, first)}) is a z-stack, but --layout {config.layout} "
                f"needs 2D fields; pass --projection max (the default) to project it. Received: {_shape_text(spatial)} "
                "with --projection none"
            )
        if config.projection == "none":
            if depth is not None and spatial[:-2] != depth[0]:
                expected = f"{depth[0][0]} z-slices" if depth[0] else "2D fields"
                raise UserError(
                    f"{where}: with --projection none all cells must share one shape; expected {expected} like row "
                    f"{depth[1] + 1}. Received: {_shape_text(spatial)} ({_describe(channels, first)})"
                )
            depth = depth or (spatial[:-2], row)
        yx = [n // config.downsample for n in spatial[-2:]]
        if min(yx) < config.size:
            raise UserError(
                f"{where}: a --size {config.size} crop does not fit in the field ({'x'.join(map(str, spatial[-2:]))} "
                f"pixels, {'x'.join(map(str, yx))} after --downsample {config.downsample}). Received: --size {config.size}"
            )
        metadata = tuple((c, str(values[c])) for c in carried)
        fingerprint = hashlib.sha1(
            json.dumps(
                [[n, h.path, i] for n, h, i in channels] + [list(m) for m in metadata], sort_keys=True
            ).encode()
        ).hexdigest()[:16]
        images = tuple(c for c in channels if c[0] in config.channels)
        label_images = tuple(c for c in channels if c[0] in masks)
        fields.append(Field(field_id, row, images, label_images, metadata, tuple(spatial), fingerprint))
    return fields, carried


def _describe(channels, name) -> str:
    for n, header, _ in channels:
        if n == name:
            return header.path
    return "?"


def _shape_text(shape) -> str:
    return "x".join(map(str, shape)) + (" (z-stack)" if len(shape) == 3 else " (2D)")


def check_out(out: str | Path, fovs_csv: str | Path, fields: Sequence[Field], resume: bool) -> None:
    """Refuse an --out that is a file, lies under a file, is the input folder (or holds inputs),
    or is a non-empty folder without ``resume`` (with ``resume``: one prepare-crops wrote).

    Args:
        out: str or Path. The output folder.
        fovs_csv: str or Path. The input table.
        fields: sequence of Field. Their image paths must not lie inside `out`.
        resume: bool. Continue an earlier run in `out`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a folder. Received: --out {out}")
    inputs = [Path(fovs_csv)] + [Path(h.path) for f in fields for _, h, _ in (*f.channels, *f.masks)]
    atomic_check_out(out, "--out", inputs=inputs)
    resolved = out.resolve()
    if resolved.is_dir() and any(resolved.iterdir()):
        if not resume:
            raise UserError(
                f"--out {out} is not empty; pass --resume to continue a run there, or choose a new folder. "
                f"Received: --out {out}"
            )
        if not (resolved / CONFIG_FILE).is_file():
            raise UserError(
                f"--out {out} is not empty and holds no {CONFIG_FILE}, so no prepare-crops run to resume. "
                f"Received: --out {out} --resume"
            )


# ---------------------------------------------------------------------------------------------
# One field of view → crops


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
    images, masks = _load_field(field, config)
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


def output_columns(config: PrepareConfig, carried: Sequence[str]) -> list[str]:
    """Columns of the crop tables, in order: layout columns, carried metadata, positions, QC."""
    layout = [c for c in _LAYOUT_COLUMNS[config.layout] if c not in carried]
    three_d = config.projection == "none" and config.layout == "allencell"
    positions = [c for c in _POSITION_COLUMNS if c != "centroid_z" or three_d]
    qc = [f"qc_{m}" for m in QC_MEASURES] + [f"qc_mean_{c}" for c in config.channels]
    return layout + list(carried) + positions + qc


# ---------------------------------------------------------------------------------------------
# Writers: one chunk of finished fields at a time


class _Writer:
    """Writes chunks of crops in one layout; a chunk is named ``<prefix>_NNNNN``."""

    prefix = "chunk"

    def __init__(self, out: Path, config: PrepareConfig, columns: list[str]):
        self.out, self.config, self.columns = out, config, columns

    def chunk_names_on_disk(self) -> set[str]:
        raise NotImplementedError

    def remove_chunk(self, name: str) -> None:
        raise NotImplementedError

    def write_chunk(self, name: str, results: list[FieldResult]) -> None:
        raise NotImplementedError

    def finish(self, chunks: list[str]) -> None:
        """Assemble the index file (metadata.csv / manifest.csv) from the chunks' parts."""

    def tables(self, chunks: list[str]) -> Iterator[tuple[str, pd.DataFrame]]:
        raise NotImplementedError

    def display(self, chunk: str, row: pd.Series, position: int) -> np.ndarray:
        """One crop as (H, W, 3) floats in [0, 1] for a montage."""
        raise NotImplementedError

    def _table(self, results: list[FieldResult]) -> pd.DataFrame:
        tables = [r.table for r in results if len(r.table)]
        return pd.concat(tables, ignore_index=True).reindex(columns=self.columns)


class _OpenCellWriter(_Writer):
    prefix = "crops"
    _FILE = re.compile(r"^(crops_\d{5})_(pro|nuc|nucdist)\.npy$|^(crops_\d{5})_label\.csv$")

    def chunk_names_on_disk(self):
        names = set()
        for path in self.out.iterdir():
            match = self._FILE.match(path.name)
            if match:
                names.add(match.group(1) or match.group(3))
        return names

    def remove_chunk(self, name):
        for suffix in ("_pro.npy", "_nuc.npy", "_nucdist.npy", "_label.csv"):
            (self.out / f"{name}{suffix}").unlink(missing_ok=True)

    def write_chunk(self, name, results):
        staging = self.out / f".tmp-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for key in ("pro", "nuc", "nucdist"):
            np.save(staging / f"{name}_{key}.npy", np.concatenate([r.arrays[key] for r in results]).astype(np.float32))
        self._table(results).to_csv(staging / f"{name}_label.csv", index=False)
        for suffix in ("_pro.npy", "_nuc.npy", "_nucdist.npy", "_label.csv"):  # labels last
            os.replace(staging / f"{name}{suffix}", self.out / f"{name}{suffix}")
        staging.rmdir()

    def tables(self, chunks):
        for name in chunks:
            yield name, pd.read_csv(self.out / f"{name}_label.csv", dtype=str, keep_default_na=False)

    def display(self, chunk, row, position):
        pro = np.load(self.out / f"{chunk}_pro.npy", mmap_mode="r")[position]
        nuc = np.load(self.out / f"{chunk}_nuc.npy", mmap_mode="r")[position]
        return _composite(np.stack([pro, nuc], -1), [(0.0, 1.0, 0.0), (0.8, 0.0, 0.8)])


class _FolderWriter(_Writer):
    """Chunks as folders ``<root>/chunk_NNNNN/`` with a ``part.csv``; one index CSV at the end."""

    root = ""
    index = ""

    def _root(self) -> Path:
        return self.out / self.root

    def chunk_names_on_disk(self):
        root = self._root()
        return {p.name for p in root.iterdir() if re.fullmatch(r"chunk_\d{5}", p.name)} if root.is_dir() else set()

    def remove_chunk(self, name):
        shutil.rmtree(self._root() / name, ignore_errors=True)

    def write_chunk(self, name, results):
        staging = self.out / f".tmp-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        table = self._table(results)
        self._write_files(staging, name, results, table)
        table.to_csv(staging / "part.csv", index=False)
        self._root().mkdir(exist_ok=True)
        os.replace(staging, self._root() / name)  # the chunk appears whole

    def _write_files(self, folder: Path, name: str, results: list[FieldResult], table: pd.DataFrame) -> None:
        raise NotImplementedError

    def finish(self, chunks):
        """Concatenate the parts line by line (never the whole table in memory)."""
        with atomic_path(self.out / self.index) as tmp, open(tmp, "w", newline="") as target:
            target.write(pd.DataFrame(columns=self.columns).to_csv(index=False))
            for name in chunks:
                with open(self._root() / name / "part.csv", newline="") as part:
                    next(part, None)  # the header
                    shutil.copyfileobj(part, target)
        return None

    def tables(self, chunks):
        for name in chunks:
            yield name, pd.read_csv(self._root() / name / "part.csv", dtype=str, keep_default_na=False)


class _BBBC021Writer(_FolderWriter):
    root, index = "crops", "metadata.csv"

    def _write_files(self, folder, name, results, table):
        crops = [c for r in results for c in r.arrays["crops"]]
        names = [f"{f}_{int(label)}.npy" for f, label in zip(table["field"], table["nucleus_label"])]
        for crop, file_name in zip(crops, names):
            np.save(folder / file_name, crop)
        table["file"] = names

    def display(self, chunk, row, position):
        crop = np.load(self._root() / chunk / row["file"])
        colors = [(0.2, 0.4, 1.0), (1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0)]
        return _composite(crop, colors[: crop.shape[-1]] + [(1.0, 1.0, 1.0)] * max(0, crop.shape[-1] - 5))


class _AllenWriter(_FolderWriter):
    root, index = "cells", "manifest.csv"
    CHANNEL_NAMES = ("membrane", "dna", "structure", "cell_mask", "nucleus_mask")

    def _write_files(self, folder, name, results, table):
        import tifffile

        cells = [c for r in results for c in r.arrays["cells"]]
        ids = [f"{f}_{int(label)}" for f, label in zip(table["field"], table["nucleus_label"])]
        for cell, cell_id in zip(cells, ids):
            axes = "CZYX" if cell.ndim == 4 else "CYX"
            tifffile.imwrite(
                folder / f"{cell_id}.ome.tiff", cell, ome=True,
                metadata={"axes": axes, "Channel": {"Name": list(self.CHANNEL_NAMES)}},
            )
        table["CellId"] = ids
        table["path"] = [f"{self.root}/{name}/{cell_id}.ome.tiff" for cell_id in ids]
        for i, channel in enumerate(self.CHANNEL_NAMES):
            table[f"ch_{channel}"] = i

    def display(self, chunk, row, position):
        import tifffile

        cell = tifffile.imread(self.out / row["path"])  # (C, [Z,] S, S)
        if cell.ndim == 4:
            cell = cell.max(axis=1)
        return _composite(np.moveaxis(cell[:3], 0, -1), [(1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)])


_WRITERS = {"opencell": _OpenCellWriter, "bbbc021": _BBBC021Writer, "allencell": _AllenWriter}


def _composite(image: np.ndarray, colors) -> np.ndarray:
    """(H, W, C) → (H, W, 3) in [0, 1]: each channel scaled to its 0.5–99.5 % range, tinted, summed."""
    image = np.asarray(image, np.float32)
    rgb = np.zeros(image.shape[:2] + (3,), np.float32)
    for c, color in enumerate(colors):
        channel = image[..., c]
        lo, hi = np.percentile(channel, [0.5, 99.5])
        scaled = np.clip((channel - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(channel)
        rgb += scaled[..., None] * np.asarray(color, np.float32)
    return np.clip(rgb, 0, 1)


# ---------------------------------------------------------------------------------------------
# The run: journal, chunks, workers


def read_progress(out: str | Path) -> tuple[list[str], dict[str, dict]]:
    """Committed chunks and per-field summary rows of an output folder (read-only).

    A torn last line (a run killed while writing it) is ignored: its chunk is not committed.

    Args:
        out: str or Path. The output folder.

    Returns:
        (chunk names in commit order, {field id: summary row}).
    """
    chunks, done = [], {}
    for entry in _journal(Path(out))[0]:
        if entry.get("chunk"):
            chunks.append(entry["chunk"])
        for row in entry.get("fields", []):
            done[row["field"]] = row
    return chunks, done


def _journal(out: Path) -> tuple[list[dict], bool]:
    """The complete entries of the progress journal, and whether a torn tail follows them."""
    path = out / PROGRESS_FILE
    if not path.is_file():
        return [], False
    entries = []
    with open(path) as file:
        for line in file:
            try:
                if not line.endswith("\n"):
                    raise ValueError("no line end")
                entries.append(json.loads(line))
            except ValueError:
                return entries, True
    return entries, False


def pending_fields(out: str | Path, fields: Sequence[Field]) -> list[Field]:
    """The fields not yet committed in `out` (all of them for a new folder)."""
    _, done = read_progress(out)
    return [f for f in fields if f.field not in done]


def _map_ordered(function: Callable, items: Sequence, workers: int) -> Iterator:
    """``map(function, items)`` over `workers` processes, in order, with at most 2·workers in flight."""
    if workers <= 1:
        for item in items:
            yield function(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers start from a clean server process (safe after TensorFlow or threads in
    # the parent, unlike fork) that imported this module once (fast, unlike spawn).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: collections.deque = collections.deque()
        iterator = iter(items)
        try:
            for item in itertools.islice(iterator, 2 * workers):
                pending.append(pool.submit(function, item))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(iterator, 1):
                    pending.append(pool.submit(function, item))
                yield result
        finally:
            for future in pending:
                future.cancel()


@dataclasses.dataclass
class PrepareSummary:
    """What a run did. Attributes: fields (processed now), skipped (done before), empty (fields
    where no cell was found), crops (written now), counts (summed per-field counts),
    total_crops (in the folder), seconds."""

    fields: int
    skipped: int
    empty: list[str]
    crops: int
    counts: dict
    total_crops: int
    seconds: float


def _summary_row(field: Field, result: FieldResult, chunk: str | None) -> dict:
    counts = result.counts
    if counts["nuclei"] == 0:
        status = "no cells found"
    elif counts["crops"] == 0:
        status = "no crops kept"
    else:
        status = "ok"
    row = {"field": field.field, "fovs_row": field.row, "status": status, "fingerprint": field.fingerprint}
    row.update({k: int(v) for k, v in counts.items()})
    row.update({"chunk": chunk if counts["crops"] else "", "seconds": round(result.seconds, 3)})
    return row


def prepare_crops(
    fields: Sequence[Field],
    out: str | Path,
    config: PrepareConfig,
    carried: Sequence[str],
    workers: int = 1,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk_crops: int = 1000,
    chunk_bytes: int = 64 * 2**20,
    montage_crops: int = 16,
    seed: int = 0,
) -> PrepareSummary:
    """Crop every field into `out`, streaming, and write summary.csv and the montages.

    Call `read_fields` and `check_out` first: they validate without writing. Fields run in
    order (in `workers` processes when > 1; the output is the same for any `workers`);
    finished fields are committed in chunks of at most `chunk_crops` crops or `chunk_bytes`
    bytes. With `resume`, fields already committed in `out` are skipped (their FOVS.csv row
    must be unchanged) and chunk files left by a killed run are removed.

    Args:
        fields: sequence of Field. From `read_fields`.
        out: str or Path. Output folder (created).
        config: PrepareConfig.
        carried: sequence of str. The metadata columns (from `read_fields`).
        workers: int. Processes. Defaults to 1 (this process).
        resume: bool. Continue the run in `out`. Defaults to False.
        progress: callable or None. Called with 1 after each field.
        chunk_crops: int. Crops per chunk at most. Defaults to 1000.
        chunk_bytes: int. Bytes of crops held before a chunk is written. Defaults to 64 MiB.
        montage_crops: int. Random crops per group montage (0: none). Defaults to 16.
        seed: int. Montage sampling. Defaults to 0.

    Returns:
        PrepareSummary.
    """
    import functools

    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps({"config": config.to_dict(), "carried": list(carried)}))  # as saved
    if resume and (out / CONFIG_FILE).is_file():
        before = json.loads((out / CONFIG_FILE).read_text())
        for key in sorted(set(before["config"]) | set(settings["config"])):
            if before["config"].get(key) != settings["config"].get(key):
                raise UserError(
                    f"--resume must use the settings of the run in {out}: {key} was {before['config'].get(key)!r}. "
                    f"Received: {settings['config'].get(key)!r}"
                )
        if before["carried"] != settings["carried"]:
            raise UserError(
                f"--resume needs FOVS.csv with the metadata columns of the run in {out} ({', '.join(before['carried'])}). "
                f"Received: {', '.join(carried)}"
            )
    else:
        write_json(out / CONFIG_FILE, settings)
    columns = output_columns(config, carried)
    writer = _WRITERS[config.layout](out, config, columns)
    entries, torn = _journal(out)
    if torn:  # a run killed while writing its last line: keep the complete lines only
        write_text(out / PROGRESS_FILE, "".join(json.dumps(e) + "\n" for e in entries))
    chunks, done = read_progress(out)
    for name in writer.chunk_names_on_disk() - set(chunks):  # left by a killed run
        writer.remove_chunk(name)
    for stale in out.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    by_id = {f.field: f for f in fields}
    for field_id, row in done.items():
        if field_id in by_id and row["fingerprint"] != by_id[field_id].fingerprint:
            raise UserError(
                f"--resume: FOVS.csv row {by_id[field_id].row + 1} (field {field_id}) differs from the one written to "
                f"{out} (paths, channel indices or metadata); restore it or write to a new --out. Received: a changed row"
            )
    todo = [f for f in fields if f.field not in done]
    next_index = 1 + max([int(n.rsplit("_", 1)[1]) for n in set(chunks) | writer.chunk_names_on_disk()] or [-1])
    totals: collections.Counter = collections.Counter()
    empty, crops_now = [], 0
    buffer: list[tuple[Field, FieldResult]] = []

    def commit():
        nonlocal next_index
        with_crops = [r for _, r in buffer if r.counts["crops"]]
        name = None
        if with_crops:
            name = f"{writer.prefix}_{next_index:05d}"
            next_index += 1
            writer.write_chunk(name, with_crops)
            chunks.append(name)
        entry = {"chunk": name, "fields": [_summary_row(f, r, name) for f, r in buffer]}
        with open(out / PROGRESS_FILE, "a") as journal:
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        for row in entry["fields"]:
            done[row["field"]] = row
        buffer.clear()

    work = functools.partial(process_field, config=config)
    held_crops = held_bytes = 0
    try:
        for field, result in zip(todo, _map_ordered(work, todo, workers)):
            buffer.append((field, result))
            totals.update({k: v for k, v in result.counts.items()})
            crops_now += result.counts["crops"]
            if result.counts["nuclei"] == 0:
                empty.append(field.field)
            held_crops += result.counts["crops"]
            held_bytes += result.nbytes
            if held_crops >= chunk_crops or held_bytes >= chunk_bytes:
                commit()
                held_crops = held_bytes = 0
            if progress is not None:
                progress(1)
    except UserError as error:  # e.g. pixels that cannot be read although the header could
        if buffer:
            commit()
        raise UserError(
            f"{error}; the {len(done)} field(s) finished before it are kept in {out}: fix the input and run "
            "again with --resume"
        ) from None
    if buffer:
        commit()
    writer.finish(chunks)
    summary = pd.DataFrame(list(done.values()))
    order = {f.field: i for i, f in enumerate(fields)}
    summary = summary.sort_values("field", key=lambda s: s.map(lambda v: order.get(v, len(order)))).fillna(0)
    write_csv(out / SUMMARY_FILE, summary)
    if montage_crops > 0:
        write_montages(out, config, writer, chunks, montage_crops, seed)
    return PrepareSummary(
        fields=len(todo),
        skipped=len(fields) - len(todo),
        empty=empty,
        crops=crops_now,
        counts=dict(totals),
        total_crops=int(pd.to_numeric(summary.get("crops", pd.Series(dtype=int))).sum()),
        seconds=time.perf_counter() - started,
    )


def write_montages(
    out: str | Path, config: PrepareConfig, writer: _Writer, chunks: list[str], per_group: int = 16, seed: int = 0
) -> list[Path]:
    """``montage/<group>.png``: up to `per_group` random crops of each group (first 100 groups).

    One pass over the chunks' tables keeps a reservoir sample of (chunk, row) per group, so
    memory does not grow with the data.

    Returns:
        The PNG paths.
    """
    from statcell_tf import figures

    out = Path(out)
    rng = np.random.default_rng(seed)
    reservoirs: dict[str, list] = {}
    seen: collections.Counter = collections.Counter()
    for chunk, table in writer.tables(chunks):
        for position, row in table.iterrows():
            group = str(row.get(config.group_column, ""))
            if group not in reservoirs and len(reservoirs) >= MAX_MONTAGE_GROUPS:
                continue
            reservoir = reservoirs.setdefault(group, [])
            seen[group] += 1
            if len(reservoir) < per_group:
                reservoir.append((chunk, position, row))
            else:
                j = int(rng.integers(0, seen[group]))
                if j < per_group:
                    reservoir[j] = (chunk, position, row)
    folder = out / MONTAGE_DIR
    if folder.is_dir():
        shutil.rmtree(folder)
    paths = []
    for group, picks in sorted(reservoirs.items()):
        columns = int(np.ceil(np.sqrt(len(picks))))
        rows = int(np.ceil(len(picks) / columns))
        figure, axes = figures.new_figure(rows, columns, panel=(1.4, 1.4), figsize=(1.4 * columns + 0.2, 1.5 * rows + 0.6))
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (chunk, position, row) in zip(axes.ravel(), picks):
            ax.imshow(writer.display(chunk, row, position), interpolation="nearest")
            ax.set_title(f"{row['field']}:{row['nucleus_label']}", fontsize=6)
        figures.suptitle(figure, f"{config.group_column} = {group}: {len(picks)} random crops of {seen[group]}; "
                                 "title: field:nucleus")
        paths.append(save_figure(folder / f"{file_stem(group)}.png", figure))
    return paths
