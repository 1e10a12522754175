"""Intensity normalisation of a (ground truth, reconstruction) pair before metrics.

Reconstruction methods return volumes on arbitrary, method-specific intensity scales:
weighted back-projection is scaled by the number of tilts and the filter, Fourier
inversion by its padding, IsoNet by its percentile normalisation (and inverts contrast),
the coordinate network clips and min-max rescales. PSNR, SSIM and VIF are *not*
invariant to an affine change of intensities, so how the pair is normalised decides a
large part of the numbers. The choice is a named, documented *convention*:

``"fair"`` (default)
    The ground truth is left as it is. The reconstruction is replaced by the affine
    map ``a·rec + b`` that minimises ``‖gt − (a·rec + b)‖²`` (ordinary least squares
    over all voxels). Every method is thereby compared at its own best intensity
    calibration, so no method is rewarded or penalised for an arbitrary scale, offset
    or contrast sign. ``data_range = gt.max() − gt.min()``.
``"paper"``
    Reproduces the authors' code of the coordinate-network paper: the ground truth is
    scaled to a maximum of 0.1 (``gt · 0.1 / gt.max()``), the reconstruction is
    standardised (population std) and given the scaled ground truth's mean and
    standard deviation. ``data_range = gt_n.max() − gt_n.min()`` (the paper's metrics
    in :mod:`wedgebench.metrics.image` use their own ranges). Matching moments is not
    the least-squares fit, so it scores a reconstruction lower than ``"fair"`` does
    whenever the reconstruction is not perfectly correlated with the ground truth.
``"minmax"``
    Both volumes are min-max rescaled to [0, 1] independently; ``data_range = 1``.
    Sensitive to single outlier voxels; provided for comparison only.

Each convention maps each volume by one affine function whose coefficients are
computed in float64, chunk by chunk; the mapped volumes can be stored as float32
(``dtype``) so that volumes of the paper's size fit in memory.
"""

from __future__ import annotations

import numpy as np

from wedgebench.io import InputError
from wedgebench.metrics.slabs import SLAB_VOXELS, affine_map, flat_chunks, mean_std

CONVENTIONS = ("fair", "paper", "minmax")


def check_pair(gt, rec, ndim: int | None = 3, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (ground truth, reconstruction) pair and return them as float arrays.

    Parameters
    ----------
    gt, rec : array_like
        Same shape, finite values.
    ndim : int or None
        Required number of dimensions (None: any).
    dtype : dtype or None
        Returned dtype (default float64). None keeps float32 and float64 arrays as they
        are (no copy: the memory-lean path for large volumes) and converts anything else
        to float64.

    Returns
    -------
    gt, rec : ndarray

    Raises
    ------
    InputError
        On a shape mismatch, a wrong number of dimensions or non-finite values.
    """
    gt, rec = _as_float(gt, dtype), _as_float(rec, dtype)
    if gt.shape != rec.shape:
        raise InputError(f"ground truth shape {gt.shape} != reconstruction shape {rec.shape}")
    if ndim is not None and gt.ndim != ndim:
        raise InputError(f"expected {ndim}-D volumes, got shape {gt.shape}")
    if gt.size == 0:
        raise InputError("empty volumes")
    for name, arr in (("ground truth", gt), ("reconstruction", rec)):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN/Inf values")
    return gt, rec


def _as_float(x, dtype) -> np.ndarray:
    x = np.asarray(x)
    if dtype is None:
        return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    return np.asarray(x, dtype=dtype)


def work_dtype(*arrays) -> np.dtype:
    """float32 when every array is float32 (e.g. read from MRC files), else float64."""
    return np.dtype(np.result_type(np.float32, *(np.asarray(a).dtype for a in arrays)))


def affine_fit(x, y, slab_voxels: int | None = SLAB_VOXELS) -> tuple[float, float]:
    """Least-squares coefficients ``(a, b)`` of ``y ≈ a·x + b`` over all elements.

    Computed in float64 from centred sums, one chunk at a time (no float64 copy of the
    whole arrays). A constant ``x`` gives ``a = 0`` and ``b = mean(y)``.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise InputError(f"affine_fit: shapes {x.shape} and {y.shape} differ")
    mx, _ = mean_std(x, slab_voxels)
    my, _ = mean_std(y, slab_voxels)
    sxx = sxy = 0.0
    for cx, cy in zip(flat_chunks(x, slab_voxels), flat_chunks(y, slab_voxels)):
        dx = cx - mx
        sxx += float(np.dot(dx, dx))
        sxy += float(np.dot(dx, cy - my))
    a = sxy / sxx if sxx > 0 else 0.0
    return a, float(my - a * mx)


def normalise_pair(gt, rec, convention: str = "fair", dtype=np.float64,
                   slab_voxels: int | None = SLAB_VOXELS):
    """Normalise a ground truth and a reconstruction for metric computation.

    Every convention maps each volume by one affine function; its coefficients are
    computed in float64 (chunk by chunk) and the mapped volumes are stored as ``dtype``.

    Parameters
    ----------
    gt, rec : ndarray
        Volumes of the same shape (any dimensionality).
    convention : {"fair", "paper", "minmax"}
        See the module docstring.
    dtype : dtype
        Storage precision of the returned volumes (float64 by default; float32 halves
        the memory of large volumes).
    slab_voxels : int or None
        Chunk size of the float64 evaluation (None: whole arrays).

    Returns
    -------
    gt_n, rec_n : ndarray of ``dtype``
    data_range : float
        The intensity range to pass to PSNR/SSIM (> 0).

    Raises
    ------
    InputError
        Unknown convention, mismatched shapes, non-finite values, or a ground truth
        that is constant (or, for ``"paper"``, has no positive maximum).
    """
    if convention not in CONVENTIONS:
        raise InputError(f"unknown normalisation convention {convention!r}; "
                         f"choose one of {CONVENTIONS}")
    gt, rec = check_pair(gt, rec, ndim=None, dtype=None)
    lo, hi = float(gt.min()), float(gt.max())
    if hi <= lo:
        raise InputError("ground truth is constant: no metric is defined")
    if convention == "fair":
        a, b = affine_fit(rec, gt, slab_voxels)
        return (np.asarray(gt, dtype=dtype), affine_map(rec, a, b, dtype, slab_voxels),
                hi - lo)
    if convention == "paper":
        if hi <= 0:
            raise InputError("ground truth has no positive value: cannot scale to max 0.1")
        k = 0.1 / hi
        gt_mean, gt_sd = mean_std(gt, slab_voxels)
        rec_mean, rec_sd = mean_std(rec, slab_voxels)
        scale = k * gt_sd / rec_sd if rec_sd > 0 else 0.0
        rec_n = affine_map(rec, scale, k * gt_mean - scale * rec_mean, dtype, slab_voxels)
        return affine_map(gt, k, 0.0, dtype, slab_voxels), rec_n, k * (hi - lo)
    return (_minmax(gt, dtype, slab_voxels), _minmax(rec, dtype, slab_voxels), 1.0)


def _minmax(x: np.ndarray, dtype, slab_voxels) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=dtype)
    return affine_map(x, 1.0 / (hi - lo), -lo / (hi - lo), dtype, slab_voxels)
