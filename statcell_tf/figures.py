"""One figure style for every plot of the four papers.

House sizes and fonts (`new_figure`, `panel_grid`: ``layout="constrained"``, panel grids share
their axes and say the shared labels once), one colour table keyed by category name
(`category_colours`: cell-cycle phases in the Statistical Cell's colours — interphase brown,
mitosis blue — channels, treatments; any other set of names in sorted order, so the same
set of names gets the same colours in every command and panel), colour maps by meaning
(`SIGNED` diverging around 0, `MAGNITUDE` sequential), and one honest image display
(`DisplayRange`: one fixed intensity range per channel for a whole figure, stated in the
figure with a channel key; `image_grid`).

`text_problems` checks a drawn figure with the renderer's text extents (overlaps, text off the
canvas, unlabelled axes and colour bars); `write_gallery` writes an HTML page of PNGs with
their one-line captions (each PNG's title, stored by `atomic.save_figure`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

# ----- sizes and fonts ----------------------------------------------------------------------
HOUSE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 10,
    "figure.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "figure.dpi": 100,
}
PANEL = (2.8, 2.4)  # inches of one plot panel
TILE = 1.15  # inches of one image tile
MAX_COLUMNS = 4  # panel grids wrap after this many panels

SIGNED = "RdBu_r"  # signed values (correlations, differences): diverging, centred at 0
MAGNITUDE = "viridis"  # magnitudes (counts, β, distances): sequential
FRACTION = "Blues"  # fractions in [0, 1] (confusion matrices)


def pyplot():
    """matplotlib.pyplot with the Agg backend (unless one was chosen) and the house style."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(HOUSE)
    return plt


def new_figure(rows: int = 1, columns: int = 1, panel: tuple[float, float] = PANEL, **kwargs):
    """(figure, axes (rows, columns)) with the constrained layout engine and house sizes.

    Args:
        rows, columns: int. Panel grid.
        panel: (width, height) in inches of one panel.
        **kwargs: passed to `plt.subplots` (sharex, sharey, gridspec_kw, …).
    """
    plt = pyplot()
    kwargs.setdefault("figsize", (panel[0] * columns, panel[1] * rows))
    figure, axes = plt.subplots(rows, columns, layout="constrained", squeeze=False, **kwargs)
    return figure, axes


def wrap(text: str, width: float, fontsize: float) -> str:
    """`text` broken into lines that fit `width` inches at `fontsize` points."""
    import textwrap

    characters = max(20, int(width * 72 / (0.56 * fontsize)))
    return "\n".join(textwrap.wrap(text, characters))


def suptitle(figure, text: str, fontsize: float | None = None):
    """Figure title wrapped to the figure's width (a long title never runs off the canvas)."""
    size = fontsize or HOUSE["figure.titlesize"]
    return figure.suptitle(wrap(text, figure.get_figwidth(), size), fontsize=size)


def panel_grid(count: int, panel: tuple[float, float] = PANEL, max_columns: int = MAX_COLUMNS,
               xlabel: str = "", ylabel: str = "", share: bool = True):
    """A grid of `count` panels sharing both axes: (figure, list of the `count` used axes).

    Shared axes carry their tick labels on the outer panels only and one x and one y label for
    the whole grid (`xlabel`, `ylabel`); unused cells of the last row are removed.
    """
    count = max(1, int(count))
    columns = min(max_columns, count)
    rows = int(np.ceil(count / columns))
    figure, axes = new_figure(rows, columns, panel, sharex=share, sharey=share)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.remove()
    used = flat[:count]
    if share:
        for ax in used:
            ax.label_outer(remove_inner_ticks=True)
        # label_outer hides the x tick labels of a panel whose lower neighbour was removed: restore them
        for index, ax in enumerate(used):
            if index + columns >= count:
                ax.xaxis.set_tick_params(labelbottom=True)
    if xlabel:
        figure.supxlabel(xlabel)
    if ylabel:
        figure.supylabel(ylabel)
    return figure, used


# ----- colours by name ----------------------------------------------------------------------
# Statistical Cell Fig. 5: interphase brown, mitotic cells blue (shades by phase).
PHASE_COLOURS = {
    "interphase": "#8c564b",
    "mitosis": "#1f77b4",
    "mitotic": "#1f77b4",
    "prophase": "#6baed6",
    "prometaphase": "#4292c6",
    "metaphase": "#2171b5",
    "anaphase": "#08519c",
    "telophase": "#08306b",
}
# Statistical Cell Fig. 6: untreated black, treated pink.
TREATMENT_COLOURS = {"untreated": "#000000", "vehicle": "#000000", "control": "#000000", "dmso": "#000000"}
TREATED = "#e377c2"
# Image channels (additive display colours, RGB in [0, 1]); keys are lower-case name fragments.
CHANNEL_COLOURS = {
    "membrane": (1.0, 0.0, 1.0),
    "dna": (0.0, 0.6, 1.0),
    "nucle": (0.0, 0.6, 1.0),
    "dapi": (0.0, 0.6, 1.0),
    "hoechst": (0.0, 0.6, 1.0),
    "structure": (1.0, 1.0, 0.0),
    "protein": (0.2, 1.0, 0.2),
    "pro": (0.2, 1.0, 0.2),
    "tubulin": (0.2, 1.0, 0.2),
    "actin": (1.0, 0.2, 0.2),
}
_CHANNEL_FALLBACK = [(1.0, 0.0, 1.0), (0.0, 0.6, 1.0), (1.0, 1.0, 0.0), (0.2, 1.0, 0.2), (1.0, 0.2, 0.2)]
OTHERS_COLOUR = "#d0d0d0"
# Qualitative palette for any other set of names (tab10 without its brown, pink and grey, then tab20's light tones).
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#bcbd22", "#17becf",
            "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
            "#393b79", "#637939", "#8c6d31", "#843c39"]


def fixed_colour(name) -> str | None:
    """The fixed colour of a phase or untreated group (case-insensitive), else None."""
    key = str(name).strip().lower()
    return PHASE_COLOURS.get(key) or TREATMENT_COLOURS.get(key)


def category_colours(names: Sequence) -> dict[str, str]:
    """Colour per category name: fixed colours for cell-cycle phases and untreated groups, the
    others from one qualitative palette in sorted order of the distinct names.

    Pass the full set of names of a data set (e.g. all families) to get the same colours in
    every figure and panel that draws it; each panel draws `colours[name]`, never its position.
    Beyond the palette's 20 colours the hues are spread over the HSV circle.
    """
    distinct = sorted({str(n) for n in names})
    colours, free = {}, []
    for name in distinct:
        fixed = fixed_colour(name)
        if fixed is not None:
            colours[name] = fixed
        else:
            free.append(name)
    if len(free) <= len(_PALETTE):
        colours.update(zip(free, _PALETTE))
    else:
        import matplotlib.colors as mcolors
        import colorsys

        for i, name in enumerate(free):
            colours[name] = mcolors.to_hex(colorsys.hsv_to_rgb(i / len(free), 0.75, 0.85))
    return colours


def channel_colour(name, position: int = 0) -> tuple[float, float, float]:
    """Display colour of an image channel from its name (membrane magenta, DNA cyan, structure
    yellow, protein green, actin red), else by position."""
    key = str(name).lower()
    for fragment, colour in CHANNEL_COLOURS.items():
        if fragment in key:
            return colour
    return _CHANNEL_FALLBACK[position % len(_CHANNEL_FALLBACK)]


def signed_limits(values) -> tuple[float, float]:
    """(−m, m) with m the largest finite |value| (1 when there is none): a diverging map centred at 0."""
    values = np.asarray(values, "float64")
    finite = np.abs(values[np.isfinite(values)])
    m = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return -m, m


# ----- honest images ------------------------------------------------------------------------
def project(image: np.ndarray) -> np.ndarray:
    """(…spatial, C) → (H, W, C): 3D images (Z, Y, X, C) are max-projected along z; 2D images
    without a channel axis get one."""
    image = np.asarray(image, "float32")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim == 4:
        image = image.max(axis=0)
    return image


@dataclasses.dataclass(frozen=True)
class DisplayRange:
    """One fixed display range per channel, shared by every image of a figure.

    `low` / `high`: per-channel intensities shown as black / full colour; `statement` says in the
    figure how they were chosen (e.g. "each channel scaled to [p0.1, p99.9] of the input cells").
    """

    channel_names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    statement: str

    def colours(self) -> list[tuple[float, float, float]]:
        return [channel_colour(name, i) for i, name in enumerate(self.channel_names)]

    def scaled(self, image: np.ndarray) -> np.ndarray:
        """(…spatial, C) → (H, W, C) in [0, 1] on this range (no per-image rescaling)."""
        image = project(image)
        low = np.asarray(self.low, "float32")[: image.shape[-1]]
        span = np.maximum(np.asarray(self.high, "float32")[: image.shape[-1]] - low, 1e-12)
        return np.clip((image - low) / span, 0.0, 1.0)

    def rgb(self, image: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
        """(H, W, 3) additive composite of `channels` (default all) in their display colours."""
        scaled = self.scaled(image)
        channels = range(scaled.shape[-1]) if channels is None else channels
        colours = self.colours()
        rgb = np.zeros((*scaled.shape[:2], 3), "float32")
        for c in channels:
            rgb += scaled[..., c, None] * np.asarray(colours[c], "float32")
        return np.clip(rgb, 0.0, 1.0)


def display_range(images, channel_names: Sequence[str], of: str = "the cells shown",
                  percentiles: tuple[float, float] = (0.1, 99.9)) -> DisplayRange:
    """Per-channel display range: the given percentiles of the projected `images` (n, …spatial, C).

    Args:
        images: array or list of images; their max projections set the range.
        channel_names: one name per channel.
        of: what `images` are, for the statement ("the input cells").
        percentiles: (low, high) percentiles. Defaults to (0.1, 99.9).
    """
    projected = np.stack([project(image) for image in images]) if len(images) else np.zeros((1, 1, 1, len(channel_names)))
    lows, highs = [], []
    for c in range(projected.shape[-1]):
        values = projected[..., c]
        values = values[np.isfinite(values)]
        low, high = (np.percentile(values, percentiles) if values.size else (0.0, 1.0))
        if high <= low:
            high = low + 1.0
        lows.append(float(low))
        highs.append(float(high))
    names = tuple(str(n) for n in channel_names)[: projected.shape[-1]]
    statement = f"each channel scaled to [p{percentiles[0]:g}, p{percentiles[1]:g}] of {of}"
    return DisplayRange(names, tuple(lows), tuple(highs), statement)


def show_image(ax, image, scale: DisplayRange, channels: Sequence[int] | None = None) -> None:
    """Draw `image` on `ax` on the figure's fixed range, without ticks or frame."""
    ax.imshow(scale.rgb(image, channels), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def channel_key(figure, scale: DisplayRange, channels: Sequence[int] | None = None) -> None:
    """A key below the figure: one coloured square per channel, and how intensities were scaled."""
    from matplotlib.patches import Patch

    channels = range(len(scale.channel_names)) if channels is None else channels
    colours = scale.colours()
    handles = [Patch(facecolor=colours[c], edgecolor="0.3", label=scale.channel_names[c]) for c in channels]
    figure.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)), frameon=False,
                  title=scale.statement, handlelength=1.0, columnspacing=1.2)


def image_grid(rows: Sequence[Sequence], scale: DisplayRange, row_labels=None, col_labels=None, title: str = "",
               channels: Sequence[Sequence] | None = None, tile: float = TILE):
    """Grid of images (one list per row) on one display range, with a channel key.

    Args:
        rows: list of rows, each a list of images (…spatial, C) or None for an empty cell.
        scale: DisplayRange of the whole figure.
        row_labels, col_labels: optional labels (row labels left of the first column).
        title: figure title.
        channels: optional per-row list of channel subsets per image (None = all channels).
        tile: inches per image.
    """
    n_rows = max(1, len(rows))
    n_cols = max((len(r) for r in rows), default=1) or 1
    label_width = 0.9 if row_labels is not None else 0.0
    blank = next((project(image).shape[:2] for row in rows for image in row if image is not None), (1, 1))
    figure, axes = new_figure(n_rows, n_cols, (tile, tile),
                              figsize=(tile * n_cols + label_width, tile * n_rows + 0.9 + (0.3 if title else 0)))
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            image = rows[i][j] if i < len(rows) and j < len(rows[i]) else None
            if image is None:  # an empty cell: a blank tile of the same size keeps titles aligned
                ax.imshow(np.ones((*blank, 3)))
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            else:
                subset = channels[i][j] if channels is not None else None
                show_image(ax, image, scale, subset)
            if j == 0 and row_labels is not None:
                ax.set_axis_on()
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylabel(str(row_labels[i]), rotation=0, ha="right", va="center")
            if i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(str(col_labels[j]), fontsize=HOUSE["xtick.labelsize"])
    channel_key(figure, scale)
    if title:
        suptitle(figure, title)
    return figure


# ----- the text checker ---------------------------------------------------------------------
def _visible(artist) -> bool:
    while artist is not None:
        if not artist.get_visible():
            return False
        artist = getattr(artist, "axes", None) if artist is not getattr(artist, "axes", None) else None
    return True


def _tick_labels(axis) -> list:
    labels = []
    low, high = sorted(axis.get_view_interval())
    tolerance = 1e-9 * max(1.0, abs(high - low))
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if not low - tolerance <= tick.get_loc() <= high + tolerance:
            continue
        labels.extend(label for label in (tick.label1, tick.label2) if label.get_visible())
    return labels


def _texts(figure) -> list:
    texts = list(figure.texts)
    for attribute in ("_suptitle", "_supxlabel", "_supylabel"):
        if getattr(figure, attribute, None) is not None:
            texts.append(getattr(figure, attribute))
    for legend in figure.legends:
        texts += list(legend.get_texts()) + [legend.get_title()]
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title] + list(ax.texts)
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label] + _tick_labels(ax.xaxis) + _tick_labels(ax.yaxis)
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            texts += list(legend.get_texts()) + [legend.get_title()]
    unique = {id(t): t for t in texts}  # a figure's suptitle is one of its texts too
    return [t for t in unique.values() if t.get_visible() and t.get_text().strip()]


def text_problems(figure, tolerance: float = 0.5) -> list[str]:
    """Problems a reader would see, measured with the renderer's extents of every visible text:
    overlapping pairs, text beyond the canvas, axes with tick labels but no axis label (a grid's
    shared `supxlabel` / `supylabel` counts) and colour bars without a label. Empty when clean."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = _texts(figure)
    boxes = np.array([[*t.get_window_extent(renderer).extents] for t in texts]).reshape(-1, 4)
    problems = []
    canvas = figure.bbox
    for text, (x0, y0, x1, y1) in zip(texts, boxes):
        if x0 < canvas.x0 - tolerance or y0 < canvas.y0 - tolerance or x1 > canvas.x1 + tolerance or y1 > canvas.y1 + tolerance:
            problems.append(f"text {text.get_text()!r} lies outside the canvas")
    if len(boxes) > 1:
        width = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
        height = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
        overlap = np.triu((width > tolerance) & (height > tolerance), k=1)
        for i, j in zip(*np.nonzero(overlap)):
            problems.append(f"texts {texts[i].get_text()!r} and {texts[j].get_text()!r} overlap")
    shared_x = figure._supxlabel is not None and figure._supxlabel.get_text()
    shared_y = figure._supylabel is not None and figure._supylabel.get_text()
    colorbar_axes = {id(ax) for ax in figure.axes if getattr(ax, "_colorbar", None) is not None}
    for ax in figure.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if id(ax) in colorbar_axes:
            if not (ax.get_ylabel().strip() or ax.get_xlabel().strip()):
                problems.append("a colour bar has no label")
            continue
        name = ax.get_title() or ax.get_title(loc="left") or "an axes"
        if any(t.get_text().strip() for t in _tick_labels(ax.xaxis)) and not (ax.get_xlabel().strip() or shared_x):
            problems.append(f"{name!r}: x axis has tick labels but no label")
        if any(t.get_text().strip() for t in _tick_labels(ax.yaxis)) and not (ax.get_ylabel().strip() or shared_y):
            problems.append(f"{name!r}: y axis has tick labels but no label")
    return problems


def figure_caption(figure) -> str:
    """One line saying what a figure shows: its title, else the first axes title."""
    title = getattr(figure, "_suptitle", None)
    if title is not None and title.get_text().strip():
        return " ".join(title.get_text().split())
    for ax in figure.axes:
        if ax.get_title().strip():
            return " ".join(ax.get_title().split())
    return ""
