"""Reconstruction quality metrics.

:func:`compute_metrics` is the one entry point the workflow uses when a ground truth
exists; :func:`reprojection_error` needs only the measured tilt series.

Modules: :mod:`~wedgebench.metrics.normalise` (intensity conventions),
:mod:`~wedgebench.metrics.image` (PSNR, SSIM, VIF), :mod:`~wedgebench.metrics.fsc`
(full and directional FSC), :mod:`~wedgebench.metrics.shape` (z/x elongation).
"""

from __future__ import annotations

import math

import numpy as np

from wedgebench.io import InputError
from wedgebench.metrics.fsc import directional_fsc, fsc_auc, fsc_resolution
from wedgebench.metrics.image import psnr, psnr_slices, ssim, ssim_slices, vif
from wedgebench.metrics.normalise import affine_fit, check_pair, normalise_pair
from wedgebench.metrics.shape import sphere_zx_ratio

__all__ = ["compute_metrics", "reprojection_error"]

FSC_REGIONS = ("full", "present", "missing")


def _json_float(x) -> float | None:
    """A float for JSON: NaN and None become None (null); ±inf is kept."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def compute_metrics(gt, rec, voxel_size: float, angles_deg, convention: str = "fair",
                    sphere_ratio: bool = False) -> dict:
    """All ground-truth metrics of one reconstruction, as a JSON-serialisable dict.

    The pair is normalised with :func:`~wedgebench.metrics.normalise.normalise_pair`
    under ``convention``. With ``"fair"`` or ``"minmax"``, PSNR and SSIM are computed
    on the whole volume (3-D SSIM, 7³ window); with ``"paper"`` they follow the
    authors' code (mean over y-slices; PSNR with each slice's ground-truth maximum as
    range, 2-D SSIM with a 7×7 window). VIF is always the mean 2-D VIFp over
    y-slices on a 0–255 scale of the ground truth's range. The FSC curves use the
    normalised pair (FSC ignores scale; the offset only touches the excluded DC term).

    Parameters
    ----------
    gt, rec : ndarray, 3-D ``[z, y, x]``, same shape
    voxel_size : float
        Å per voxel.
    angles_deg : array of float
        Tilt angles of the acquisition (for the present/missing Fourier regions).
    convention : {"fair", "paper", "minmax"}
    sphere_ratio : bool
        Also compute the mean z/x extent ratio of the ground truth's objects
        (meaningful for sphere phantoms).

    Returns
    -------
    dict
        ``convention``, ``data_range``, ``psnr`` (dB), ``ssim``, ``vif``;
        ``fsc`` = {``frequency`` (1/Å), ``full``, ``present``, ``missing`` (lists of
        FSC per shell), ``n_present``, ``n_missing`` (voxels per shell)};
        ``fsc_{full,present,missing}_auc`` (mean FSC up to Nyquist) and
        ``fsc_{full,present,missing}_res_A`` (0.5-crossing in Å, see
        :func:`~wedgebench.metrics.fsc.fsc_resolution`); optionally
        ``sphere_zx_ratio``. Undefined values (NaN) are stored as None; a PSNR of a
        perfect reconstruction is ``inf`` (written by :mod:`json` as ``Infinity``).
    """
    gt, rec = check_pair(gt, rec, ndim=3)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0:
        raise InputError("no tilt angles given")
    gt_n, rec_n, data_range = normalise_pair(gt, rec, convention)
    if convention == "paper":
        p, s = psnr_slices(gt_n, rec_n), ssim_slices(gt_n, rec_n, data_range)
    else:
        p, s = psnr(gt_n, rec_n, data_range), ssim(gt_n, rec_n, data_range)
    curves = directional_fsc(gt_n, rec_n, voxel_size, angles)
    out = {
        "convention": convention,
        "data_range": float(data_range),
        "voxel_size": float(voxel_size),
        "shape": list(gt.shape),
        "psnr": _json_float(p),
        "ssim": _json_float(s),
        "vif": _json_float(vif(gt_n, rec_n, data_range)),
        "fsc": {
            "frequency": [float(f) for f in curves["full"]["frequency"]],
            **{r: [_json_float(v) for v in curves[r]["fsc"]] for r in FSC_REGIONS},
            "n_present": [int(n) for n in curves["present"]["n_voxels"]],
            "n_missing": [int(n) for n in curves["missing"]["n_voxels"]],
        },
    }
    for r in FSC_REGIONS:
        out[f"fsc_{r}_auc"] = _json_float(fsc_auc(curves[r]))
        out[f"fsc_{r}_res_A"] = _json_float(fsc_resolution(curves[r], 0.5))
    if sphere_ratio:
        out["sphere_zx_ratio"] = _json_float(sphere_zx_ratio(gt_n, rec_n))
    return out


def reprojection_error(rec, stack, angles_deg) -> float:
    """Normalised RMS difference between a tilt series and the reprojected reconstruction.

    The reconstruction is projected with :func:`wedgebench.projector.project` (detector
    width = the stack's), the projections are mapped onto the stack by one
    least-squares affine fit over the whole stack (reconstructions have arbitrary
    scale and offset), and the RMS of the residual is divided by the standard
    deviation of the stack: 0 is a perfect fit, 1 is no better than a constant image.
    Needs no ground truth, so it applies to real data.

    Parameters
    ----------
    rec : ndarray, 3-D ``[z, y, x]``
    stack : ndarray, 3-D ``[tilt, y, x_det]``
    angles_deg : array of float, one per tilt

    Returns
    -------
    float
    """
    from wedgebench.projector import project

    rec = np.asarray(rec, dtype=np.float32)
    stack = np.asarray(stack, dtype=np.float64)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if rec.ndim != 3 or stack.ndim != 3:
        raise InputError(f"need a 3-D volume and a 3-D stack, got {rec.shape} and {stack.shape}")
    if stack.shape[0] != angles.size:
        raise InputError(f"stack has {stack.shape[0]} tilts but {angles.size} angles given")
    if stack.shape[1] != rec.shape[1]:
        raise InputError(f"stack y size {stack.shape[1]} != volume y size {rec.shape[1]}")
    if not (np.all(np.isfinite(rec)) and np.all(np.isfinite(stack))):
        raise InputError("volume or stack contains NaN/Inf values")
    proj = project(rec, angles, n_det=stack.shape[2]).astype(np.float64)
    a, b = affine_fit(proj, stack)
    sd = float(stack.std())
    if not sd > 0:
        raise InputError("tilt series is constant: normalised error undefined")
    return float(np.sqrt(np.mean((stack - (a * proj + b)) ** 2)) / sd)
