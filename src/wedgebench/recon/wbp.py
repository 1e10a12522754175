"""IMOD-style weighted back-projection (R-weighted filtered back-projection).

A re-implementation of what IMOD's ``tilt`` does for a single-axis tilt series
with the settings eTomo writes (``RADIAL 0.35 0.035``, ``FalloffIsTrueSigma 1``,
default ``DENSWEIGHT``), following ``radialWeights``/``taperEndToStart`` of
IMOD's ``tilt.f90``:

1. **Padding and taper.** Each projection line (a row of constant y) is padded
   to ``n_pad`` = the next power of two ≥ ``pad_factor · nx``. As in IMOD's
   ``taperEndToStart`` the padding is filled with a linear ramp from the mean
   of the last three pixels to the mean of the first three, so that the
   periodic line the FFT sees has no jump.
2. **Radial (R-) weighting** along the line, frequency ``f`` in cycles/pixel
   (``f = k / n_pad``):

   * ``filter="imod"``: ``H(f) = f`` up to ``cutoff``, then a Gaussian fall-off
     ``H(cutoff) · exp(−(f − cutoff)² / (2 falloff²))`` (``falloff`` is a true
     σ, as with ``FalloffIsTrueSigma 1``). At DC ``H(0) = 0.2 / n_pad``: IMOD
     sets the weight of frequency index 0 to 0.2 of one frequency step, "what
     Kak and Slaney's weighting function gives at 0".
   * ``filter="ramp"``: the plain ramp of Kak & Slaney (Ram-Lak): the DFT of
     the sampled band-limited ramp kernel ``h[0] = 1/4``, ``h[n odd] =
     −1/(πn)²``, ``h[n even] = 0`` on the padded, circular line. It equals
     ``|f|`` except for a small positive DC term; ASTRA's FBP uses the same
     filter, which is what ``benchmarks/bench_wbp_astra.py`` compares with.
   * ``fake_sirt_iterations = N > 0`` multiplies the ramp part by IMOD's
     SIRT-like factor ``1 − (1 − α/f)^(N' + 0.3)`` for ``f ≥ α``, ``α =
     0.00195``, with IMOD's empirical iteration mapping ``N' = N`` (N ≤ 15),
     ``15 + 0.8 (N − 15)`` (15 < N ≤ 30), ``27 + 0.6 (N − 30)`` (N > 30). For
     ``filter="imod"`` the Gaussian tail continues from the modified value at
     the cutoff, as in IMOD.
3. **Scaling.** Each filtered line is multiplied by the angular interval of
   its tilt, ``Δθ_i`` in radians, and the lines are back-projected with linear
   interpolation (:meth:`wedgebench.projector.Projector.adjoint`, the exact
   adjoint of the projector every reconstruction uses). This is the discrete
   inversion formula ``f(x, z) = ∫₀^π (p_θ ∗ h)(x cosθ − z sinθ) dθ`` with
   ``ĥ(f) = |f|``: a full, evenly spaced acquisition (``Δθ = π/N``; IMOD's
   ``1/N`` scaling up to a constant) returns the object's amplitude, and a
   limited range returns the amplitude of the Fourier components it sampled.
   ``Δθ_i`` is IMOD's tilt-density weighting (``DENSWEIGHT`` with its default
   two neighbours, weights 1/(j − ½)): a weighted mean of the intervals to the
   neighbouring tilts, which equals the step for evenly spaced tilts.

Geometry and output: a point at centred coordinates (xc, zc) projects to
``u = xc·cosθ − zc·sinθ`` (see :mod:`wedgebench.geometry`); the output is a
float32 volume ``[thickness, ny, nx]`` in the ground truth's axes, origin and
handedness, its z centre at the tilt axis.

Intensity: the reconstruction's scale and offset are whatever the algorithm
gives (no fit to any ground truth); the metrics normalise intensities.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import fft as sfft

from wedgebench.io import InputError
from wedgebench.projector import Projector

FAKE_SIRT_ALPHA = 0.00195


def fft_workers() -> int:
    """Threads for SciPy's FFTs: the job's (``OMP_NUM_THREADS``, which Snakemake and
    ``runlog.start`` set to its threads), else every CPU. (The result does not depend on
    it; torch is not imported for it.)"""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return os.cpu_count() or 1
FAKE_SIRT_MATCH_ADD = 0.3
DC_WEIGHT_STEPS = 0.2


def check_inputs(stack, angles_deg, thickness, section: str):
    """Validate a tilt series and its angles; return float32 stack, float64 angles.

    Raises
    ------
    InputError
        With the offending argument (and config section) in the message.
    """
    stack = np.asarray(stack)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if stack.ndim != 3:
        raise InputError(f"{section}: tilt series must be 3-D [tilt, y, x], got shape "
                         f"{stack.shape}")
    if stack.shape[0] != angles.size:
        raise InputError(f"{section}: tilt series has {stack.shape[0]} images but "
                         f"{angles.size} tilt angles were given")
    if min(stack.shape) < 1 or stack.shape[2] < 2:
        raise InputError(f"{section}: tilt series shape {stack.shape} is too small")
    if not np.all(np.isfinite(angles)) or np.any(np.abs(angles) > 90):
        raise InputError(f"{section}: tilt angles must be finite and within ±90°, got "
                         f"{angles.min():g}..{angles.max():g}")
    if not np.all(np.isfinite(stack)):
        raise InputError(f"{section}: tilt series contains NaN/Inf")
    if int(thickness) != thickness or int(thickness) < 1:
        raise InputError(f"{section}: thickness must be a positive integer, got {thickness!r}")
    return np.ascontiguousarray(stack, np.float32), angles


def angle_weights(angles_deg) -> np.ndarray:
    """Angular interval Δθ (radians) that each tilt represents.

    IMOD's tilt-density weighting with its defaults (two neighbours on each
    side, weights ``1/(j − ½)``): the weighted mean of the available intervals
    ``θ_{i+j} − θ_{i+j−1}`` and ``θ_{i−j+1} − θ_{i−j}``, ``j = 1, 2``, computed on
    the sorted angles. Evenly spaced tilts all get the step; a single tilt
    gets π.

    Parameters
    ----------
    angles_deg : array of float, in acquisition order

    Returns
    -------
    ndarray float64, same order as ``angles_deg``
    """
    angles = np.asarray(angles_deg, np.float64).ravel()
    n = angles.size
    if n < 2:
        return np.full(n, np.pi)
    order = np.argsort(angles, kind="stable")
    a = np.deg2rad(angles[order])
    out = np.empty(n)
    wts = [1.0 / (j - 0.5) for j in (1, 2)]
    for i in range(n):
        s = w = 0.0
        for j, wj in zip((1, 2), wts):
            if i - j >= 0:
                s += wj * (a[i - j + 1] - a[i - j])
                w += wj
            if i + j <= n - 1:
                s += wj * (a[i + j] - a[i + j - 1])
                w += wj
        out[i] = s / w
    res = np.empty(n)
    res[order] = out
    return res


def padded_length(nx: int, pad_factor: float) -> int:
    """Next power of two ≥ ``pad_factor · nx``."""
    return int(2 ** int(np.ceil(np.log2(max(2.0, pad_factor * nx)))))


def _fake_sirt_factor(f: np.ndarray, iterations: int) -> np.ndarray:
    n = float(iterations)
    if iterations > 30:
        n = 27 + 0.6 * (iterations - 30)
    elif iterations > 15:
        n = 15 + 0.8 * (iterations - 15)
    out = np.ones_like(f)
    use = f >= FAKE_SIRT_ALPHA
    out[use] = 1.0 - (1.0 - FAKE_SIRT_ALPHA / f[use]) ** (n + FAKE_SIRT_MATCH_ADD)
    return out


def radial_filter(n_pad: int, filter: str = "imod", cutoff: float = 0.35,
                  falloff: float = 0.035, fake_sirt_iterations: int = 0) -> np.ndarray:
    """The R-weighting filter on the ``rfft`` frequencies of a padded line.

    Parameters
    ----------
    n_pad : int
        Padded line length.
    filter : {"imod", "ramp"}
        See the module docstring.
    cutoff, falloff : float
        Start of the Gaussian fall-off and its σ, cycles/pixel (``"imod"`` only).
    fake_sirt_iterations : int
        0 = off; else IMOD's SIRT-like modification.

    Returns
    -------
    ndarray float64, length ``n_pad // 2 + 1``, in units of cycles/pixel.
    """
    f = np.arange(n_pad // 2 + 1) / n_pad
    if filter == "ramp":
        idx = np.arange(n_pad)
        j = np.minimum(idx, n_pad - idx).astype(np.float64)
        h = np.zeros(n_pad)
        odd = (j % 2) == 1
        h[odd] = -1.0 / (np.pi * j[odd]) ** 2
        h[0] = 0.25
        base = np.fft.rfft(h).real
    elif filter == "imod":
        base = f.copy()
        base[0] = DC_WEIGHT_STEPS / n_pad
    else:
        raise InputError(f"imod_wbp.filter: unknown filter {filter!r} (use 'imod' or 'ramp')")
    if fake_sirt_iterations:
        sirt = _fake_sirt_factor(f, int(fake_sirt_iterations))
        sirt[0] = 1.0
        base = base * sirt
    if filter == "imod":
        k_c = min(int(np.floor(cutoff * n_pad + 1e-9)), f.size - 1)
        tail = f > f[k_c]
        base[tail] = base[k_c] * np.exp(-0.5 * ((f[tail] - f[k_c]) / falloff) ** 2)
    return base


def pad_lines(stack: np.ndarray, n_pad: int) -> np.ndarray:
    """Pad the last axis to ``n_pad`` with IMOD's end-to-start linear taper."""
    nx = stack.shape[-1]
    npad = n_pad - nx
    out = np.empty(stack.shape[:-1] + (n_pad,), np.float32)
    out[..., :nx] = stack
    if npad > 0:
        k = min(3, nx)
        start = stack[..., :k].mean(-1, keepdims=True)
        end = stack[..., nx - k:].mean(-1, keepdims=True)
        frac = (np.arange(1, npad + 1) / (npad + 1.0)).astype(np.float32)
        out[..., nx:] = frac * start + (1.0 - frac) * end
    return out


def filter_projections(stack: np.ndarray, angles_deg, filter: str = "imod",
                       cutoff: float = 0.35, falloff: float = 0.035,
                       pad_factor: float = 2.0, fake_sirt_iterations: int = 0,
                       workers: int | None = None) -> np.ndarray:
    """R-weight every line of ``stack[tilt, y, x]`` and scale it by its Δθ (radians).

    Returns
    -------
    ndarray float32 ``[tilt, y, x]``: the lines ready for back-projection.
    """
    nt, ny, nx = stack.shape
    n_pad = padded_length(nx, pad_factor)
    h = radial_filter(n_pad, filter, cutoff, falloff, fake_sirt_iterations)
    w = angle_weights(angles_deg)
    filt = (w[:, None, None] * h[None, None, :]).astype(np.complex64)
    workers = workers or fft_workers()
    spec = sfft.rfft(pad_lines(stack, n_pad), axis=-1, workers=workers)
    spec *= filt
    return sfft.irfft(spec, n=n_pad, axis=-1, workers=workers)[..., :nx].astype(np.float32)


def _check_options(filter, cutoff, falloff, pad_factor, fake_sirt_iterations):
    if filter not in ("imod", "ramp"):
        raise InputError(f"imod_wbp.filter: unknown filter {filter!r} (use 'imod' or 'ramp')")
    if not 0 < cutoff <= 0.5:
        raise InputError(f"imod_wbp.cutoff: must be in (0, 0.5] cycles/pixel, got {cutoff}")
    if not 0 < falloff <= 0.5:
        raise InputError(f"imod_wbp.falloff: must be in (0, 0.5] cycles/pixel, got {falloff}")
    if not 1 <= pad_factor <= 8:
        raise InputError(f"imod_wbp.pad_factor: must be in [1, 8], got {pad_factor}")
    if int(fake_sirt_iterations) != fake_sirt_iterations or fake_sirt_iterations < 0:
        raise InputError("imod_wbp.fake_sirt_iterations: must be an integer >= 0, got "
                         f"{fake_sirt_iterations!r}")


def reconstruct(stack, angles_deg, thickness: int, *, filter: str = "imod",
                cutoff: float = 0.35, falloff: float = 0.035, pad_factor: float = 2.0,
                fake_sirt_iterations: int = 0,
                projector: Projector | None = None) -> np.ndarray:
    """Weighted back-projection of a single-axis tilt series.

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
        Aligned tilt series, tilt axis along y through the centre of x.
    angles_deg : array of float
        Tilt angles (degrees), one per image, any order.
    thickness : int
        z size of the output volume.
    filter : {"imod", "ramp"}
        IMOD's radial filter or the plain Ram-Lak ramp.
    cutoff, falloff : float
        IMOD RADIAL parameters (cycles/pixel; ``falloff`` is the Gaussian σ).
    pad_factor : float
        Lines are padded to the next power of two ≥ ``pad_factor · nx``.
    fake_sirt_iterations : int
        IMOD's ``FakeSIRTiterations`` (0 = plain R-weighting).
    projector : Projector, optional
        A projector for ``(thickness, nx, angles)`` to reuse across calls (it
        is built when omitted).

    Returns
    -------
    ndarray float32 ``[thickness, y, x]``
    """
    stack, angles = check_inputs(stack, angles_deg, thickness, "imod_wbp")
    _check_options(filter, cutoff, falloff, pad_factor, fake_sirt_iterations)
    nt, ny, nx = stack.shape
    lines = filter_projections(stack, angles, filter, cutoff, falloff, pad_factor,
                               int(fake_sirt_iterations))
    if projector is None:
        projector = Projector(int(thickness), nx, angles, n_det=nx)
    elif (projector.nz, projector.nx, projector.n_det) != (int(thickness), nx, nx) or \
            not np.allclose(projector.angles, angles):
        raise InputError("imod_wbp: the given projector does not match the tilt series "
                         f"(thickness {thickness}, nx {nx}, {nt} angles)")
    import torch

    with torch.no_grad():
        vol = projector.adjoint(torch.from_numpy(lines).to(projector.device))
    return vol.cpu().numpy().astype(np.float32, copy=True)
