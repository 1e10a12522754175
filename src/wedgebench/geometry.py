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

import json

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
    ``"tilt-list<N>_<min>_<max>_<hash8>"``. An acquisition model (dose, optics, ice,
    misalignment, damage; :data:`wedgebench.tiltseries.MODEL_KEYS`) appends readable tokens
    and a hash of the whole model: ``"tilt-60_60_step2_dose120_ctf3pf_ice150_m1a2b3c"``.
    """
    def fmt(v: float) -> str:
        return f"{float(v):g}"

    import hashlib

    if acq.get("name"):
        return str(acq["name"])
    if acq.get("angles") is not None:
        a = np.asarray(acq["angles"], float)
        h = hashlib.sha1(np.round(a, 4).tobytes()).hexdigest()[:8]
        base = f"tilt-list{a.size}_{fmt(a.min())}_{fmt(a.max())}_{h}"
    else:
        lo, hi = acq["range"]
        base = f"tilt{fmt(lo)}_{fmt(hi)}_step{fmt(acq['step'])}"
    model = {k: v for k, v in acq.items() if k not in ("range", "step", "angles", "name")
             and v not in (None, False, {}, "none")}
    if not model:
        return base
    tokens = []
    if model.get("dose"):
        tokens.append(f"dose{fmt(model['dose']['total'])}")
    if model.get("optics"):
        tokens.append(f"ctf{fmt(model['optics']['defocus_um'])}"
                      + ("pf" if model.get("ctf_correction") == "phase_flip" else ""))
    if model.get("ice"):
        tokens.append(f"ice{fmt(model['ice']['thickness_nm'])}")
    if model.get("misalignment"):
        m = model["misalignment"]
        tokens.append(f"mis{fmt(m.get('shift_px', 0))}-{fmt(m.get('angle_deg', 0))}")
    if model.get("damage"):
        tokens.append("dmg")
    canon = json.dumps(model, sort_keys=True, default=float)
    return "_".join([base, *tokens, "m" + hashlib.sha1(canon.encode()).hexdigest()[:6]])


def even_odd_indices(angles, subset: str) -> np.ndarray:
    """Indices of every other tilt in order of angle, in acquisition order.

    ``"even"`` takes the 1st, 3rd, ... tilt of the angles sorted ascending (stable
    sort), ``"odd"`` the 2nd, 4th, ...; the indices are returned sorted, so the
    subset keeps the acquisition order. The convention of measured tilt series' even/odd
    halves (:func:`wedgebench.measured.load_measured_series`) and of DeepDeWedge's tilt halves
    (:func:`wedgebench.recon.deepdewedge.halves.split_tilts`).

    Parameters
    ----------
    angles : array of float
    subset : {"even", "odd"}

    Returns
    -------
    ndarray of int
    """
    if subset not in ("even", "odd"):
        raise ValueError(f"subset must be 'even' or 'odd', got {subset!r}")
    order = np.argsort(np.asarray(angles, np.float64).ravel(), kind="stable")
    return np.sort(order[{"even": 0, "odd": 1}[subset]::2])


#: Default guard band (voxels) between the acquired central planes and the missing region.
GUARD_VOXELS = 1.5


def _freq_grids(shape):
    """Frequency grids (cycles/voxel) for a ``[z, y, x]`` FFT (unshifted), broadcastable."""
    nz, ny, nx = shape
    fz = np.fft.fftfreq(nz)[:, None, None]
    fy = np.fft.fftfreq(ny)[None, :, None]
    fx = np.fft.fftfreq(nx)[None, None, :]
    return fz, fy, fx


def _frequency_aliases(n: int) -> tuple[np.ndarray, ...]:
    """The frequencies (cycles/voxel) each FFT index of an axis of size ``n`` stands for.

    ``fftfreq(n)`` gives index ``n/2`` of an even axis the frequency −0.5, but that index
    is its own Friedel mate and stands for +0.5 as well. Returns ``(fftfreq(n),)`` for odd
    ``n`` and ``(fftfreq(n), same with +0.5 at index n/2)`` for even ``n``.
    """
    f = np.fft.fftfreq(n)
    if n % 2:
        return (f,)
    g = f.copy()
    g[n // 2] = 0.5
    return f, g


def folded_tilt_angle(fx, fz) -> np.ndarray:
    """The tilt (degrees, in (−90°, 90°]) whose central plane contains direction (kx, kz).

    Tilt θ samples the direction ``(cosθ, −sinθ)``, so ``θ = atan2(−kz, kx)`` folded by
    180° (k and −k lie on the same central plane). The origin gives 0.
    """
    theta = np.degrees(np.arctan2(-np.asarray(fz, float), np.asarray(fx, float)))
    theta = np.where(theta > 90, theta - 180, theta)
    return np.where(theta <= -90, theta + 180, theta)


def _plane_regions(fz, fx, nz: int, nx: int, angles, guard: float):
    """Present and missing (kz, kx) points for one choice of frequency coordinates.

    Present: some acquired central plane passes through the voxel's box (half-width
    ``1/(2 nx)`` along kx, ``1/(2 nz)`` along kz). Missing: every acquired plane is
    farther than ``guard`` voxels (Euclidean, in voxel-index units) and the direction
    lies outside ``[min(angles), max(angles)]``. The ky axis (kx = kz = 0) is present.
    """
    present = np.zeros(np.broadcast_shapes(fz.shape, fx.shape), dtype=bool)
    far = np.ones_like(present)
    for t in np.deg2rad(angles):
        s, c = np.sin(t), np.cos(t)
        along_normal = np.abs(fx * s + fz * c)  # cycles/voxel
        present |= along_normal <= 0.5 * (abs(s) / nx + abs(c) / nz) + 1e-12
        far &= along_normal > guard * np.hypot(s / nx, c / nz) + 1e-12
    theta = folded_tilt_angle(fx, fz)
    outside = (theta < angles.min() - 1e-9) | (theta > angles.max() + 1e-9)
    outside &= (fx != 0) | (fz != 0)
    return present, far & outside & ~present


def fourier_regions_kzkx(shape, angles_deg, guard: float = GUARD_VOXELS):
    """Present and missing regions of a single-axis acquisition in the (kz, kx) plane.

    Both regions are independent of ky and are returned as 2-D ``(nz, nx)`` arrays in
    unshifted FFT layout; ``region[:, None, :]`` broadcasts them to the volume.

    *Present*: within half a voxel of the central plane of an acquired tilt (the plane
    passes through the voxel, with the voxel's own extent ``1/nx`` along kx and ``1/nz``
    along kz). *Missing*: outside the acquired angular range ``[min, max]`` of
    ``angles_deg`` **and** farther than ``guard`` voxels from every acquired central
    plane (Euclidean distance measured in voxel units of the FFT grid). Voxels in
    between (the guard band, and gaps between planes inside the range) belong to
    neither. The regions are disjoint.

    Both are centrosymmetric (``m[k] == m[−k]``), as the sampled region of a real
    volume's FFT is: the Nyquist index of an even axis stands for +0.5 and −0.5
    cycles/voxel, so it is present when either alias is, and missing only when both are.

    Parameters
    ----------
    shape : (nz, ny, nx)
    angles_deg : array of float
        Acquired tilt angles in degrees (any order, any symmetry).
    guard : float
        Guard band in voxels, ``>= 0`` (default :data:`GUARD_VOXELS` = 1.5).

    Returns
    -------
    present, missing : ndarray of bool, shape ``(nz, nx)``
    """
    nz, _, nx = (int(n) for n in shape)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0:
        raise ValueError("no tilt angles given")
    if not guard >= 0:
        raise ValueError(f"guard must be >= 0 voxels, got {guard}")
    present = np.zeros((nz, nx), dtype=bool)
    missing = np.ones((nz, nx), dtype=bool)
    for fz in _frequency_aliases(nz):
        for fx in _frequency_aliases(nx):
            p, m = _plane_regions(fz[:, None], fx[None, :], nz, nx, angles, float(guard))
            present |= p
            missing &= m
    return present, missing & ~present


def present_mask(shape, angles_deg) -> np.ndarray:
    """Fourier voxels sampled by the acquisition (unshifted FFT layout).

    A Fourier voxel is *present* if the central plane of some acquired tilt passes
    within half a voxel of its centre, measured along the plane's normal with the
    voxel's own extent (``1/nx`` along kx, ``1/nz`` along kz). Independent of ky;
    centrosymmetric (see :func:`fourier_regions_kzkx`).

    Parameters
    ----------
    shape : (nz, ny, nx)
    angles_deg : array of tilt angles in degrees

    Returns
    -------
    ndarray of bool, shape ``shape``
    """
    present, _ = fourier_regions_kzkx(shape, angles_deg)
    return np.broadcast_to(present[:, None, :], tuple(shape)).copy()


def missing_mask(shape, angles_deg, guard: float = GUARD_VOXELS) -> np.ndarray:
    """Fourier voxels of the missing region, with a guard band (unshifted FFT layout).

    Outside the acquired angular range and farther than ``guard`` voxels from every
    acquired central plane; see :func:`fourier_regions_kzkx`.

    Returns
    -------
    ndarray of bool, shape ``shape``
    """
    _, missing = fourier_regions_kzkx(shape, angles_deg, guard)
    return np.broadcast_to(missing[:, None, :], tuple(shape)).copy()


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
    theta = folded_tilt_angle(fx, fz)
    m = (theta >= tilt_min - 1e-9) & (theta <= tilt_max + 1e-9)
    m |= (fx == 0) & (fz == 0)
    return np.broadcast_to(m[:, None, :], shape).astype(np.float32)
