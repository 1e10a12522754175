"""Helpers shared by the phantom generators.

* parameter checks that raise :class:`wedgebench.io.InputError` naming the key;
* Fourier-space low-pass filters (Gaussian, Butterworth) with zero padding, so
  that nothing wraps around the box edges;
* rasterisation helpers: local sub-boxes around a point, voxel-integrated
  Gaussians, soft-edged capsules;
* random placement of non-overlapping bounding spheres (rejection sampling);
* the seeded spin of a fixed structure about the beam axis.

Coordinates are voxel indices in ``[z, y, x]`` order; a point at integer index
``i`` is the centre of voxel ``i``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.fft
from scipy.special import ndtr

from wedgebench.io import InputError

# --------------------------------------------------------------------------- checks


def check_shape(value, name: str = "shape") -> tuple[int, int, int]:
    """Validate a box shape ``[nz, ny, nx]`` of positive integers.

    Raises
    ------
    InputError
        Naming ``name`` when ``value`` is not three integers >= 1.
    """
    try:
        out = tuple(int(v) for v in value)
        ok = len(out) == 3 and all(o >= 1 and o == v for o, v in zip(out, value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{name}: expected [nz, ny, nx] of positive integers, got {value!r}")
    return out


def check_number(value, name: str, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive_min: bool = False) -> float:
    """Validate a finite real number within optional bounds; return it as float."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    if minimum is not None and (out < minimum or (exclusive_min and out == minimum)):
        op = ">" if exclusive_min else ">="
        raise InputError(f"{name}: must be {op} {minimum}, got {value!r}")
    if maximum is not None and out > maximum:
        raise InputError(f"{name}: must be <= {maximum}, got {value!r}")
    return out


def check_int(value, name: str, *, minimum: int = 0) -> int:
    """Validate an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_interval(value, name: str, *, minimum: float = 0.0) -> tuple[float, float]:
    """Validate ``[lo, hi]`` with ``minimum <= lo <= hi``; a single number means ``[v, v]``."""
    if np.isscalar(value):
        value = [value, value]
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected [min, max], got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and minimum <= lo <= hi):
        raise InputError(f"{name}: expected [min, max] with {minimum} <= min <= max, "
                         f"got {value!r}")
    return lo, hi


def check_fits(size: float, shape, name: str) -> None:
    """Raise when an object ``size`` voxels across cannot lie inside ``shape``.

    A ball of diameter ``D`` fits when ``D <= n - 1`` along every axis (its
    centre at ``r <= c <= n - 1 - r``).
    """
    if size > min(shape) - 1:
        raise InputError(f"{name}: objects up to {size:g} voxels across do not fit in "
                         f"box {tuple(shape)} (need <= {min(shape) - 1})")


def check_bool(value, name: str) -> bool:
    """Validate a boolean (YAML ``true``/``false``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------- filters


def spin_matrix(spin_deg: float) -> np.ndarray:
    """Rotation by ``spin_deg`` about the z (beam) axis, acting on physical ``(x, y, z)``:
    a model point ``p`` lies at ``R @ p`` in the box (counter-clockwise from +x to +y)."""
    c, s = math.cos(math.radians(spin_deg)), math.sin(math.radians(spin_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def seeded_spin(spin, seed: int, name: str) -> float:
    """``spin`` checked as a number of degrees, or, when None, drawn uniformly in [0, 360)
    from ``seed`` (so that replicates and validation seeds of a fixed structure differ)."""
    if spin is None:
        return float(np.random.default_rng(seed).uniform(0.0, 360.0))
    return check_number(spin, name)


def fourier_filter(vol: np.ndarray, transfer, pad: int = 0) -> np.ndarray:
    """Multiply the spectrum of ``vol`` by an isotropic transfer function.

    Parameters
    ----------
    vol : ndarray ``[z, y, x]``
    transfer : callable
        ``transfer(f)`` with ``f`` the radial frequency in cycles/voxel (array);
        returns the gain.
    pad : int
        Zeros added on every side before the FFT (removed afterwards), so that
        density near one face does not wrap onto the opposite face.

    Returns
    -------
    ndarray float32, same shape as ``vol``
    """
    vol = np.asarray(vol, np.float32)
    padded = np.pad(vol, pad) if pad > 0 else vol
    shape = padded.shape
    fz = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None, None]
    fy = np.fft.fftfreq(shape[1]).astype(np.float32)[None, :, None]
    fx = np.fft.rfftfreq(shape[2]).astype(np.float32)[None, None, :]
    gain = np.asarray(transfer(np.sqrt(fz * fz + fy * fy + fx * fx)), np.float32)
    out = scipy.fft.irfftn(scipy.fft.rfftn(padded) * gain, s=shape)
    if pad > 0:
        out = out[pad:-pad, pad:-pad, pad:-pad]
    return np.ascontiguousarray(out, dtype=np.float32)


def gaussian_lowpass(vol: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass: convolution with a Gaussian of std ``sigma`` voxels.

    Applied in Fourier space as ``exp(-2 π² σ² f²)``, with ``ceil(4σ)`` voxels
    of zero padding (the volume is treated as zero outside the box). ``sigma``
    of 0 returns a copy. The gain is 0.5 at ``f = sqrt(ln 2 / 2) / (π σ)``.
    """
    sigma = float(sigma)
    if sigma <= 0:
        return np.array(vol, dtype=np.float32, copy=True)
    return fourier_filter(vol, lambda f: np.exp(-2.0 * (np.pi * sigma * f) ** 2),
                          pad=int(math.ceil(4 * sigma)))


def butterworth_lowpass(vol: np.ndarray, cutoff: float, order: int = 8) -> np.ndarray:
    """Butterworth low-pass with gain ``1 / sqrt(1 + (f / cutoff)^(2·order))``.

    ``cutoff`` in cycles/voxel (gain 1/√2 there); 0 or >= 0.5·√3 returns a copy.
    Padded by ``ceil(2 / cutoff)`` voxels. Rings (negative lobes) near sharp
    edges: clip afterwards when non-negativity matters.
    """
    cutoff = float(cutoff)
    if cutoff <= 0 or cutoff >= 0.5 * math.sqrt(3):
        return np.array(vol, dtype=np.float32, copy=True)
    return fourier_filter(vol, lambda f: 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order)),
                          pad=int(math.ceil(2.0 / cutoff)))


def resolution_to_sigma(resolution: float, voxel_size: float) -> float:
    """Gaussian σ (voxels) whose gain is 0.5 at spatial frequency 1/``resolution``.

    ``σ = sqrt(ln 2 / 2) / π · resolution / voxel_size ≈ 0.187 · resolution / voxel_size``.
    """
    return math.sqrt(math.log(2.0) / 2.0) / math.pi * float(resolution) / float(voxel_size)


def lowpass_resolution(vol: np.ndarray, resolution: float, voxel_size: float,
                       kind: str = "gaussian") -> np.ndarray:
    """Low-pass ``vol`` to ``resolution`` Å (gain 0.5 (Gaussian) or 1/√2 (Butterworth)
    at frequency 1/``resolution``); 0 disables."""
    if resolution <= 0:
        return np.array(vol, dtype=np.float32, copy=True)
    if kind == "gaussian":
        return gaussian_lowpass(vol, resolution_to_sigma(resolution, voxel_size))
    if kind == "butterworth":
        return butterworth_lowpass(vol, voxel_size / resolution)
    raise InputError(f"filter: expected 'gaussian' or 'butterworth', got {kind!r}")


# --------------------------------------------------------------------------- partial volume


def soft_inside(signed_distance: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Partial-volume occupancy from a signed distance (negative inside).

    A linear ramp of ``width`` (same units as the distance) centred on the
    surface: 1 deep inside, 0 outside, 0.5 on the surface.
    """
    return np.clip(0.5 - np.asarray(signed_distance) / width, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- rasterising


def local_box(shape, centre, radius: float):
    """Sub-box of a ``shape`` volume covering the ball ``|x - centre| <= radius``.

    Parameters
    ----------
    shape : (nz, ny, nx)
    centre : (z, y, x) in voxels
    radius : float, voxels

    Returns
    -------
    slices : tuple of slice, or None when the ball misses the volume
    offsets : tuple of 3 broadcastable float arrays
        ``index - centre`` along z, y, x on the sub-box (shapes ``(k,1,1)``,
        ``(1,k,1)``, ``(1,1,k)``).
    """
    slices, offsets = [], []
    for axis, (n, c) in enumerate(zip(shape, centre)):
        lo = max(0, int(math.floor(c - radius)))
        hi = min(n, int(math.ceil(c + radius)) + 1)
        if hi <= lo:
            return None, None
        slices.append(slice(lo, hi))
        view = [1, 1, 1]
        view[axis] = hi - lo
        offsets.append((np.arange(lo, hi, dtype=np.float64) - c).reshape(view))
    return tuple(slices), tuple(offsets)


def render_gaussians(shape, centres, sigmas, weights, cutoff: float = 4.0,
                     max_chunk: int = 4_000_000) -> np.ndarray:
    """Sum of isotropic 3-D Gaussians, integrated exactly over each voxel.

    Each Gaussian ``k`` contributes ``weights[k]`` times the fraction of its
    mass inside a voxel (a product of error-function differences along z, y,
    x), so the sum over the volume equals ``weights.sum()`` when no Gaussian is
    cut by the box, and narrow Gaussians are not aliased.

    Parameters
    ----------
    shape : (nz, ny, nx)
    centres : array ``(n, 3)``, voxel coordinates ``[z, y, x]``
    sigmas : array ``(n,)`` or scalar, standard deviations in voxels (> 0)
    weights : array ``(n,)`` or scalar
    cutoff : float
        Each Gaussian is evaluated within ``cutoff·σ_max + 1`` voxels of its centre.
    max_chunk : int
        Bound on the number of values computed at once (memory).

    Returns
    -------
    ndarray float32 ``shape``
    """
    shape = tuple(int(n) for n in shape)
    centres = np.asarray(centres, np.float64).reshape(-1, 3)
    n = centres.shape[0]
    sigmas = np.broadcast_to(np.asarray(sigmas, np.float64), (n,))
    weights = np.broadcast_to(np.asarray(weights, np.float64), (n,))
    out = np.zeros(int(np.prod(shape)), np.float64)
    if n == 0:
        return out.reshape(shape).astype(np.float32)
    half = int(math.ceil(cutoff * float(sigmas.max()) + 1.0))
    k = 2 * half + 1
    chunk = max(1, max_chunk // k ** 3)
    steps = np.arange(-half, half + 1)
    for s in range(0, n, chunk):
        c, sg, w = centres[s:s + chunk], sigmas[s:s + chunk, None], weights[s:s + chunk]
        idx, prof = [], []
        for axis in range(3):
            i = np.rint(c[:, axis]).astype(np.int64)[:, None] + steps[None, :]
            p = (ndtr((i + 0.5 - c[:, axis, None]) / sg)
                 - ndtr((i - 0.5 - c[:, axis, None]) / sg))
            inside = (i >= 0) & (i < shape[axis])
            idx.append(np.where(inside, i, 0))
            prof.append(np.where(inside, p, 0.0))
        vals = (w[:, None, None, None] * prof[0][:, :, None, None]
                * prof[1][:, None, :, None] * prof[2][:, None, None, :])
        flat = ((idx[0][:, :, None, None] * shape[1] + idx[1][:, None, :, None]) * shape[2]
                + idx[2][:, None, None, :])
        out += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=out.size)
    return out.reshape(shape).astype(np.float32)


def segment_distance(offsets, a, b) -> np.ndarray:
    """Distance from grid points to the segment ``a``–``b``.

    ``offsets`` are the broadcastable ``(z, y, x)`` coordinate arrays of the
    points; ``a``, ``b`` are ``(z, y, x)`` in the same units.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ab = b - a
    denom = float(ab @ ab)
    rel = [o - ai for o, ai in zip(offsets, a)]
    t = sum(r * d for r, d in zip(rel, ab)) / denom if denom > 0 else 0.0
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt(sum((r - t * d) ** 2 for r, d in zip(rel, ab)))


def paint_capsules(shape, segments, radii, width: float = 1.0) -> np.ndarray:
    """Union (voxel-wise max) of soft-edged capsules (cylinders with round caps).

    Parameters
    ----------
    shape : (nz, ny, nx)
    segments : array ``(n, 2, 3)``, end points ``[z, y, x]`` in voxels
    radii : array ``(n,)`` in voxels
    width : float
        Edge ramp width in voxels (see :func:`soft_inside`).

    Returns
    -------
    ndarray float32 in [0, 1]
    """
    out = np.zeros(shape, np.float32)
    for (a, b), r in zip(np.asarray(segments, np.float64), np.asarray(radii, np.float64)):
        mid, half = (a + b) / 2.0, np.linalg.norm(b - a) / 2.0 + r + width
        sl, off = local_box(shape, mid, half)
        if sl is None:
            continue
        d = segment_distance(off, a - mid, b - mid)
        out[sl] = np.maximum(out[sl], soft_inside(d - r, width))
    return out


# --------------------------------------------------------------------------- placement


def place_non_overlapping(rng: np.random.Generator, shape, radii, gap: float = 0.0,
                          max_tries: int = 1000, what: str = "objects"):
    """Random centres for balls that lie inside the box and do not overlap.

    Balls are placed largest first (ties in input order); each is tried at up to
    ``max_tries`` uniformly random centres ``c`` with ``r <= c <= n - 1 - r`` on
    every axis, and accepted when ``|c - c_j| >= r + r_j + gap`` for every ball
    already placed. Balls that cannot be placed are dropped with a warning.

    Parameters
    ----------
    rng : numpy Generator
    shape : (nz, ny, nx)
    radii : array ``(n,)`` in voxels
    gap : float
        Minimum clearance between ball surfaces (voxels).
    max_tries : int
    what : str
        Name used in the warning.

    Returns
    -------
    centres : ndarray ``(n, 3)`` float64, NaN for balls not placed
    placed : ndarray ``(n,)`` bool
    """
    radii = np.asarray(radii, np.float64)
    box = np.asarray(shape, np.float64) - 1.0
    n = radii.size
    centres = np.full((n, 3), np.nan)
    placed = np.zeros(n, bool)
    batch = 64
    for i in np.argsort(-radii, kind="stable"):
        r = radii[i]
        lo, hi = np.full(3, r), box - r
        if np.any(hi < lo):
            continue
        done = np.flatnonzero(placed)
        for _ in range(0, max_tries, batch):
            cand = rng.uniform(lo, hi, size=(batch, 3))
            if done.size:
                dist = np.linalg.norm(cand[:, None, :] - centres[None, done, :], axis=-1)
                ok = np.all(dist >= r + radii[done][None, :] + gap, axis=1)
            else:
                ok = np.ones(batch, bool)
            if ok.any():
                centres[i] = cand[np.argmax(ok)]
                placed[i] = True
                break
    if not placed.all():
        warnings.warn(f"placed only {int(placed.sum())} of {n} {what}: no room left in "
                      f"box {tuple(int(s) for s in shape)} without overlap", stacklevel=3)
    return centres, placed
