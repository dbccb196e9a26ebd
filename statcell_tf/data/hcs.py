"""OME-Zarr HCS plates + a plate map → the rows of a FOVS.csv (one per field of view), headers only.

Large screens are published as OME-Zarr high-content-screening plates (NGFF "plate"
layout): ``PLATE.zarr/<row>/<column>/<field>``, where the plate group's ``plate`` metadata lists
its wells, each well group's ``well`` metadata lists its fields, and each field is an
OME-Zarr image (multiscales, omero channel names). NGFF 0.4 (zarr v2, ``.zattrs``) and 0.5
(zarr v3, ``zarr.json`` attributes under ``"ome"``) are read.

`plate_table` turns plates and a plate map (CSV / TSV / Parquet, one row per well, read by
`statcell_tf.data.tables.read_table` with every value as text) into the same FOVS rows a user
would write by hand, which `statcell_tf.data.prepare.fovs.validate_fields` then validates like
any FOVS.csv. Per field:

- one column per layout channel naming the field image (``PLATE.zarr/B/3/0``) and a
  ``<channel>_channel`` column naming the plate's channel (omero label, or an index);
- ``fov`` (``<plate>_<well>_<site>``, unique across plates), ``plate`` (the NGFF plate
  ``name``, else the folder name without ``.zarr`` / ``.ome.zarr``), ``well`` (``B03``:
  row letters, column number on two digits) and ``site`` (the field's place in its well's
  ``images`` list, from 0);
- every other plate-map column, joined by well (and by plate when the map has a ``plate``
  column). The map names wells as ``B03``, ``B3``, ``b03``, ``B/3`` or ``B_03``, or in
  ``row`` + ``column`` columns.

Channels: each layout channel is matched to the plate's channel names case-insensitively
(``dna`` finds ``DNA``), or given by ``--plate-channels dna=DAPI,actin=Phalloidin`` (a name or
an index). Refused in one line before anything is written: a folder without plate metadata,
plate or well metadata that is missing or malformed, a well or field listed but missing on
disk, plates with different channels, duplicate plate names, a plate map without a well
column or with a well listed twice, a plate well the map does not list (never dropped
silently; wells the map lists that no plate has are only reported), a map column that would
overwrite a column made here, and unknown channel names.

Only metadata is read here (the plate's, each well's and one field image's header per
plate); pixels are read one field and one channel at a time by `statcell_tf.data.fields`
when the field is cut into crops, so a plate is never loaded whole.

Dependency: ``zarr`` alone (as `statcell_tf.data.fields`). ome-zarr-py would add dask,
fsspec, aiohttp and requests for the few lines of JSON read here.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from statcell_tf.data import fields as fieldio
from statcell_tf.errors import UserError

_WELL = re.compile(r"^\s*([A-Za-z]+)\s*[/_-]?\s*0*(\d+)\s*$")
_METADATA_FILES = ("zarr.json", ".zattrs", ".zgroup")
_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class PlateTable:
    """FOVS rows made from plates. Attributes: table (DataFrame of str, one row per field),
    row_names (how messages name each row), inputs (the plate folders and the plate map),
    plates (plate names), unmatched (plate-map wells no plate has, ``plate well`` text)."""

    table: pd.DataFrame
    row_names: list[str]
    inputs: list[Path]
    plates: list[str]
    unmatched: list[str]


def normalise_well(text: str) -> str | None:
    """``"B3"``, ``"b03"``, ``"B/3"``, ``"B_03"`` → ``"B03"``; None when `text` is not a well name."""
    match = _WELL.match(str(text))
    if match is None:
        return None
    return f"{match[1].upper()}{int(match[2]):02d}"


def is_plate(path: str | Path) -> bool:
    """True for a zarr folder whose attributes hold NGFF ``plate`` metadata."""
    path = Path(path)
    if not path.is_dir() or not any((path / name).is_file() for name in _METADATA_FILES):
        return False
    try:
        return "plate" in fieldio.zarr_attributes(path)
    except UserError:
        return False


def parse_plate_channels(text: str | None, channels: Sequence[str]) -> dict[str, str]:
    """``--plate-channels dna=DAPI,actin=1`` → ``{"dna": "DAPI", "actin": "1"}``, keys among `channels`."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UserError(
                "--plate-channels must be CHANNEL=PLATE_CHANNEL pairs separated by commas (e.g. dna=DAPI,actin=1). "
                f"Received: {text!r}"
            )
        if key not in channels:
            raise UserError(
                f"--plate-channels names the layout's channels ({', '.join(channels)}). Received: {key!r} in {text!r}"
            )
        if key in mapping:
            raise UserError(f"--plate-channels names {key} twice. Received: {text!r}")
        mapping[key] = value
    return mapping


def _plate_name(path: Path, plate: dict) -> str:
    name = str(plate.get("name") or "").strip()
    if name:
        return name
    stem = path.name
    for suffix in (".zarr", ".ome"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return stem


def _wells(path: Path) -> tuple[str, list[tuple[str, str, list[str]]], fieldio.ImageHeader]:
    """(plate name, [(well "B03", well path "B/3", [field paths])], the first field's header)."""
    if not path.is_dir():
        raise UserError(f"{path} is not an OME-Zarr HCS plate folder. Received: a file")
    attrs = fieldio.zarr_attributes(path) if any((path / n).is_file() for n in _METADATA_FILES) else {}
    plate = attrs.get("plate")
    if not isinstance(plate, dict):
        raise UserError(
            f"{path} is not an OME-Zarr HCS plate; expected a zarr group with NGFF plate metadata (\"plate\" in "
            f".zattrs, or under \"ome\" in zarr.json). Received: attributes {sorted(attrs) or 'none'}"
        )
    wells = plate.get("wells")
    if not isinstance(wells, list) or not wells:
        raise UserError(f"{path}: the plate metadata must list its wells (plate.wells). Received: {wells!r}")
    rows = [str(r.get("name", "")) if isinstance(r, dict) else "" for r in plate.get("rows") or []]
    columns = [str(c.get("name", "")) if isinstance(c, dict) else "" for c in plate.get("columns") or []]
    found = []
    for entry in wells:
        well_path = str(entry.get("path", "")).strip("/") if isinstance(entry, dict) else ""
        parts = well_path.split("/")
        if len(parts) == 2 and isinstance(entry.get("rowIndex"), int) and isinstance(entry.get("columnIndex"), int):
            r, c = entry["rowIndex"], entry["columnIndex"]
            if not (0 <= r < len(rows) and 0 <= c < len(columns)) or (rows[r], columns[c]) != tuple(parts):
                raise UserError(
                    f"{path}: plate well {well_path} has rowIndex {r}, columnIndex {c}, which name another well of "
                    f"plate.rows / plate.columns. Received: {entry!r}"
                )
        well = normalise_well("/".join(parts)) if len(parts) == 2 else None
        if well is None:
            raise UserError(
                f"{path}: plate.wells entries need a path ROW/COLUMN such as B/3. Received: {entry!r}"
            )
        folder = path / well_path
        if not folder.is_dir():
            raise UserError(
                f"{path}: well {well_path} is listed in the plate metadata but missing on disk. Received: no {folder}"
            )
        well_meta = fieldio.zarr_attributes(folder).get("well")
        images = well_meta.get("images") if isinstance(well_meta, dict) else None
        if not isinstance(images, list) or not images:
            raise UserError(
                f"{folder}: expected NGFF well metadata listing the well's fields (well.images). Received: "
                f"{'well ' + repr(well_meta) if well_meta is not None else 'no well metadata'}"
            )
        sites = []
        for image in images:
            image_path = str(image.get("path", "")).strip("/") if isinstance(image, dict) else ""
            if not image_path:
                raise UserError(f"{folder}: well.images entries need a path. Received: {image!r}")
            if not (folder / image_path).is_dir():
                raise UserError(
                    f"{folder}: field {image_path} is listed in the well metadata but missing on disk. Received: "
                    f"no {folder / image_path}"
                )
            sites.append(image_path)
        found.append((well, well_path, sites))
    counts = collections.Counter(w for w, _, _ in found)
    repeated = sorted(w for w, n in counts.items() if n > 1)
    if repeated:
        raise UserError(f"{path}: the plate metadata lists well {repeated[0]} more than once. Received: {wells!r}")
    order = {w: i for i, w in enumerate(rows)}, {c: i for i, c in enumerate(columns)}
    found.sort(key=lambda f: (order[0].get(f[1].split("/")[0], 0), order[1].get(f[1].split("/")[1], 0)))
    return _plate_name(path, plate), found, fieldio.read_header(path / found[0][1] / found[0][2][0])


def _channel_columns(channels: Sequence[str], mapping: dict[str, str], header, where: Path) -> dict[str, str]:
    """Layout channel → the plate channel (its name, or an index as text), checked against `header`."""
    names = header.channel_names
    count = header.n_channels(True)
    lowered = [n.lower() for n in names]
    listed = ", ".join(names) if any(names) else f"{count} unnamed"
    chosen = {}
    for channel in channels:
        wanted = mapping.get(channel, channel)
        given = f"--plate-channels {channel}={wanted}" if channel in mapping else f"channel {channel}"
        if wanted.isdigit() and channel in mapping:
            if int(wanted) >= count:
                raise UserError(
                    f"{given}: plate {where} has channels 0 to {count - 1} ({listed}). Received: index {wanted}"
                )
            chosen[channel] = wanted
        elif wanted in names:
            chosen[channel] = wanted
        elif lowered.count(wanted.lower()) == 1:
            chosen[channel] = names[lowered.index(wanted.lower())]
        else:
            raise UserError(
                f"{given}: no such channel in plate {where} (its channels: {listed}); name the plate channel of each "
                f"layout channel with --plate-channels, e.g. {channel}=NAME (a channel name or index). "
                f"Received: {wanted!r}"
            )
    return chosen


def _read_map(plate_map: Path) -> tuple[pd.DataFrame, list[str]]:
    """The plate map with a normalised ``_well`` key (and ``plate`` when it has one), checked."""
    from statcell_tf.data.tables import read_table

    flag = "--plate-map"
    table = read_table(plate_map, flag, text=True)
    where = f"{flag} {plate_map}"
    if table.empty:
        raise UserError(f"{where} must list the wells (one row each). Received: a header without rows")
    if "well" in table.columns:
        keys = table["well"]
    elif {"row", "column"} <= set(table.columns):
        keys = table["row"].str.strip() + "/" + table["column"].str.strip()
    else:
        raise UserError(
            f"{where} needs a well column (B03, B3 or B/3) or row and column columns to join the plates' wells. "
            f"Received columns: {', '.join(table.columns)}"
        )
    wells = keys.map(normalise_well)
    if wells.isna().any():
        row = int(wells.isna().to_numpy().argmax())
        raise UserError(
            f"{where} row {row + 1}: expected a well name such as B03, B3 or B/3. Received: {keys.iloc[row]!r}"
        )
    table = table.assign(_well=wells)
    key = ["plate", "_well"] if "plate" in table.columns else ["_well"]
    if "plate" in table.columns:
        table["plate"] = table["plate"].str.strip()
    repeated = table[table.duplicated(key, keep=False)]
    if not repeated.empty:
        rows = [int(i) + 1 for i in repeated.index[:2]]
        what = " ".join(repeated.iloc[0][key]).strip()
        raise UserError(
            f"{where}: well {what} is listed more than once (rows {rows[0]} and {rows[1]}); expected one row per "
            f"well{' and plate' if 'plate' in table.columns else ''}. Received: {len(repeated)} rows for repeated wells"
        )
    return table, key


def plate_table(
    plates: Sequence[str | Path],
    plate_map: str | Path,
    channels: Sequence[str],
    plate_channels: str | None = None,
    reserved: Sequence[str] = (),
) -> PlateTable:
    """FOVS rows (one per field of every plate) with the plate map joined by well; see the module.

    Args:
        plates: sequence of str or Path. OME-Zarr HCS plate folders.
        plate_map: str or Path. CSV / TSV / Parquet, one row per well (and plate).
        channels: sequence of str. The layout's channel columns, in crop order.
        plate_channels: str or None. ``--plate-channels`` text.
        reserved: sequence of str. Further column names a plate map must not hold.

    Returns:
        PlateTable.
    """
    plate_map = Path(plate_map)
    mapping = parse_plate_channels(plate_channels, channels)
    paths = [Path(p) for p in plates]
    read = [(path, *_wells(path)) for path in paths]
    names = [name for _, name, _, _ in read]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        shown = ", ".join(str(p) for p, n, _, _ in read if n == repeated[0])
        raise UserError(
            f"plates {shown} are all named {repeated[0]!r} (NGFF plate name, else the folder name); expected one "
            "name per plate, or their wells would merge"
        )
    first_path, _, _, first = read[0]
    for path, _, _, header in read[1:]:
        if (header.channel_names, header.n_channels(True)) != (first.channel_names, first.n_channels(True)):
            raise UserError(
                f"plate {path} has the channels {', '.join(header.channel_names) or 'unnamed'}, but plate "
                f"{first_path} has {', '.join(first.channel_names) or 'unnamed'}; expected plates of one screen with "
                "the same channels"
            )
    chosen = _channel_columns(channels, mapping, first, first_path)
    table, key = _read_map(plate_map)
    made = [*channels, *(f"{c}_channel" for c in channels), "fov", "site", *reserved]
    clash = [c for c in table.columns if c in made]
    if clash:
        raise UserError(
            f"--plate-map {plate_map}: column {clash[0]} is made from the plates (fov, site, the channel columns); "
            f"rename it in the plate map. Received columns: {', '.join(c for c in table.columns if c != '_well')}"
        )
    by_key = {tuple(row[k] for k in key): i for i, row in table.iterrows()}
    extra = [c for c in table.columns if c not in ("well", "plate", "_well")]
    rows, row_names, absent, used = [], [], [], set()
    for path, name, wells, _ in read:
        for well, well_path, sites in wells:
            lookup = (name, well) if len(key) == 2 else (well,)
            index = by_key.get(lookup)
            if index is None:
                absent.append(f"{name} {well}" if len(read) > 1 or len(key) == 2 else well)
                continue
            used.add(index)
            values = table.loc[index]
            for site_index, site in enumerate(sites):
                image = str(path / well_path / site)
                row = {c: image for c in channels}
                row.update({f"{c}_channel": chosen[c] for c in channels})
                row.update({"fov": f"{name}_{well}_{site_index}", "plate": name, "well": well, "site": str(site_index)})
                row.update({c: values[c] for c in extra})
                rows.append(row)
                row_names.append(
                    f"--plate-map {plate_map} row {index + 1} (plate {name} well {well} field {site_index}, {image})"
                )
    if absent:
        shown = ", ".join(absent[:_SHOWN]) + (", ..." if len(absent) > _SHOWN else "")
        raise UserError(
            f"--plate-map {plate_map} must list every well of the plate(s) (their cells would be dropped otherwise); "
            f"{len(absent)} well(s) are not in it: {shown}. Received: {len(table)} plate-map row(s)"
        )
    unmatched = [" ".join(table.loc[i, k] for k in key) for i in table.index if i not in used]
    return PlateTable(pd.DataFrame(rows, dtype=str), row_names, [*paths, plate_map], names, unmatched)
