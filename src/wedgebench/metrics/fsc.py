"""Fourier shell correlation (FSC), with optional Fourier masks for the directional FSC.

Shells
------
A Fourier voxel's radius is its physical spatial frequency ``|k|`` in cycles/voxel
(``k = (fftfreq(nz), fftfreq(ny), fftfreq(nx))``), expressed in units of the frequency
step of the largest dimension, ``1 / N`` with ``N = max(shape)``. Shell ``s`` holds the
voxels whose radius rounds to ``s`` (i.e. lies within half a unit of the sphere of
radius ``s``), for ``s = 1 … N // 2``: from one unit up to Nyquist, as in the paper. For
a cube this is the usual one-voxel shell. Shell ``s`` has spatial frequency
``s / (N · voxel_size)`` in 1/Å. Corner voxels beyond Nyquist are not used.

Correlation
-----------
``FSC(s) = Re Σ F₁ F₂* / sqrt(Σ |F₁|² · Σ |F₂|²)`` over the voxels of the shell (a
Pearson correlation without subtracting the mean). Where a shell has voxels but one
of the volumes has no power in it, the FSC is defined as 0 (no shared information);
power below ``ZERO_POWER`` times the volume's total power (Parseval) counts as none,
so that float rounding residue (e.g. of a volume whose missing wedge was zeroed by an
FFT round trip) is not correlated as if it were signal. A shell with no voxels
(possible with a mask) is NaN.

Masks
-----
A ``mask`` restricts the sums to some Fourier voxels. It is a boolean array of the
volume's shape in the *unshifted* full-FFT layout, e.g.
:func:`wedgebench.geometry.present_mask`. The *directional FSC* of the paper is the
FSC restricted to the present region (``mask = present``) and to the missing region
(``mask = ~present``). Masks must be centrosymmetric (``m[k] == m[−k]``, true of
every tilt-geometry mask) because real volumes are transformed with ``rfftn``
and each retained Fourier voxel also stands for its Friedel mate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft

from wedgebench.io import InputError
from wedgebench.metrics.normalise import check_pair

COLUMNS = ("shell", "frequency", "fsc", "n_voxels")

#: Shell power below this fraction of a volume's total Fourier power counts as zero.
ZERO_POWER = 1e-12


def shell_index(shape) -> tuple[np.ndarray, np.ndarray, int]:
    """Shell number and Friedel weight of every voxel of an ``rfftn`` of ``shape``.

    Returns
    -------
    shell : ndarray of int64, shape ``(nz, ny, nx // 2 + 1)``
        ``round(|k| · N)`` with ``N = max(shape)``, ``|k|`` in cycles/voxel.
    weight : ndarray of float64, broadcastable to ``shell``
        2 for voxels whose Friedel mate is not stored in the half-transform, else 1.
    n_shells : int
        ``N // 2``, the Nyquist shell.
    """
    nz, ny, nx = shape
    big = max(shape)
    fz = np.fft.fftfreq(nz)[:, None, None]
    fy = np.fft.fftfreq(ny)[None, :, None]
    fx = np.fft.rfftfreq(nx)[None, None, :]
    shell = np.rint(np.sqrt(fz ** 2 + fy ** 2 + fx ** 2) * big).astype(np.int64)
    weight = np.full(nx // 2 + 1, 2.0)
    weight[0] = 1.0
    if nx % 2 == 0:
        weight[-1] = 1.0
    return shell, weight[None, None, :], big // 2


def _check_mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape) or mask.dtype != bool:
        raise InputError(f"Fourier mask must be a boolean array of shape {tuple(shape)}, "
                         f"got {mask.dtype} {mask.shape}")
    mate = np.roll(np.flip(mask), 1, axis=(0, 1, 2))
    if not np.array_equal(mask, mate):
        raise InputError("Fourier mask is not centrosymmetric (m[k] != m[-k])")
    return mask[..., : shape[2] // 2 + 1]


def fsc_curves(a, b, voxel_size: float, masks: dict) -> dict:
    """FSC curves of two volumes for several Fourier masks, transforming each volume once.

    Parameters
    ----------
    a, b : ndarray, 3-D, same shape
    voxel_size : float
        Å per voxel.
    masks : dict of name -> boolean mask or None
        None means all Fourier voxels.

    Returns
    -------
    dict of name -> DataFrame with columns ``shell, frequency, fsc, n_voxels``
    (frequency in 1/Å), one row per shell ``1 … N // 2``.
    """
    a, b = check_pair(a, b, ndim=3)
    if not voxel_size > 0:
        raise InputError(f"voxel_size must be > 0, got {voxel_size}")
    shell, weight, n_shells = shell_index(a.shape)
    fa = scipy.fft.rfftn(a)
    fb = scipy.fft.rfftn(b)
    cross = (fa.real * fb.real + fa.imag * fb.imag) * weight
    pa = (fa.real ** 2 + fa.imag ** 2) * weight
    pb = (fb.real ** 2 + fb.imag ** 2) * weight
    count = np.broadcast_to(weight, shell.shape)
    floor_a, floor_b = ZERO_POWER * pa.sum(), ZERO_POWER * pb.sum()
    del fa, fb
    out = {}
    for name, mask in masks.items():
        sel = (shell >= 1) & (shell <= n_shells)
        if mask is not None:
            sel &= _check_mask(mask, a.shape)
        idx = shell[sel]
        num, da, db, n = (np.bincount(idx, weights=x[sel], minlength=n_shells + 1)[1:]
                          for x in (cross, pa, pb, count))
        with np.errstate(divide="ignore", invalid="ignore"):
            curve = np.where((da > floor_a) & (db > floor_b) & (da * db > 0),
                             num / np.sqrt(da * db), 0.0)
        curve = np.where(n > 0, curve, np.nan)
        shells = np.arange(1, n_shells + 1)
        out[name] = pd.DataFrame({
            "shell": shells,
            "frequency": shells / (max(a.shape) * float(voxel_size)),
            "fsc": curve,
            "n_voxels": np.rint(n).astype(np.int64),
        })
    return out


def fsc(a, b, voxel_size: float, mask=None) -> pd.DataFrame:
    """Fourier shell correlation of two volumes, optionally inside a Fourier mask.

    Parameters
    ----------
    a, b : ndarray, 3-D, same shape
    voxel_size : float
        Å per voxel.
    mask : ndarray of bool, optional
        Centrosymmetric Fourier mask in unshifted full-FFT layout (see module docstring).

    Returns
    -------
    DataFrame
        Columns ``shell`` (1 … N//2), ``frequency`` (1/Å), ``fsc``, ``n_voxels``.
    """
    return fsc_curves(a, b, voxel_size, {"fsc": mask})["fsc"]


def directional_fsc(a, b, voxel_size: float, angles_deg) -> dict:
    """Full, present-region and missing-region FSC for a tilt acquisition.

    The present region is :func:`wedgebench.geometry.present_mask` of the volume's
    shape and ``angles_deg``; the missing region is its complement.

    Returns
    -------
    dict with keys ``"full"``, ``"present"``, ``"missing"`` -> DataFrame (see :func:`fsc`)
    """
    from wedgebench.geometry import present_mask

    present = present_mask(np.shape(a), angles_deg)
    return fsc_curves(a, b, voxel_size, {"full": None, "present": present,
                                          "missing": ~present})


def fsc_auc(curve: pd.DataFrame) -> float:
    """Area under the FSC curve as the mean FSC over shells 1 … Nyquist.

    Equal to the area under FSC(frequency) divided by the Nyquist frequency
    (rectangle rule), so it lies in [−1, 1]. NaN shells are ignored.
    """
    values = np.asarray(curve["fsc"], dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def fsc_resolution(curve: pd.DataFrame, threshold: float = 0.5) -> float | None:
    """Resolution in Å at which the FSC first falls below ``threshold``.

    Walking up from shell 1 over finite values, the first shell whose FSC is below
    the threshold is found and the crossing frequency is interpolated linearly
    between it and the previous shell; the resolution is its reciprocal.

    Returns
    -------
    float or None
        The crossing resolution in Å; the Nyquist resolution (``1 / frequency`` of the
        last shell, i.e. 2 voxels) when the FSC never falls below the threshold, since
        the data cannot tell more; None when it is already below the threshold at the
        lowest shell (worse than the coarsest measurable frequency) or there are no
        finite values.
    """
    freq = np.asarray(curve["frequency"], dtype=float)
    values = np.asarray(curve["fsc"], dtype=float)
    ok = np.isfinite(values)
    freq, values = freq[ok], values[ok]
    if values.size == 0:
        return None
    below = np.flatnonzero(values < threshold)
    if below.size == 0:
        return float(1.0 / np.asarray(curve["frequency"], dtype=float)[-1])
    i = int(below[0])
    if i == 0:
        return None
    f0, f1, c0, c1 = freq[i - 1], freq[i], values[i - 1], values[i]
    f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0)
    return float(1.0 / f)
