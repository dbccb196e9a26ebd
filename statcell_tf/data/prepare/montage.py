"""``montage/<group>.png``: random crops per group, sampled in one pass over the chunks."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np

from statcell_tf import atomic
from statcell_tf.data.prepare.settings import PrepareConfig
from statcell_tf.naming import file_stem

MONTAGE_DIR = "montage"
MAX_MONTAGE_GROUPS = 100


def composite(image: np.ndarray, colors) -> np.ndarray:
    """(H, W, C) → (H, W, 3) in [0, 1]: each channel scaled to its 0.5–99.5 % range, tinted, summed."""
    image = np.asarray(image, np.float32)
    rgb = np.zeros(image.shape[:2] + (3,), np.float32)
    for c, color in enumerate(colors):
        channel = image[..., c]
        lo, hi = np.percentile(channel, [0.5, 99.5])
        scaled = np.clip((channel - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(channel)
        rgb += scaled[..., None] * np.asarray(color, np.float32)
    return np.clip(rgb, 0, 1)


def write_montages(
    out: str | Path, config: PrepareConfig, writer, chunks: list[str], per_group: int = 16, seed: int = 0
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
        paths.append(atomic.save_figure(folder / f"{file_stem(group)}.png", figure))
    return paths
