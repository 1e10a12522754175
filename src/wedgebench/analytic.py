"""Exact projections of the phantoms made of continuous objects (``spheres``, ``shapes``).

The line integral of a hollow sphere or of a convex shape along a straight ray is
the length of an interval (or a difference of two) and needs no voxel grid:

* a ball ``|q| <= r`` (and an ellipsoid, and the side of a disc's cylinder) is a
  quadric, cut by the ray in one interval (roots of a quadratic);
* a cube, a prism, a pyramid and a disc's faces are half-spaces ``n·q <= h``; their
  intersection along the ray is one interval;
* a hollow sphere is the outer ball's chord minus the inner ball's (nested);
* a cross is a union of two or three boxes: the measure of a union of intervals
  follows from inclusion–exclusion over their intersections (again intervals).

The Gaussian low-pass of a phantom (std ``lowpass`` voxels) commutes with
projection: the projection of the blurred object is the projection of the object
blurred by the 2-D Gaussian of the same std (the same in detector pixels, since a
pixel is a voxel).

Geometry — identical to :func:`wedgebench.tiltseries.simulate_projections` and
:mod:`wedgebench.geometry`: volumes ``[z, y, x]``, centred coordinates
``xc = x − (nx − 1)/2`` (likewise y, z; integer index ``i`` is the centre of voxel ``i``,
the convention of the rasteriser), tilt about y, beam along z at 0°, a point
``(xc, zc)`` lands on detector coordinate ``u = xc·cosθ − zc·sinθ``. The detector has
``n_det`` (default nx) pixels of one voxel; pixel ``i`` is the mean of ``oversampling``
sub-rays at ``u = i − (n_det − 1)/2 + (k + ½)/oversampling − ½``. Detector row ``j``
is the single ray plane ``y = j`` (the voxel centres): the ray-driven simulator reads
voxel row ``j``, which samples the object at ``y = j`` only, so this is the fair match
(no averaging across the pixel in y). Each ray is cut to the slab
``zc ∈ [−nz/2, nz/2]`` as the simulator's rays are (the objects lie inside the box, so
the cut removes nothing from an unfiltered phantom). Values are line integrals in
voxel lengths of a density 1 inside objects.

Low-pass: the line integrals are computed on a grid ``oversampling`` times finer in
both detector directions (containing the sub-rays and the rows ``y = j``), padded by
``ceil(5σ) + 1`` pixels, blurred there with the sampled Gaussian and then read at the
sub-rays of rows ``y = j``. This is the projection of the blurred object along the
*whole* ray. The voxel pipeline (:func:`wedgebench.phantoms.filters.gaussian_lowpass`
with zero padding, then the crop to the box, then the slab-limited simulator) loses
the blurred tails that leave the box, which matters only for objects touching a
face of the slab (they may come to half a voxel from ``zc = ±nz/2``): there the
voxel pipeline is lower by at most a few tenths of a voxel of path length.

Layer: imports :mod:`wedgebench.phantoms` only (never tilt series, reconstruction or
metrics code).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage

from wedgebench.phantoms import OBJECT_KINDS, make_objects

_EPS = 1e-12


# --------------------------------------------------------------------------- intervals


def ball_chord(radius, distance) -> np.ndarray:
    """Chord length ``2·sqrt(r² − d²)`` of a ball of ``radius`` for a line at ``distance``
    from its centre (0 when the line misses)."""
    r, d = np.asarray(radius, float), np.asarray(distance, float)
    return 2.0 * np.sqrt(np.clip(r * r - d * d, 0.0, None))


def quadric_interval(a, b):
    """Where the line ``a + t·b`` lies in the unit ball ``|q| <= 1`` (any dimension).

    Parameters
    ----------
    a : sequence of arrays
        Components of the line's point at ``t = 0`` (broadcastable arrays).
    b : sequence of float
        Components of its direction (constant).

    Returns
    -------
    lo, hi : ndarray
        The interval of ``t`` (``lo >= hi`` when empty; ``∓inf`` when the line is
        parallel to a cylinder's axis and inside it).
    """
    bb = float(sum(bi * bi for bi in b))
    aa = sum(ai * ai for ai in a)
    if bb <= _EPS:
        inside = aa <= 1.0
        return np.where(inside, -np.inf, np.inf), np.where(inside, np.inf, -np.inf)
    ab = sum(ai * bi for ai, bi in zip(a, b))
    disc = ab * ab - bb * (aa - 1.0)
    root = np.sqrt(np.clip(disc, 0.0, None))
    lo, hi = (-ab - root) / bb, (-ab + root) / bb
    return np.where(disc > 0, lo, np.inf), np.where(disc > 0, hi, -np.inf)


def halfspace_interval(a, b, planes, lo=None, hi=None):
    """Where the line ``a + t·b`` satisfies every ``n·q <= h``.

    Parameters
    ----------
    a : sequence of 3 arrays
        Point at ``t = 0`` (broadcastable arrays).
    b : sequence of 3 float
        Direction (constant).
    planes : iterable of (n, h)
        Outward normals (3 floats) and offsets.
    lo, hi : arrays, optional
        An interval to intersect with (default the whole line).

    Returns
    -------
    lo, hi : ndarray (empty when ``lo >= hi``)
    """
    shape = np.broadcast(*a).shape
    lo = np.full(shape, -np.inf) if lo is None else np.broadcast_to(lo, shape).copy()
    hi = np.full(shape, np.inf) if hi is None else np.broadcast_to(hi, shape).copy()
    for n, h in planes:
        na = sum(ni * ai for ni, ai in zip(n, a))
        nb = float(sum(ni * bi for ni, bi in zip(n, b)))
        if nb > _EPS:
            np.minimum(hi, (h - na) / nb, out=hi)
        elif nb < -_EPS:
            np.maximum(lo, (h - na) / nb, out=lo)
        else:  # parallel: all or nothing
            lo[np.broadcast_to(na > h, shape)] = np.inf
    return lo, hi


def _box_planes(half):
    """Half-spaces of the box ``|q_i| <= half_i``."""
    return [(tuple(float(s) * (i == k) for i in range(3)), float(half[k]))
            for k in range(3) for s in (1.0, -1.0)]


def union_length(intervals) -> np.ndarray:
    """Measure of the union of intervals ``[(lo, hi), ...]`` (inclusion–exclusion)."""
    total = 0.0
    for m in range(1, len(intervals) + 1):
        for combo in itertools.combinations(intervals, m):
            lo = np.max(np.stack([c[0] for c in combo]), axis=0)
            hi = np.min(np.stack([c[1] for c in combo]), axis=0)
            total = total + (-1) ** (m + 1) * np.clip(hi - lo, 0.0, None)
    return total


def _clip(interval, slab):
    return np.maximum(interval[0], slab[0]), np.minimum(interval[1], slab[1])


def shape_intervals(kind: str, dims, a, b):
    """Intervals of ``t`` where ``a + t·b`` (local frame) lies in a shape.

    ``kind`` and ``dims`` as in :mod:`wedgebench.phantoms.shapes` (its ``inside`` is
    the definition); the shape is the union of the returned intervals.

    Returns
    -------
    list of (lo, hi)
    """
    d = [float(v) for v in dims]
    if kind == "sphere":
        return [quadric_interval([ai / d[0] for ai in a], [bi / d[0] for bi in b])]
    if kind == "ellipsoid":
        return [quadric_interval([ai / di for ai, di in zip(a, d)],
                                 [bi / di for bi, di in zip(b, d)])]
    if kind == "cube":
        return [halfspace_interval(a, b, _box_planes([d[0]] * 3))]
    if kind == "prism":
        return [halfspace_interval(a, b, _box_planes(d))]
    if kind == "pyramid":  # w0 <= u2 <= w1, max(|u0|, |u1|) <= k (w1 − u2)
        base, w0, w1 = d
        k = base / (w1 - w0)
        planes = [((0.0, 0.0, -1.0), -w0), ((0.0, 0.0, 1.0), w1)]
        planes += [((s, 0.0, k), k * w1) for s in (1.0, -1.0)]
        planes += [((0.0, s, k), k * w1) for s in (1.0, -1.0)]
        return [halfspace_interval(a, b, planes)]
    if kind == "disc":  # u0² + u1² <= R², |u2| <= half-thickness
        lo, hi = quadric_interval([a[0] / d[0], a[1] / d[0]], [b[0] / d[0], b[1] / d[0]])
        return [halfspace_interval(a, b, [((0.0, 0.0, 1.0), d[1]), ((0.0, 0.0, -1.0), d[1])],
                                   lo, hi)]
    if kind in ("cross4", "cross6"):
        length, w = d
        bars = []
        for axis in range(2 if kind == "cross4" else 3):
            half = [w, w, w]
            half[axis] = length
            bars.append(halfspace_interval(a, b, _box_planes(half)))
        return bars
    raise ValueError(f"analytic: unknown shape kind {kind!r}")


# --------------------------------------------------------------------------- projection


def _objects_as_pieces(desc: dict):
    """``(centre [z, y, x], bounding radius, chord function)`` per object of a description.

    A chord function maps ``(a, b, slab)`` — the ray in the object's frame
    (``a``: 3 arrays, point at ``t = 0`` relative to the centre in ``[z, y, x]``; ``b``:
    unit direction; ``slab``: the allowed ``(lo, hi)`` of ``t``) — to path lengths.
    """
    pieces = []
    if desc["phantom"] == "spheres":
        th = float(desc["thickness"])
        for c, r in zip(np.asarray(desc["centres"], float).reshape(-1, 3),
                        np.asarray(desc["radii"], float).ravel()):
            def chord(a, b, slab, r=r):
                outer = _clip(quadric_interval([ai / r for ai in a], [bi / r for bi in b]), slab)
                length = np.clip(outer[1] - outer[0], 0.0, None)
                if r - th > 0:  # rasteriser: r − thickness < d <= r
                    ri = r - th
                    inner = _clip(quadric_interval([ai / ri for ai in a],
                                                   [bi / ri for bi in b]), slab)
                    length = length - np.clip(inner[1] - inner[0], 0.0, None)
                return length
            pieces.append((c, r, chord))
    elif desc["phantom"] == "shapes":
        for s in desc["shapes"]:
            rot = np.asarray(s["rotation"], float)  # local → [z, y, x]

            def chord(a, b, slab, rot=rot, kind=s["kind"], dims=s["dims"]):
                al = [sum(rot[j, i] * a[j] for j in range(3)) for i in range(3)]  # Rᵀ·a
                bl = [float(sum(rot[j, i] * b[j] for j in range(3))) for i in range(3)]
                return union_length([_clip(iv, slab)
                                     for iv in shape_intervals(kind, dims, al, bl)])
            pieces.append((np.asarray(s["centre"], float), float(s["radius"]), chord))
    else:
        raise ValueError(f"analytic: phantom kind {desc['phantom']!r} has no analytic "
                         f"projection; supported: {list(OBJECT_KINDS)}")
    return pieces


def project_objects(desc: dict, angles_deg, oversampling: int = 3,
                    n_det: int | None = None) -> np.ndarray:
    """Exact line integrals of a continuous phantom description (see the module docstring).

    Parameters
    ----------
    desc : dict
        From :func:`wedgebench.phantoms.make_objects` (or a module's ``objects``):
        ``phantom``, ``shape``, ``lowpass`` and the objects.
    angles_deg : array of float
        Tilt angles (about y), degrees, within ±90.
    oversampling : int
        Sub-rays per detector pixel across x (and the refinement of the grid on
        which a low-pass is applied).
    n_det : int, optional
        Detector width in pixels (default nx).

    Returns
    -------
    ndarray float32 ``[tilt, ny, n_det]``
    """
    nz, ny, nx = (int(n) for n in desc["shape"])
    n_det = nx if n_det is None else int(n_det)
    s = int(oversampling)
    if s < 1:
        raise ValueError(f"oversampling must be >= 1, got {oversampling}")
    angles = np.deg2rad(np.atleast_1d(np.asarray(angles_deg, float)))
    if np.any(np.abs(angles) >= np.pi / 2):
        raise ValueError(f"angles must lie within ±90°, got {np.rad2deg(angles)}")
    sigma = float(desc.get("lowpass", 0.0))
    pad = int(math.ceil(5.0 * sigma)) + 1 if sigma > 0 else 0
    sy = s if sigma > 0 else 1  # y refinement only where a blur needs it
    # fine grids: u of sub-ray m, y of fine row q (rows y = j at q = (j + pad)·sy)
    u0 = -n_det / 2.0 - pad + 0.5 / s
    y0 = -(ny - 1) / 2.0 - pad
    n_u, n_y = (n_det + 2 * pad) * s, (ny - 1 + 2 * pad) * sy + 1
    centre_box = (np.array([nz, ny, nx], float) - 1.0) / 2.0
    pieces = _objects_as_pieces(desc)
    out = np.empty((angles.size, ny, n_det), np.float32)
    for it, th in enumerate(angles):
        c, sn = math.cos(th), math.sin(th)
        fine = np.zeros((n_y, n_u))
        for centre, radius, chord in pieces:
            zc, yc, xc = centre - centre_box
            uc = xc * c - zc * sn
            mu = np.arange(max(0, math.floor((uc - radius - u0) * s)),
                           min(n_u, math.ceil((uc + radius - u0) * s) + 1))
            my = np.arange(max(0, math.floor((yc - radius - y0) * sy)),
                           min(n_y, math.ceil((yc + radius - y0) * sy) + 1))
            if mu.size == 0 or my.size == 0:
                continue
            u = (u0 + mu / s)[None, :]
            y = (y0 + my / sy)[:, None]
            # ray: (z, y, x) = (−u·sinθ, y, u·cosθ) + t·(cosθ, 0, sinθ), |direction| = 1
            a = (-u * sn - zc, y - yc, u * c - xc)
            slab = ((-nz / 2.0 + u * sn) / c, (nz / 2.0 + u * sn) / c)
            fine[my[:, None], mu[None, :]] += chord(a, (c, 0.0, sn), slab)
        if sigma > 0:
            fine = ndimage.gaussian_filter1d(fine, sigma * sy, axis=0, mode="constant",
                                             truncate=5.0)
            fine = ndimage.gaussian_filter1d(fine, sigma * s, axis=1, mode="constant",
                                             truncate=5.0)
        rows = fine[pad * sy::sy][:ny]
        out[it] = rows[:, pad * s:(pad + n_det) * s].reshape(ny, n_det, s).mean(-1)
    return out


def analytic_projections(kind: str, shape, params: dict, seed: int, angles_deg,
                         oversampling: int = 3) -> np.ndarray:
    """Exact projections of a ``spheres`` or ``shapes`` phantom, without a voxel grid.

    The same tilt series as ``simulate_projections(make_phantom(kind, params, seed)[0],
    angles_deg, oversampling)`` up to that simulator's discretisation (binary voxels,
    interpolation, z steps): same objects (same random draws), geometry, detector
    (nx pixels), sub-rays, units and low-pass (see the module docstring).

    Parameters
    ----------
    kind : str
        ``"spheres"`` or ``"shapes"`` (:data:`wedgebench.phantoms.OBJECT_KINDS`).
    shape : [nz, ny, nx]
        Box in voxels (``params["shape"]``, when given, must agree).
    params : dict
        The phantom's parameters as for :func:`wedgebench.phantoms.make_phantom`.
    seed : int
    angles_deg : array of float
        Tilt angles about y, degrees.
    oversampling : int
        Sub-rays per detector pixel across x.

    Returns
    -------
    ndarray float32 ``[tilt, ny, nx]``

    Raises
    ------
    ValueError
        Another phantom kind (the message names it and the supported kinds), a
        ``shape`` disagreeing with ``params["shape"]``, or bad parameters
        (:class:`wedgebench.io.InputError`, a ``ValueError``).
    """
    if kind not in OBJECT_KINDS:
        raise ValueError(f"analytic projector: phantom kind {kind!r} is not made of "
                         f"continuous objects; supported kinds: {list(OBJECT_KINDS)}")
    params = dict(params)
    shape = [int(n) for n in shape]
    if "shape" in params and [int(n) for n in params["shape"]] != shape:
        raise ValueError(f"analytic projector: shape {shape} disagrees with "
                         f"params['shape'] = {list(params['shape'])}")
    params["shape"] = shape
    desc = make_objects(kind, params, seed)
    return project_objects(desc, angles_deg, oversampling=oversampling)
