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
A ``mask`` restricts the sums to some Fourier voxels. It is a boolean array in the
*unshifted* full-FFT layout, of the volume's shape or broadcastable to it with size-1
axes (e.g. ``(nz, 1, nx)`` for a mask independent of ky), e.g. from
:func:`wedgebench.geometry.fourier_regions_kzkx`. Masks must be centrosymmetric
(``m[k] == m[−k]``, true of every tilt-geometry mask) because real volumes are
transformed with ``rfftn`` and each retained Fourier voxel also stands for its Friedel
mate.

Directional FSC
---------------
The FSC restricted to the *present* region (within half a voxel of an acquired central
plane) and to the *missing* region: outside the acquired angular range **and** farther
than a guard band (``guard`` voxels, default 1.5) from every acquired plane. Voxels in
between belong to neither: a reconstruction's Fourier voxels next to a measured plane
inherit that plane's data through the finite box (the volume's Fourier transform is
the plane convolved with a Dirichlet kernel), so counting them as "missing" would
reward leakage rather than filling.

Summaries
---------
:func:`fsc_auc` (the area, i.e. the mean FSC over shells) and :func:`fsc_resolution`
use only shells with at least ``min_voxels`` voxels of the region (default
:data:`MIN_SHELL_VOXELS` = 50): a shell of n voxels has an FSC whose standard error
under no correlation is about 1/√n, so a shell with a handful of voxels (the lowest
shells of the missing region) would count as much as a well-sampled one. The same rule
applies to the full, present and missing curves. Shells are not weighted by their
voxel count: that would make the area the mean over Fourier voxels, ~7/8 of which lie
above half Nyquist, instead of an area under the curve over frequency.

Memory
------
Each volume is transformed once with ``rfftn`` in its own precision (complex64 for
float32 volumes) and the shell sums are accumulated in float64 over slabs of kz
planes, so no float64 copy of the whole transform is made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft

from wedgebench.io import InputError
from wedgebench.metrics.normalise import check_pair, work_dtype
from wedgebench.metrics.slabs import SLAB_VOXELS, halo_slabs, planes_per_slab

COLUMNS = ("shell", "frequency", "fsc", "n_voxels")

#: Shell power below this fraction of a volume's total Fourier power counts as zero.
ZERO_POWER = 1e-12

#: Shells with fewer voxels of the region are left out of the summaries.
MIN_SHELL_VOXELS = 50


def shell_index(shape, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray, int]:
    """Shell number and Friedel weight of every voxel of an ``rfftn`` of ``shape``.

    Parameters
    ----------
    shape : (nz, ny, nx)
    rows : slice
        The kz rows (first axis) to return, e.g. one slab.

    Returns
    -------
    shell : ndarray of int64, shape ``(len(rows), ny, nx // 2 + 1)``
        ``round(|k| · N)`` with ``N = max(shape)``, ``|k|`` in cycles/voxel.
    weight : ndarray of float64, broadcastable to ``shell``
        2 for voxels whose Friedel mate is not stored in the half-transform, else 1.
    n_shells : int
        ``N // 2``, the Nyquist shell.
    """
    nz, ny, nx = shape
    big = max(shape)
    fz = np.fft.fftfreq(nz)[rows][:, None, None]
    fy = np.fft.fftfreq(ny)[None, :, None]
    fx = np.fft.rfftfreq(nx)[None, None, :]
    shell = np.rint(np.sqrt(fz ** 2 + fy ** 2 + fx ** 2) * big).astype(np.int64)
    weight = np.full(nx // 2 + 1, 2.0)
    weight[0] = 1.0
    if nx % 2 == 0:
        weight[-1] = 1.0
    return shell, weight[None, None, :], big // 2


def _check_mask(mask, shape) -> np.ndarray:
    """A centrosymmetric boolean mask broadcastable to ``shape``, cut to the rfft half."""
    mask = np.asarray(mask)
    ok = mask.ndim == 3 and all(m in (1, n) for m, n in zip(mask.shape, shape))
    if not ok or mask.dtype != bool:
        raise InputError(f"Fourier mask must be a boolean array of shape {tuple(shape)} "
                         f"(or broadcastable with size-1 axes), got {mask.dtype} {mask.shape}")
    mate = np.roll(np.flip(mask), 1, axis=(0, 1, 2))
    if not np.array_equal(mask, mate):
        raise InputError("Fourier mask is not centrosymmetric (m[k] != m[-k])")
    return mask[..., : shape[2] // 2 + 1] if mask.shape[2] == shape[2] else mask


def _power_terms(fa: np.ndarray, fb: np.ndarray, weight: np.ndarray):
    """Cross power and the two powers of Fourier coefficients, in float64, Friedel-weighted."""
    ar, ai = fa.real.astype(np.float64), fa.imag.astype(np.float64)
    br, bi = fb.real.astype(np.float64), fb.imag.astype(np.float64)
    return ((ar * br + ai * bi) * weight, (ar * ar + ai * ai) * weight,
            (br * br + bi * bi) * weight)


def fsc_curves(a, b, voxel_size: float, masks: dict,
               slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """FSC curves of two volumes for several Fourier masks, transforming each volume once.

    Parameters
    ----------
    a, b : ndarray, 3-D, same shape
        Transformed in float32 (complex64) when both are float32, else in float64.
    voxel_size : float
        Å per voxel.
    masks : dict of name -> boolean mask or None
        None means all Fourier voxels; see the module docstring for the mask layout.
    slab_voxels : int or None
        Fourier voxels whose sums are formed at a time (None: all at once).

    Returns
    -------
    dict of name -> DataFrame with columns ``shell, frequency, fsc, n_voxels``
    (frequency in 1/Å), one row per shell ``1 … N // 2``.
    """
    a, b = check_pair(a, b, ndim=3, dtype=None)
    if not voxel_size > 0:
        raise InputError(f"voxel_size must be > 0, got {voxel_size}")
    shape = a.shape
    masks = {name: None if m is None else _check_mask(m, shape) for name, m in masks.items()}
    dtype = work_dtype(a, b)
    fa = scipy.fft.rfftn(a.astype(dtype, copy=False))
    fb = scipy.fft.rfftn(b.astype(dtype, copy=False))
    n_shells = max(shape) // 2
    sums = {name: np.zeros((4, n_shells)) for name in masks}
    total_a = total_b = 0.0
    step = planes_per_slab(fa[0].size, shape[0], slab_voxels)
    for z0, z1, _, _ in halo_slabs(0, shape[0], step, 0, shape[0]):
        shell, weight, _ = shell_index(shape, slice(z0, z1))
        cross, pa, pb = _power_terms(fa[z0:z1], fb[z0:z1], weight)
        total_a += float(pa.sum())
        total_b += float(pb.sum())
        count = np.broadcast_to(weight, shell.shape)
        in_shell = (shell >= 1) & (shell <= n_shells)
        for name, mask in masks.items():
            sel = in_shell
            if mask is not None:
                sel = sel & (mask[z0:z1] if mask.shape[0] == shape[0] else mask)
            idx = shell[sel] - 1
            for row, x in enumerate((cross, pa, pb, count)):
                sums[name][row] += np.bincount(idx, weights=x[sel], minlength=n_shells)
    del fa, fb
    shells = np.arange(1, n_shells + 1)
    out = {}
    for name, (num, da, db, n) in sums.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            curve = np.where((da > ZERO_POWER * total_a) & (db > ZERO_POWER * total_b)
                             & (da * db > 0), num / np.sqrt(da * db), 0.0)
        out[name] = pd.DataFrame({
            "shell": shells,
            "frequency": shells / (max(shape) * float(voxel_size)),
            "fsc": np.where(n > 0, curve, np.nan),
            "n_voxels": np.rint(n).astype(np.int64),
        })
    return out


def fsc(a, b, voxel_size: float, mask=None, slab_voxels: int | None = SLAB_VOXELS
        ) -> pd.DataFrame:
    """Fourier shell correlation of two volumes, optionally inside a Fourier mask.

    Parameters
    ----------
    a, b : ndarray, 3-D, same shape
    voxel_size : float
        Å per voxel.
    mask : ndarray of bool, optional
        Centrosymmetric Fourier mask in unshifted full-FFT layout (see module docstring).
    slab_voxels : int or None
        See :func:`fsc_curves`.

    Returns
    -------
    DataFrame
        Columns ``shell`` (1 … N//2), ``frequency`` (1/Å), ``fsc``, ``n_voxels``.
    """
    return fsc_curves(a, b, voxel_size, {"fsc": mask}, slab_voxels)["fsc"]


def directional_fsc(a, b, voxel_size: float, angles_deg, guard: float | None = None,
                    slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """Full, present-region and missing-region FSC for a tilt acquisition.

    The regions are :func:`wedgebench.geometry.fourier_regions_kzkx` of the volume's
    shape, ``angles_deg`` and ``guard`` (voxels; default
    :data:`wedgebench.geometry.GUARD_VOXELS` = 1.5); see the module docstring.

    Returns
    -------
    dict with keys ``"full"``, ``"present"``, ``"missing"`` -> DataFrame (see :func:`fsc`)
    """
    from wedgebench.geometry import GUARD_VOXELS, fourier_regions_kzkx

    guard = GUARD_VOXELS if guard is None else float(guard)
    try:
        present, missing = fourier_regions_kzkx(np.shape(a), angles_deg, guard)
    except ValueError as err:
        raise InputError(str(err)) from err
    return fsc_curves(a, b, voxel_size, {"full": None, "present": present[:, None, :],
                                          "missing": missing[:, None, :]}, slab_voxels)


def _reliable(curve: pd.DataFrame, min_voxels: int) -> np.ndarray:
    """Rows of a curve with a finite FSC and at least ``min_voxels`` voxels."""
    ok = np.isfinite(np.asarray(curve["fsc"], dtype=float))
    if "n_voxels" in curve:
        ok &= np.asarray(curve["n_voxels"]) >= min_voxels
    return ok


def fsc_auc(curve: pd.DataFrame, min_voxels: int = MIN_SHELL_VOXELS) -> float:
    """Area under the FSC curve as the mean FSC over shells 1 … Nyquist.

    Equal to the area under FSC(frequency) divided by the frequency span (rectangle
    rule), so it lies in [−1, 1]. Shells with a NaN FSC or fewer than ``min_voxels``
    voxels (column ``n_voxels``, when present) are left out; NaN if none remains.
    """
    values = np.asarray(curve["fsc"], dtype=float)[_reliable(curve, min_voxels)]
    return float(values.mean()) if values.size else float("nan")


def fsc_resolution(curve: pd.DataFrame, threshold: float = 0.5,
                   min_voxels: int = MIN_SHELL_VOXELS) -> float | None:
    """Resolution in Å at which the FSC first falls below ``threshold``.

    Walking up from the lowest shell over *reliable* shells (finite FSC and at least
    ``min_voxels`` voxels, when the curve has ``n_voxels``), the first shell whose FSC
    is below the threshold is found and the crossing frequency is interpolated
    linearly between it and the previous reliable shell; the resolution is its
    reciprocal.

    Returns
    -------
    float or None
        The crossing resolution in Å; the Nyquist resolution (``1 / frequency`` of the
        last shell, i.e. 2 voxels) when the FSC never falls below the threshold, since
        the data cannot tell more; None when it is already below the threshold at the
        lowest reliable shell (worse than the coarsest measurable frequency) or there
        are no reliable shells.
    """
    ok = _reliable(curve, min_voxels)
    freq = np.asarray(curve["frequency"], dtype=float)[ok]
    values = np.asarray(curve["fsc"], dtype=float)[ok]
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
