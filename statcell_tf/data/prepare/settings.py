"""prepare-crops settings: layouts and their defaults, `PrepareConfig`, QC rules, output columns."""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError

LAYOUTS: tuple[str, ...] = ("opencell", "bbbc021", "allencell")
LAYOUT_CHANNELS: dict[str, tuple[str, ...]] = {"opencell": ("pro", "nuc"), "allencell": ("membrane", "dna", "structure")}
MASK_COLUMNS: tuple[str, ...] = ("nucleus_mask", "cell_mask")
PROJECTIONS: tuple[str, ...] = ("max", "none")
NONFINITE: tuple[str, ...] = ("error", "skip")
PAGES: tuple[str, ...] = ("", "z", "channels")  # what the pages of a file without axis names are ("": not said)
# Metadata each layout's reader needs on every crop.
REQUIRED_METADATA: dict[str, tuple[str, ...]] = {
    "opencell": ("protein",),
    "bbbc021": ("plate", "well", "compound"),
    "allencell": ("structure_name",),
}
# Metadata each layout's reader reads as numbers (finite, on every crop) when the column is there.
NUMERIC_METADATA: dict[str, tuple[str, ...]] = {"opencell": (), "bbbc021": ("concentration",), "allencell": ()}
# Paper defaults per layout (cytoself: 100×100 after ×2 downsampling; VAE+: 68×68).
DEFAULT_SIZE = {"opencell": 100, "bbbc021": 68, "allencell": 128}
DEFAULT_DOWNSAMPLE = {"opencell": 2, "bbbc021": 1, "allencell": 1}
DEFAULT_GROUP = {"opencell": "protein", "bbbc021": "compound", "allencell": "structure_name"}
QC_MEASURES: tuple[str, ...] = ("nucleus_area", "cell_area", "focus", "touches_border", "neighbours")
_POSITION_COLUMNS = ("fovs_row", "field", "nucleus_label", "centroid_z", "centroid_y", "centroid_x", "crop_y", "crop_x")
_LAYOUT_COLUMNS = {
    "opencell": ("fov",),
    "bbbc021": ("file",),
    "allencell": ("CellId", "path", "ch_membrane", "ch_dna", "ch_structure", "ch_cell_mask", "ch_nucleus_mask"),
}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_QC_RULE = re.compile(r"^\s*(?:qc_)?([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")

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
        nonfinite: str. A field with NaN/inf pixels: ``"error"`` stops with one line naming the
            file and field; ``"skip"`` skips the field and counts it in summary.csv.
        pages: str. What the pages of a multi-page file without axis names are: ``"z"``,
            ``"channels"``, or ``""`` (not said: such a file is refused).
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
    nonfinite: str = "error"
    pages: str = ""

    def __post_init__(self):
        if self.pages not in PAGES:
            raise UserError(f"--pages must be one of {', '.join(p for p in PAGES if p)}. Received: {self.pages!r}")
        if self.nonfinite not in NONFINITE:
            raise UserError(f"--nonfinite must be one of {', '.join(NONFINITE)}. Received: {self.nonfinite!r}")
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
        nonfinite: str = "error",
        pages: str = "",
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
            nonfinite: str. ``"error"`` or ``"skip"`` (see the class). Defaults to ``"error"``.

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
            nonfinite=nonfinite,
            pages=pages or "",
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


def output_columns(config: PrepareConfig, carried: Sequence[str]) -> list[str]:
    """Columns of the crop tables, in order: layout columns, carried metadata, positions, QC."""
    layout = [c for c in _LAYOUT_COLUMNS[config.layout] if c not in carried]
    three_d = config.projection == "none" and config.layout == "allencell"
    positions = [c for c in _POSITION_COLUMNS if c != "centroid_z" or three_d]
    qc = [f"qc_{m}" for m in QC_MEASURES] + [f"qc_mean_{c}" for c in config.channels]
    return layout + list(carried) + positions + qc

