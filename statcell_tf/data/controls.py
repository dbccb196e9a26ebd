"""The Statistical Cell's five synthetic control structures (Donovan-Maiye et al. 2022, §4.1, §4.4).

For a sample of cells, the structure channel is replaced by: a blank channel, a copy of the
DNA channel, a copy of the membrane channel, Gaussian noise inside the cell (membrane and DNA
regions), or the structure channel of another, randomly chosen cell. The paper used the same
2,028 cells for every control (Table 1); so do we. Under a good target model, the DNA copy
couples only to the DNA channel, the membrane copy only to the membrane and the blank to
neither (§4.4): the sanity check of the coupling statistic (Eq. 4–5).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.data.source import CellImages
from statcell_tf.errors import UserError
from statcell_tf.limits import check_request

# Names as in the paper's Table 1.
CONTROL_NAMES = {
    "blank": "Control - Blank",
    "dna": "Control - DNA",
    "membrane": "Control - Memb",
    "noise": "Control - Noise",
    "random": "Control - Random",
}
CONTROL_KINDS = tuple(CONTROL_NAMES)
REQUIRED_CHANNELS = ("membrane", "dna", "structure")


def cell_region(membrane: np.ndarray, dna: np.ndarray) -> np.ndarray:
    """Boolean mask of the cell: (filled) Otsu foreground of the membrane ∪ that of the DNA."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    mask = np.zeros(membrane.shape, bool)
    for channel in (membrane, dna):
        channel = np.asarray(channel, "float32")
        if float(channel.max()) > float(channel.min()):
            mask |= ndimage.binary_fill_holes(channel > threshold_otsu(channel))
    return mask


def control_structure(
    kind: str,
    membrane: np.ndarray,
    dna: np.ndarray,
    other_structure: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    noise_reference: np.ndarray | None = None,
) -> np.ndarray:
    """The structure channel of one control cell (same shape and dtype as `membrane`).

    Args:
        kind: str. One of ``blank``, ``dna``, ``membrane``, ``noise``, ``random``.
        membrane: array. The cell's membrane channel (any spatial rank).
        dna: array. The cell's DNA channel.
        other_structure: array or None. Structure channel of another cell (``random``).
        rng: numpy Generator for ``noise``.
        noise_reference: array or None. Intensities whose in-cell mean and standard
            deviation the noise copies (default: the membrane and DNA inside the cell).

    Returns:
        array with the control's structure channel.
    """
    dtype = np.asarray(membrane).dtype
    if kind == "blank":
        return np.zeros_like(membrane)
    if kind == "dna":
        return np.array(dna, dtype=dtype, copy=True)
    if kind == "membrane":
        return np.array(membrane, dtype=dtype, copy=True)
    if kind == "random":
        if other_structure is None:
            raise ValueError("kind='random' needs `other_structure`")
        return np.array(other_structure, dtype=dtype, copy=True)
    if kind == "noise":
        rng = rng or np.random.default_rng(0)
        mask = cell_region(membrane, dna)
        values = (
            np.asarray(noise_reference, "float64")[mask]
            if noise_reference is not None
            else np.concatenate([np.asarray(membrane, "float64")[mask], np.asarray(dna, "float64")[mask]])
        )
        mean, std = (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)
        noise = np.where(mask, rng.normal(mean, std, size=np.shape(membrane)), 0.0)
        noise = np.clip(noise, 0.0, None)
        if np.issubdtype(dtype, np.integer):
            noise = np.clip(np.round(noise), 0, np.iinfo(dtype).max)
        return noise.astype(dtype)
    raise ValueError(f"`kind` must be one of {', '.join(CONTROL_KINDS)}. Received: kind={kind!r}")


def control_images(
    images: np.ndarray,
    kinds=CONTROL_KINDS,
    seed: int = 0,
    membrane_channel: int = 0,
    dna_channel: int = 1,
    structure_channel: int | None = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-memory controls: every cell of `images` once per kind.

    Args:
        images: (N, *spatial, C) array (channel-last).
        kinds: control kinds to build.
        seed: int. Random seed (noise, donor cells of ``random``).
        membrane_channel, dna_channel: channel indices of the reference channels.
        structure_channel: index of the structure channel (donor of ``random``); None =
            the donors' DNA channel is not used and ``random`` takes another cell's membrane.

    Returns:
        (controls (N·K, *spatial, 3) as [membrane, dna, structure], kind (N·K,) str array,
        source index (N·K,) int array).
    """
    images = np.asarray(images)
    rng = np.random.default_rng(seed)
    n = len(images)
    out, kind_of, source = [], [], []
    for kind in kinds:
        donors = _donors(n, rng)
        for i in range(n):
            membrane = images[i, ..., membrane_channel]
            dna = images[i, ..., dna_channel]
            donor_channel = structure_channel if structure_channel is not None else membrane_channel
            other = images[donors[i], ..., donor_channel]
            structure = control_structure(kind, membrane, dna, other, rng)
            out.append(np.stack([membrane, dna, structure], axis=-1))
            kind_of.append(kind)
            source.append(i)
    return np.stack(out), np.asarray(kind_of), np.asarray(source)


def _donors(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random donor for every cell, never the cell itself (a derangement when n > 1)."""
    if n < 2:
        return np.zeros(n, int)
    shift = rng.integers(1, n, size=n)
    return (np.arange(n) + shift) % n


def select_control_cells(metadata: pd.DataFrame, n_cells: int | None, seed: int) -> np.ndarray:
    """Row indices of the cells that get controls: `n_cells` drawn without replacement
    (stratified proportionally by ``cell_cycle_phase`` when present); None = the median
    number of cells per structure, as the paper's controls had a typical structure's size."""
    if n_cells is None:
        counts = metadata["structure_name"].value_counts() if "structure_name" in metadata else None
        n_cells = int(np.median(counts.to_numpy())) if counts is not None and len(counts) else len(metadata)
    else:
        check_request("--cells", int(n_cells), len(metadata), "the cells in the manifest, each given a control once")
    n_cells = max(1, min(int(n_cells), len(metadata)))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(metadata), size=n_cells, replace=False))


def write_controls(
    cells: CellImages,
    manifest: pd.DataFrame,
    manifest_dir: Path,
    out_dir: Path,
    n_cells: int | None = None,
    kinds=CONTROL_KINDS,
    seed: int = 0,
    progress=None,
) -> pd.DataFrame:
    """Write control TIFFs and ``manifest.csv`` (originals + controls) into `out_dir`.

    Args:
        cells: CellImages with channels membrane, dna and structure (rows = `manifest` rows).
        manifest: the original manifest table (one row per cell, with ``CellId`` and ``path``).
        manifest_dir: folder the original manifest's relative paths are relative to.
        out_dir: output folder; gets ``cells/<CellId>.tiff`` and ``manifest.csv``.
        n_cells: int or None. Cells per control (see `select_control_cells`).
        kinds: control kinds to write.
        seed: int. Random seed.
        progress: callable(iterable) -> iterable, e.g. a click progress bar, or None.

    Returns:
        The new manifest (originals first, paths relative to `out_dir`).
    """
    import tifffile

    missing = [c for c in REQUIRED_CHANNELS if c not in cells.channel_names]
    if missing:
        raise UserError(
            f"DATA {cells.source}: controls need channels membrane, dna and structure; missing "
            f"{', '.join(missing)}. Received: channels={', '.join(cells.channel_names)}"
        )
    for column in ("CellId", "path"):
        if column not in manifest.columns:
            raise UserError(f"DATA {cells.source}: the manifest has no {column!r} column. Received: "
                            f"columns={', '.join(map(str, manifest.columns))}")
    if len(manifest) != len(cells):
        raise UserError(f"DATA {cells.source}: {len(manifest)} manifest rows but {len(cells)} cells")
    existing = manifest.get("structure_name", pd.Series(dtype=str)).astype(str)
    clash = sorted(set(existing) & set(CONTROL_NAMES.values()))
    if clash:
        raise UserError(f"DATA {cells.source} already contains control structures ({', '.join(clash)}); "
                        "pass the data set without controls")
    index = {name: cells.channel_names.index(name) for name in REQUIRED_CHANNELS}
    out_dir = Path(out_dir)
    atomic.make_folder(out_dir / "cells")
    rng = np.random.default_rng(seed)
    chosen = select_control_cells(cells.metadata, n_cells, seed)
    donors = {kind: rng.integers(0, len(cells), size=len(chosen)) for kind in kinds}
    originals = manifest.copy()
    originals["path"] = [
        os.path.relpath(_absolute(p, manifest_dir), out_dir) for p in originals["path"].astype(str)
    ]
    originals["source_CellId"] = originals["CellId"]
    rows = []
    iterator = list(enumerate(chosen))
    for position, row in progress(iterator) if progress else iterator:
        image = np.asarray(cells.images[int(row)])  # (*spatial, C)
        membrane = image[..., index["membrane"]]
        dna = image[..., index["dna"]]
        for kind in kinds:
            donor = int(donors[kind][position])
            if donor == row:
                donor = (donor + 1) % len(cells)
            other = np.asarray(cells.images[donor])[..., index["structure"]] if kind == "random" else None
            structure = control_structure(
                kind, membrane, dna, other, rng, noise_reference=image[..., index["structure"]]
            )
            stack = np.stack([membrane, dna, structure], axis=0)  # (C, *spatial)
            cell_id = f"{manifest.iloc[row]['CellId']}_control_{kind}"
            path = out_dir / "cells" / f"{cell_id}.tiff"
            with atomic.atomic_path(path) as tmp:
                tifffile.imwrite(tmp, stack, metadata={"axes": "CYX" if stack.ndim == 3 else "CZYX"})
            new = manifest.iloc[row].to_dict()
            new.update(
                {
                    "CellId": cell_id,
                    "source_CellId": manifest.iloc[row]["CellId"],
                    "structure_name": CONTROL_NAMES[kind],
                    "path": os.path.relpath(path, out_dir),
                    "ch_membrane": 0,
                    "ch_dna": 1,
                    "ch_structure": 2,
                }
            )
            if "family" in manifest.columns:
                new["family"] = f"control-{kind}"
            rows.append(new)
    combined = pd.concat([originals, pd.DataFrame(rows)], ignore_index=True)
    atomic.write_csv(out_dir / "manifest.csv", combined)
    return combined


def _absolute(path: str, base: Path) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
