"""Binarised mixed geometric shapes in a slab (the paper's "shapes").

Kinds (:data:`KINDS`): full ``sphere``, ``ellipsoid``, square-based ``pyramid``,
``cube``, rectangular ``prism``, circular ``disc``, and 3-D crosses with 4
(``cross4``: two perpendicular bars) and 6 (``cross6``: three perpendicular
bars) arms.

Every shape is defined in its own frame so that it fits in a ball of radius
``R = size / 2`` (the *bounding ball*; ``size`` drawn uniformly from
``[min, max]`` voxels), with random proportions where the kind allows
(ellipsoid axes, prism sides, disc thickness). Thin parts (disc thickness,
bar width, short prism/ellipsoid axes) are at least 2 voxels thick so every
shape stays one 26-connected piece. Each shape gets a uniformly random 3-D
rotation. Bounding balls are placed inside the box and ``gap`` voxels apart
(:func:`wedgebench.phantoms.filters.place_non_overlapping`), so shapes never
overlap or touch. Kinds are dealt round-robin in random order, so every
requested kind appears once ``count >= len(kinds)`` (when all fit).

A voxel is 1 when its centre lies inside the shape (only the largest
26-connected piece of each shape is kept), 0 otherwise; the binary volume is
then Gaussian low-pass filtered with std ``lowpass`` voxels (0: none).

:func:`objects` returns the continuous shapes (the list of :func:`place_shapes`
and the low-pass) that :func:`generate` rasterises with :func:`rasterise`;
:mod:`wedgebench.analytic` projects them exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wedgebench.io import InputError
from wedgebench.phantoms.filters import (check_fits, check_int, check_interval,
                                         check_number, check_shape, gaussian_lowpass,
                                         local_box, place_non_overlapping)

KINDS = ("sphere", "ellipsoid", "pyramid", "cube", "prism", "disc", "cross4", "cross6")

_MIN_HALF = 1.0  # minimum half-thickness of thin parts, voxels


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed 3-D rotation matrix (from a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def shape_dims(kind: str, radius: float, rng: np.random.Generator) -> tuple[float, ...]:
    """Dimensions (voxels) of a shape of ``kind`` fitting a ball of ``radius``.

    Returns
    -------
    tuple
        sphere ``(r,)``; ellipsoid semi-axes ``(a, b, c)``; cube half-edge ``(h,)``;
        prism half-sides ``(hx, hy, hz)``; pyramid ``(base half-width, base w, apex w)``
        along the local third axis; disc ``(radius, half-thickness)``; crosses
        ``(half-length, half-width)`` of each bar.
    """
    r = float(radius)
    if kind == "sphere":
        return (r,)
    if kind == "ellipsoid":
        ax = r * np.array([1.0, *rng.uniform(0.35, 0.8, size=2)])
        return tuple(np.maximum(ax, _MIN_HALF))
    if kind == "cube":
        return (r / np.sqrt(3.0),)
    if kind == "prism":
        v = rng.uniform(0.3, 1.0, size=3)
        return tuple(np.maximum(r * v / np.linalg.norm(v), _MIN_HALF))
    if kind == "pyramid":
        return (r * 2.0 / 3.0, -r / 3.0, r)
    if kind == "disc":
        t = max(r * rng.uniform(0.15, 0.3), _MIN_HALF)
        return (np.sqrt(max(r * r - t * t, t * t)), t)
    if kind in ("cross4", "cross6"):
        a = max(0.2 * r, _MIN_HALF)
        return (np.sqrt(max(r * r - 2 * a * a, 4 * a * a)), a)
    raise InputError(f"shapes.kinds: unknown shape {kind!r}; choose from {list(KINDS)}")


def bounding_radius(kind: str, dims) -> float:
    """Radius of the smallest origin-centred ball containing the shape."""
    d = np.asarray(dims, float)
    if kind in ("sphere", "ellipsoid"):
        return float(d.max())
    if kind == "cube":
        return float(d[0] * np.sqrt(3.0))
    if kind == "prism":
        return float(np.linalg.norm(d))
    if kind == "pyramid":
        b, w0, w1 = d
        return float(max(abs(w1), np.sqrt(2 * b * b + w0 * w0)))
    if kind == "disc":
        return float(np.hypot(d[0], d[1]))
    if kind in ("cross4", "cross6"):
        return float(np.sqrt(d[0] ** 2 + 2 * d[1] ** 2))
    raise InputError(f"shapes.kinds: unknown shape {kind!r}; choose from {list(KINDS)}")


def inside(kind: str, dims, u) -> np.ndarray:
    """Whether local points ``u = (u0, u1, u2)`` (broadcastable arrays) lie in the shape."""
    u0, u1, u2 = u
    d = dims
    if kind == "sphere":
        return u0 * u0 + u1 * u1 + u2 * u2 <= d[0] ** 2
    if kind == "ellipsoid":
        return (u0 / d[0]) ** 2 + (u1 / d[1]) ** 2 + (u2 / d[2]) ** 2 <= 1.0
    if kind == "cube":
        return np.maximum(np.maximum(abs(u0), abs(u1)), abs(u2)) <= d[0]
    if kind == "prism":
        return (abs(u0) <= d[0]) & (abs(u1) <= d[1]) & (abs(u2) <= d[2])
    if kind == "pyramid":
        b, w0, w1 = d
        half = b * (w1 - u2) / (w1 - w0)
        return (u2 >= w0) & (u2 <= w1) & (np.maximum(abs(u0), abs(u1)) <= half)
    if kind == "disc":
        return (u0 * u0 + u1 * u1 <= d[0] ** 2) & (abs(u2) <= d[1])
    if kind in ("cross4", "cross6"):
        length, a = d
        au = (abs(u0), abs(u1), abs(u2))
        out = np.zeros(np.broadcast(u0, u1, u2).shape, bool)
        for k in range(2 if kind == "cross4" else 3):
            o1, o2 = [au[j] for j in range(3) if j != k]
            out |= (au[k] <= length) & (o1 <= a) & (o2 <= a)
        return out
    raise InputError(f"shapes.kinds: unknown shape {kind!r}; choose from {list(KINDS)}")


def place_shapes(shape, count: int, size, kinds, gap: float, rng: np.random.Generator,
                 max_tries: int = 1000) -> list[dict]:
    """Draw shapes and non-overlapping positions.

    Parameters
    ----------
    shape : (nz, ny, nx)
    count : int
    size : (float, float)
        Range of bounding-ball diameters, voxels.
    kinds : sequence of str
        Kinds to use, dealt round-robin in a random order per round.
    gap : float
        Minimum clearance between bounding balls, voxels.
    rng : numpy Generator
    max_tries : int

    Returns
    -------
    list of dict
        One per placed shape (fewer than ``count`` with a warning when the box
        is full): ``kind``, ``centre`` (``[z, y, x]`` voxels), ``radius``
        (bounding-ball radius, voxels), ``rotation`` (3×3, local → ``[z, y, x]``),
        ``dims`` (see :func:`shape_dims`).
    """
    kinds = list(kinds)
    rounds = -(-count // len(kinds)) if kinds else 0
    order = [kinds[j] for _ in range(rounds) for j in rng.permutation(len(kinds))][:count]
    sizes = rng.uniform(size[0], size[1], size=count)
    dims = [shape_dims(k, s / 2.0, rng) for k, s in zip(order, sizes)]
    rots = [random_rotation(rng) for _ in range(count)]
    radii = np.array([bounding_radius(k, d) for k, d in zip(order, dims)])
    centres, placed = place_non_overlapping(rng, shape, radii, gap, max_tries, "shapes")
    return [dict(kind=order[i], centre=centres[i], radius=float(radii[i]),
                 rotation=rots[i], dims=tuple(float(v) for v in dims[i]))
            for i in np.flatnonzero(placed)]


def rasterise_shapes(shape, placed: list[dict]) -> np.ndarray:
    """Binary volume (float32 0/1) of shapes as returned by :func:`place_shapes`.

    Each shape keeps only its largest 26-connected piece of voxels.
    """
    vol = np.zeros(shape, np.float32)
    full = np.ones((3, 3, 3), bool)
    for s in placed:
        sl, off = local_box(shape, s["centre"], s["radius"])
        if sl is None:
            continue
        rot = np.asarray(s["rotation"])
        u = [sum(rot[j, i] * off[j] for j in range(3)) for i in range(3)]  # Rᵀ·offset
        mask = inside(s["kind"], s["dims"], u)
        labels, n = ndimage.label(mask, structure=full)
        if n > 1:
            mask = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
        vol[sl][mask] = 1.0
    return vol


def objects(shape, voxel_size: float = 10.0, seed: int = 0, *, count: int = 20,
            size=(8.0, 24.0), kinds=KINDS, gap: float = 2.0, lowpass: float = 1.0,
            max_tries: int = 1000) -> dict:
    """Continuous description of the mixed-shapes phantom (what :func:`generate` draws).

    Parameters are those of :func:`generate` (validated the same way); the same
    parameters and seed give the same shapes that :func:`generate` rasterises.

    Returns
    -------
    dict
        ``phantom`` (``"shapes"``), ``shape`` (``(nz, ny, nx)``), ``voxel_size`` (Å),
        ``lowpass`` (Gaussian std, voxels; 0: none) and ``shapes``: the list of
        :func:`place_shapes` (``kind``, ``centre`` ``[z, y, x]`` in voxels with integer
        ``i`` the centre of voxel ``i``, bounding ``radius``, ``rotation`` local →
        ``[z, y, x]``, ``dims``; a point ``p`` is in a shape when
        ``inside(kind, dims, rotationᵀ·(p − centre))``).
    """
    shape = check_shape(shape, "shapes.shape")
    voxel_size = check_number(voxel_size, "shapes.voxel_size", minimum=0, exclusive_min=True)
    count = check_int(count, "shapes.count", minimum=0)
    size = check_interval(size, "shapes.size", minimum=6.0)
    check_fits(size[1], shape, "shapes.size")
    if isinstance(kinds, str) or not kinds or any(k not in KINDS for k in kinds):
        raise InputError(f"shapes.kinds: expected a non-empty list from {list(KINDS)}, "
                         f"got {kinds!r}")
    gap = check_number(gap, "shapes.gap", minimum=0)
    lowpass = check_number(lowpass, "shapes.lowpass", minimum=0)
    max_tries = check_int(max_tries, "shapes.max_tries", minimum=1)
    rng = np.random.default_rng(seed)
    placed = place_shapes(shape, count, size, kinds, gap, rng, max_tries)
    return dict(phantom="shapes", shape=shape, voxel_size=voxel_size, lowpass=lowpass,
                shapes=placed)


def rasterise(desc: dict) -> np.ndarray:
    """Volume ``[z, y, x]`` (float32 in [0, 1]) of a description from :func:`objects`:
    :func:`rasterise_shapes`, Gaussian low-pass, clipped to [0, 1]."""
    vol = gaussian_lowpass(rasterise_shapes(desc["shape"], desc["shapes"]), desc["lowpass"])
    return np.clip(vol, 0.0, 1.0, out=vol)


def generate(shape, voxel_size: float = 10.0, seed: int = 0, *, count: int = 20,
             size=(8.0, 24.0), kinds=KINDS, gap: float = 2.0, lowpass: float = 1.0,
             max_tries: int = 1000):
    """Mixed-shapes phantom.

    Parameters
    ----------
    shape : [nz, ny, nx]
        Box in voxels.
    voxel_size : float
        Å per voxel; only written to the header.
    seed : int
    count : int
        Shapes requested; fewer (with a warning) when they do not fit.
    size : [min, max]
        Bounding-ball diameter range in voxels (min >= 6).
    kinds : list of str
        Subset of :data:`KINDS` (default all eight).
    gap : float
        Minimum clearance between bounding balls, voxels (>= 2 keeps shapes
        separate 26-connected components).
    lowpass : float
        Gaussian low-pass std in voxels (0 disables).
    max_tries : int

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]`` in [0, 1]
    voxel_size : float

    See Also
    --------
    objects : the continuous shapes behind the volume (same signature).
    """
    desc = objects(shape, voxel_size, seed, count=count, size=size, kinds=kinds, gap=gap,
                   lowpass=lowpass, max_tries=max_tries)
    return rasterise(desc), desc["voxel_size"]
