"""Reconstruction quality metrics.

:func:`compute_metrics` is the one entry point the workflow uses when a ground truth
exists; :func:`heldout_tilt_error` (reconstructions from the even/odd tilts predict the
other half) and :func:`reprojection_error` need only the measured tilt series.

Modules: :mod:`~wedgebench.metrics.normalise` (intensity conventions),
:mod:`~wedgebench.metrics.image` (PSNR, SSIM, VIF; ``fair`` and ``paper`` variants),
:mod:`~wedgebench.metrics.fsc` (full and directional FSC),
:mod:`~wedgebench.metrics.shape` (z/x elongation), :mod:`~wedgebench.metrics.slabs`
(slab-wise, memory-lean evaluation).
"""

from __future__ import annotations

import math

import numpy as np

from wedgebench.io import InputError
from wedgebench.metrics.fsc import (MIN_SHELL_VOXELS, directional_fsc, fsc_auc,
                                    fsc_resolution)
from wedgebench.metrics.image import psnr, psnr_paper, ssim, ssim_paper, vif, vif_paper
from wedgebench.metrics.normalise import affine_fit, check_pair, normalise_pair, work_dtype
from wedgebench.metrics.shape import sphere_zx_ratio
from wedgebench.metrics.slabs import SLAB_VOXELS

__all__ = ["compute_metrics", "heldout_tilt_error", "image_metrics", "prediction_error",
           "reprojection_error"]

FSC_REGIONS = ("full", "present", "missing")

#: Conventions whose PSNR/SSIM/VIF every record carries under ``"conventions"``.
RECORD_CONVENTIONS = ("fair", "paper")


def _json_float(x) -> float | None:
    """A float for JSON: NaN and None become None (null); ±inf is kept."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _normalised_image_metrics(gt_n, rec_n, data_range: float, convention: str,
                              slab_voxels) -> dict:
    """PSNR, SSIM and VIF of a pair already normalised under ``convention``."""
    if convention == "paper":
        return {"psnr": psnr_paper(gt_n, rec_n, slab_voxels),
                "ssim": ssim_paper(gt_n, rec_n, slab_voxels),
                "vif": vif_paper(gt_n, rec_n, slab_voxels)}
    return {"psnr": psnr(gt_n, rec_n, data_range, slab_voxels),
            "ssim": ssim(gt_n, rec_n, data_range, slab_voxels),
            "vif": vif(gt_n, rec_n, data_range, slab_voxels=slab_voxels)}


def image_metrics(gt, rec, convention: str = "fair",
                  slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """PSNR (dB), SSIM and VIF of a reconstruction under one normalisation convention.

    ``"fair"`` / ``"minmax"``: the pair is normalised
    (:func:`~wedgebench.metrics.normalise.normalise_pair`), then PSNR over the whole
    volume with the ground truth's range, 3-D SSIM (7³ window) and VIFp pooled over
    y-slices on a 0–255 scale (σ_n² = 2). ``"paper"``: the authors' code —
    :func:`~wedgebench.metrics.image.psnr_paper`,
    :func:`~wedgebench.metrics.image.ssim_paper`,
    :func:`~wedgebench.metrics.image.vif_paper`.

    Returns
    -------
    dict with ``psnr``, ``ssim``, ``vif`` (floats; NaN where undefined)
    """
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    gt_n, rec_n, data_range = normalise_pair(gt, rec, convention, work_dtype(gt, rec),
                                             slab_voxels)
    return _normalised_image_metrics(gt_n, rec_n, data_range, convention, slab_voxels)


def compute_metrics(gt, rec, voxel_size: float, angles_deg, convention: str = "fair",
                    sphere_ratio: bool = False, guard_voxels: float | None = None,
                    min_shell_voxels: int = MIN_SHELL_VOXELS,
                    slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """All ground-truth metrics of one reconstruction, as a JSON-serialisable dict.

    The top-level ``psnr``, ``ssim``, ``vif`` use the configured ``convention`` (see
    :func:`image_metrics`); ``conventions`` always holds both the ``fair`` and the
    ``paper`` values. The FSC curves, their summaries and the sphere ratio use the
    pair normalised under ``convention`` (FSC ignores scale; the offset only touches
    the excluded DC term). Volumes stay in their own precision (float32 from MRC
    files) and every metric runs slab by slab, so the memory stays a few times the
    size of the input volumes.

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
    guard_voxels : float, optional
        Guard band of the missing Fourier region in voxels (default
        :data:`wedgebench.geometry.GUARD_VOXELS` = 1.5; see
        :mod:`wedgebench.metrics.fsc`).
    min_shell_voxels : int
        Shells with fewer voxels of a region are left out of that region's area and
        resolution (default :data:`~wedgebench.metrics.fsc.MIN_SHELL_VOXELS` = 50).
    slab_voxels : int or None
        Voxels processed in float64 at a time (None: whole volumes).

    Returns
    -------
    dict
        ``convention``, ``data_range``, ``voxel_size``, ``shape``, ``psnr`` (dB),
        ``ssim``, ``vif``; ``conventions`` = {``fair``: {``psnr``, ``ssim``, ``vif``},
        ``paper``: {…}}; ``fsc`` = {``frequency`` (1/Å), ``full``, ``present``,
        ``missing`` (lists of FSC per shell), ``n_full``, ``n_present``, ``n_missing``
        (voxels per shell)}; ``fsc_guard_voxels``, ``fsc_min_shell_voxels``;
        ``fsc_{full,present,missing}_auc`` (mean FSC over shells with at least
        ``min_shell_voxels`` voxels) and ``fsc_{full,present,missing}_res_A``
        (0.5-crossing in Å, see :func:`~wedgebench.metrics.fsc.fsc_resolution`);
        optionally ``sphere_zx_ratio``. Undefined values (NaN) are stored as None; a
        PSNR of a perfect reconstruction is ``inf`` (written by :mod:`json` as
        ``Infinity``).
    """
    from wedgebench.geometry import GUARD_VOXELS

    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0:
        raise InputError("no tilt angles given")
    guard = GUARD_VOXELS if guard_voxels is None else float(guard_voxels)
    dtype = work_dtype(gt, rec)
    values, out = {}, {}
    for name in dict.fromkeys((convention, *RECORD_CONVENTIONS)):
        gt_n, rec_n, data_range = normalise_pair(gt, rec, name, dtype, slab_voxels)
        values[name] = _normalised_image_metrics(gt_n, rec_n, data_range, name, slab_voxels)
        if name == convention:
            out = _fsc_record(gt_n, rec_n, voxel_size, angles, guard, int(min_shell_voxels),
                              slab_voxels)
            out["data_range"] = float(data_range)
            if sphere_ratio:
                out["sphere_zx_ratio"] = _json_float(sphere_zx_ratio(gt_n, rec_n))
        del gt_n, rec_n
    record = {"convention": convention, "data_range": out.pop("data_range"),
              "voxel_size": float(voxel_size), "shape": list(gt.shape),
              **{k: _json_float(v) for k, v in values[convention].items()},
              "conventions": {c: {k: _json_float(v) for k, v in values[c].items()}
                              for c in RECORD_CONVENTIONS}}
    record.update(out)
    return record


def _fsc_record(gt_n, rec_n, voxel_size, angles, guard, min_voxels, slab_voxels) -> dict:
    """The FSC part of a metrics record (curves, voxel counts, summaries)."""
    curves = directional_fsc(gt_n, rec_n, voxel_size, angles, guard, slab_voxels)
    out = {
        "fsc": {
            "frequency": [float(f) for f in curves["full"]["frequency"]],
            **{r: [_json_float(v) for v in curves[r]["fsc"]] for r in FSC_REGIONS},
            **{f"n_{r}": [int(n) for n in curves[r]["n_voxels"]] for r in FSC_REGIONS},
        },
        "fsc_guard_voxels": guard,
        "fsc_min_shell_voxels": min_voxels,
    }
    for r in FSC_REGIONS:
        out[f"fsc_{r}_auc"] = _json_float(fsc_auc(curves[r], min_voxels))
        out[f"fsc_{r}_res_A"] = _json_float(fsc_resolution(curves[r], 0.5, min_voxels))
    return out


def reprojection_error(rec, stack, angles_deg) -> float:
    """Normalised RMS difference between a tilt series and the reprojected reconstruction.

    The reconstruction is projected with :func:`wedgebench.projector.project` (detector
    width = the stack's), the projections are mapped onto the stack by one
    least-squares affine fit over the whole stack (reconstructions have arbitrary
    scale and offset), and the RMS of the residual is divided by the standard
    deviation of the stack: 0 is a perfect fit, 1 is no better than a constant image.
    Needs no ground truth, so it applies to real data.

    It scores the tilts the reconstruction was made from, through the projector that CN
    minimises (an "inverse crime"), so it favours methods that fit the data through
    :mod:`wedgebench.projector`; :func:`heldout_tilt_error` is the fair measure.

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

    rec, stack, angles = _check_projection_inputs(rec, stack, angles_deg)
    proj = project(rec, angles, n_det=stack.shape[2]).astype(np.float64)
    a, b = affine_fit(proj, stack)
    sd = float(stack.std())
    if not sd > 0:
        raise InputError("tilt series is constant: normalised error undefined")
    return float(np.sqrt(np.mean((stack - (a * proj + b)) ** 2)) / sd)


def heldout_tilt_error(rec_even, rec_odd, stack_even, angles_even, stack_odd, angles_odd,
                       oversampling: int = 3, step: float = 0.5) -> dict:
    """Held-out-tilt error: how well each half's reconstruction predicts the other half.

    The reconstruction from the even tilts is projected at the odd tilts' angles with
    the *simulation* projector (:func:`wedgebench.tiltseries.simulate_projections`:
    ray-driven, a different discretisation from :mod:`wedgebench.projector`, through
    which CN fits) and scored against the measured odd tilts by
    :func:`prediction_error`; likewise odd → even. No method has seen the tilts it is
    scored on, so none profits from fitting noise or from the projector. 0 is a perfect
    prediction, 1 is no better than a featureless slab; the error does not change when
    either reconstruction or either stack is scaled or offset.

    Parameters
    ----------
    rec_even, rec_odd : ndarray, 3-D ``[z, y, x]``
        Reconstructions from the even and from the odd tilts.
    stack_even, stack_odd : ndarray, 3-D ``[tilt, y, x_det]``
        The even and the odd tilts.
    angles_even, angles_odd : array of float
        Their angles in degrees, one per tilt.
    oversampling : int
        Sub-rays per detector pixel of the simulation projector.
    step : float
        Its sampling interval in z, in voxels.

    Returns
    -------
    dict
        ``heldout_tilt_error_even_to_odd``, ``heldout_tilt_error_odd_to_even`` and their
        mean ``heldout_tilt_error`` (floats).
    """
    opts = {"oversampling": oversampling, "step": step}
    even_to_odd = prediction_error(rec_even, stack_odd, angles_odd, **opts)
    odd_to_even = prediction_error(rec_odd, stack_even, angles_even, **opts)
    return {"heldout_tilt_error": (even_to_odd + odd_to_even) / 2.0,
            "heldout_tilt_error_even_to_odd": even_to_odd,
            "heldout_tilt_error_odd_to_even": odd_to_even}


def prediction_error(rec, stack, angles_deg, oversampling: int = 3,
                     step: float = 0.5) -> float:
    """Normalised RMS error of the tilts ``stack`` as predicted from a reconstruction.

    ``rec`` and a featureless slab of its shape (all ones) are projected with
    :func:`wedgebench.tiltseries.simulate_projections`, and the stack is fitted by least
    squares as ``a·P(rec) + c·P(slab) + b``: the reconstruction's scale and offset are
    arbitrary, and an offset of the volume adds a multiple of ``P(slab)`` (the slab's
    thickness, 1/cosθ, with its fall-off at the edges), not a constant. The RMS of the
    residual is divided by that of the fit without ``P(rec)`` (``c·P(slab) + b``): 0
    is a perfect prediction, 1 (the largest value) is no better than a featureless
    slab, as for a zero or a constant reconstruction.

    Parameters
    ----------
    rec : ndarray, 3-D ``[z, y, x]``
    stack : ndarray, 3-D ``[tilt, y, x_det]``
    angles_deg : array of float, one per tilt
    oversampling, step
        Of :func:`~wedgebench.tiltseries.simulate_projections`.

    Returns
    -------
    float
    """
    from wedgebench.tiltseries import simulate_projections

    rec, stack, angles = _check_projection_inputs(rec, stack, angles_deg)
    pred, slab = (simulate_projections(v, angles, oversampling=oversampling, step=step,
                                       n_det=stack.shape[2]).astype(np.float64)
                  for v in (rec, np.ones_like(rec)))
    baseline = _fit_residual_rms(stack, slab)
    if not baseline > 0:
        raise InputError("tilt series is a featureless slab: normalised error undefined")
    return _fit_residual_rms(stack, pred, slab) / baseline


def _fit_residual_rms(y, *regressors) -> float:
    """RMS residual of the least-squares fit ``y ≈ Σ cᵢ·regressorᵢ + b`` (float64; one
    or more regressors).

    Solved from the centred normal equations; a degenerate design (a constant or
    collinear regressor) gets the minimum-norm solution, whose residual is still least.
    """
    yc = y - y.mean()
    xs = [x - x.mean() for x in regressors]
    gram = np.array([[float(np.vdot(u, v)) for v in xs] for u in xs])
    rhs = np.array([float(np.vdot(u, yc)) for u in xs])
    coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    for c, x in zip(coef, xs):
        yc -= c * x
    return float(np.sqrt(np.mean(yc ** 2)))


def _check_projection_inputs(rec, stack, angles_deg):
    """A volume, its tilt stack and angles as float32, float64, float64, checked.

    Raises
    ------
    InputError
        Not 3-D, a tilt count or y size that does not match, or NaN/Inf values.
    """
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
    return rec, stack, angles
