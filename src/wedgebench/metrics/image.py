"""Voxel-based image-quality metrics: PSNR, SSIM and pixel-domain VIF.

All functions take the ground truth first and the (already normalised, see
:mod:`wedgebench.metrics.normalise`) reconstruction second.

Slicing convention
------------------
The 2-D ("per-slice") variants work on **y-slices**, ``vol[:, j, :]``, i.e. the
[z, x] planes perpendicular to the tilt axis. That is the convention of the paper's
code for PSNR and SSIM, and it is the plane in which the missing wedge lives
(the wedge is in the (kx, kz) plane), so the elongation and streak artefacts
appear in these slices. ``axis`` selects another slicing where offered.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wedgebench.io import InputError
from wedgebench.metrics.normalise import check_pair

#: Window sizes of the four VIFp scales (finest first); sigma = N / 5.
VIF_WINDOWS = (17, 9, 5, 3)

_EPS = 1e-10


# ---------------------------------------------------------------------------- PSNR


def psnr(gt, rec, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB over the whole array.

    ``10·log10(data_range² / MSE)``, identical to
    :func:`skimage.metrics.peak_signal_noise_ratio`. ``inf`` when the arrays are equal.
    """
    gt, rec = check_pair(gt, rec, ndim=None)
    if not data_range > 0:
        raise InputError(f"data_range must be > 0, got {data_range}")
    mse = float(np.mean((gt - rec) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def psnr_slices(gt, rec, axis: int = 1) -> float:
    """The paper's PSNR: mean over 2-D slices, each with its ground-truth maximum as range.

    Slices whose ground-truth maximum is not positive (empty slices) are skipped;
    NaN if every slice is skipped.
    """
    gt, rec = check_pair(gt, rec, ndim=3)
    g = np.moveaxis(gt, axis, 0).reshape(gt.shape[axis], -1)
    r = np.moveaxis(rec, axis, 0).reshape(gt.shape[axis], -1)
    peak = g.max(axis=1)
    mse = np.mean((g - r) ** 2, axis=1)
    keep = peak > 0
    if not np.any(keep):
        return float("nan")
    with np.errstate(divide="ignore"):
        vals = 10 * np.log10(peak[keep] ** 2 / mse[keep])
    return float(np.mean(vals))


# ---------------------------------------------------------------------------- SSIM


def ssim(gt, rec, data_range: float) -> float:
    """Structural similarity of two arrays with a 7-voxel (7×7 or 7³) uniform window.

    :func:`skimage.metrics.structural_similarity` with ``channel_axis=None``: on a
    3-D array this is true 3-D SSIM. Every dimension must be at least 7.
    """
    from skimage.metrics import structural_similarity

    gt, rec = check_pair(gt, rec, ndim=None)
    if min(gt.shape) < 7:
        raise InputError(f"SSIM needs every dimension >= 7, got shape {gt.shape}")
    if not data_range > 0:
        raise InputError(f"data_range must be > 0, got {data_range}")
    return float(structural_similarity(gt, rec, data_range=data_range, channel_axis=None,
                                       win_size=7))


def ssim_slices(gt, rec, data_range: float, axis: int = 1) -> float:
    """The paper's SSIM: mean of 2-D SSIMs (7×7 window) over slices along ``axis``."""
    gt, rec = check_pair(gt, rec, ndim=3)
    g, r = np.moveaxis(gt, axis, 0), np.moveaxis(rec, axis, 0)
    return float(np.mean([ssim(a, b, data_range) for a, b in zip(g, r)]))


# ----------------------------------------------------------------------------- VIF


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
        num += np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)), axis=(-2, -1))
        den += np.sum(np.log10(1 + s1 / sigma_nsq), axis=(-2, -1))
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
        sigma_nsq: float = 2.0, flat: float = 1.0 / 12.0) -> float:
    """VIFp of a 2-D image pair, or the mean VIFp over the 2-D slices of a volume pair.

    Both arrays are first mapped with the same affine function that sends the ground
    truth's ``[min, min + data_range]`` onto [0, 255] (the scale ``sigma_nsq = 2``
    is meant for), one map for the whole volume so that slices keep their relative
    contrast. Volumes are cut into slices along ``axis`` (default 1: y-slices, the
    [z, x] planes; see the module docstring) and VIF is pooled over them (sum of the
    numerators over sum of the denominators, as VIF pools over pixels and scales):
    a per-slice mean would be dominated by nearly empty slices, whose tiny
    denominators make their ratio explode.

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
    """
    gt, rec = check_pair(gt, rec, ndim=None)
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
    per_chunk = max(1, int(4e6 // max(1, g[0].size)))  # bound the filter memory
    nums, dens = [], []
    for s in range(0, g.shape[0], per_chunk):
        n, d = _vifp_terms((g[s:s + per_chunk] - lo) * scale,
                           (r[s:s + per_chunk] - lo) * scale, sigma_nsq, flat)
        nums.append(n)
        dens.append(d)
    num, den = float(np.sum(np.concatenate(nums))), float(np.sum(np.concatenate(dens)))
    return num / den if den > 0 else float("nan")
