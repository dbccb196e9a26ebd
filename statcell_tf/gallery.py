"""The demos' gallery: one HTML page showing a run's figures, each with its one-line caption
(the PNG's stored title, written by `atomic.save_figure` from `figures.figure_caption`)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from statcell_tf import atomic


def png_caption(path: str | os.PathLike) -> str:
    """The caption stored in a PNG by `atomic.save_figure` (its Title), else the file name."""
    from PIL import Image

    with Image.open(path) as image:
        return str(getattr(image, "text", {}).get("Title") or Path(path).name)


def write_gallery(out: str | os.PathLike, pngs: Sequence[str | os.PathLike], title: str = "Figures") -> Path:
    """Write an HTML page `out` showing every PNG of `pngs` (paths relative to the page) with a
    one-line caption (the PNG's stored title) and its path; returns `out`."""
    out = Path(out)
    items = []
    for png in pngs:
        png = Path(png)
        relative = os.path.relpath(png.resolve(), out.resolve().parent)
        caption = png_caption(png)
        items.append(
            f'<figure><a href="{html.escape(relative)}"><img src="{html.escape(relative)}" alt="{html.escape(caption)}"></a>'
            f"<figcaption>{html.escape(caption)}<br><code>{html.escape(relative)}</code></figcaption></figure>"
        )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;vertical-align:top;margin:0.6em;"
        "max-width:46%}img{max-width:100%;border:1px solid #ccc}figcaption{font-size:0.9em}"
        "code{color:#666;font-size:0.85em}</style></head>\n<body><h1>" + html.escape(title) + "</h1>\n"
        + f"<p>{len(items)} figures.</p>\n" + "\n".join(items) + "\n</body></html>\n"
    )
    with atomic.atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out


def gallery_pngs(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Every PNG under `folders` in sorted order, per-epoch series (``…_epochNNN.png``) reduced to
    their last epoch."""
    import re

    latest: dict = {}
    chosen = []
    for folder in folders:
        for png in sorted(Path(folder).rglob("*.png")):
            match = re.fullmatch(r"(.*_epoch)(\d+)\.png", png.name)
            if match is None:
                chosen.append(png)
            else:
                key = (png.parent, match.group(1))
                if key not in latest or int(match.group(2)) > latest[key][0]:
                    latest[key] = (int(match.group(2)), png)
    return sorted(chosen + [png for _, png in latest.values()])


def gallery(folders: Sequence[str | os.PathLike], out: str | os.PathLike, title: str = "Figures") -> Path:
    """`write_gallery` of `gallery_pngs(folders)`; prints where it wrote and how many figures."""
    pngs = gallery_pngs(folders)
    page = write_gallery(out, pngs, title)
    print(f"Wrote {page} ({len(pngs)} figures)")
    return page

