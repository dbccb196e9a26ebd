"""FOVS.csv → validated `Field`s (headers only, nothing written), and the --out check."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from statcell_tf.atomic import check_out as atomic_check_out
import numpy as np
import pandas as pd

from statcell_tf.data import fields as fieldio
from statcell_tf.data import hcs
from statcell_tf.data.prepare.journal import CONFIG_FILE
from statcell_tf.data.prepare.settings import MASK_COLUMNS, NUMERIC_METADATA, REQUIRED_METADATA, PrepareConfig, output_columns, parse_qc
from statcell_tf.errors import UserError
from statcell_tf.naming import file_stem


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

    Image paths are relative to the CSV's folder (or absolute). See `validate_fields` for the checks.

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
    return validate_fields(table, config, str(fovs_csv), fovs_csv.parent)


def read_plates(
    plates: Sequence[str | Path],
    plate_map: str | Path,
    config: PrepareConfig,
    plate_channels: str | None = None,
) -> tuple[list[Field], list[str], hcs.PlateTable]:
    """Validate OME-Zarr HCS plates + a plate map as FOVS rows (`statcell_tf.data.hcs`), headers only.

    Args:
        plates: sequence of str or Path. Plate folders.
        plate_map: str or Path. CSV / TSV / Parquet table, one row per well.
        config: PrepareConfig. Its channels are matched to the plates' channel names.
        plate_channels: str or None. ``--plate-channels`` (``dna=DAPI,actin=1``).

    Returns:
        (fields, carried metadata column names, the PlateTable: its inputs and unmatched wells).
    """
    reserved = [*MASK_COLUMNS, *(f"{c}_channel" for c in MASK_COLUMNS)]
    plate_table = hcs.plate_table(plates, plate_map, config.channels, plate_channels, reserved)
    fields, carried = validate_fields(
        plate_table.table, config, f"--plate-map {plate_map}", Path("."), plate_table.row_names
    )
    return fields, carried, plate_table


def validate_fields(
    table: pd.DataFrame,
    config: PrepareConfig,
    source: str,
    base: Path,
    row_names: Sequence[str] | None = None,
) -> tuple[list[Field], list[str]]:
    """Validate FOVS rows (one field of view each, every value text) from the files' headers.

    Checks, naming the row, column and file: the channel (and mask) columns exist, every path
    exists and is a readable image, multi-channel files have a valid channel index, all
    channels of a field share one shape, 2D fields where the layout needs them (z-stacks are
    fine with ``projection="max"``), one depth for 3D Allen output, masks of the field's
    shape, a crop of ``size`` fits in the (downsampled) field, the metadata the layout's reader
    needs is there (numbers where it reads numbers), field ids are unique, and no metadata
    column clashes with an output column.

    Args:
        table: DataFrame of str. The rows (from FOVS.csv, or made from plates by `hcs`).
        config: PrepareConfig.
        source: str. Names the table in messages (``"fovs.csv"``, ``"--plate-map map.csv"``).
        base: Path. Relative image paths are relative to it.
        row_names: sequence of str or None. How messages name each row (None: ``<source> row N``).

    Returns:
        (fields, carried metadata column names).
    """
    fovs_csv = source
    table = table.copy()
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
            f"{fovs_csv}: column {clash[0]} is written by prepare-crops; rename it there. "
            f"Received columns: {', '.join(table.columns)}"
        )
    for column in (c for c in NUMERIC_METADATA[config.layout] if c in carried):
        text = table[column].astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.argmax(bad))
            where = row_names[row] if row_names is not None else f"{fovs_csv} row {row + 1}"
            raise UserError(
                f"{where}: column {column} must hold a finite number for --layout {config.layout} (its reader "
                f"reads it as one). Received: {table[column].iloc[row]!r} ({int(bad.sum())} such row(s))"
            )
    if "cell_mask" not in masks and config.cell_channel is None and config.layout == "allencell":
        raise UserError(
            f"--layout allencell needs cells: a cell_mask column in {fovs_csv} or --cell-channel (e.g. membrane). "
            "Received: --cell-channel none and no cell_mask column"
        )
    if any(rule.measure == "cell_area" for rule in parse_qc(config.qc, config.channels)):
        if "cell_mask" not in masks and config.cell_channel is None:
            raise UserError(
                f"--qc cell_area needs cells: a cell_mask column in {fovs_csv} or --cell-channel. "
                "Received: no cell segmentation"
            )
    headers: dict[str, fieldio.ImageHeader] = {}
    fields, seen, depth = [], {}, None
    for row, values in enumerate(table.to_dict("records")):
        where = row_names[row] if row_names is not None else f"{fovs_csv} row {row + 1}"
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
            path = Path(text) if Path(text).is_absolute() else base / text
            if not path.exists():
                raise UserError(f"{where}: column {name} names {path}, which does not exist. Received: {text!r}")
            key = str(path)
            if key not in headers:
                headers[key] = fieldio.read_header(path, config.pages)
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


def check_out(out: str | Path, fovs_csv: str | Path | Sequence[str | Path], fields: Sequence[Field], resume: bool) -> None:
    """Refuse an --out that is a file, lies under a file, is the input folder (or holds inputs),
    or is a non-empty folder without ``resume`` (with ``resume``: one prepare-crops wrote).

    Args:
        out: str or Path. The output folder.
        fovs_csv: str or Path, or a sequence of them. The input table (or the plates and plate map).
        fields: sequence of Field. Their image paths must not lie inside `out`.
        resume: bool. Continue an earlier run in `out`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a folder. Received: --out {out}")
    tables = [fovs_csv] if isinstance(fovs_csv, (str, Path)) else list(fovs_csv)
    inputs = [Path(t) for t in tables] + [Path(h.path) for f in fields for _, h, _ in (*f.channels, *f.masks)]
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
