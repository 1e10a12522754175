"""A crowded specimen: a slab of cytoplasm with known contents (phantom kind ``crowded``).

Contents, placed in this order, each where it overlaps nothing placed before:

1. **Vesicles**: lipid bilayers (POPC numbers) on spheres of radius ``vesicle_radius``
   (mid-plane, Å), ``vesicles`` of them (default 1) or as many as reach
   ``vesicle_fraction`` (lipid volume, 36.8 Å × membrane area, over the slab volume).
   Across the bilayer (``d``: distance from the mid-plane) the potential is a hydrocarbon
   core ``|d| < D_C`` (``D_C = V_C / A_L`` = 13.7 Å, edges blurred by 1.5 Å) plus two
   Gaussian head-group layers (σ 3 Å) at ``d = ±D/2``, ``D`` = ``bilayer_thickness``
   (head to head, default 40 Å). Their strengths follow from one POPC
   (C42H82NO8P) per ``A_L`` = 68.3 Å² per leaflet: chains C32H64 in ``V_C`` = 937 Å³, head
   group C10H18NO8P in ``V_H`` = 319 Å³ (Kučerka et al. 2006; Nagle & Tristram-Nagle 2000),
   with the same electron scattering factors as the particles. Vesicles do not overlap each
   other; their lumen is free for particles.
2. **Filaments** (``filaments``, length ``filament_length`` Å, diameter
   ``filament_diameter`` D): straight actin-like filaments with F-actin's mass per length,
   a 42 kDa subunit every 27.5 Å turning −166.6° (the genetic helix), each subunit a
   Gaussian (σ = D/4, so ±2σ spans D) of protein potential, on a helix of radius D/10:
   a Gaussian-profile tube (peak ≈ the protein's own potential) with a faint helical
   texture at 8–12 Å.
3. **Particles** of each class (:mod:`wedgebench.phantoms.molecules`), largest class first:
   as many as give the class's target volume fraction (``count · mass · 1.21 Å³/Da`` over
   the slab volume), each at a uniformly random orientation
   (:func:`wedgebench.euler.random_rotations`). A particle is its class map rotated by
   :func:`wedgebench.euler.rotate_volume` (trilinear) with the box centre ``n // 2`` on an
   integer tomogram voxel (its ``rlnCoordinateX/Y/Z``). Its occupancy mask is the rotated
   map above ``mask_threshold`` × its maximum, holes filled; a position is free when the
   mask dilated by ``margin`` (Å) meets no voxel of an earlier mask (vesicle, filament or
   particle), so masks keep ``margin`` apart while shapes interlock (not bounding spheres).
   Positions are tried at random (``attempts``), then by an exhaustive FFT search of the
   free positions for that orientation, then with new orientations (3 in all); a class
   that still cannot be placed stops the build, naming it and the fraction reached.

Every mask (undilated) lies inside the slab: the ``thickness`` (Å, default the box) centred
in z, and inside the box in x and y.

Units. The volume is the electrostatic potential in volts, voxel-averaged, with voxel size
in Å: each content's own potential minus ``solvent_potential`` (V, default 4.5: vitreous
ice) times the volume it displaces, i.e. the contrast against the ice that embeds it (0
gives the contents in vacuum). For protein the displaced volume is taken to follow the
potential (uniform composition): a class map is its potential × ``(1 − V_s / MIP)``,
``MIP`` = the class's potential integral / (mass × 1.21 Å³/Da) ≈ 8 V with hydrogens
(isolated atoms; the same factors give water 4.9 V). Maxima at 8–12 Å voxels, against
4.5 V ice: particles 2.7–4.6 V, membranes 1.8–2.1 V, filaments 3.1 V; in vacuum
(``solvent_potential: 0``): 6.2–10.5 V, 5.8 V, 7.0 V. The lipid core turns negative for a
solvent above 5.8 V.

Randomness: one ``np.random.default_rng(seed)``; the same params and seed give a
bit-identical volume. The class maps do not depend on the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from wedgebench.euler import matrix_to_euler, random_rotations, rotate_volume
from wedgebench.io import InputError
from wedgebench.phantoms import molecules
from wedgebench.phantoms.filters import check_int, check_number, check_shape

PACKING_LIMIT = 0.38
"""Largest sum of class volume fractions accepted up front: the jamming limit of random
sequential addition of spheres (≈ 0.38); the dilated masks exclude more than the protein's
own volume, so sums near it usually fail after the attempts anyway."""

ORIENTATIONS = 3
"""Orientations tried per particle before a class is declared unplaceable."""

LIPID = dict(area=68.3, chain_volume=937.0, head_volume=319.0, head_sigma=3.0, edge=1.5,
             chain={"C": 32, "H": 64}, head={"C": 10, "H": 18, "N": 1, "O": 8, "P": 1})
"""POPC per leaflet: area (Å²), chain and head-group volumes (Å³), head-layer σ and core
edge blur (Å), element counts."""

ACTIN = dict(subunit_da=42000.0, rise=27.5, twist=-166.6)
"""F-actin subunit mass (Da), rise (Å) and twist (degrees) along the genetic helix."""

DEFAULT_FRACTIONS = {"ubq_o24": 0.005, "tcr_d2": 0.01, "prlbd_i60": 0.015, "cytc_i60": 0.02,
                     "porin_c3": 0.005}
"""Volume fraction of each catalogue class when neither the class nor ``fractions`` nor
``fraction`` sets one (tens of each default class in 64 × 160 × 160 voxels of 12 Å);
other classes get :data:`FALLBACK_FRACTION`."""

FALLBACK_FRACTION = 0.01

DEFAULTS = dict(classes=None, fraction=None, fractions=None, thickness=None, margin=10.0,
                mask_threshold=0.05, solvent_potential=4.5, vesicles=None, vesicle_fraction=None,
                vesicle_radius=(100.0, 180.0), bilayer_thickness=40.0, filaments=2,
                filament_length=(400.0, 1200.0), filament_diameter=70.0, fine_spacing=1.0,
                attempts=100)
"""Defaults of :func:`generate`'s parameters."""

CLASS_KEYS = ("fraction", "count")
"""Per-class placement keys (besides :data:`molecules.SPEC_KEYS`)."""


# --------------------------------------------------------------------------- parameters


def _positive_interval(value, key: str) -> tuple[float, float]:
    if np.isscalar(value):
        value = [value, value]
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{key}: expected [min, max] in Å, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise InputError(f"{key}: expected [min, max] with 0 < min <= max (Å), got {value!r}")
    return lo, hi


def _class_entries(classes, fraction, fractions) -> list[dict]:
    """``[{name, recipe spec, fraction, count}]`` in the order given."""
    if classes is None:
        classes = list(molecules.DEFAULT_CLASSES)
    if isinstance(classes, (list, tuple)):
        if not all(isinstance(c, str) for c in classes):
            raise InputError(f"crowded.classes: expected class names or a mapping name -> "
                             f"recipe, got {classes!r}")
        items = [(c, {}) for c in classes]
    elif isinstance(classes, dict):
        items = list(classes.items())
    else:
        raise InputError(f"crowded.classes: expected a list of class names or a mapping "
                         f"name -> recipe, got {classes!r}")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise InputError(f"crowded.classes: repeated class names in {names}")
    if fraction is not None:
        fraction = check_number(fraction, "crowded.fraction", minimum=0, maximum=1)
    fractions = {} if fractions is None else fractions
    if not isinstance(fractions, dict):
        raise InputError(f"crowded.fractions: expected a mapping class name -> fraction, "
                         f"got {fractions!r}")
    for name in fractions:
        if name not in names:
            raise InputError(f"crowded.fractions.{name}: not one of the classes {names}")
    out = []
    for name, spec in items:
        key = f"crowded.classes.{name}"
        spec = dict(spec or {})
        if not isinstance(name, str) or not name:
            raise InputError(f"crowded.classes: class names must be non-empty strings, got "
                             f"{name!r}")
        unknown = sorted(set(spec) - set(molecules.SPEC_KEYS) - set(CLASS_KEYS))
        if unknown:
            raise InputError(f"{key}: unknown key(s) {unknown}; allowed: "
                             f"{[*molecules.SPEC_KEYS, *CLASS_KEYS]}")
        if "fraction" in spec and "count" in spec:
            raise InputError(f"{key}: give 'fraction' or 'count', not both")
        count = None
        if "count" in spec:
            count = check_int(spec.pop("count"), f"{key}.count")
        default = (fraction if fraction is not None
                   else DEFAULT_FRACTIONS.get(name, FALLBACK_FRACTION))
        frac = spec.pop("fraction", fractions.get(name, default))
        frac = check_number(frac, f"{key}.fraction" if name not in fractions
                            else f"crowded.fractions.{name}", minimum=0, maximum=1)
        recipe = molecules.class_recipe(name, spec, "crowded.classes")
        out.append(dict(name=name, recipe=recipe, fraction=frac, count=count))
    return out


@dataclass
class _Params:
    shape: tuple
    voxel: float
    slab: tuple  # (z_lo, z_hi) voxel indices, inclusive
    slab_volume: float  # Å³
    entries: list
    margin: float
    threshold: float
    solvent: float
    vesicles: int | None
    vesicle_fraction: float | None
    vesicle_radius: tuple
    bilayer: float
    filaments: int
    filament_length: tuple
    filament_diameter: float
    fine_spacing: float
    attempts: int


def _slab(shape, voxel, thickness) -> tuple[tuple[int, int], float]:
    nz = shape[0]
    if thickness is None:
        return (0, nz - 1), nz * voxel
    t = check_number(thickness, "crowded.thickness", minimum=0, exclusive_min=True)
    if t > nz * voxel + 1e-9:
        raise InputError(f"crowded.thickness: {t:g} Å exceeds the box ({nz} voxels × "
                         f"{voxel:g} Å = {nz * voxel:g} Å)")
    c = (nz - 1) / 2
    lo, hi = int(math.ceil(c - t / (2 * voxel) - 1e-9)), int(math.floor(c + t / (2 * voxel)
                                                                          + 1e-9))
    if hi < lo:
        raise InputError(f"crowded.thickness: {t:g} Å holds no voxel centre")
    return (lo, hi), t


def _parse(shape, voxel_size, p: dict) -> _Params:
    unknown = sorted(set(p) - set(DEFAULTS))
    if unknown:
        raise InputError(f"crowded: unknown parameter(s) {unknown}; allowed: "
                         f"{['shape', 'voxel_size', *DEFAULTS]}")
    q = {**DEFAULTS, **p}
    shape = check_shape(shape, "crowded.shape")
    vs = check_number(voxel_size, "crowded.voxel_size", minimum=0, exclusive_min=True)
    slab, thickness = _slab(shape, vs, q["thickness"])
    entries = _class_entries(q["classes"], q["fraction"], q["fractions"])
    vesicles = q["vesicles"]
    if q["vesicle_fraction"] is not None and vesicles is not None:
        raise InputError("crowded.vesicle_fraction: give 'vesicles' (a count) or "
                         "'vesicle_fraction', not both")
    if q["vesicle_fraction"] is None and vesicles is None:
        vesicles = 1
    vfrac = (None if q["vesicle_fraction"] is None else
             check_number(q["vesicle_fraction"], "crowded.vesicle_fraction", minimum=0,
                          maximum=PACKING_LIMIT))
    bilayer = check_number(q["bilayer_thickness"], "crowded.bilayer_thickness", minimum=30,
                           maximum=60)
    return _Params(
        shape=shape, voxel=vs, slab=slab, slab_volume=thickness * shape[1] * shape[2] * vs ** 2,
        entries=entries,
        margin=check_number(q["margin"], "crowded.margin", minimum=0),
        threshold=check_number(q["mask_threshold"], "crowded.mask_threshold", minimum=0,
                               maximum=1, exclusive_min=True),
        solvent=check_number(q["solvent_potential"], "crowded.solvent_potential", minimum=0,
                             maximum=6),
        vesicles=None if vesicles is None else check_int(vesicles, "crowded.vesicles"),
        vesicle_fraction=vfrac,
        vesicle_radius=_positive_interval(q["vesicle_radius"], "crowded.vesicle_radius"),
        bilayer=bilayer,
        filaments=check_int(q["filaments"], "crowded.filaments"),
        filament_length=_positive_interval(q["filament_length"], "crowded.filament_length"),
        filament_diameter=check_number(q["filament_diameter"], "crowded.filament_diameter",
                                       minimum=0, exclusive_min=True),
        fine_spacing=check_number(q["fine_spacing"], "crowded.fine_spacing", minimum=0,
                                  exclusive_min=True),
        attempts=check_int(q["attempts"], "crowded.attempts", minimum=1))


def _vesicle_extent(par: _Params) -> float:
    """Half-width (Å) of a bilayer's non-zero potential around its mid-plane."""
    return par.bilayer / 2 + 4 * LIPID["head_sigma"]


def _fit_problems(par: _Params, masses: dict) -> list[str]:
    """Checks that need only the parameters and the class masses."""
    out = []
    total = 0.0
    for e in par.entries:
        vol = masses[e["name"]] * molecules.PROTEIN_VOLUME_A3_PER_DA
        total += (e["count"] * vol / par.slab_volume if e["count"] is not None
                  else e["fraction"])
    if total > PACKING_LIMIT:
        out.append(f"crowded.fractions: the classes' volume fractions sum to {total:.3f}, "
                   f"beyond the packing limit {PACKING_LIMIT} (random sequential addition)")
    half_slab = (par.slab[1] - par.slab[0]) * par.voxel / 2
    half_xy = (min(par.shape[1:]) - 1) * par.voxel / 2
    r_out = par.vesicle_radius[1] + _vesicle_extent(par)
    needs_vesicles = bool(par.vesicles) or bool(par.vesicle_fraction)
    if needs_vesicles and r_out > min(half_slab, half_xy):
        out.append(f"crowded.vesicle_radius: vesicles up to {par.vesicle_radius[1]:g} Å "
                   f"(outer leaflet to {r_out:g} Å) do not fit in a slab "
                   f"{2 * half_slab:g} Å thick and {2 * half_xy:g} Å wide")
    if par.filaments and par.filament_diameter / 2 > half_slab:
        out.append(f"crowded.filament_diameter: {par.filament_diameter:g} Å does not fit in "
                   f"the slab ({2 * half_slab:g} Å)")
    if par.filaments and par.filament_length[0] > 2 * math.hypot(half_xy, half_xy):
        out.append(f"crowded.filament_length: {par.filament_length[0]:g} Å is longer than "
                   "the box")
    return out


def check_params(shape, voxel_size, **params) -> list[str]:
    """Problems of a ``crowded`` dataset's parameters, found without building the volume.

    Reads each class's model (chain selection, assembly) but does not search its
    pseudo-assembly nor compute maps: unknown keys and class names, bad values, classes
    without atoms, unreadable files, fractions beyond :data:`PACKING_LIMIT`, vesicles or
    filaments that cannot fit the slab. (That the classes fit and can be packed is known
    only when :func:`generate` places them; it then raises naming the class.)

    Returns
    -------
    list of str, each naming the key (empty when fine)
    """
    try:
        par = _parse(shape, voxel_size, params)
    except InputError as exc:
        return [str(exc)]
    out, masses = [], {}
    for e in par.entries:
        try:
            masses[e["name"]] = molecules.class_mass(e["name"], e["recipe"], "crowded.classes")
        except InputError as exc:
            out.append(str(exc))
    if out:
        return out
    return _fit_problems(par, masses)


# --------------------------------------------------------------------------- rendering


def _f0_sum(counts: dict) -> float:
    return float(sum(n * f for n, f in zip(counts.values(),
                                           molecules.electron_f0(list(counts)))))


def bilayer_profile(bilayer_thickness: float, solvent: float):
    """The bilayer's potential across its mid-plane, a function of ``d`` (Å) → volts, and
    its constants (core half-width ``D_C``, core level, head amplitude; see the module
    docstring)."""
    lp = LIPID
    core = (molecules.K_VOLT * _f0_sum(lp["chain"]) - solvent * lp["chain_volume"]) \
        / lp["chain_volume"]
    head_area = (molecules.K_VOLT * _f0_sum(lp["head"]) - solvent * lp["head_volume"]) \
        / lp["area"]  # V·Å per leaflet
    amp = head_area / (lp["head_sigma"] * math.sqrt(2 * math.pi))
    d_c = lp["chain_volume"] / lp["area"]
    s2 = math.sqrt(2) * lp["edge"]
    half = bilayer_thickness / 2
    sig2 = 2 * lp["head_sigma"] ** 2

    def profile(d):
        d = np.asarray(d, np.float64)
        return (0.5 * core * (erf((d_c - d) / s2) + erf((d_c + d) / s2))
                + amp * (np.exp(-(d - half) ** 2 / sig2) + np.exp(-(d + half) ** 2 / sig2)))

    return profile, dict(core_halfwidth=d_c, core_V=core, head_amplitude_V=amp,
                         head_integral_VA=head_area)


def vesicle_integral(radius: float, bilayer_thickness: float, solvent: float) -> float:
    """Exact ∫V d³r (V·Å³) of a vesicle of mid-plane ``radius`` (Å)."""
    _, c = bilayer_profile(bilayer_thickness, solvent)
    half, sh, e = bilayer_thickness / 2, LIPID["head_sigma"], LIPID["edge"]
    d_c = c["core_halfwidth"]
    heads = c["head_amplitude_V"] * sh * math.sqrt(2 * math.pi) * 4 * math.pi * (
        (radius + half) ** 2 + (radius - half) ** 2 + 2 * sh ** 2)
    core = c["core_V"] * 4 * math.pi * (2 * d_c * radius ** 2 + 2 * d_c ** 3 / 3
                                        + 2 * d_c * e ** 2)
    return heads + core


def render_vesicle(shape, voxel: float, centre, radius: float, profile, extent: float,
                   max_chunk: int = 250_000):
    """Voxel-averaged potential of one vesicle (centre ``[z, y, x]`` in voxels, radius in
    Å) in its local box: ``(slices, values)``. Each voxel within reach of the bilayer is
    the mean of the profile over ``m³`` sub-points (spacing ≤ 1.5 Å)."""
    c = np.asarray(centre, float)
    reach = (radius + extent) / voxel + 1
    lo = np.maximum(np.floor(c - reach).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    grids = np.meshgrid(*[(np.arange(a, b) - ci) * voxel for a, b, ci in zip(lo, hi, c)],
                        indexing="ij")
    dist = np.sqrt(sum(g ** 2 for g in grids))
    near = np.abs(dist - radius) <= extent + voxel * math.sqrt(3) / 2
    m = max(2, int(math.ceil(voxel / 1.5)))
    sub = ((np.arange(m) + 0.5) / m - 0.5) * voxel
    offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    pts = np.stack([g[near] for g in grids], -1)
    vals = np.empty(len(pts))
    chunk = max(1, max_chunk // len(offs))  # bounds the sub-points evaluated at once
    for s in range(0, len(pts), chunk):
        p = pts[s:s + chunk, None, :] + offs[None]
        vals[s:s + chunk] = profile(np.linalg.norm(p, axis=-1) - radius).mean(1)
    out = np.zeros(dist.shape, np.float64)
    out[near] = vals
    return sl, out


def _protein_per_da(solvent: float) -> tuple[float, float]:
    """(V·Å³ of potential contrast per Da of protein, protein MIP in V), from ubiquitin."""
    ubq = molecules.build_class("ubiquitin", {"pdb": "1UBQ"}, "crowded.filaments")
    mip = ubq.integral() / ubq.volume_A3
    return ubq.integral() / ubq.mass_da * (1 - solvent / mip), mip


def filament_blobs(p0, p1, diameter: float, phase: float):
    """Subunit centres (Å, ``(x, y, z)``) of a filament from ``p0`` to ``p1`` and the blob σ
    (Å): one per 27.5 Å along the axis at D/10 from it, turning −166.6° each; σ = D/4."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = np.linalg.norm(axis)
    a = axis / length
    helper = np.eye(3)[int(np.argmin(np.abs(a)))]
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    n = int(length // ACTIN["rise"]) + 1
    t = (np.arange(n) - (n - 1) / 2) * ACTIN["rise"] + length / 2
    phi = np.deg2rad(phase + np.arange(n) * ACTIN["twist"])
    rho = diameter / 10
    centres = (p0 + t[:, None] * a + rho * (np.cos(phi)[:, None] * e1
                                             + np.sin(phi)[:, None] * e2))
    return centres, diameter / 4


# --------------------------------------------------------------------------- placement


def _ball(radius_vox: float) -> np.ndarray | None:
    r = int(math.floor(radius_vox))
    if r < 1:
        return None
    g = np.arange(-r, r + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) \
        <= radius_vox ** 2 + 1e-9


def _masks(values: np.ndarray, threshold: float, ball):
    """(mask, dilated mask) of a rendered object: above ``threshold`` × max, holes
    filled; dilated by ``ball`` (padded so the dilation is not cut)."""
    from scipy import ndimage

    mask = ndimage.binary_fill_holes(values > threshold * values.max())
    if ball is None:
        return mask, mask, 0
    pad = ball.shape[0] // 2
    dil = ndimage.binary_dilation(np.pad(mask, pad), structure=ball)
    return mask, dil, pad


def _window(shape, corner, size):
    """Slices of the volume and of a local array of ``size`` whose voxel 0 sits at
    ``corner`` of the volume (clipped to the volume)."""
    vol_sl, loc_sl = [], []
    for n, c, s in zip(shape, corner, size):
        a, b = max(c, 0), min(c + s, n)
        vol_sl.append(slice(a, b))
        loc_sl.append(slice(a - c, b - c))
    return tuple(vol_sl), tuple(loc_sl)


def _free(occ, corner, dil) -> bool:
    vs, ls = _window(occ.shape, corner, dil.shape)
    return not np.any(occ[vs] & dil[ls])


def _centre_range(shape, slab, mask, centre_index):
    """Inclusive ranges of the integer voxel on which ``centre_index`` of ``mask`` may land
    so that the mask lies in the slab and the box."""
    idx = np.argwhere(mask)
    lo_off, hi_off = idx.min(0) - centre_index, idx.max(0) - centre_index
    bounds_lo = np.array([slab[0], 0, 0])
    bounds_hi = np.array([slab[1], shape[1] - 1, shape[2] - 1])
    return bounds_lo - lo_off, bounds_hi - hi_off


def _search_free(rng, occ, dil, pad, centre_index, lo, hi, attempts):
    """A centre voxel where the dilated mask meets no occupied voxel, or None: random
    tries, then every position at once (FFT correlation), drawn uniformly."""
    from scipy import fft

    if np.any(hi < lo):
        return None
    c_dil = np.asarray(centre_index) + pad
    for _ in range(attempts):
        c = rng.integers(lo, hi + 1)
        if _free(occ, c - c_dil, dil):
            return c
    full = [a + b - 1 for a, b in zip(occ.shape, dil.shape)]
    size = [fft.next_fast_len(n, real=True) for n in full]
    spectrum = (fft.rfftn(occ.astype(np.float32), size)
                * fft.rfftn(dil[::-1, ::-1, ::-1].astype(np.float32), size))
    overlap = fft.irfftn(spectrum, size)[tuple(slice(0, n) for n in full)]  # convolution
    # overlap[c + (size-1) - c_dil] = Σ occ[c - c_dil + o] dil[o]
    off = np.array(dil.shape) - 1 - c_dil
    sub = overlap[tuple(slice(a + o, b + o + 1) for a, b, o in zip(lo, hi, off))]
    free = np.argwhere(sub < 0.5)
    if len(free) == 0:
        return None
    return lo + free[rng.integers(len(free))]


@dataclass
class Specimen:
    """A crowded specimen and its ground truth.

    Attributes
    ----------
    volume : ndarray float32 ``[z, y, x]``, volts
    voxel_size : float, Å
    particles : pandas.DataFrame
        RELION columns ``rlnCoordinateX/Y/Z`` (tomogram voxel of the class map's centre
        ``n // 2``), ``rlnAngleRot/Tilt/Psi`` (degrees, :func:`euler.matrix_to_euler` of the
        particle's rotation: ``particle = rotate_volume(class map, particle_matrix(angles))``),
        ``rlnClassNumber`` (1-based) and ``wbClassName``.
    classes : list of dict
        Per class: name, number, source, symmetry, radius_A, sphere_radius_A, mass_kDa,
        mip_V, contrast_scale, fraction_target, count, fraction, and ``map`` (the placed
        class map, volts, float32, odd cube centred at ``n // 2``).
    vesicles, filaments : list of dict
        Centre (voxels ``[z, y, x]``) and radius (Å); end points (voxels ``[z, y, x]``).
    parts : dict of ndarray
        ``particles``, ``membranes``, ``filaments``: the volume is their sum.
    params : dict
        The parameters used (defaults filled in).
    """

    volume: np.ndarray
    voxel_size: float
    particles: object
    classes: list
    vesicles: list
    filaments: list
    parts: dict
    params: dict


def _place_vesicles(rng, par: _Params, occ: np.ndarray):
    """Vesicles (exact spheres, checked against each other analytically): their summed
    potential and ``[{centre, radius_A}]``; ``occ`` gains their masks."""
    shape, v = par.shape, par.voxel
    profile, _ = bilayer_profile(par.bilayer, par.solvent)
    extent = _vesicle_extent(par)
    membranes = np.zeros(shape, np.float64)
    vesicles = []
    target = (par.vesicle_fraction or 0.0) * par.slab_volume
    lipid = 0.0
    tries = 0
    while (len(vesicles) < par.vesicles) if par.vesicles is not None else lipid < target:
        tries += 1
        if tries > 100 * par.attempts:
            key = "vesicles" if par.vesicles is not None else "vesicle_fraction"
            raise InputError(f"crowded.{key}: placed only {len(vesicles)} vesicles "
                             f"(lipid volume fraction {lipid / par.slab_volume:.3f}) "
                             "without overlaps")
        r = rng.uniform(*par.vesicle_radius)
        reach = (r + extent) / v
        lo = np.array([par.slab[0], 0, 0]) + reach
        hi = np.array([par.slab[1], shape[1] - 1, shape[2] - 1]) - reach
        if np.any(hi < lo):
            continue
        c = rng.uniform(lo, hi)
        if any(np.linalg.norm((c - w["centre"]) * v) < r + w["radius_A"] + 2 * extent
               + par.margin for w in vesicles):
            continue
        sl, vals = render_vesicle(shape, v, c, r, profile, extent)
        membranes[sl] += vals
        occ[sl] |= np.abs(vals) > par.threshold * np.abs(vals).max()
        lipid += 4 * math.pi * r ** 2 * 2 * (LIPID["chain_volume"]
                                             + LIPID["head_volume"]) / LIPID["area"]
        vesicles.append(dict(centre=[float(x) for x in c], radius_A=float(r)))
    return membranes, vesicles


def _place_filaments(rng, par: _Params, occ: np.ndarray, ball):
    """Filaments whose masks (in the slab) keep ``margin`` from ``occ``: their summed
    potential and ``[{start, end, length_A}]``; ``occ`` gains their masks."""
    from wedgebench.phantoms.filters import render_gaussians

    shape, v = par.shape, par.voxel
    fil = np.zeros(shape, np.float64)
    filaments = []
    weight = (_protein_per_da(par.solvent)[0] * ACTIN["subunit_da"] / v ** 3
              if par.filaments else 0.0)
    reach = par.filament_diameter * (1 / 10 + 3 / 4) / v  # helix radius + 3σ, voxels
    tries = 0
    while len(filaments) < par.filaments:
        tries += 1
        if tries > 10 * par.attempts:
            raise InputError(f"crowded.filaments: placed only {len(filaments)} of "
                             f"{par.filaments} filaments without overlaps")
        length = rng.uniform(*par.filament_length)
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        mid = rng.uniform([par.slab[0], 0, 0], [par.slab[1], shape[1] - 1, shape[2] - 1])
        ends = np.array([mid - d * length / 2 / v, mid + d * length / 2 / v])  # [z, y, x]
        phase = rng.uniform(0, 360)
        if (np.any(ends[:, 0] < par.slab[0]) or np.any(ends[:, 0] > par.slab[1])
                or np.any(ends[:, 1:] < reach)
                or np.any(ends[:, 1:] > np.array(shape[1:]) - 1 - reach)):
            continue
        centres, sigma = filament_blobs(ends[0][::-1] * v, ends[1][::-1] * v,
                                        par.filament_diameter, phase)
        vals = render_gaussians(shape, centres[:, ::-1] / v, sigma / v, weight)
        mask, dil, pad = _masks(vals, par.threshold, ball)
        if mask[:par.slab[0]].any() or mask[par.slab[1] + 1:].any():
            continue  # the mask must lie in the slab
        if np.any(occ & (dil[tuple(slice(pad, pad + n) for n in shape)] if pad else dil)):
            continue
        fil += vals
        occ |= mask
        filaments.append(dict(start=[float(x) for x in ends[0]],
                              end=[float(x) for x in ends[1]], length_A=float(length)))
    return fil, filaments


def _class_entry(number: int, e: dict, mol, par: _Params) -> dict:
    """A class's catalogue entry with its placed map (potential × contrast scale)."""
    mip = mol.integral() / mol.volume_A3
    scale = 1 - par.solvent / mip
    n_target = (e["count"] if e["count"] is not None
                else int(round(e["fraction"] * par.slab_volume / mol.volume_A3)))
    return dict(name=e["name"], number=number, source=mol.source, symmetry=mol.symmetry,
                radius_A=round(mol.radius, 2), sphere_radius_A=round(mol.sphere_radius, 2),
                mass_kDa=round(mol.mass_da / 1000, 2), mip_V=round(mip, 3),
                contrast_scale=round(scale, 5),
                fraction_target=None if e["count"] is not None else e["fraction"],
                count_target=n_target, volume_A3=mol.volume_A3, count=0, fraction=0.0,
                map=mol.potential(par.voxel, par.fine_spacing) * np.float32(scale))


def _place_particles(rng, par: _Params, occ: np.ndarray, ball, classes: list, radii):
    """Particles of every class, largest first: their summed potential and the STAR rows;
    ``occ`` gains their masks and each class entry its count and fraction."""
    shape = par.shape
    parts = np.zeros(shape, np.float64)
    rows = []
    for i in sorted(range(len(classes)), key=lambda j: -radii[j]):
        cls = classes[i]
        half = cls["map"].shape[0] // 2
        centre = (half, half, half)
        for _ in range(cls["count_target"]):
            placed = None
            for _ in range(ORIENTATIONS):
                rot = random_rotations(rng, 1)[0]
                pmap = rotate_volume(cls["map"], rot, order=1)
                mask, dil, pad = _masks(pmap, par.threshold, ball)
                lo, hi = _centre_range(shape, par.slab, mask, centre)
                c = _search_free(rng, occ, dil, pad, centre, lo, hi, par.attempts)
                if c is not None:
                    placed = (c, rot, pmap, mask)
                    break
            if placed is None:
                got = cls["count"] * cls["volume_A3"] / par.slab_volume
                want = cls["count_target"] * cls["volume_A3"] / par.slab_volume
                raise InputError(
                    f"crowded.classes.{cls['name']}: could place only {cls['count']} of "
                    f"{cls['count_target']} particles (volume fraction {got:.4f} of "
                    f"{want:.4f}) without overlaps (radius {radii[i]:.0f} Å, slab "
                    f"{(par.slab[1] - par.slab[0] + 1) * par.voxel:g} Å thick); lower its "
                    "fraction or the margin, or enlarge the volume")
            c, rot, pmap, mask = placed
            vs, ls = _window(shape, c - half, pmap.shape)
            parts[vs] += pmap[ls]
            occ[vs] |= mask[ls]
            cls["count"] += 1
            rows.append((int(c[2]), int(c[1]), int(c[0]), *matrix_to_euler(rot),
                         cls["number"], cls["name"]))
        cls["fraction"] = cls["count"] * cls["volume_A3"] / par.slab_volume
    return parts, rows


def specimen(shape, voxel_size: float = 10.0, seed: int = 0, **params) -> Specimen:
    """Build a crowded specimen: see the module docstring and :func:`generate` for the
    parameters.

    Raises
    ------
    InputError
        A bad parameter, a class that cannot be built, or contents that cannot be placed
        (naming the key, or the class and the fraction reached).
    """
    import pandas as pd

    par = _parse(shape, voxel_size, params)
    problems = _fit_problems(par, {e["name"]: molecules.class_mass(
        e["name"], e["recipe"], "crowded.classes") for e in par.entries})
    if problems:
        raise InputError(problems[0])
    rng = np.random.default_rng(int(seed))
    occ = np.zeros(par.shape, bool)
    ball = _ball(par.margin / par.voxel)
    membranes, vesicles = _place_vesicles(rng, par, occ)
    fil, filaments = _place_filaments(rng, par, occ, ball)
    built = [molecules.build_class(e["name"], e["recipe"], "crowded.classes")
             for e in par.entries]
    classes = [_class_entry(n, e, mol, par)
               for n, (e, mol) in enumerate(zip(par.entries, built), start=1)]
    parts_p, rows = _place_particles(rng, par, occ, ball, classes,
                                     [mol.radius for mol in built])
    columns = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnAngleRot",
               "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber", "wbClassName"]
    used = {**DEFAULTS, **params}
    if used["classes"] is None:
        used["classes"] = [e["name"] for e in par.entries]
    return Specimen(
        volume=(parts_p + membranes + fil).astype(np.float32), voxel_size=par.voxel,
        particles=pd.DataFrame(rows, columns=columns), classes=classes, vesicles=vesicles,
        filaments=filaments,
        parts={"particles": parts_p.astype(np.float32),
               "membranes": membranes.astype(np.float32), "filaments": fil.astype(np.float32)},
        params={"shape": list(par.shape), "voxel_size": par.voxel, **used})


def generate(shape, voxel_size: float = 10.0, seed: int = 0, *, classes=None,
             fraction=None, fractions=None, thickness=None, margin: float = 10.0,
             mask_threshold: float = 0.05, solvent_potential: float = 4.5, vesicles=None,
             vesicle_fraction=None, vesicle_radius=(100.0, 180.0),
             bilayer_thickness: float = 40.0, filaments: int = 2,
             filament_length=(400.0, 1200.0), filament_diameter: float = 70.0,
             fine_spacing: float = 1.0, attempts: int = 100):
    """A slab of crowded cytoplasm: particles of known classes, vesicles, filaments.

    Parameters
    ----------
    shape : [nz, ny, nx]
    voxel_size : float
        Å per voxel.
    seed : int
        Seed of ``np.random.default_rng`` (placement, orientations, vesicles, filaments).
    classes : list of str or dict, optional
        Class names of :data:`molecules.CATALOGUE` (default
        :data:`molecules.DEFAULT_CLASSES`), or a mapping name → recipe: catalogue names may
        override recipe keys, other names must give ``pdb`` (shipped id or a PDB/mmCIF
        path) with optional ``chains``, ``assembly``, ``symmetry``, ``hydrogens``,
        ``clash``, ``candidates``, ``search_seed`` (:func:`molecules.build_class`); and
        per class ``fraction`` (target volume fraction) or ``count`` (particles).
    fraction : float, optional
        Target volume fraction of each class without its own; default
        :data:`DEFAULT_FRACTIONS` per catalogue class (0.005–0.02), else 0.01.
    fractions : dict, optional
        Class name → target volume fraction.
    thickness : float, optional
        Slab thickness (Å), centred in z; default the whole box.
    margin : float
        Smallest gap (Å) between the masks of neighbouring contents.
    mask_threshold : float
        Occupancy mask level, fraction of each object's maximum.
    solvent_potential : float
        Mean potential (V) of the solvent the contents displace (4.5: vitreous ice; 0:
        vacuum).
    vesicles : int, optional
        Number of vesicles; default 1, or none when ``vesicle_fraction`` is given.
    vesicle_fraction : float, optional
        Membrane volume fraction to reach instead of a count.
    vesicle_radius : [min, max]
        Vesicle mid-plane radius range, Å (> 0).
    bilayer_thickness : float
        Head-group to head-group distance, Å (30–60).
    filaments : int
        Number of filaments.
    filament_length : [min, max]
        Å (> 0).
    filament_diameter : float
        Å.
    fine_spacing : float
        Fine sampling of the class potentials before voxel averaging, Å.
    attempts : int
        Random positions tried per particle orientation before the exhaustive search.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]``, volts
    voxel_size : float
    """
    spec = specimen(shape, voxel_size, seed, classes=classes, fraction=fraction,
                    fractions=fractions, thickness=thickness, margin=margin,
                    mask_threshold=mask_threshold, solvent_potential=solvent_potential,
                    vesicles=vesicles, vesicle_fraction=vesicle_fraction,
                    vesicle_radius=vesicle_radius, bilayer_thickness=bilayer_thickness,
                    filaments=filaments, filament_length=filament_length,
                    filament_diameter=filament_diameter, fine_spacing=fine_spacing,
                    attempts=attempts)
    return spec.volume, spec.voxel_size


# --------------------------------------------------------------------------- ground truth


def write_ground_truth(spec: Specimen, directory, volume: bool = False) -> dict:
    """Write a specimen's ground truth into ``directory``.

    Files: ``particles.star`` (data block ``particles``; the columns of
    :attr:`Specimen.particles`), ``classes/<name>.mrc`` (each class map as placed, voxel
    size in the header), ``catalogue.json`` (per class: name, number, source, symmetry,
    radius_A, sphere_radius_A, mass_kDa, mip_V, contrast_scale, map file, count placed,
    target and achieved volume fraction; vesicles, filaments, parameters) and, with
    ``volume``, ``volume.mrc``. Every file is written atomically.

    Returns
    -------
    dict : file kind → path
    """
    from wedgebench.io import write_json, write_mrc, write_star

    out = Path(directory)
    paths = {"star": out / "particles.star", "catalogue": out / "catalogue.json"}
    entries = []
    for cls in spec.classes:
        path = out / "classes" / f"{cls['name']}.mrc"
        write_mrc(path, cls["map"], spec.voxel_size)
        paths[f"class:{cls['name']}"] = path
        entries.append({k: val for k, val in cls.items() if k not in ("map", "volume_A3")}
                       | {"map": f"classes/{cls['name']}.mrc"})
    write_star(paths["star"], spec.particles, name="particles")
    params = {k: (list(val) if isinstance(val, tuple) else val)
              for k, val in spec.params.items()}
    write_json(paths["catalogue"], {
        "voxel_size_A": spec.voxel_size, "classes": entries,
        "vesicles": [{"centre_zyx_voxels": w["centre"], "radius_A": w["radius_A"]}
                     for w in spec.vesicles],
        "filaments": [{"start_zyx_voxels": f["start"], "end_zyx_voxels": f["end"],
                       "length_A": f["length_A"]} for f in spec.filaments],
        "params": params})
    if volume:
        paths["volume"] = out / "volume.mrc"
        write_mrc(paths["volume"], spec.volume, spec.voxel_size)
    return paths
