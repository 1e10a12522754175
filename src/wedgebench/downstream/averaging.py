"""Subtomogram averaging with missing-wedge weighting, and its resolution.

Extraction
----------
A particle at ``rlnCoordinateX/Y/Z`` (tomogram voxels, may be fractional) with angles
``(rot, tilt, psi)`` is the reference rotated by ``R = particle_matrix(rot, tilt, psi)``.
Its subtomogram in the reference frame is ``s(r) = p(R r)``: one
:func:`wedgebench.euler.rotate_volume` with ``Rᵀ`` about the exact (fractional)
particle centre, straight from a crop of the tomogram (one interpolation, spline order
``interpolation_order``). Particles whose axis-aligned box leaves the tomogram are
skipped (``edge: skip``, counted) or kept with the outside filled by the tomogram's
mean (``edge: pad``, counted too); corners reached only by the rotation are always
filled with the mean.

Missing wedge
-------------
The tomogram's measured region is the continuous wedge of the acquisition's tilt range
(min … max of its actual angles, tilt axis y, as :func:`wedgebench.geometry.wedge_mask`):
Fourier direction ``(kx, kz)`` is measured when its tilt ``atan2(−kz, kx)`` (folded)
lies in the range. Rotating real space rotates Fourier space the same way, so
``Ŝ(k) = P̂(R k)`` and the subtomogram's measured region is the binary mask ``W(R k)``,
evaluated exactly at every Fourier voxel of the box (no resampling of a mask).

Average
-------
``F̄(k) = Σᵢ Wᵢ(k) Fᵢ(k) / (Σᵢ Wᵢ(k) + ε)`` with ``ε = weight_epsilon × max_k Σᵢ Wᵢ(k)``
(the maximum is at k = 0, the number of particle copies). ε bounds the gain at
frequencies measured by few particles: one measurement among N copies is kept at
``1 / (1 + weight_epsilon · N)`` of its value — at the default 0.01, untouched for a
handful of particles and halved for 100, where one noisy copy should not stand for the
whole average. Voxels no particle measured are 0. ``weighting: none`` is the plain
mean. With ``symmetrise``, each particle also counts as ``R·S`` for every operator
``S`` of its point group (a particle at ``R`` is the reference at ``R S``), each copy
with its own wedge: the symmetrised average with correct weights.

Resolution
----------
FSC of the average against the class's true map (both in the average's box, their
mask-weighted mean subtracted, inside a soft sphere of ``mask_radius`` class radii,
cosine edge of 3 voxels; :func:`wedgebench.metrics.fsc.fsc` shells), and where it falls
below 0.5 and 0.143 (:func:`fsc_crossing`). Against a known map 0.5 is the criterion
equivalent to 0.143 between half-maps (Rosenthal & Henderson 2003). Resolution against
the number of particles uses random subsets of 2, 4, 8, … particles (``subset_repeats``
each, seeded), and :func:`rosenthal_henderson` fits ``1/d² = (2/B) ln N + c``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft

from wedgebench import euler, geometry
from wedgebench.downstream import ANGLES, COORDS, TOMO
from wedgebench.downstream.boxes import centre_box, sphere_mask
from wedgebench.downstream.settings import check_settings
from wedgebench.io import InputError
from wedgebench.metrics.fsc import MIN_SHELL_VOXELS, fsc

#: Soft edge (voxels) of the FSC mask.
MASK_EDGE = 3.0

THRESHOLDS = (0.5, 0.143)


def particle_matrices(particles: pd.DataFrame) -> np.ndarray:
    """``(n, 3, 3)`` particle matrices of a table's ``rlnAngleRot/Tilt/Psi``."""
    a = particles[list(ANGLES)].to_numpy(float).reshape(-1, 3)
    return euler.particle_matrix(*a.T).reshape(-1, 3, 3)


def in_bounds(centre_zyx, box: int, shape) -> bool:
    """Whether the axis-aligned box about the (rounded) centre lies inside ``shape``."""
    c = np.rint(np.asarray(centre_zyx, float)).astype(int)
    lo = c - box // 2
    return bool(np.all(lo >= 0) and np.all(lo + box <= np.asarray(shape)))


def extract(tomogram: np.ndarray, centre_zyx, box: int, matrix, order: int = 3,
            fill: float | None = None) -> np.ndarray:
    """The subtomogram of a particle rotated into the reference frame, ``s(r) = p(R r)``.

    Parameters
    ----------
    tomogram : ndarray ``[z, y, x]``
    centre_zyx : sequence of 3 float
        The particle centre in tomogram indices (fractional allowed).
    box : int
    matrix : (3, 3)
        The particle matrix ``R`` (:func:`wedgebench.euler.particle_matrix`).
    order : int
        Spline order.
    fill : float, optional
        Value outside the tomogram (default its mean).

    Returns
    -------
    ndarray float32 ``(box, box, box)``
    """
    c = np.asarray(centre_zyx, float)
    fill = float(np.mean(tomogram)) if fill is None else float(fill)
    half = int(np.ceil(box * np.sqrt(3) / 2)) + 2
    ci = np.rint(c).astype(int)
    crop = np.full((2 * half + 1,) * 3, fill, np.float32)
    src, dst = [], []
    for n, k in zip(tomogram.shape, ci):
        lo, hi = max(0, k - half), min(n, k + half + 1)
        if lo >= hi:
            raise InputError(f"particle centre {tuple(c)} lies outside the tomogram "
                             f"{tomogram.shape}")
        src.append(slice(lo, hi))
        dst.append(slice(lo - (k - half), hi - (k - half)))
    crop[tuple(dst)] = tomogram[tuple(src)]
    centre = c - (ci - half)
    if order > 1:  # the spline prefilter needs the fill beyond the crop as well
        crop = np.pad(crop, order + 1, constant_values=fill)
        centre = centre + order + 1
    return euler.rotate_volume(crop, np.asarray(matrix, float).T, order=order, centre=centre,
                               output_shape=(box,) * 3, mode="nearest")


def _rfft_freqs(box: int):
    fz = np.fft.fftfreq(box)[:, None, None]
    fy = np.fft.fftfreq(box)[None, :, None]
    fx = np.fft.rfftfreq(box)[None, None, :]
    return fx, fy, fz


def rotated_wedge(box: int, tilt_min: float, tilt_max: float, matrix=None) -> np.ndarray:
    """The measured region ``W(R k)`` of a reference-frame subtomogram (``rfftn`` half).

    Parameters
    ----------
    box : int
    tilt_min, tilt_max : float
        The acquisition's tilt range in degrees (tomogram frame, tilt axis y).
    matrix : (3, 3), optional
        The particle matrix ``R``; identity by default (then equal to
        :func:`wedgebench.geometry.wedge_mask`'s half).

    Returns
    -------
    ndarray float32 ``(box, box, box // 2 + 1)`` of 0 and 1
    """
    fx, fy, fz = _rfft_freqs(box)
    r = np.eye(3) if matrix is None else np.asarray(matrix, float)
    kx = r[0, 0] * fx + r[0, 1] * fy + r[0, 2] * fz
    kz = r[2, 0] * fx + r[2, 1] * fy + r[2, 2] * fz
    on_axis = (np.abs(kx) < 1e-12) & (np.abs(kz) < 1e-12)  # the tilt axis: always measured
    theta = geometry.folded_tilt_angle(kx, kz)
    w = ((theta >= tilt_min - 1e-9) & (theta <= tilt_max + 1e-9)) | on_axis
    return w.astype(np.float32)


def contribution(tomogram: np.ndarray, centre_zyx, box: int, matrix, ops, tilt_range=None,
                 weighting: str = "wedge", order: int = 3, fill: float | None = None):
    """One particle's Fourier numerator and weight, expanded by symmetry operators.

    A particle at ``R`` is the reference at ``R·S`` for each operator ``S``: each copy is
    extracted straight from the tomogram with ``R·S`` (:func:`extract`, one
    interpolation) and weighted by its own wedge ``W(R S k)``.

    Parameters
    ----------
    tomogram, centre_zyx, box, matrix, order, fill
        As for :func:`extract`.
    ops : array ``(g, 3, 3)``
        Symmetry operators (:func:`wedgebench.euler.symmetry_operators`; identity alone
        for none).
    tilt_range : (float, float), optional
        The acquisition's tilt range (degrees); needed for ``weighting == "wedge"``.
    weighting : {"wedge", "none"}

    Returns
    -------
    num : complex64 ``(b, b, b // 2 + 1)``
        ``Σ_S W_S F_S`` (``Σ_S F_S`` without weighting).
    den : float32, same shape
        ``Σ_S W_S`` (the number of copies without weighting).
    """
    if weighting == "wedge" and tilt_range is None:
        raise InputError("wedge weighting needs the acquisition's tilt range")
    num = np.zeros((box, box, box // 2 + 1), np.complex64)
    den = np.zeros(num.shape, np.float32)
    for op in np.asarray(ops, float).reshape(-1, 3, 3):
        r = np.asarray(matrix, float) @ op
        f = scipy.fft.rfftn(extract(tomogram, centre_zyx, box, r, order, fill))
        if weighting == "wedge":
            w = rotated_wedge(box, tilt_range[0], tilt_range[1], r)
            num += w * f
            den += w
        else:
            num += f
            den += 1.0
    return num, den


def combine(num, den, weighting: str = "wedge", epsilon: float = 0.01,
            subset=None) -> np.ndarray:
    """The average of (a subset of) particles from their :func:`contribution` arrays.

    ``F̄ = Σ num / (Σ den + ε)``, ``ε = epsilon · max Σ den`` (``weighting == "wedge"``),
    or ``Σ num / Σ den`` (plain mean). Returns the real volume (float32).
    """
    idx = slice(None) if subset is None else np.asarray(subset, int)
    n_sum, d_sum = num[idx].sum(0), den[idx].sum(0).astype(np.float64)
    b = num.shape[1]
    if weighting == "wedge":
        f = n_sum / (d_sum + epsilon * d_sum.max())
    else:
        f = n_sum / d_sum
    return scipy.fft.irfftn(f, s=(b, b, b)).astype(np.float32)


def _masked(vol: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return vol - vol.mean()
    return (vol - np.sum(mask * vol) / np.sum(mask)) * mask


def fsc_crossing(curve: pd.DataFrame, threshold: float,
                 min_voxels: int = MIN_SHELL_VOXELS) -> dict:
    """Where an FSC curve first falls below ``threshold``.

    Over the reliable shells (finite FSC, at least ``min_voxels`` voxels, as in
    :func:`wedgebench.metrics.fsc.fsc_resolution`), walking up from the lowest: the
    crossing frequency is interpolated linearly between the last shell at or above the
    threshold and the first below it.

    Returns
    -------
    dict
        ``resolution`` (Å) and ``status``: ``"crossed"``; ``"beyond_nyquist"`` (never
        below: ``resolution`` is the Nyquist resolution, a bound — the data cannot tell
        more); ``"not_reached"`` (below already at the lowest reliable shell:
        ``resolution`` NaN); ``"no_shells"`` (NaN).
    """
    f = np.asarray(curve["frequency"], float)
    c = np.asarray(curve["fsc"], float)
    ok = np.isfinite(c)
    if "n_voxels" in curve:
        ok &= np.asarray(curve["n_voxels"]) >= min_voxels
    f, c = f[ok], c[ok]
    if c.size == 0:
        return {"resolution": float("nan"), "status": "no_shells"}
    below = np.flatnonzero(c < threshold)
    if below.size == 0:
        return {"resolution": float(1 / np.asarray(curve["frequency"], float)[-1]),
                "status": "beyond_nyquist"}
    i = int(below[0])
    if i == 0:
        return {"resolution": float("nan"), "status": "not_reached"}
    fc = f[i - 1] + (c[i - 1] - threshold) / (c[i - 1] - c[i]) * (f[i] - f[i - 1])
    return {"resolution": float(1 / fc), "status": "crossed"}


def compare_to_map(average: np.ndarray, true_map: np.ndarray, voxel_size: float,
                   mask_radius: float | None = None) -> tuple[pd.DataFrame, dict]:
    """FSC of an average against the true map, and its 0.5 and 0.143 crossings.

    Parameters
    ----------
    average : ndarray ``(b, b, b)``
    true_map : ndarray
        Padded or cropped to the average's box about its centre voxel.
    voxel_size : float
    mask_radius : float, optional
        Soft spherical mask radius in voxels (edge :data:`MASK_EDGE`); None: no mask.

    Returns
    -------
    curve : DataFrame
        ``shell, frequency, fsc, n_voxels``.
    crossings : dict
        ``{"fsc0.5": {...}, "fsc0.143": {...}}`` (see :func:`fsc_crossing`).
    """
    ref = centre_box(true_map, average.shape)
    mask = None if mask_radius is None else sphere_mask(average.shape, mask_radius, MASK_EDGE)
    curve = fsc(_masked(average, mask), _masked(ref, mask), voxel_size)
    return curve, {f"fsc{t:g}": fsc_crossing(curve, t) for t in THRESHOLDS}


def subset_sizes(n: int) -> list[int]:
    """2, 4, 8, … up to ``n``."""
    out, k = [], 2
    while k <= n:
        out.append(k)
        k *= 2
    return out


def resolution_vs_particles(num, den, true_map, voxel_size: float, *, weighting: str,
                            epsilon: float, mask_radius: float | None, repeats: int,
                            seed: int) -> pd.DataFrame:
    """Resolution of averages of random particle subsets of sizes 2, 4, 8, ….

    Returns
    -------
    DataFrame
        ``n_particles, repeat, resolution_0.5, status_0.5, resolution_0.143,
        status_0.143`` (one repeat for the full set).
    """
    rng = np.random.default_rng(seed)
    n = num.shape[0]
    rows = []
    for size in subset_sizes(n):
        for rep in range(1 if size == n else repeats):
            subset = rng.choice(n, size, replace=False)
            avg = combine(num, den, weighting, epsilon, subset)
            _, cross = compare_to_map(avg, true_map, voxel_size, mask_radius)
            row = {"n_particles": size, "repeat": rep}
            for t in THRESHOLDS:
                row[f"resolution_{t:g}"] = cross[f"fsc{t:g}"]["resolution"]
                row[f"status_{t:g}"] = cross[f"fsc{t:g}"]["status"]
            rows.append(row)
    return pd.DataFrame(rows, columns=["n_particles", "repeat"] + [
        f"{k}_{t:g}" for t in THRESHOLDS for k in ("resolution", "status")])


def rosenthal_henderson(n_particles, resolution) -> dict:
    """The B factor from ``1/d² = (2/B) ln N + c`` (Rosenthal & Henderson 2003).

    Parameters
    ----------
    n_particles : array
        Particles averaged per point.
    resolution : array
        Resolution d (Å) per point; non-finite values are left out.

    Returns
    -------
    dict
        ``B`` (Å²), ``B_se`` (its standard error from the fit's slope by the delta method;
        NaN with 3 points or fewer), ``slope``,
        ``intercept``, ``n_points`` and ``reason`` (empty when B is given; otherwise
        why it is NaN: fewer than 3 distinct particle counts, or no improvement with N).
    """
    n = np.asarray(n_particles, float).ravel()
    d = np.asarray(resolution, float).ravel()
    ok = np.isfinite(d) & (d > 0) & (n > 0)
    n, d = n[ok], d[ok]
    out = {"B": float("nan"), "B_se": float("nan"), "slope": float("nan"),
           "intercept": float("nan"), "n_points": int(n.size), "reason": ""}
    if np.unique(n).size < 3:
        out["reason"] = (f"fewer than 3 distinct particle counts with a measured resolution "
                         f"({np.unique(n).size})")
        return out
    x, y = np.log(n), 1.0 / d ** 2
    (slope, intercept), cov = np.polyfit(x, y, 1, cov=True) if x.size > 3 else (
        np.polyfit(x, y, 1), None)
    out.update(slope=float(slope), intercept=float(intercept))
    if not slope > 0:
        out["reason"] = "resolution does not improve with the number of particles (slope <= 0)"
        return out
    out["B"] = float(2.0 / slope)
    if cov is not None:
        out["B_se"] = float(2.0 * np.sqrt(cov[0, 0]) / slope ** 2)
    return out


def tomogram_contributions(tomogram: np.ndarray, particles: pd.DataFrame, box: int, *,
                           symmetry: str = "C1", tilt_range=None, weighting: str = "wedge",
                           edge: str = "skip", order: int = 3):
    """:func:`contribution` of each particle of one tomogram.

    Returns
    -------
    num : complex64 ``(m, b, b, b // 2 + 1)``
    den : float32 ``(m, b, b, b // 2 + 1)``
    counts : dict
        ``n_input``, ``n_used``, ``n_edge`` (boxes leaving the tomogram: skipped with
        ``edge == "skip"``, filled with the tomogram's mean and used with ``"pad"``).
    """
    xyz = particles[list(COORDS)].to_numpy(float).reshape(-1, 3)
    mats = particle_matrices(particles)
    ops = euler.symmetry_operators(symmetry)
    fill = float(tomogram.mean())
    nums, dens, n_edge = [], [], 0
    for (x, y, z), r in zip(xyz, mats):
        inside = in_bounds((z, y, x), box, tomogram.shape)
        n_edge += not inside
        if not inside and edge == "skip":
            continue
        num, den = contribution(tomogram, (z, y, x), box, r, ops, tilt_range, weighting,
                                order, fill)
        nums.append(num)
        dens.append(den)
    shape = (len(nums), box, box, box // 2 + 1)
    return (np.asarray(nums, np.complex64).reshape(shape),
            np.asarray(dens, np.float32).reshape(shape),
            {"n_input": int(len(xyz)), "n_used": len(nums), "n_edge": int(n_edge)})


def average_particles(tomograms: dict, particles: pd.DataFrame, true_map: np.ndarray,
                      voxel_size: float, tilt_ranges: dict, *, radius: float,
                      symmetry: str = "C1", settings: dict | None = None) -> dict:
    """Average a class's particles over tomograms and compare with its true map.

    Parameters
    ----------
    tomograms : dict
        Tomogram name → array ``[z, y, x]`` (or a callable returning it, to load lazily);
        particles are matched by :data:`~wedgebench.downstream.TOMO` (a table without it
        needs exactly one tomogram).
    particles : DataFrame
        Coordinates (voxels) and angles (e.g. true positions, or true-positive picks with
        their matched angles: :func:`wedgebench.downstream.scoring.pair_particles`).
    true_map : ndarray
        The class map at ``voxel_size``, centred on ``n // 2``.
    voxel_size : float
    tilt_ranges : dict
        Tomogram name → (min, max) tilt in degrees.
    radius : float
        Class radius in Å (FSC mask).
    symmetry : str
    settings : dict, optional
        ``downstream`` settings.

    Returns
    -------
    dict
        ``average`` (array), ``fsc`` (DataFrame), ``crossings``, ``counts``,
        ``subsets`` (DataFrame, :func:`resolution_vs_particles`), ``rosenthal_henderson``
        (per threshold, :func:`rosenthal_henderson` on the crossed points).
    """
    s = check_settings(settings)
    box = int(s["box"] or max(np.shape(true_map)))
    if TOMO not in particles.columns:
        if len(tomograms) != 1:
            raise InputError(f"particles name no tomogram ({TOMO}) but "
                             f"{len(tomograms)} tomograms were given")
        particles = particles.assign(**{TOMO: next(iter(tomograms))})
    unknown = sorted(set(particles[TOMO].astype(str)) - set(map(str, tomograms)))
    if unknown:
        raise InputError(f"particles refer to tomograms {unknown} that were not given")
    symmetry_ops = symmetry if s["symmetrise"] else "C1"
    nums, dens = [], []
    counts = {"n_input": 0, "n_used": 0, "n_edge": 0}
    for name, tomo in tomograms.items():
        rows = particles[particles[TOMO].astype(str) == str(name)]
        if rows.empty:
            continue
        vol = np.asarray(tomo() if callable(tomo) else tomo, np.float32)
        if s["invert_contrast"]:
            vol = -vol
        num, den, c = tomogram_contributions(
            vol, rows, box, symmetry=symmetry_ops,
            tilt_range=tilt_ranges.get(name), weighting=s["weighting"], edge=s["edge"],
            order=s["interpolation_order"])
        counts = {k: counts[k] + c[k] for k in counts}
        if len(num):
            nums.append(num)
            dens.append(den)
    if not nums:
        raise InputError("no particle to average (none given, or all too close to the "
                         f"edge: {counts})")
    num, den = np.concatenate(nums), np.concatenate(dens)
    mask_r = None if s["mask_radius"] is None else s["mask_radius"] * radius / voxel_size
    avg = combine(num, den, s["weighting"], s["weight_epsilon"])
    curve, crossings = compare_to_map(avg, true_map, voxel_size, mask_r)
    subsets = resolution_vs_particles(num, den, true_map, voxel_size,
                                      weighting=s["weighting"], epsilon=s["weight_epsilon"],
                                      mask_radius=mask_r, repeats=s["subset_repeats"],
                                      seed=s["seed"])
    rh = {}
    for t in THRESHOLDS:
        crossed = subsets[subsets[f"status_{t:g}"] == "crossed"]
        rh[f"fsc{t:g}"] = rosenthal_henderson(crossed["n_particles"],
                                              crossed[f"resolution_{t:g}"])
    return {"average": avg, "fsc": curve, "crossings": crossings, "counts": counts,
            "subsets": subsets, "rosenthal_henderson": rh}


def average_files(tomograms: dict, particle_stars, class_map, tilt_files, out_mrc,
                  out_fsc, out_json, *, radius: float, symmetry: str = "C1",
                  out_subsets=None, settings: dict | None = None) -> dict:
    """File wrapper of :func:`average_particles`.

    Parameters
    ----------
    tomograms : dict
        Tomogram name (as in the STAR's :data:`~wedgebench.downstream.TOMO`) → MRC path.
    particle_stars : sequence of path-like
        STAR files of the class's particles (concatenated).
    class_map : path-like
        The class's true map (MRC) at the tomograms' voxel size.
    tilt_files : dict or path-like
        Tomogram name → ``.tlt`` (or one ``.tlt`` for all).
    out_mrc, out_fsc, out_json : path-like
        The average (MRC), its FSC curve (CSV) and a summary (JSON: crossings, counts,
        B factors, settings used).
    out_subsets : path-like, optional
        CSV of resolution against the number of particles.
    """
    from wedgebench.io import (atomic_path, read_mrc, read_star, read_tlt, write_json,
                               write_mrc)
    from wedgebench.downstream.scoring import _json_safe

    true_map, voxel = read_mrc(class_map)
    frames = [read_star(p) for p in particle_stars]
    particles = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    missing = [c for c in COORDS + ANGLES if c not in particles.columns]
    if missing:
        raise InputError(f"{list(map(str, particle_stars))}: missing columns {missing}")
    if not isinstance(tilt_files, dict):
        tilt_files = {name: tilt_files for name in tomograms}
    ranges = {}
    for name in tomograms:
        if name not in tilt_files:
            raise InputError(f"no .tlt file for tomogram {name!r}")
        a = read_tlt(tilt_files[name])
        ranges[name] = (float(a.min()), float(a.max()))

    def loader(path):
        def load():
            vol, v = read_mrc(path)
            if abs(v - voxel) > 1e-3 * voxel:
                raise InputError(f"{path}: voxel size {v:g} Å differs from the class map's "
                                 f"{voxel:g} Å ({class_map})")
            return vol
        return load

    s = check_settings(settings)
    res = average_particles({k: loader(p) for k, p in tomograms.items()}, particles,
                            true_map, voxel, ranges, radius=radius, symmetry=symmetry,
                            settings=s)
    write_mrc(out_mrc, res["average"], voxel)
    with atomic_path(out_fsc) as tmp:
        res["fsc"].to_csv(tmp, index=False)
    if out_subsets is not None:
        with atomic_path(out_subsets) as tmp:
            res["subsets"].to_csv(tmp, index=False)
    write_json(out_json, _json_safe({"crossings": res["crossings"], "counts": res["counts"],
                                     "rosenthal_henderson": res["rosenthal_henderson"],
                                     "symmetry": symmetry, "radius": radius,
                                     "voxel_size": voxel, "settings": s}))
    return res


__all__ = ["THRESHOLDS", "average_files", "average_particles", "combine", "compare_to_map",
           "contribution", "extract", "tomogram_contributions", "fsc_crossing", "in_bounds",
           "particle_matrices", "resolution_vs_particles", "rosenthal_henderson",
           "rotated_wedge", "subset_sizes"]
