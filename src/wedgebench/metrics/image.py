"""Voxel-based image-quality metrics: PSNR, SSIM and pixel-domain VIF.

All functions take the ground truth first and the (already normalised, see
:mod:`wedgebench.metrics.normalise`) reconstruction second.

Two families
------------
* :func:`psnr`, :func:`ssim`, :func:`vif` — the ``fair`` (and ``minmax``) convention:
  PSNR over the whole volume with the ground truth's range, true 3-D SSIM, VIFp pooled
  over 2-D y-slices on a 0–255 scale with σ_n² = 2.
* :func:`psnr_paper`, :func:`ssim_paper`, :func:`vif_paper` — the authors' metric code
  of the coordinate-network paper (see ``reference.md`` §1): PSNR per y-slice with each
  slice's ground-truth maximum as range, 3-D SSIM with the reconstruction's maximum as
  range, and 3-D VIFp with σ_n² = the mean of the normalised reconstruction.

Memory
------
Volumes are used in their own precision (float32 stays float32) and converted to
float64 one slab at a time (:mod:`wedgebench.metrics.slabs`): SSIM works on slabs along
y with a halo of the window radius, VIF (paper) on slabs along y with a halo of the
Gaussian radius, PSNR on chunks. The results equal the whole-volume computation up to
the order of floating-point summation.

Slicing convention
------------------
The 2-D ("per-slice") variants work on **y-slices**, ``vol[:, j, :]``, i.e. the
[z, x] planes perpendicular to the tilt axis. That is the convention of the paper's
code for PSNR, and it is the plane in which the missing wedge lives (the wedge is in
the (kx, kz) plane), so the elongation and streak artefacts appear in these slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wedgebench.io import InputError
from wedgebench.metrics.normalise import check_pair
from wedgebench.metrics.slabs import (SLAB_VOXELS, flat_chunks, halo_slabs, mean_std,
                                      planes_per_slab)

#: Window sizes of the four VIFp scales (finest first); sigma = N / 5.
VIF_WINDOWS = (17, 9, 5, 3)

#: SSIM window (voxels per side) and constants K1, K2 (Wang et al. 2004, skimage).
SSIM_WINDOW = 7
SSIM_K = (0.01, 0.03)

#: Gaussian filters of the paper's VIF extend to this many standard deviations.
GAUSS_TRUNCATE = 4.0

_EPS = 1e-10


# ---------------------------------------------------------------------------- PSNR


def psnr(gt, rec, data_range: float, slab_voxels: int | None = SLAB_VOXELS) -> float:
    """Peak signal-to-noise ratio in dB over the whole array.

    ``10·log10(data_range² / MSE)``, identical to
    :func:`skimage.metrics.peak_signal_noise_ratio`. ``inf`` when the arrays are equal.
    The MSE is accumulated in float64 chunks of ``slab_voxels``.
    """
    gt, rec = check_pair(gt, rec, ndim=None, dtype=None)
    if not data_range > 0:
        raise InputError(f"data_range must be > 0, got {data_range}")
    sse = sum(float(np.dot(g - r, g - r))
              for g, r in zip(flat_chunks(gt, slab_voxels), flat_chunks(rec, slab_voxels)))
    mse = sse / gt.size
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def _slice_peak_mse(gt, rec, slab_voxels) -> tuple[np.ndarray, np.ndarray]:
    """Per y-slice (axis 1) ground-truth maximum and mean squared error, in float64."""
    nz, ny, nx = gt.shape
    step = planes_per_slab(nz * nx, ny, slab_voxels)
    peak, mse = np.empty(ny), np.empty(ny)
    for j0, j1, _, _ in halo_slabs(0, ny, step, 0, ny):
        g = np.asarray(gt[:, j0:j1], dtype=np.float64)
        d = g - np.asarray(rec[:, j0:j1], dtype=np.float64)
        peak[j0:j1] = g.max(axis=(0, 2))
        mse[j0:j1] = np.mean(d * d, axis=(0, 2))
    return peak, mse


def psnr_paper(gt, rec, slab_voxels: int | None = SLAB_VOXELS) -> float:
    """The paper's PSNR: a mean over y-slices of per-slice PSNRs.

    Slice ``j`` gets skimage's ``10·log10(peak_j² / MSE_j)`` with ``peak_j`` the maximum
    of that ground-truth slice as ``data_range``; an infinite value (a perfect slice,
    or an empty one with ``peak_j = 0``) counts as 0, and the result is the mean over
    the slices whose PSNR is > 0 (so perfect, empty, undefined and worse-than-peak
    slices are all left out). NaN if no slice remains.

    Parameters
    ----------
    gt, rec : ndarray, 3-D ``[z, y, x]``
        The pair normalised with the ``"paper"`` convention.
    """
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    peak, mse = _slice_peak_mse(gt, rec, slab_voxels)
    with np.errstate(divide="ignore", invalid="ignore"):
        vals = 10 * np.log10(peak ** 2 / mse)
    vals[np.isinf(vals)] = 0.0
    keep = vals > 0
    return float(np.mean(vals[keep])) if np.any(keep) else float("nan")


# ---------------------------------------------------------------------------- SSIM


def _ssim_map(x: np.ndarray, y: np.ndarray, data_range: float, win: int) -> np.ndarray:
    """Local SSIM of two float64 blocks (uniform ``win``-voxel window, sample covariance).

    The formula of :func:`skimage.metrics.structural_similarity` with its defaults;
    values within ``win // 2`` of the block's faces are affected by the filter's border
    handling and must be cropped by the caller.
    """
    filt = lambda v: ndimage.uniform_filter(v, size=win)  # noqa: E731
    n = win ** x.ndim
    cov_norm = n / (n - 1)
    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def ssim(gt, rec, data_range: float, slab_voxels: int | None = SLAB_VOXELS) -> float:
    """Structural similarity with a 7-voxel (7×7 or 7³) uniform window.

    Equal to :func:`skimage.metrics.structural_similarity` with ``channel_axis=None``
    (true 3-D SSIM on a 3-D array): the mean of the local SSIM over all voxels at least
    3 voxels from every face. 3-D volumes are processed in slabs along y (axis 1),
    each read with a halo of 3 slices, so only one slab is ever held in float64.
    Every dimension must be at least 7.
    """
    gt, rec = check_pair(gt, rec, ndim=None, dtype=None)
    win = SSIM_WINDOW
    if min(gt.shape) < win:
        raise InputError(f"SSIM needs every dimension >= {win}, got shape {gt.shape}")
    if not data_range > 0:
        raise InputError(f"data_range must be > 0, got {data_range}")
    pad = win // 2
    if gt.ndim != 3:
        s = _ssim_map(gt.astype(np.float64), rec.astype(np.float64), data_range, win)
        return float(s[(slice(pad, -pad),) * gt.ndim].mean(dtype=np.float64))
    nz, ny, nx = gt.shape
    step = planes_per_slab(nz * nx, ny - 2 * pad, slab_voxels)
    total, count = 0.0, 0
    for y0, y1, lo, hi in halo_slabs(pad, ny - pad, step, pad, ny):
        s = _ssim_map(np.asarray(gt[:, lo:hi], np.float64), np.asarray(rec[:, lo:hi], np.float64),
                      data_range, win)
        inner = s[pad:-pad, y0 - lo:y1 - lo, pad:-pad]
        total += float(inner.sum(dtype=np.float64))
        count += inner.size
    return total / count


def ssim_slices(gt, rec, data_range: float, axis: int = 1) -> float:
    """Mean of 2-D SSIMs (7×7 window) over the slices of a volume along ``axis``."""
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    g, r = np.moveaxis(gt, axis, 0), np.moveaxis(rec, axis, 0)
    return float(np.mean([ssim(a, b, data_range) for a, b in zip(g, r)]))


def ssim_paper(gt, rec, slab_voxels: int | None = SLAB_VOXELS) -> float:
    """The paper's SSIM: 3-D SSIM of the whole volume, range = max of the reconstruction.

    ``data_range`` is the maximum of the normalised reconstruction (not a range of the
    ground truth). When a dimension is < 7 the 3-D window does not fit and the mean of
    2-D y-slice SSIMs is returned instead, as the authors' code does. NaN when the
    reconstruction's maximum is not positive (no meaningful range).

    Parameters
    ----------
    gt, rec : ndarray, 3-D ``[z, y, x]``
        The pair normalised with the ``"paper"`` convention.
    """
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    data_range = float(rec.max())
    if not data_range > 0:
        return float("nan")
    if min(gt.shape) < SSIM_WINDOW:
        return ssim_slices(gt, rec, data_range, axis=1)
    return ssim(gt, rec, data_range, slab_voxels)


# ----------------------------------------------------------------------------- VIF


def _vif_information(s1, s2, s12, sigma_nsq: float, flat: float = _EPS, axis=None):
    """Numerator and denominator sums of VIFp from local (co)variances.

    Sheikh & Bovik's rules: negative variances are set to 0; the gain is
    ``g = σ₁₂ / (σ₁² + eps)`` and the distortion variance ``s_v² = σ₂² − g·σ₁₂``;
    where ``σ₁² < flat``: ``g = 0, s_v² = σ₂², σ₁² = 0``; where ``σ₂² < flat``:
    ``g = 0, s_v² = 0``; where ``g < 0``: ``s_v² = σ₂², g = 0``; ``s_v² ≤ eps → eps``
    (eps = 1e-10). Returns ``Σ log10(1 + g²σ₁²/(s_v² + σ_n²))`` and
    ``Σ log10(1 + σ₁²/σ_n²)`` over ``axis``.
    """
    s1 = np.maximum(s1, 0)
    s2 = np.maximum(s2, 0)
    g = s12 / (s1 + _EPS)
    sv = s2 - g * s12
    flat1 = s1 < flat
    g = np.where(flat1, 0, g)
    sv = np.where(flat1, s2, sv)
    s1 = np.where(flat1, 0, s1)
    flat2 = s2 < flat
    g = np.where(flat2, 0, g)
    sv = np.where(flat2, 0, sv)
    neg = g < 0
    sv = np.where(neg, s2, sv)
    g = np.where(neg, 0, g)
    sv = np.maximum(sv, _EPS)
    num = np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)), axis=axis)
    den = np.sum(np.log10(1 + s1 / sigma_nsq), axis=axis)
    return num, den


def _gauss1d(n: int) -> np.ndarray:
    """1-D factor of the normalised n×n Gaussian window with sigma n/5.

    The 2-D window of the reference implementations, ``exp(-(x²+y²)/2σ²)`` normalised
    to unit sum, is the outer product of this vector with itself (none of its entries
    falls below the machine-epsilon cut-off those implementations apply).
    """
    x = np.arange(n) - n // 2
    g = np.exp(-(x ** 2) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation of the last two axes, keeping only the 'valid' part.

    Like MATLAB's ``filter2(w⊗w, img, 'valid')``: the output has ``n − len(w) + 1``
    entries along each filtered axis, and is empty when the image is smaller than
    the window.
    """
    h = w.size // 2
    ny, nx = img.shape[-2:]
    if ny < w.size or nx < w.size:
        return img[..., :0, :0]
    out = ndimage.correlate1d(img, w, axis=-2, mode="constant")[..., h:ny - h, :]
    return ndimage.correlate1d(out, w, axis=-1, mode="constant")[..., h:nx - h]


def _vifp_terms(gt: np.ndarray, rec: np.ndarray, sigma_nsq: float, flat: float = _EPS):
    """Numerator and denominator sums of VIFp for a batch of images ``[..., H, W]``.

    Local variances below ``flat`` count as a flat (information-free) region, as the
    reference code does with 1e-10 for 8-bit images.
    """
    num = np.zeros(gt.shape[:-2])
    den = np.zeros(gt.shape[:-2])
    for scale, n in enumerate(VIF_WINDOWS):
        w = _gauss1d(n)
        if scale > 0:
            gt = _filter_valid(gt, w)[..., ::2, ::2]
            rec = _filter_valid(rec, w)[..., ::2, ::2]
        mu1, mu2 = _filter_valid(gt, w), _filter_valid(rec, w)
        if mu1.shape[-1] == 0 or mu1.shape[-2] == 0:
            break  # image smaller than the window: this and coarser scales are empty
        s1 = _filter_valid(gt * gt, w) - mu1 * mu1
        s2 = _filter_valid(rec * rec, w) - mu2 * mu2
        s12 = _filter_valid(gt * rec, w) - mu1 * mu2
        n_, d_ = _vif_information(s1, s2, s12, sigma_nsq, flat, axis=(-2, -1))
        num += n_
        den += d_
    return num, den


def vifp(gt, rec, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain multiscale visual information fidelity (VIFp) of two 2-D images.

    Sheikh & Bovik's ``vifp_mscale``: four scales with Gaussian windows of 17, 9, 5
    and 3 pixels (sigma = N/5); before scales 2–4 both images are filtered with that
    scale's window ('valid' part) and subsampled by 2; the visual-noise variance is
    ``sigma_nsq``. The images are used as given — ``sigma_nsq = 2`` assumes
    intensities on a 0–255 scale (see :func:`vif`).

    Equal to ``sewar.full_ref.vifp`` whenever that runs (both sides ≥ 41 pixels,
    all four scales non-empty). For smaller images the coarse scales whose 'valid'
    region is empty contribute nothing, as in the original MATLAB code (its
    ``filter2(..., 'valid')`` returns an empty matrix); sewar instead fails or, for
    square images, silently swaps image and window. NaN when the ground truth has no
    variance at any scale (denominator 0).
    """
    gt, rec = check_pair(gt, rec, ndim=2)
    num, den = _vifp_terms(gt, rec, sigma_nsq)
    return float(num / den) if den > 0 else float("nan")


def vif(gt, rec, data_range: float | None = None, axis: int = 1,
        sigma_nsq: float = 2.0, flat: float = 1.0 / 12.0,
        slab_voxels: int | None = SLAB_VOXELS) -> float:
    """VIFp of a 2-D image pair, or VIFp pooled over the 2-D slices of a volume pair.

    The ``fair`` convention's VIF. Both arrays are first mapped with the same affine
    function that sends the ground truth's ``[min, min + data_range]`` onto [0, 255]
    (the scale ``sigma_nsq = 2`` is meant for), one map for the whole volume so that
    slices keep their relative contrast. Volumes are cut into slices along ``axis``
    (default 1: y-slices, the [z, x] planes; see the module docstring) and VIF is pooled
    over them (sum of the numerators over sum of the denominators, as VIF pools over
    pixels and scales): a per-slice mean would be dominated by nearly empty slices,
    whose tiny denominators make their ratio explode.

    Simulated volumes are floats, so background that an 8-bit image would hold exactly
    constant has tiny non-zero local variance; there the VIFp gain ``g`` is enormous
    and any reconstruction artefact counts as "information". Variances below ``flat``
    (default 1/12, the variance of one grey level's quantisation noise on the 0–255
    scale) are therefore treated as flat, like the reference code's 1e-10 for 8-bit
    images. 2-D input keeps the reference behaviour (equal to sewar).

    With fewer than 41 voxels along a slice dimension the coarsest scales drop out
    (see :func:`vifp`); e.g. with nz = 32 only the 17- and 9-pixel scales count.

    Parameters
    ----------
    gt, rec : ndarray, 2-D or 3-D, same shape
    data_range : float, optional
        Defaults to ``gt.max() − gt.min()``.
    axis : int
        Slicing axis for 3-D input.
    sigma_nsq : float
        Visual-noise variance on the 0–255 scale.
    flat : float
        Variance threshold of flat regions (3-D input).
    slab_voxels : int or None
        Voxels converted to float64 at a time (3-D input).
    """
    gt, rec = check_pair(gt, rec, ndim=None, dtype=None)
    if gt.ndim not in (2, 3):
        raise InputError(f"VIF needs 2-D or 3-D arrays, got shape {gt.shape}")
    lo = float(gt.min())
    data_range = float(gt.max()) - lo if data_range is None else float(data_range)
    if not data_range > 0:
        raise InputError(f"data_range must be > 0, got {data_range}")
    scale = 255.0 / data_range
    if gt.ndim == 2:
        return vifp((gt - lo) * scale, (rec - lo) * scale, sigma_nsq)
    g = np.moveaxis(gt, axis, 0)
    r = np.moveaxis(rec, axis, 0)
    step = planes_per_slab(g[0].size, g.shape[0], slab_voxels)
    num = den = 0.0
    for s0, s1, _, _ in halo_slabs(0, g.shape[0], step, 0, g.shape[0]):
        n_, d_ = _vifp_terms((np.asarray(g[s0:s1], np.float64) - lo) * scale,
                             (np.asarray(r[s0:s1], np.float64) - lo) * scale, sigma_nsq, flat)
        num += float(np.sum(n_))
        den += float(np.sum(d_))
    return num / den if den > 0 else float("nan")


# ------------------------------------------------------------------ VIF (paper, 3-D)


def _gauss_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of :func:`scipy.ndimage.gaussian_filter` (truncate 4)."""
    radius = int(GAUSS_TRUNCATE * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 / (float(sigma) ** 2) * x ** 2)
    return w / w.sum()


def _gauss3(block: np.ndarray, w: np.ndarray, inner: slice) -> np.ndarray:
    """3-D Gaussian (``mode='reflect'``) of a y-slab, kept on its ``inner`` y-planes only.

    Separable: along y over the whole slab (halo included), then along z and x on the
    inner planes only. Equal to ``ndimage.gaussian_filter(block, sigma)[:, inner]`` when
    the halo is at least the kernel radius (or reaches the volume's own faces).
    """
    out = ndimage.correlate1d(block, w, axis=1, mode="reflect")[:, inner]
    out = ndimage.correlate1d(out, w, axis=0, mode="reflect")
    return ndimage.correlate1d(out, w, axis=2, mode="reflect")


def _y_slabs(shape, radius: int, slab_voxels, even: bool = False):
    """Halo slabs along y; with ``even`` every slab starts at an even y (for sub-sampling)."""
    nz, ny, nx = shape
    step = planes_per_slab(nz * nx, ny, slab_voxels)
    if even:
        step = max(2, step - step % 2)
    return halo_slabs(0, ny, step, radius, ny)


def _blur_subsample(vol: np.ndarray, sigma: float, slab_voxels) -> np.ndarray:
    """Gaussian-filter a volume (σ) and keep every second voxel along y and x (float64)."""
    w = _gauss_kernel(sigma)
    nz, ny, nx = vol.shape
    out = np.empty((nz, (ny + 1) // 2, (nx + 1) // 2))
    for y0, y1, lo, hi in _y_slabs(vol.shape, w.size // 2, slab_voxels, even=True):
        block = np.asarray(vol[:, lo:hi], dtype=np.float64)
        out[:, y0 // 2:(y1 + 1) // 2] = _gauss3(block, w, slice(y0 - lo, y1 - lo))[:, ::2, ::2]
    return out


def _vif_scale_sums(x: np.ndarray, y: np.ndarray, sigma: float, sigma_nsq: float,
                    slab_voxels) -> tuple[float, float]:
    """VIFp numerator and denominator of one scale of two volumes, slab by slab along y."""
    w = _gauss_kernel(sigma)
    num = den = 0.0
    for y0, y1, lo, hi in _y_slabs(x.shape, w.size // 2, slab_voxels):
        a = np.asarray(x[:, lo:hi], dtype=np.float64)
        b = np.asarray(y[:, lo:hi], dtype=np.float64)
        inner = slice(y0 - lo, y1 - lo)
        mu1, mu2 = _gauss3(a, w, inner), _gauss3(b, w, inner)
        s1 = _gauss3(a * a, w, inner) - mu1 * mu1
        s2 = _gauss3(b * b, w, inner) - mu2 * mu2
        s12 = _gauss3(a * b, w, inner) - mu1 * mu2
        del a, b
        n_, d_ = _vif_information(s1, s2, s12, sigma_nsq)
        num += float(n_)
        den += float(d_)
    return num, den


def vif_paper(gt, rec, slab_voxels: int | None = SLAB_VOXELS) -> float:
    """The paper's VIF: pixel-domain VIFp summed over the 3-D volume, 4 scales.

    At scale s = 1…4 the window is N = 2^(5−s) + 1 (17, 9, 5, 3) and σ = N/5. For
    s > 1 both volumes are first Gaussian-filtered with σ and sub-sampled by 2 along y
    and x (the authors' first two array axes, x and y; z is not sub-sampled). Local
    means, variances and the covariance come from 3-D Gaussian filtering with σ
    (:func:`scipy.ndimage.gaussian_filter` semantics: ``mode='reflect'``, kernel
    truncated at 4σ); the information sums follow Sheikh & Bovik's rules with
    eps = 1e-10 (see :func:`_vif_information`), with the visual-noise variance
    **σ_n² = mean of the normalised reconstruction** (no 0–255 rescaling). The result
    is Σ numerators / Σ denominators over all scales and voxels.

    Computed in slabs along y with a halo of the Gaussian radius (slabs start at even y,
    so sub-sampling is unchanged); the sub-sampled scales are kept in float64 (1/4,
    1/16, 1/64 of the volume's voxels).

    Parameters
    ----------
    gt, rec : ndarray, 3-D ``[z, y, x]``
        The pair normalised with the ``"paper"`` convention.

    Returns
    -------
    float
        NaN when the denominator is 0 (no ground-truth variance) or the
        reconstruction's mean is not positive (σ_n² must be > 0).
    """
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)
    sigma_nsq, _ = mean_std(rec, slab_voxels)
    if not sigma_nsq > 0:
        return float("nan")
    num = den = 0.0
    x, y = gt, rec
    for scale, n in enumerate(VIF_WINDOWS):
        sigma = n / 5.0
        if scale > 0:
            x = _blur_subsample(x, sigma, slab_voxels)
            y = _blur_subsample(y, sigma, slab_voxels)
        n_, d_ = _vif_scale_sums(x, y, sigma, sigma_nsq, slab_voxels)
        num += n_
        den += d_
    return num / den if den > 0 else float("nan")
