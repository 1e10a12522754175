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
    standardised and given the ground truth's mean and standard deviation.
    ``data_range = gt_n.max() − gt_n.min()``. Matching moments is not the
    least-squares fit, so it scores a reconstruction lower than ``"fair"`` does
    whenever the reconstruction is not perfectly correlated with the ground truth.
``"minmax"``
    Both volumes are min-max rescaled to [0, 1] independently; ``data_range = 1``.
    Sensitive to single outlier voxels; provided for comparison only.
"""

from __future__ import annotations

import numpy as np

from wedgebench.io import InputError

CONVENTIONS = ("fair", "paper", "minmax")


def check_pair(gt, rec, ndim: int | None = 3) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (ground truth, reconstruction) pair and return them as float64.

    Parameters
    ----------
    gt, rec : array_like
        Same shape, finite values.
    ndim : int or None
        Required number of dimensions (None: any).

    Returns
    -------
    gt, rec : ndarray of float64

    Raises
    ------
    InputError
        On a shape mismatch, a wrong number of dimensions or non-finite values.
    """
    gt = np.asarray(gt, dtype=np.float64)
    rec = np.asarray(rec, dtype=np.float64)
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


def affine_fit(x, y) -> tuple[float, float]:
    """Least-squares coefficients ``(a, b)`` of ``y ≈ a·x + b`` over all elements.

    A constant ``x`` gives ``a = 0`` and ``b = mean(y)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    mx, my = x.mean(), y.mean()
    dx = x - mx
    var = float(np.dot(dx, dx))
    a = float(np.dot(dx, y - my)) / var if var > 0 else 0.0
    return a, float(my - a * mx)


def normalise_pair(gt, rec, convention: str = "fair"):
    """Normalise a ground truth and a reconstruction for metric computation.

    Parameters
    ----------
    gt, rec : ndarray
        Volumes of the same shape (any dimensionality).
    convention : {"fair", "paper", "minmax"}
        See the module docstring.

    Returns
    -------
    gt_n, rec_n : ndarray of float64
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
    gt, rec = check_pair(gt, rec, ndim=None)
    lo, hi = float(gt.min()), float(gt.max())
    if hi <= lo:
        raise InputError("ground truth is constant: no metric is defined")
    if convention == "fair":
        a, b = affine_fit(rec, gt)
        return gt, a * rec + b, hi - lo
    if convention == "paper":
        if hi <= 0:
            raise InputError("ground truth has no positive value: cannot scale to max 0.1")
        gt_n = gt * (0.1 / hi)
        sd = rec.std()
        z = (rec - rec.mean()) / sd if sd > 0 else np.zeros_like(rec)
        rec_n = z * gt_n.std() + gt_n.mean()
        return gt_n, rec_n, float(gt_n.max() - gt_n.min())
    return _minmax(gt), _minmax(rec), 1.0


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
