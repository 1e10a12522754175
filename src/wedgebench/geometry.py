"""Acquisition geometry and Fourier-space sampling masks.

Conventions (used by every module of the package)
--------------------------------------------------
* Volumes are indexed ``[z, y, x]``; the tilt axis is y, the beam is along z at 0°.
* Centred coordinates: ``xc = x - (nx - 1) / 2``, ``zc = z - (nz - 1) / 2``.
* A point (xc, zc) projects at tilt θ onto detector coordinate
  ``u = xc·cosθ − zc·sinθ``, i.e. detector pixel ``u + (nx − 1) / 2``.
* By the Fourier-slice theorem the projection at θ samples the central plane of
  the volume's 3-D Fourier transform spanned by ky and the direction
  ``(kx, kz) = (cosθ, −sinθ)``; its normal in the (kx, kz) plane is ``(sinθ, cosθ)``.
"""

from __future__ import annotations

import numpy as np


def tilt_angles(range_deg=None, step=None, angles=None) -> np.ndarray:
    """Angles of an acquisition in degrees.

    Parameters
    ----------
    range_deg : (float, float), optional
        ``[min, max]`` in degrees; the angles are ``min, min+step, ...`` up to and
        including ``max`` when it lies on the grid (asymmetric ranges allowed).
    step : float, optional
        Increment in degrees, > 0.
    angles : sequence of float, optional
        An explicit list (used as given, in acquisition order).

    Returns
    -------
    ndarray of float64
    """
    if angles is not None:
        out = np.asarray(angles, dtype=np.float64)
    else:
        lo, hi = float(range_deg[0]), float(range_deg[1])
        if step is None or step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        if lo > hi:
            raise ValueError(f"range min {lo} > max {hi}")
        n = int(np.floor((hi - lo) / step + 1e-9)) + 1
        out = lo + step * np.arange(n, dtype=np.float64)
    if out.size == 0 or np.any(np.abs(out) >= 90):
        raise ValueError(f"angles must be non-empty and within ±90°, got {out}")
    return out


def acquisition_label(acq: dict) -> str:
    """Readable, path-safe name of an acquisition dict.

    ``{"range": [-60, 60], "step": 2}`` → ``"tilt-60_60_step2"``; an explicit list gets
    ``"tilt-list<N>_<min>_<max>_<hash8>"``.
    """
    def fmt(v: float) -> str:
        return f"{float(v):g}"

    if acq.get("name"):
        return str(acq["name"])
    if acq.get("angles") is not None:
        import hashlib

        a = np.asarray(acq["angles"], float)
        h = hashlib.sha1(np.round(a, 4).tobytes()).hexdigest()[:8]
        return f"tilt-list{a.size}_{fmt(a.min())}_{fmt(a.max())}_{h}"
    lo, hi = acq["range"]
    return f"tilt{fmt(lo)}_{fmt(hi)}_step{fmt(acq['step'])}"


def _freq_grids(shape):
    """Frequency grids (cycles/voxel) for a ``[z, y, x]`` FFT (unshifted), broadcastable."""
    nz, ny, nx = shape
    fz = np.fft.fftfreq(nz)[:, None, None]
    fy = np.fft.fftfreq(ny)[None, :, None]
    fx = np.fft.fftfreq(nx)[None, None, :]
    return fz, fy, fx


def present_mask(shape, angles_deg) -> np.ndarray:
    """Fourier voxels sampled by the acquisition (unshifted FFT layout).

    A Fourier voxel is *present* if the central plane of some acquired tilt passes
    within half a voxel of its centre, measured along the plane's normal with the
    voxel's own extent (``1/nx`` along kx, ``1/nz`` along kz). Independent of ky.

    Parameters
    ----------
    shape : (nz, ny, nx)
    angles_deg : array of tilt angles in degrees

    Returns
    -------
    ndarray of bool, shape ``shape``
    """
    nz, ny, nx = shape
    fz, _, fx = _freq_grids(shape)
    fz, fx = fz[:, 0, :], fx[:, 0, :]
    mask = np.zeros((nz, nx), dtype=bool)
    for t in np.deg2rad(np.asarray(angles_deg, float)):
        s, c = np.sin(t), np.cos(t)
        dist = np.abs(fx * s + fz * c)
        tol = 0.5 * (abs(s) / nx + abs(c) / nz)
        mask |= dist <= tol + 1e-12
    return np.broadcast_to(mask[:, None, :], shape).copy()


def wedge_mask(shape, tilt_min: float, tilt_max: float) -> np.ndarray:
    """Continuous missing-wedge mask: 1 where the acquisition's tilt range covers.

    The Fourier point (kx, kz) lies on the central plane of tilt
    ``θ = atan2(−kz, kx)`` (folded into (−90°, 90°]); it is present when
    ``tilt_min ≤ θ ≤ tilt_max``. The origin is present. Independent of ky.
    Unshifted FFT layout, float32.
    """
    nz, ny, nx = shape
    fz, _, fx = _freq_grids(shape)
    fz, fx = np.broadcast_arrays(fz[:, 0, :], fx[:, 0, :])
    theta = np.degrees(np.arctan2(-fz, fx))
    theta = np.where(theta > 90, theta - 180, theta)
    theta = np.where(theta <= -90, theta + 180, theta)
    m = (theta >= tilt_min - 1e-9) & (theta <= tilt_max + 1e-9)
    m |= (fx == 0) & (fz == 0)
    return np.broadcast_to(m[:, None, :], shape).astype(np.float32)
