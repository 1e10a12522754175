"""Simulated tilt series: an accurate projector, acquisition noise, normalisation.

The *simulation* projector is deliberately a different and more accurate
discretisation than :mod:`wedgebench.projector` (which every reconstruction
uses), so that no method profits from an "inverse crime": it is *ray-driven*,
with ``oversampling`` sub-rays per detector pixel, each sampled every ``step``
voxels in z (rays cross the thin slab), reading the volume by bilinear
interpolation in the (z, x) plane. Each detector value is the mean over its sub-rays of the
numerically integrated line integral.
"""

from __future__ import annotations

import numpy as np


def simulate_projections(vol: np.ndarray, angles_deg, oversampling: int = 3,
                         step: float = 0.5, n_det: int | None = None,
                         max_chunk_bytes: int = 256 * 2**20) -> np.ndarray:
    """Accurate line integrals of ``vol[z, y, x]`` for tilts about y.

    Parameters
    ----------
    vol : ndarray, ``[z, y, x]``
    angles_deg : array of float
    oversampling : int
        Sub-rays per detector pixel (spread uniformly across the pixel).
    step : float
        Sampling interval in z along each ray, in voxels (the ray is sampled once per
        ``step`` in z, so ``step / cosθ`` along the ray; the slab is thin in z).
    n_det : int, optional
        Detector width (default nx).
    max_chunk_bytes : int
        Memory bound of one interpolation call (y-slices are processed in chunks).

    Returns
    -------
    ndarray float32 ``[tilt, y, n_det]``
    """
    import torch
    import torch.nn.functional as F

    vol = np.ascontiguousarray(vol, np.float32)
    nz, ny, nx = vol.shape
    n_det = nx if n_det is None else int(n_det)
    s = int(oversampling)
    # rays are parametrised by z (the slab is thin): x = (u + z sinθ) / cosθ, ds = dz / cosθ
    z_samples = np.arange(-(nz / 2.0) + step / 2.0, nz / 2.0, step)
    u = (np.arange(n_det) - (n_det - 1) / 2.0)[:, None] + ((np.arange(s) + 0.5) / s - 0.5)[None]
    u = u.ravel()  # detector sub-positions
    inp = torch.from_numpy(vol).permute(1, 0, 2)[None]  # [1, y, z, x]
    per_slice = z_samples.size * u.size * 4 * 2
    chunk = max(1, int(max_chunk_bytes // per_slice))
    out = np.empty((len(angles_deg), ny, n_det), np.float32)
    for i, th in enumerate(np.deg2rad(np.asarray(angles_deg, float))):
        c, sn = np.cos(th), np.sin(th)
        xc = (u[None, :] + z_samples[:, None] * sn) / c
        zc = np.broadcast_to(z_samples[:, None], xc.shape)
        gx = 2 * (xc + (nx - 1) / 2.0) / max(nx - 1, 1) - 1
        gz = 2 * (zc + (nz - 1) / 2.0) / max(nz - 1, 1) - 1
        grid = torch.from_numpy(np.stack([gx, gz], -1).astype(np.float32))[None]
        for y0 in range(0, ny, chunk):
            samp = F.grid_sample(inp[:, y0:y0 + chunk], grid, mode="bilinear",
                                 padding_mode="zeros", align_corners=True)
            line = samp[0].sum(1) * (step / c)  # [y, n_det*s]
            out[i, y0:y0 + chunk] = line.reshape(-1, n_det, s).mean(-1).numpy()
    return out


def add_noise(proj: np.ndarray, kind: str = "none", snr: float | None = None,
              dose: float | None = None, seed: int = 0) -> np.ndarray:
    """Acquisition noise.

    Parameters
    ----------
    proj : ndarray ``[tilt, y, x]``, non-negative line integrals
    kind : {"none", "gaussian", "poisson"}
        ``gaussian``: additive white noise with variance ``var(proj) / snr``.
        ``poisson``: each tilt is scaled so that its mean is ``dose`` electrons per
        pixel, Poisson counts are drawn, and the result is scaled back.
    seed : int

    Returns
    -------
    ndarray float32
    """
    rng = np.random.default_rng(seed)
    if kind == "none":
        return proj.astype(np.float32, copy=True)
    if kind == "gaussian":
        if not snr or snr <= 0:
            raise ValueError(f"gaussian noise needs snr > 0, got {snr}")
        sigma = np.sqrt(np.var(proj) / snr)
        return (proj + rng.normal(0.0, sigma, proj.shape)).astype(np.float32)
    if kind == "poisson":
        if not dose or dose <= 0:
            raise ValueError(f"poisson noise needs dose > 0, got {dose}")
        mean = proj.mean(axis=(1, 2), keepdims=True)
        scale = dose / np.where(mean > 0, mean, 1.0)
        return (rng.poisson(np.clip(proj, 0, None) * scale) / scale).astype(np.float32)
    raise ValueError(f"unknown noise kind {kind!r}")


def normalise(stack: np.ndarray) -> np.ndarray:
    """Min–max normalise a whole tilt stack to [0, 1] (as the CN paper does)."""
    lo, hi = float(stack.min()), float(stack.max())
    if hi <= lo:
        return np.zeros_like(stack, dtype=np.float32)
    return ((stack - lo) / (hi - lo)).astype(np.float32)


def simulate_tiltseries(vol: np.ndarray, angles_deg, *, oversampling: int = 3,
                        step: float = 0.5, noise: dict | None = None,
                        normalise_to_unit: bool = True, seed: int = 0) -> np.ndarray:
    """Project, add noise and normalise: the tilt series of the pipeline.

    Returns
    -------
    ndarray float32 ``[tilt, y, x]``
    """
    proj = simulate_projections(vol, angles_deg, oversampling=oversampling, step=step)
    noise = dict(noise or {})
    proj = add_noise(proj, kind=noise.pop("kind", "none"), seed=seed, **noise)
    return normalise(proj) if normalise_to_unit else proj


def load_measured(stack_path, tlt_path, shape, subset: str = "all"):
    """A user's measured tilt series, checked, optionally split into even/odd tilts.

    Parameters
    ----------
    stack_path, tlt_path : path-like
        MRC stack ``[tilt, y, x]`` and its IMOD ``.tlt``.
    shape : [nz, ny, nx]
        The configured reconstruction size; ny and nx must match the stack.
    subset : {"all", "even", "odd"}
        All tilts, or every other tilt in order of angle (for an even/odd FSC).

    Returns
    -------
    stack (float32), angles (degrees), pixel size (Å)
    """
    from .io import InputError, read_tiltseries

    stack, angles, pixel = read_tiltseries(stack_path, tlt_path)
    if tuple(stack.shape[1:]) != tuple(shape[1:]):
        raise InputError(f"{stack_path}: stack (y, x) = {stack.shape[1:]} does not match the "
                         f"configured shape (ny, nx) = {tuple(shape[1:])}")
    if subset != "all":
        order = np.argsort(angles, kind="stable")
        keep = np.sort(order[{"even": 0, "odd": 1}[subset]::2])
        if keep.size < 2:
            raise InputError(f"{tlt_path}: too few tilts to split into even/odd halves")
        stack, angles = stack[keep], angles[keep]
    return stack, angles, pixel
