"""Procedural cells with known localisation families, in the OpenCell and Allen Cell formats.

Every cell is drawn from a seeded ``numpy.random.Generator``: a blobby ellipse (2D) or
ellipsoid (3D) cell, a nucleus inside it at a random offset, and a protein channel whose
pattern comes from one of the localisation families in `FAMILIES`. Each simulated protein has
fixed parameters (intensity level, texture scale, puncta count and size, line width), drawn
around its family's values, so proteins of one family differ slightly and families differ
clearly. Images then get a background, Poisson shot noise and Gaussian read noise.

The Allen Cell format also has mitotic cells (``cell_cycle_phase`` prophase / metaphase /
anaphase): a rounded cell, condensed chromatin and no nuclear envelope (nuclear proteins spread
through the cell).

A simulated drug treatment (`TREATMENTS`) changes the morphology of interphase cells, for
out-of-sample perturbation experiments (Donovan-Maiye et al. 2022, §4.5, Fig. 6).
``"rounding"`` acts like a drug that collapses the cytoskeleton (e.g. cytochalasin D or
latrunculin A, which depolymerise actin): cells retract into smaller, rounder, smoother and
(in 3D) taller bodies, and the nucleus shrinks a little with brighter, condensed DNA.
``"vehicle"`` is the control (like DMSO): unchanged cells, labelled as a treatment. Treated
cells draw the same random numbers as untreated ones, so a treated set with the seed of an
untreated set holds the same cells, treated.

Everything is vectorised numpy / scipy.ndimage: the demo OpenCell set (11 families × 3
proteins × 40 cells, 100×100) generates in a few seconds on one core.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from statcell_tf.atomic import atomic_path
from statcell_tf.data import layout_files
from statcell_tf.data.preprocess import normalize_signed_distance, signed_distance

FAMILIES: tuple[str, ...] = (
    "nucleoplasm",
    "nucleolus",
    "nuclear_envelope",
    "chromatin",
    "cytoplasm",
    "mitochondria",
    "er",
    "golgi",
    "vesicles",
    "plasma_membrane",
    "centrosome",
)
NUCLEAR_FAMILIES: tuple[str, ...] = ("nucleoplasm", "nucleolus", "nuclear_envelope", "chromatin")
PHASES: tuple[str, ...] = ("interphase", "prophase", "metaphase", "anaphase")
TREATMENTS: tuple[str, ...] = ("none", "vehicle", "rounding")

# "rounding" (interphase cells only; mitotic cells are round already): cell radius factor, the
# fraction of the untreated cell's elongation (1 - minor / major axis) that is kept, boundary
# blobbiness, cell height factor (3D), nuclear radius factor (of the untreated nucleus) and DNA
# brightness factor.
_ROUNDING = {"radius": 0.8, "elongation": 0.3, "blobbiness": 0.1, "height": 1.1, "nucleus": 0.9, "dna": 1.3}

# Per family: base protein parameters (level = peak intensity; texture = noise correlation length
# in units of the cell radius / 40; puncta = count; puncta_size = Gaussian sigma in pixels at
# radius 40; width = ring / tubule half-width in pixels).
_FAMILY_PARAMS: dict[str, dict[str, float]] = {
    "nucleoplasm": {"level": 0.55, "texture": 3.0, "puncta": 3, "puncta_size": 3.5, "width": 1.0},
    "nucleolus": {"level": 0.8, "texture": 2.0, "puncta": 3, "puncta_size": 3.5, "width": 1.0},
    "nuclear_envelope": {"level": 0.7, "texture": 3.0, "puncta": 0, "puncta_size": 1.0, "width": 1.4},
    "chromatin": {"level": 0.6, "texture": 1.2, "puncta": 0, "puncta_size": 1.0, "width": 1.0},
    "cytoplasm": {"level": 0.4, "texture": 4.0, "puncta": 0, "puncta_size": 1.0, "width": 1.0},
    "mitochondria": {"level": 0.75, "texture": 2.6, "puncta": 0, "puncta_size": 1.0, "width": 0.3},
    "er": {"level": 0.5, "texture": 1.5, "puncta": 0, "puncta_size": 1.0, "width": 0.3},
    "golgi": {"level": 0.85, "texture": 2.0, "puncta": 5, "puncta_size": 2.2, "width": 1.0},
    "vesicles": {"level": 0.8, "texture": 2.0, "puncta": 35, "puncta_size": 1.1, "width": 1.0},
    "plasma_membrane": {"level": 0.6, "texture": 3.0, "puncta": 0, "puncta_size": 1.0, "width": 1.4},
    "centrosome": {"level": 0.95, "texture": 2.0, "puncta": 2, "puncta_size": 1.3, "width": 1.0},
}


def protein_parameters(family: str, index: int, seed: int = 0) -> dict[str, float]:
    """The fixed parameters of protein `index` of `family` (deterministic in `seed`).

    Args:
        family: str. One of `FAMILIES`.
        index: int. Protein number within the family.
        seed: int. Data-set seed.

    Returns:
        dict with ``level``, ``texture``, ``puncta``, ``puncta_size``, ``width`` and ``contrast``.
    """
    if family not in _FAMILY_PARAMS:
        raise ValueError(f"`family` must be one of {FAMILIES}. Received: family={family!r}")
    base = _FAMILY_PARAMS[family]
    rng = np.random.default_rng([seed, 7919, FAMILIES.index(family), index])
    return {
        "level": base["level"] * rng.uniform(0.75, 1.25),
        "texture": base["texture"] * rng.uniform(0.8, 1.25),
        "puncta": int(round(base["puncta"] * rng.uniform(0.7, 1.3))),
        "puncta_size": base["puncta_size"] * rng.uniform(0.85, 1.2),
        "width": base["width"] * rng.uniform(0.85, 1.2),
        "contrast": rng.uniform(0.15, 0.4),
    }


# ---------------------------------------------------------------------------------------------
# Geometry


class _Geometry:
    """Masks and distances of one cell on a 2D (H, W) or 3D (D, H, W) grid."""

    def __init__(self, cell, nucleus, chromatin, nucleus_center, nucleus_radius, scale, angle):
        self.cell = cell  # bool, the cell body
        self.nucleus = nucleus  # bool, the nucleus (interphase) or the chromatin region (mitosis)
        self.chromatin = chromatin  # float, DNA density pattern before noise
        self.nucleus_center = np.asarray(nucleus_center, np.float32)
        self.nucleus_radius = float(nucleus_radius)
        self.scale = float(scale)  # pixels per "unit" (cell radius / 40)
        self.angle = float(angle)
        self.sd_nucleus = _boundary_distance(nucleus)
        self.cytoplasm = cell & ~nucleus
        self._sd_cell = None

    @property
    def sd_cell(self):
        if self._sd_cell is None:  # only ring-shaped patterns need it: computed on demand
            self._sd_cell = _boundary_distance(self.cell)
        return self._sd_cell


def _boundary_distance(mask):
    """Signed pixel distance to the boundary line between pixels (±0.5 at the first pixels)."""
    distance = signed_distance(mask, normalize=False)
    return distance - np.float32(0.5) * np.sign(distance)


@functools.lru_cache(maxsize=8)
def _grid(shape):
    grid = [g.astype(np.float32) for g in np.indices(shape)]
    for g in grid:
        g.setflags(write=False)
    return grid


def _blob_mask(grid, center, radii, angle, harmonics):
    """Blobby ellipse/ellipsoid: normalised radius < 1 + sum_k a_k cos(k theta + phi_k).

    `radii` = (r_major, r_minor) in 2D or (r_z, r_major, r_minor) in 3D; rotation is in the
    y-x plane.
    """
    y, x = grid[-2] - center[-2], grid[-1] - center[-1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x * c + y * s) / radii[-2], (-x * s + y * c) / radii[-1]
    rho2 = u * u + v * v
    if len(grid) == 3:
        rho2 = rho2 + ((grid[0] - center[0]) / radii[0]) ** 2
    theta = np.arctan2(v, u)
    bound = np.ones_like(theta)
    for k, (amp, phase) in enumerate(harmonics, start=2):
        bound += amp * np.cos(k * theta + phase)
    return rho2 < bound * bound


def _harmonics(rng, amplitude):
    return [(amplitude * rng.uniform(0, 1) / k, rng.uniform(0, 2 * np.pi)) for k in range(2, 6)]


def _noise(rng, shape, sigma):
    """Unit-variance Gaussian random field with correlation length `sigma` (pixels)."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _sigma(shape, sigma):
    """Gaussian sigma per axis; the z axis of a 3D stack is coarser (a third of the xy sigma)."""
    if len(shape) == 3:
        return (max(sigma / 3.0, 0.5), sigma, sigma)
    return sigma


def _spots(rng, shape, region, count, sigma, near=None, spread=None):
    """Sum of `count` Gaussian spots of peak ~1 at random voxels of `region`.

    If `near` is given, spots sit within `spread` pixels (xy) of that point instead.
    """
    image = np.zeros(shape, np.float32)
    if count <= 0:
        return image
    if near is None:
        where = np.argwhere(region)
        if len(where) == 0:
            return image
        points = where[rng.integers(0, len(where), size=count)]
    else:
        offsets = rng.normal(0.0, spread, size=(count, len(shape)))
        if len(shape) == 3:
            offsets[:, 0] /= 3.0
        points = np.round(np.asarray(near)[None, :] + offsets).astype(int)
        points = np.clip(points, 0, np.asarray(shape) - 1)
    np.add.at(image, tuple(points.T), 1.0)
    sig = _sigma(shape, sigma)
    image = ndi.gaussian_filter(image, sig, mode="constant")
    peak = ndi.gaussian_filter(_delta(shape), sig, mode="constant").max()
    return image / peak


def _delta(shape):
    d = np.zeros(shape, np.float32)
    d[tuple(s // 2 for s in shape)] = 1.0
    return d


def _make_geometry(rng, shape, phase="interphase", center_nucleus=False, treatment="none") -> _Geometry:
    """Draw one cell's shapes on `shape` (2D (H, W) or 3D (D, H, W)).

    A treatment only rescales the drawn values: treated and untreated cells use the same draws.
    """
    grid = _grid(shape)
    h, w = shape[-2:]
    size = min(h, w)
    mitotic = phase != "interphase"
    rounding = treatment == "rounding" and not mitotic
    angle = rng.uniform(0, np.pi)
    if mitotic:
        r_major = size * rng.uniform(0.26, 0.32)
        r_minor = r_major * (rng.uniform(0.78, 0.88) if phase == "anaphase" else rng.uniform(0.93, 1.0))
        amp = 0.03
    else:
        r_major = size * rng.uniform(0.32, 0.42)
        r_minor = r_major * rng.uniform(0.6, 0.92)
        amp = 0.25
    nucleus_factor = rng.uniform(0.38, 0.5)
    if rounding:  # smaller, rounder (aspect 0.6-0.92 -> 0.88-0.98) and smoother
        aspect = r_minor / r_major
        # The nucleus shrinks less than the cell: its radius is set from the untreated cell's.
        nucleus_factor *= _ROUNDING["nucleus"] / _ROUNDING["radius"]
        r_major *= _ROUNDING["radius"]
        r_minor = r_major * (1.0 - _ROUNDING["elongation"] * (1.0 - aspect))
        amp = _ROUNDING["blobbiness"]
    scale = r_major / 40.0
    nuc_major = r_major * nucleus_factor
    nuc_minor = min(nuc_major * rng.uniform(0.7, 0.95), r_minor * 0.75)
    nuc_angle = angle + rng.normal(0.0, 0.3)
    # Nucleus offset along the cell's major axis (cells are polarised), small off-axis jitter.
    along = rng.uniform(-1, 1) * max(r_major - nuc_major, 0) * 0.45
    across = rng.uniform(-1, 1) * max(r_minor - nuc_minor, 0) * 0.2
    offset_yx = np.array([along * np.sin(angle) + across * np.cos(angle), along * np.cos(angle) - across * np.sin(angle)])
    mid = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    if center_nucleus:
        nucleus_yx = mid + rng.normal(0, 1.0, 2) * scale
        cell_yx = nucleus_yx - offset_yx
    else:
        cell_yx = mid + rng.normal(0, 1.0, 2) * scale
        nucleus_yx = cell_yx + offset_yx
    if len(shape) == 3:
        depth = shape[0]
        rz = depth * rng.uniform(0.3, 0.38) * (1.15 if mitotic else _ROUNDING["height"] if rounding else 1.0)
        cz = (depth - 1) / 2.0 + rng.normal(0, 0.5)
        cell_center = np.array([cz, *cell_yx])
        nucleus_center = np.array([cz + rng.normal(0, 0.3), *nucleus_yx])
        cell_radii = (rz, r_major, r_minor)
        nuc_radii = (rz * 0.7, nuc_major, nuc_minor)
    else:
        cell_center, nucleus_center = cell_yx, nucleus_yx
        cell_radii, nuc_radii = (r_major, r_minor), (nuc_major, nuc_minor)
    cell = _blob_mask(grid, cell_center, cell_radii, angle, _harmonics(rng, amp))

    speckle = _noise(rng, shape, _sigma(shape, 1.0 * scale))
    if not mitotic:
        nucleus = _blob_mask(grid, nucleus_center, nuc_radii, nuc_angle, _harmonics(rng, 0.12))
        nucleus &= ndi.binary_erosion(cell, iterations=2)
        nucleus_radius = nuc_major
        # DNA: fairly uniform with heterochromatin speckles; nucleoli added by the caller.
        chromatin = nucleus * np.clip(1.0 + 0.25 * speckle, 0.2, None)
        chromatin = ndi.gaussian_filter(chromatin.astype(np.float32), _sigma(shape, 0.7))
    else:
        # Chromosomes: bright condensed threads (ridges of a random field) in a region that is a
        # ball (prophase), a plate (metaphase) or two plates (anaphase) across the spindle axis.
        y, x = grid[-2] - cell_center[-2], grid[-1] - cell_center[-1]
        c, s = np.cos(angle), np.sin(angle)
        u, v = x * c + y * s, -x * s + y * c  # u along the spindle (cell major) axis
        other = v * v
        if len(shape) == 3:
            other = other + ((grid[0] - cell_center[0]) * (r_minor / cell_radii[0])) ** 2
        length = r_minor * rng.uniform(0.55, 0.7)
        thick = 2.5 * scale
        if phase == "prophase":
            nucleus = _blob_mask(grid, nucleus_center, (*nuc_radii[:-2], nuc_major * 1.05, nuc_major), nuc_angle, [])
            nucleus &= ndi.binary_erosion(cell, iterations=2)
        elif phase == "metaphase":
            nucleus = (np.abs(u) < thick) & (other < length**2)
        else:
            gap = r_major * rng.uniform(0.35, 0.5)
            nucleus = (np.abs(np.abs(u) - gap) < thick) & (other < (0.85 * length) ** 2)
        nucleus_center = np.array(cell_center)
        nucleus_radius = length
        threads = np.exp(-((_noise(rng, shape, _sigma(shape, 1.5 * scale)) / 0.5) ** 2))
        chromatin = nucleus * (0.5 + 1.2 * threads) if phase == "prophase" else nucleus * (1.3 + 0.2 * speckle)
        chromatin = ndi.gaussian_filter(chromatin.astype(np.float32), _sigma(shape, 0.8))
    return _Geometry(cell, nucleus, chromatin, nucleus_center, nucleus_radius, scale, angle)


# ---------------------------------------------------------------------------------------------
# Protein patterns


def _protein_pattern(rng, geo: _Geometry, family: str, params: dict, nucleoli: np.ndarray, mitotic: bool):
    """Noise-free protein image (peak around 1) for one cell."""
    shape = geo.cell.shape
    sc = geo.scale
    cell = geo.cell.astype(np.float32)
    nucleus = geo.nucleus.astype(np.float32)
    cyto = geo.cytoplasm.astype(np.float32)
    soft = lambda m: ndi.gaussian_filter(m, _sigma(shape, 0.8 * sc))  # noqa: E731
    texture = _noise(rng, shape, _sigma(shape, params["texture"] * sc))
    con = params["contrast"]
    if mitotic and family in ("nucleoplasm", "nucleolus", "nuclear_envelope"):
        # Nuclear envelope breakdown: these proteins spread through the whole cell.
        return soft(cell) * np.clip(0.35 + 0.1 * texture, 0, None)
    if family == "nucleoplasm":
        pattern = soft(nucleus) * np.clip(1.0 + con * texture, 0, None) * (1.0 - 0.8 * nucleoli)
    elif family == "nucleolus":
        pattern = 0.08 * soft(nucleus) + nucleoli * np.clip(1.0 + con * texture, 0, None)
    elif family == "nuclear_envelope":
        ring = np.exp(-((geo.sd_nucleus / (params["width"] * sc)) ** 2))
        pattern = ring * np.clip(1.0 + con * texture, 0, None)
    elif family == "chromatin":
        pattern = geo.chromatin * np.clip(1.0 + 1.5 * con * texture, 0, None) / max(geo.chromatin.max(), 1e-6)
        if not mitotic:
            pattern = pattern * (1.0 - 0.85 * nucleoli)
    elif family == "cytoplasm":
        pattern = soft(cyto) * np.clip(1.0 + 0.6 * con * texture, 0, None)
    elif family in ("mitochondria", "er"):
        # Tubules = the zero set of a smooth random field; mitochondria are fragmented into short
        # tubules, the ER is a continuous fine mesh plus a diffuse part and the nuclear envelope.
        field = _noise(rng, shape, _sigma(shape, params["texture"] * sc))
        lines = np.exp(-((field / params["width"]) ** 2))
        perinuclear = np.exp(-np.clip(-geo.sd_nucleus, 0, None) / (25.0 * sc))
        if family == "mitochondria":
            fragments = _noise(rng, shape, _sigma(shape, 3.0 * sc)) > -0.1
            pattern = lines * fragments * cyto * (0.4 + 0.6 * perinuclear)
        else:
            envelope = np.exp(-((geo.sd_nucleus / (1.2 * sc)) ** 2))
            pattern = (0.7 * lines + 0.2) * cyto * (0.3 + 0.7 * perinuclear) + 0.5 * envelope
        pattern = ndi.gaussian_filter(pattern.astype(np.float32), 0.5)
    elif family == "golgi":
        direction = rng.uniform(0, 2 * np.pi)
        reach = geo.nucleus_radius + 5.0 * sc
        near = np.array(geo.nucleus_center, np.float64)
        near[-2] += reach * np.sin(direction)
        near[-1] += reach * np.cos(direction)
        pattern = _spots(rng, shape, None, max(params["puncta"], 2), params["puncta_size"] * sc, near, 4.0 * sc)
        pattern = pattern * soft(cyto) + 0.05 * soft(cyto)
    elif family == "vesicles":
        count = max(int(params["puncta"] * (sc**2 if len(shape) == 2 else sc**2 * 2)), 3)
        pattern = _spots(rng, shape, geo.cytoplasm, count, params["puncta_size"] * sc) + 0.05 * cyto
    elif family == "plasma_membrane":
        ring = np.exp(-((geo.sd_cell / (params["width"] * sc)) ** 2))
        pattern = ring * np.clip(1.0 + con * texture, 0, None) + 0.04 * cyto
    elif family == "centrosome":
        direction = rng.uniform(0, 2 * np.pi)
        reach = geo.nucleus_radius + rng.uniform(2.0, 5.0) * sc
        near = np.array(geo.nucleus_center, np.float64)
        near[-2] += reach * np.sin(direction)
        near[-1] += reach * np.cos(direction)
        count = 2 if (mitotic or rng.uniform() < 0.5) else 1
        if mitotic:  # spindle poles at both ends of the spindle axis
            pattern = np.zeros(shape, np.float32)
            for sign in (-1, 1):
                pole = np.array(geo.nucleus_center, np.float64)
                pole[-2] += sign * geo.nucleus_radius * 1.1 * np.sin(geo.angle)
                pole[-1] += sign * geo.nucleus_radius * 1.1 * np.cos(geo.angle)
                pattern += _spots(rng, shape, None, 1, params["puncta_size"] * sc, pole, 0.5)
        else:
            pattern = _spots(rng, shape, None, count, params["puncta_size"] * sc, near, 1.5 * sc)
        pattern = pattern + 0.04 * cyto
    else:
        raise ValueError(f"`family` must be one of {FAMILIES}. Received: family={family!r}")
    return pattern.astype(np.float32)


def _image(rng, clean, background, photons, read_noise=0.01):
    """Background + shot noise + Gaussian read noise, clipped to [0, 1].

    Shot noise uses the Gaussian approximation of Poisson counts (variance = mean photon count),
    accurate at the >= 150 photons per unit intensity simulated here and several times faster.
    """
    signal = np.clip(clean, 0, None).astype(np.float32) + np.float32(background)
    std = np.sqrt(signal / photons + read_noise**2)
    noisy = signal + std * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def make_cell(
    family: str,
    params: dict | None = None,
    shape: tuple[int, ...] = (100, 100),
    phase: str = "interphase",
    seed: int | np.random.Generator = 0,
    center_nucleus: bool = True,
    background: float | None = None,
    photons: float | None = None,
    membrane: bool = True,
    treatment: str = "none",
) -> dict[str, np.ndarray]:
    """One synthetic cell.

    Args:
        family: str. Localisation family, one of `FAMILIES`.
        params: dict or None. Protein parameters (`protein_parameters`); None = protein 0.
        shape: tuple. ``(H, W)`` or ``(D, H, W)``. Defaults to ``(100, 100)``.
        phase: str. One of `PHASES`. Defaults to ``"interphase"``.
        seed: int or Generator. Randomness. Defaults to 0.
        center_nucleus: bool. Put the nucleus (rather than the cell) at the image centre, as
            OpenCell crops do. Defaults to True.
        background: float or None. Background level; None draws one.
        photons: float or None. Photons per unit intensity (shot-noise level); None draws one.
        membrane: bool. Also render the membrane channel. Defaults to True.
        treatment: str. Simulated drug treatment, one of `TREATMENTS` (``"rounding"``: a
            smaller, rounder, smoother cell with a slightly smaller nucleus and brighter DNA;
            interphase cells only; ``"vehicle"`` changes nothing). Defaults to ``"none"``.

    Returns:
        dict of float32 arrays of `shape`: ``protein``, ``dna``, ``membrane`` (images in [0, 1];
        ``membrane`` only when asked),
        ``cell_mask``, ``nucleus_mask`` (bool) and ``nucdist`` (signed distance to the nuclear
        boundary in [-1, 1], positive inside).
    """
    if family not in FAMILIES:
        raise ValueError(f"`family` must be one of {FAMILIES}. Received: family={family!r}")
    if phase not in PHASES:
        raise ValueError(f"`phase` must be one of {PHASES}. Received: phase={phase!r}")
    if len(shape) not in (2, 3):
        raise ValueError(f"`shape` must be (H, W) or (D, H, W). Received: shape={shape}")
    _check_treatment(treatment)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = params if params is not None else protein_parameters(family, 0)
    mitotic = phase != "interphase"
    geo = _make_geometry(rng, tuple(shape), phase, center_nucleus, treatment)
    sc = geo.scale
    # Nucleoli (2-4 dark holes in the DNA, bright for the nucleolus family).
    if not mitotic:
        inner = geo.sd_nucleus > 3.5 * sc
        count = params["puncta"] if family == "nucleolus" else int(rng.integers(2, 5))
        nucleoli = np.clip(_spots(rng, shape, inner if inner.any() else geo.nucleus, count, params["puncta_size"] * sc), 0, 1)
    else:
        nucleoli = np.zeros(shape, np.float32)
    if background is None:
        background = rng.uniform(0.02, 0.06)
    if photons is None:
        photons = rng.uniform(150, 400)
    level = params["level"] * rng.uniform(0.85, 1.15)
    protein = level * _protein_pattern(rng, geo, family, params, nucleoli, mitotic)
    dna = 0.7 * geo.chromatin * (1.0 - 0.75 * nucleoli)
    if treatment == "rounding" and not mitotic:  # condensed chromatin: the same DNA, brighter
        dna = dna * _ROUNDING["dna"]
    out = {
        "protein": _image(rng, protein, background, photons),
        "dna": _image(rng, dna, background, photons),
        "cell_mask": geo.cell,
        "nucleus_mask": geo.nucleus,
        "nucdist": normalize_signed_distance(geo.sd_nucleus),
    }
    if membrane:
        clean = 0.6 * np.exp(-((geo.sd_cell / (1.3 * sc)) ** 2)) + 0.05 * geo.cell
        out["membrane"] = _image(rng, clean, background, photons)
    return out


# ---------------------------------------------------------------------------------------------
# Data-set writers


def _check_treatment(treatment: str) -> None:
    if treatment not in TREATMENTS:
        raise ValueError(f"`treatment` must be one of {TREATMENTS}. Received: treatment={treatment!r}")


def _check_families(n_families: int) -> tuple[str, ...]:
    if not 1 <= n_families <= len(FAMILIES):
        raise ValueError(f"`n_families` must be in [1, {len(FAMILIES)}]. Received: n_families={n_families}")
    return FAMILIES[:n_families]


ALLEN_IDS_PER_FAMILY = 100000  # Allen CellIds: family k gets k * 100000 + 1, ...
ALLEN_CHANNELS: tuple[str, ...] = ("membrane", "dna", "structure")  # the cell TIFFs' channels, in order


def _ensg(family_index: int, protein_index: int) -> str:
    return f"ENSG{100000 + 1000 * family_index + protein_index:011d}"


def write_opencell(
    out_dir: str | os.PathLike,
    n_families: int = 11,
    proteins_per_family: int = 3,
    cells_per_protein: int = 40,
    size: int = 100,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> Path:
    """Write a synthetic OpenCell-format data set (atomically) and return its folder.

    Per protein, with prefix ``<ENSG id>``: ``<prefix>_pro.npy``, ``<prefix>_nuc.npy``,
    ``<prefix>_nucdist.npy`` (float32 ``(N, size, size)``; protein and DNA in [0, 1], nucdist in
    [-1, 1] positive inside the nucleus) and ``<prefix>_label.csv`` with columns ``ensg``,
    ``protein``, ``localization``, ``fov``, ``family``. Cells are grouped in simulated fields of
    view (4–8 cells sharing background and noise level), ids ``<protein>_fov<k>``.

    Args:
        out_dir: str or PathLike. Output folder (replaced atomically).
        n_families: int. Number of families, the first of `FAMILIES`. Defaults to 11.
        proteins_per_family: int. Defaults to 3.
        cells_per_protein: int. Defaults to 40.
        size: int. Crop side in pixels. Defaults to 100.
        seed: int. Defaults to 0.
        progress: callable or None. Called once after each protein (e.g. a progress bar).

    Returns:
        Path of `out_dir`.
    """
    families = _check_families(n_families)
    if proteins_per_family < 1 or cells_per_protein < 1 or size < 16:
        raise ValueError(
            "`proteins_per_family` and `cells_per_protein` must be >= 1 and `size` >= 16. Received: "
            f"proteins_per_family={proteins_per_family}, cells_per_protein={cells_per_protein}, size={size}"
        )
    out_dir = Path(out_dir)
    with atomic_path(out_dir, suffix="") as tmp:
        tmp.mkdir(parents=True)
        for fi, family in enumerate(families):
            for pi in range(proteins_per_family):
                ensg, name = _ensg(fi, pi), f"{family.upper()}_{pi + 1}"
                params = protein_parameters(family, pi, seed)
                rng = np.random.default_rng([seed, fi, pi])
                arrays = {k: np.empty((cells_per_protein, size, size), np.float32) for k in ("pro", "nuc", "nucdist")}
                fovs, fov, left = [], -1, 0
                for n in range(cells_per_protein):
                    if left == 0:
                        fov, left = fov + 1, int(rng.integers(4, 9))
                        background, photons = rng.uniform(0.02, 0.06), rng.uniform(150, 400)
                    left -= 1
                    cell = make_cell(
                        family, params, (size, size), "interphase", rng, True, background, photons, membrane=False
                    )
                    arrays["pro"][n], arrays["nuc"][n], arrays["nucdist"][n] = cell["protein"], cell["dna"], cell["nucdist"]
                    fovs.append(f"{name}_fov{fov}")
                labels = pd.DataFrame(
                    {"ensg": ensg, "protein": name, "localization": family, "fov": fovs, "family": family}
                )
                layout_files.write_opencell_set(tmp, ensg, arrays, labels)
                if progress is not None:
                    progress()
    return out_dir


def write_allencell(
    out_dir: str | os.PathLike,
    n_families: int = 11,
    cells_per_structure: int = 20,
    dims: int = 2,
    size: tuple[int, ...] | None = None,
    mitotic_fraction: float = 0.15,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
    proteins_per_family: int = 1,
    treatment: str = "none",
) -> Path:
    """Write a synthetic Allen-Cell-format data set (atomically) and return its folder.

    ``manifest.csv`` has columns ``CellId``, ``structure_name``, ``path`` (relative to the
    folder), ``ch_membrane``, ``ch_dna``, ``ch_structure``, ``cell_cycle_phase``, ``family``
    and, when ``proteins_per_family > 1``, ``protein``; each cell is one uint16 TIFF
    ``cells/<CellId>.tiff`` with axes ``CYX`` (2D) or ``CZYX`` (3D), channels membrane, DNA,
    structure. ``structure_name`` (the label models learn, `read_allencell`'s ``label``) is the
    family's name for every protein of the family; ``protein`` (``<FAMILY>_<k>``, as in the
    OpenCell format) tells the proteins apart, each with its own `protein_parameters`. With one
    protein per family (the default) the output is the same as before the option existed.

    With a `treatment` other than ``"none"`` every cell is treated (`make_cell`), the manifest
    gets a last column ``treatment`` (the treatment's name) and CellIds start with it
    (``rounding-100001``), so they never collide with the numeric CellIds of an untreated set
    (the training data) or with another treatment's; without one the output is the same as
    before the option existed. The comparison set of a perturbation experiment is a
    ``"vehicle"`` set with another seed: the same cells as an untreated set of that seed.

    Args:
        out_dir: str or PathLike. Output folder (replaced atomically).
        n_families: int. Number of structures, the first of `FAMILIES`. Defaults to 11.
        cells_per_structure: int. Cells per protein (= per structure with one protein per
            family). Defaults to 20.
        dims: int. 2 or 3. Defaults to 2.
        size: tuple or None. ``(H, W)`` or ``(D, H, W)``; None = (64, 64) in 2D, (16, 48, 48) in 3D.
        mitotic_fraction: float. Expected fraction of mitotic cells (phases drawn uniformly among
            prophase, metaphase, anaphase). Defaults to 0.15.
        seed: int. Defaults to 0.
        progress: callable or None. Called once after each protein (e.g. a progress bar).
        proteins_per_family: int. Distinct proteins per family. Defaults to 1.
        treatment: str. Simulated drug treatment of every cell, one of `TREATMENTS`. Defaults
            to ``"none"``.

    Returns:
        Path of `out_dir`.
    """
    families = _check_families(n_families)
    if dims not in (2, 3):
        raise ValueError(f"`dims` must be 2 or 3. Received: dims={dims}")
    size = tuple(size) if size is not None else ((64, 64) if dims == 2 else (16, 48, 48))
    if len(size) != dims:
        raise ValueError(f"`size` must have {dims} entries for dims={dims}. Received: size={size}")
    if not 0.0 <= mitotic_fraction <= 1.0:
        raise ValueError(f"`mitotic_fraction` must be in [0, 1]. Received: mitotic_fraction={mitotic_fraction}")
    if cells_per_structure < 1:
        raise ValueError(f"`cells_per_structure` must be >= 1. Received: cells_per_structure={cells_per_structure}")
    if proteins_per_family < 1 or proteins_per_family * cells_per_structure >= ALLEN_IDS_PER_FAMILY:
        raise ValueError(
            f"`proteins_per_family` must be >= 1 and `proteins_per_family * cells_per_structure` < "
            f"{ALLEN_IDS_PER_FAMILY} (CellIds are numbered per family). Received: proteins_per_family="
            f"{proteins_per_family}, cells_per_structure={cells_per_structure}"
        )
    _check_treatment(treatment)
    treated = treatment != "none"
    out_dir = Path(out_dir)
    rows = []
    with atomic_path(out_dir, suffix="") as tmp:
        (tmp / "cells").mkdir(parents=True)
        for fi, family in enumerate(families):
            for pi in range(proteins_per_family):
                params = protein_parameters(family, pi, seed)
                # Protein 0 keeps the stream it had when there was one protein per family.
                rng = np.random.default_rng([seed, 101, fi] + ([pi] if pi else []))
                for n in range(cells_per_structure):
                    phase = PHASES[int(rng.integers(1, 4))] if rng.uniform() < mitotic_fraction else "interphase"
                    cell = make_cell(family, params, size, phase, rng, center_nucleus=False, treatment=treatment)
                    stack = np.stack([cell["membrane"], cell["dna"], cell["protein"]])  # (C, [D,] H, W)
                    image = np.round(stack * 60000).astype(np.uint16)
                    cell_id = str(fi * ALLEN_IDS_PER_FAMILY + pi * cells_per_structure + n + 1)
                    if treated:  # never the CellId of an untreated cell
                        cell_id = f"{treatment}-{cell_id}"
                    rel = f"cells/{cell_id}.tiff"
                    layout_files.write_allen_cell(tmp / rel, image)
                    row = {
                        "CellId": cell_id,
                        "structure_name": family.upper(),
                        "path": rel,
                        **layout_files.allen_channel_columns(ALLEN_CHANNELS),
                        "cell_cycle_phase": phase,
                        "family": family,
                    }
                    if proteins_per_family > 1:  # one protein per family: the manifest as before
                        row["protein"] = f"{family.upper()}_{pi + 1}"
                    if treated:  # untreated sets: the manifest as before
                        row["treatment"] = treatment
                    rows.append(row)
                if progress is not None:
                    progress()
        pd.DataFrame(rows).to_csv(tmp / "manifest.csv", index=False)
    return out_dir


# BBBC021 plate design of `write_bbbc021`: (plate, well, compound, concentration, moa), DMSO on
# every plate and one drug per MoA.
BBBC021_WELLS: tuple[tuple[str, str, str, float, str], ...] = (
    ("Week1_101", "B02", "DMSO", 0.0, "DMSO"),
    ("Week1_101", "C03", "taxol", 0.3, "Microtubule stabilizers"),
    ("Week2_201", "B02", "DMSO", 0.0, "DMSO"),
    ("Week2_201", "D04", "nocodazole", 1.0, "Microtubule destabilizers"),
)


def write_bbbc021(
    out_dir: str | os.PathLike,
    wells=BBBC021_WELLS,
    cells_per_well: int = 3,
    size: int = 68,
    seed: int = 0,
    control: str = "DMSO",
    progress: Callable[[], None] | None = None,
) -> Path:
    """Write a synthetic BBBC021-layout crop folder (atomically) and return it.

    The layout of the real crops (`statcell_tf.data.bbbc021`): ``metadata.csv`` with columns
    ``file``, ``source_image_dapi``, ``cell_index``, ``plate``, ``well``, ``site``,
    ``replicate`` (1, 2, ... per compound and concentration, in plate order), ``compound``,
    ``concentration``, ``moa``, and one ``crops/<moa>/<file>.npy`` per cell: uint16
    ``(size, size, 3)``, channel-last DNA, F-actin (`make_cell`'s membrane), β-tubulin (a
    cytoplasm-family protein), centred on the nucleus. Cells of `control` wells are untreated;
    every other well holds ``"rounding"``-treated cells (smaller, rounder cells, brighter DNA).
    Each well draws from its own random stream: a well's cells do not depend on the others.

    Args:
        out_dir: str or PathLike. Output folder (replaced atomically).
        wells: sequence of (plate, well, compound, concentration, moa). Defaults to
            `BBBC021_WELLS`.
        cells_per_well: int. Defaults to 3.
        size: int. Crop side in pixels. Defaults to 68.
        seed: int. Defaults to 0.
        control: str. The compound of untreated wells. Defaults to ``"DMSO"``.
        progress: callable or None. Called once after each well.

    Returns:
        Path of `out_dir`.
    """
    wells = [tuple(w) for w in wells]
    if not wells or any(len(w) != 5 for w in wells):
        raise ValueError(f"`wells` must be (plate, well, compound, concentration, moa) tuples. Received: wells={wells}")
    sites = [(plate, well) for plate, well, *_ in wells]
    if len(set(sites)) != len(sites):
        raise ValueError(f"every (plate, well) of `wells` must be distinct. Received: wells={wells}")
    if cells_per_well < 1 or size < 16:
        raise ValueError(f"`cells_per_well` must be >= 1 and `size` >= 16. Received: cells_per_well={cells_per_well}, "
                         f"size={size}")
    params = protein_parameters("cytoplasm", 0, seed)
    replicates: dict[tuple[str, float], int] = {}
    rows = []
    out_dir = Path(out_dir)
    with atomic_path(out_dir, suffix="") as tmp:
        for index, (plate, well, compound, concentration, moa) in enumerate(wells):
            treatment = "none" if compound == control else "rounding"
            replicate = replicates[compound, concentration] = replicates.get((compound, concentration), 0) + 1
            folder = tmp / "crops" / str(moa).replace(" ", "_").replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            image_name = f"{well}_s1_w1{plate}"
            rng = np.random.default_rng([seed, 21, index])
            for i in range(cells_per_well):
                cell = make_cell("cytoplasm", params, (size, size), "interphase", rng, True, treatment=treatment)
                crop = np.stack([cell["dna"], cell["membrane"], cell["protein"]], -1)
                np.save(folder / f"{image_name}_{i}.npy", np.clip(np.round(crop * 12000), 0, 65535).astype(np.uint16))
                rows.append({"file": f"{image_name}_{i}.npy", "source_image_dapi": f"{image_name}.tif", "cell_index": i,
                             "plate": plate, "well": well, "site": "s1", "replicate": replicate, "compound": compound,
                             "concentration": concentration, "moa": moa})
            if progress is not None:
                progress()
        pd.DataFrame(rows).to_csv(tmp / "metadata.csv", index=False)
    return out_dir


# ---------------------------------------------------------------------------------------------
# Fields of view


FOV_CHANNELS: tuple[str, ...] = ("membrane", "dna", "protein")


def _place_cells(rng, field_yx, count, spacing, margin):
    """Up to `count` (y, x) centres in [margin, side - 1 - margin] at least `spacing` apart."""
    low = np.array([margin, margin], np.float64)
    high = np.array(field_yx, np.float64) - 1 - margin
    if (high < low).any():
        raise ValueError(f"`margin` leaves no room in a {field_yx} field. Received: margin={margin}")
    centres: list[np.ndarray] = []
    for _ in range(200 * max(count, 1)):
        if len(centres) == count:
            break
        point = rng.uniform(low, high)
        if all(np.hypot(*(point - c)) >= spacing for c in centres):
            centres.append(point)
    return centres


def _paste(field, covered, box, region, corner):
    """Write `box` into `field` where `region` is set (max where another cell is already there).

    `corner` is the box's (z, y, x) / (y, x) origin in the field; parts outside are clipped.
    """
    dst, src = [], []
    for start, n, side in zip(corner, box.shape, field.shape):
        a, b = max(start, 0), min(start + n, side)
        if a >= b:
            return
        dst.append(slice(a, b))
        src.append(slice(a - start, b - start))
    dst, src = tuple(dst), tuple(src)
    target, taken, values, where = field[dst], covered[dst], box[src], region[src]
    target[where & ~taken] = values[where & ~taken]
    both = where & taken
    target[both] = np.maximum(target[both], values[both])


PLATE_CHANNELS: tuple[str, ...] = ("Membrane", "DNA", "Protein")  # omero labels of FOV_CHANNELS in a plate
PLATE_NAME = "SYN01"
NGFF_VERSIONS: tuple[str, ...] = ("0.4", "0.5")


def _plate_wells(n: int) -> list[tuple[str, str]]:
    """(row, column) names of `n` wells filled row by row on a near-square plate: A/1, A/2, B/1, ..."""
    columns = int(np.ceil(np.sqrt(n)))
    return [(chr(ord("A") + i // columns), str(i % columns + 1)) for i in range(n)]


def _ngff_attrs(group, version: str, **attrs) -> None:
    """NGFF metadata: 0.4 keys at the top with a version each, 0.5 under ``"ome"``."""
    if version == "0.5":
        group.attrs["ome"] = {"version": version, **attrs}
    else:
        group.attrs.update({k: ({**v, "version": version} if isinstance(v, dict) else v) for k, v in attrs.items()})


def _write_plate_field(plate, path: str, stack: np.ndarray, version: str) -> None:
    """One field (C, [Z,] Y, X) as an OME-Zarr image at `path` of the plate group, one chunk per channel."""
    image = plate.require_group(path)
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space"} for a in "zyx"[3 - (stack.ndim - 1):]]
    extra = {"dimension_names": [a["name"] for a in axes]} if version == "0.5" else {}
    array = image.create_array("0", shape=stack.shape, dtype=stack.dtype, chunks=(1, *stack.shape[1:]), **extra)
    array[:] = stack
    scale = {"coordinateTransformations": [{"type": "scale", "scale": [1.0] * stack.ndim}]}
    multiscale = {"axes": axes, "datasets": [{"path": "0", **scale}], "name": path}
    if version != "0.5":
        multiscale["version"] = version
    omero = {"channels": [{"label": label, "active": True} for label in PLATE_CHANNELS]}
    if version == "0.5":
        image.attrs["ome"] = {"version": version, "multiscales": [multiscale], "omero": omero}
    else:
        image.attrs.update({"multiscales": [multiscale], "omero": omero})


def write_fovs(
    out_dir: str | os.PathLike,
    n_families: int = 11,
    proteins_per_family: int = 1,
    fields_per_protein: int = 2,
    cells_per_field: int = 8,
    size: tuple[int, ...] = (512, 512),
    cell_size: int = 64,
    margin: int | None = None,
    multichannel: bool = False,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
    plate: str | None = None,
) -> Path:
    """Write synthetic fields of view with known cells (atomically) and return the folder.

    Each field holds up to `cells_per_field` procedural cells (`make_cell`, nucleus at the
    centre of a `cell_size` box) of one protein, placed at random with their boxes at least
    0.8 × `cell_size` apart, on a background with the field's noise. Files:

    - ``fields/<fov>_<channel>.ome.tif`` (one uint16 OME-TIFF per channel, axes YX or ZYX,
      channels membrane, dna, protein), or with `multichannel` one ``fields/<fov>.ome.tif``
      (CYX / CZYX, channel names in the OME metadata);
    - ``fovs_opencell.csv`` (columns pro, nuc), ``fovs_bbbc021.csv`` (dna, membrane, protein;
      use ``--channels dna,membrane,protein``) and ``fovs_allencell.csv`` (membrane, dna,
      structure): ready-made FOVS.csv files for ``prepare-crops``, image paths relative to the
      folder, with ``<channel>_channel`` index columns when `multichannel`, and the metadata
      of every layout (fov, ensg, protein, localization, family; plate, well, site,
      compound, concentration, moa; structure_name);
    - ``cells.csv``: the truth, one row per cell: fov, cell, centroid ``[z,] y, x`` of its
      nucleus (pixels of the field), nucleus_area, cell_area, inside (the whole cell box
      lies in the field), family, protein (with `plate` also well and site);
    - with `plate` (an NGFF version, ``"0.4"``: zarr v2, or ``"0.5"``: zarr v3), the same fields
      again as an OME-Zarr HCS plate ``plate.zarr`` (plate ``SYN01``, one well per protein on a
      near-square plate: A/1, A/2, B/1, ...; `fields_per_protein` fields per well; channels
      `PLATE_CHANNELS`, one chunk per channel) and ``plate_map.csv`` (well, compound = the
      protein, concentration, moa = the family) for ``prepare-crops plate.zarr
      --plate-map plate_map.csv``.

    Args:
        out_dir: str or PathLike. Output folder (replaced atomically).
        n_families: int. Families, the first of `FAMILIES`. Defaults to 11.
        proteins_per_family: int. Defaults to 1.
        fields_per_protein: int. Defaults to 2.
        cells_per_field: int. Cells placed per field (fewer when they do not fit). Defaults to 8.
        size: tuple. Field ``(H, W)`` or ``(D, H, W)``. Defaults to (512, 512).
        cell_size: int. Side of each cell's box (the cell spans about 0.64–0.84 of it, the
            nucleus about a third). Defaults to 64.
        margin: int or None. Box centres stay this far from the edges; None = cell_size // 2
            (every cell whole); 0 lets cells be cut by the border.
        multichannel: bool. One multi-channel file per field. Defaults to False.
        seed: int. Defaults to 0.
        progress: callable or None. Called once after each field.
        plate: str or None. Also write the fields as an HCS plate of this NGFF version.

    Returns:
        Path of `out_dir`.
    """
    import tifffile

    families = _check_families(n_families)
    size = tuple(int(s) for s in size)
    if len(size) not in (2, 3) or min(size[-2:]) < cell_size or cell_size < 16:
        raise ValueError(
            f"`size` must be (H, W) or (D, H, W) with H, W >= cell_size >= 16. Received: size={size}, "
            f"cell_size={cell_size}"
        )
    if min(proteins_per_family, fields_per_protein, cells_per_field) < 1:
        raise ValueError(
            "`proteins_per_family`, `fields_per_protein` and `cells_per_field` must be >= 1. Received: "
            f"{proteins_per_family}, {fields_per_protein}, {cells_per_field}"
        )
    margin = cell_size // 2 if margin is None else int(margin)
    dims = len(size)
    box = (size[0], cell_size, cell_size) if dims == 3 else (cell_size, cell_size)
    axes = "ZYX" if dims == 3 else "YX"
    names = ("z", "y", "x")[-dims:]
    out_dir = Path(out_dir)
    tables: dict[str, list[dict]] = {"opencell": [], "bbbc021": [], "allencell": []}
    truth = []
    if plate is not None and plate not in NGFF_VERSIONS:
        raise ValueError(f"`plate` must be one of {NGFF_VERSIONS} or None. Received: {plate!r}")
    wells = _plate_wells(len(families) * proteins_per_family)
    plate_rows = []
    with atomic_path(out_dir, suffix="") as tmp:
        (tmp / "fields").mkdir(parents=True)
        if plate is not None:
            import zarr

            plate_group = zarr.open_group(tmp / "plate.zarr", mode="w", zarr_format=2 if plate == "0.4" else 3)
        index = 0
        for fi, family in enumerate(families):
            for pi in range(proteins_per_family):
                params = protein_parameters(family, pi, seed)
                protein, ensg = f"{family.upper()}_{pi + 1}", _ensg(fi, pi)
                well_row, well_column = wells[fi * proteins_per_family + pi]
                well = f"{well_row}{int(well_column):02d}"
                concentration = round(0.1 * (len(plate_rows) + 1), 6)
                plate_rows.append({"well": well, "compound": protein, "concentration": concentration, "moa": family})
                for site in range(fields_per_protein):
                    fov = f"fov{index:04d}"
                    rng = np.random.default_rng([seed, 211, index])
                    background, photons = rng.uniform(0.02, 0.06), rng.uniform(150, 400)
                    zeros = np.zeros(size, np.float32)
                    channels = {c: _image(rng, zeros, background, photons) for c in FOV_CHANNELS}
                    covered = np.zeros(size, bool)
                    centres = _place_cells(rng, size[-2:], cells_per_field, 0.8 * cell_size, margin)
                    for k, centre in enumerate(centres):
                        cell = make_cell(family, params, box, "interphase", rng, True, background, photons)
                        corner = [int(round(c - cell_size / 2.0)) for c in centre]
                        corner = ([0] if dims == 3 else []) + corner
                        region = ndi.binary_dilation(cell["cell_mask"], iterations=3)
                        for c in FOV_CHANNELS:
                            _paste(channels[c], covered, cell[c], region, corner)
                        covered_box = np.zeros(size, bool)
                        _paste(covered_box, np.zeros(size, bool), region, region, corner)
                        covered |= covered_box
                        centroid = np.array(ndi.center_of_mass(cell["nucleus_mask"])) + np.array(corner)
                        inside = all(0 <= a and a + n <= s for a, n, s in zip(corner, box, size))
                        row = {"fov": fov, "cell": k, **({"well": well, "site": site} if plate else {})}
                        row.update({f"centroid_{n}": float(c) for n, c in zip(names, centroid)})
                        row.update(
                            {
                                "nucleus_area": int(cell["nucleus_mask"].sum()),
                                "cell_area": int(cell["cell_mask"].sum()),
                                "inside": inside,
                                "family": family,
                                "protein": protein,
                            }
                        )
                        truth.append(row)
                    stacks = {c: np.round(channels[c] * 60000).astype(np.uint16) for c in FOV_CHANNELS}
                    if plate is not None:
                        field_path = f"{well_row}/{well_column}/{site}"
                        _write_plate_field(plate_group, field_path, np.stack([stacks[c] for c in FOV_CHANNELS]), plate)
                    if multichannel:
                        rel = f"fields/{fov}.ome.tif"
                        image = np.stack([stacks[c] for c in FOV_CHANNELS])
                        tifffile.imwrite(
                            tmp / rel, image, ome=True, metadata={"axes": "C" + axes, "Channel": {"Name": list(FOV_CHANNELS)}}
                        )
                        paths = {c: rel for c in FOV_CHANNELS}
                    else:
                        paths = {}
                        for c in FOV_CHANNELS:
                            paths[c] = f"fields/{fov}_{c}.ome.tif"
                            tifffile.imwrite(tmp / paths[c], stacks[c], ome=True, metadata={"axes": axes})

                    def columns(mapping):
                        row = {column: paths[c] for column, c in mapping.items()}
                        if multichannel:
                            row.update({f"{column}_channel": FOV_CHANNELS.index(c) for column, c in mapping.items()})
                        return row

                    meta = {"fov": fov, "ensg": ensg, "protein": protein, "localization": family, "family": family}
                    tables["opencell"].append({**columns({"pro": "protein", "nuc": "dna"}), **meta})
                    tables["bbbc021"].append(
                        {
                            **columns({c: c for c in ("dna", "membrane", "protein")}),
                            "fov": fov,
                            "plate": "SYN01",
                            "well": f"W{index:03d}",
                            "site": 0,
                            "compound": protein,
                            "concentration": 1.0,
                            "moa": family,
                            "family": family,
                        }
                    )
                    tables["allencell"].append(
                        {
                            **columns({"membrane": "membrane", "dna": "dna", "structure": "protein"}),
                            "fov": fov,
                            "structure_name": family.upper(),
                            "protein": protein,
                            "family": family,
                        }
                    )
                    index += 1
                    if progress is not None:
                        progress()
        for layout, rows in tables.items():
            pd.DataFrame(rows).to_csv(tmp / f"fovs_{layout}.csv", index=False)
        pd.DataFrame(truth).to_csv(tmp / "cells.csv", index=False)
        if plate is not None:
            rows_used = sorted({r for r, _ in wells})
            columns_used = sorted({c for _, c in wells}, key=int)
            for well_row, well_column in wells:
                images = [{"path": str(site), "acquisition": 0} for site in range(fields_per_protein)]
                _ngff_attrs(plate_group.require_group(f"{well_row}/{well_column}"), plate, well={"images": images})
            _ngff_attrs(
                plate_group,
                plate,
                plate={
                    "name": PLATE_NAME,
                    "rows": [{"name": r} for r in rows_used],
                    "columns": [{"name": c} for c in columns_used],
                    "wells": [{"path": f"{r}/{c}", "rowIndex": rows_used.index(r), "columnIndex": columns_used.index(c)}
                              for r, c in wells],
                    "acquisitions": [{"id": 0, "name": "synthetic"}],
                    "field_count": fields_per_protein,
                },
            )
            pd.DataFrame(plate_rows).to_csv(tmp / "plate_map.csv", index=False)
    return out_dir
