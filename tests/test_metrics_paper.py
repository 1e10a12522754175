"""The ``paper`` metric convention against an independent implementation of the authors' code.

The reference functions below are written from the description in reference.md §1
(arrays in the authors' (x, y, z) layout, numpy/scipy/skimage only); they do not call
wedgebench.
"""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wedgebench.geometry import tilt_angles
from wedgebench.metrics import compute_metrics, image_metrics
from wedgebench.metrics.image import psnr_paper, ssim_paper, vif_paper
from wedgebench.metrics.normalise import normalise_pair

# ------------------------------------------------------------ reference (authors' recipe)


def ref_normalise(gt, rec):
    """gt scaled to max 0.1; rec standardised, then given the scaled gt's mean and std."""
    gt = gt * (0.1 / gt.max())
    rec = (rec - rec.mean()) / rec.std()
    return gt, rec * gt.std() + gt.mean()


def ref_psnr(gt, rec):
    """Per y-slice skimage PSNR with the gt slice's max as range; inf -> 0; mean of > 0."""
    vals = []
    for j in range(gt.shape[1]):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = peak_signal_noise_ratio(gt[:, j, :], rec[:, j, :], data_range=gt[:, j, :].max())
        vals.append(0.0 if np.isinf(v) else v)
    vals = np.array(vals)
    return vals[vals > 0].mean()


def ref_ssim(gt, rec):
    """skimage SSIM of the whole 3-D volume, data_range = max of the normalised rec."""
    if min(gt.shape) < 7:
        return np.mean([structural_similarity(gt[:, j, :], rec[:, j, :], data_range=rec.max())
                        for j in range(gt.shape[1])])
    return structural_similarity(gt, rec, data_range=rec.max())


def ref_vif(ref, dist):
    """3-D VIFp, (x, y, z) layout, sub-sampling x and y only, sigma_n^2 = mean(dist)."""
    eps = 1e-10
    sigma_nsq = dist.mean()
    num = den = 0.0
    for s in range(1, 5):
        n = 2 ** (5 - s) + 1
        sd = n / 5.0
        if s > 1:
            ref = ndimage.gaussian_filter(ref, sd)[::2, ::2, :]
            dist = ndimage.gaussian_filter(dist, sd)[::2, ::2, :]
        mu1, mu2 = ndimage.gaussian_filter(ref, sd), ndimage.gaussian_filter(dist, sd)
        s1 = ndimage.gaussian_filter(ref * ref, sd) - mu1 ** 2
        s2 = ndimage.gaussian_filter(dist * dist, sd) - mu2 ** 2
        s12 = ndimage.gaussian_filter(ref * dist, sd) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        i = s1 < eps
        g[i], sv[i], s1[i] = 0, s2[i], 0
        i = s2 < eps
        g[i], sv[i] = 0, 0
        i = g < 0
        sv[i], g[i] = s2[i], 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g ** 2 * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    return num / den


def ref_paper_metrics(gt_zyx, rec_zyx):
    gt, rec = ref_normalise(gt_zyx.astype(np.float64), rec_zyx.astype(np.float64))
    xyz = (2, 1, 0)  # our [z, y, x] -> their (x, y, z)
    return {"psnr": ref_psnr(gt, rec), "ssim": ref_ssim(gt, rec),
            "vif": ref_vif(gt.transpose(xyz), rec.transpose(xyz))}


# ------------------------------------------------------------------------------ tests


def pair(shape, seed=0, empty_slices=2):
    """A positive smooth ground truth with empty y-slices at both ends, and a noisy,
    blurred, rescaled reconstruction."""
    rng = np.random.default_rng(seed)
    gt = np.maximum(ndimage.gaussian_filter(rng.normal(size=shape), 1.5), 0)
    gt[:, :empty_slices] = 0
    gt[:, shape[1] - empty_slices:] = 0
    rec = 3 * ndimage.gaussian_filter(gt, (1.5, 0.5, 0.5)) + 0.02 * rng.normal(size=shape) + 1
    return gt, rec


@pytest.mark.parametrize("shape", [(20, 18, 22), (16, 5, 24)])
def test_paper_metrics_equal_reference(shape):
    gt, rec = pair(shape)
    got = image_metrics(gt, rec, "paper", slab_voxels=None)
    want = ref_paper_metrics(gt, rec)
    for key in ("psnr", "ssim", "vif"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_paper_metrics_in_every_record_equal_reference_slabwise():
    gt, rec = pair((20, 18, 22), seed=1)
    want = ref_paper_metrics(gt, rec)
    for g, r, rel in ((gt, rec, 1e-9), (gt.astype(np.float32), rec.astype(np.float32), 1e-5)):
        for convention in ("fair", "paper"):
            m = compute_metrics(g, r, 5.0, tilt_angles((-60, 60), 2), convention=convention,
                                slab_voxels=300)
            assert set(m["conventions"]) == {"fair", "paper"}
            for key in ("psnr", "ssim", "vif"):
                assert m["conventions"]["paper"][key] == pytest.approx(want[key], rel=rel)
            top = m["conventions"][convention]
            assert (m["psnr"], m["ssim"], m["vif"]) == (top["psnr"], top["ssim"], top["vif"])


def test_paper_psnr_drops_perfect_empty_and_negative_slices():
    rng = np.random.default_rng(2)
    gt = np.abs(rng.normal(size=(8, 6, 9))) * 0.1
    rec = gt + 0.01 * rng.normal(size=gt.shape)
    gt[:, 0] = 0.0           # empty: -inf (peak 0) -> dropped
    rec[:, 1] = gt[:, 1]     # perfect: inf -> 0 -> dropped
    rec[:, 2] = gt[:, 2] + 5  # MSE > peak²: negative PSNR -> dropped
    want = ref_psnr(gt, rec)
    kept = [10 * np.log10(gt[:, j].max() ** 2 / np.mean((gt[:, j] - rec[:, j]) ** 2))
            for j in (3, 4, 5)]
    assert want == pytest.approx(np.mean(kept))
    assert psnr_paper(gt, rec, slab_voxels=20) == pytest.approx(want, rel=1e-12)


def test_paper_ssim_uses_reconstruction_max_and_vif_its_mean():
    gt, rec = pair((18, 16, 20), seed=3)
    g, r, _ = normalise_pair(gt, rec, "paper")
    assert ssim_paper(g, r) == pytest.approx(structural_similarity(g, r, data_range=r.max()),
                                             rel=1e-9)
    # σ_n² is the mean of the reconstruction: shifting the pair changes VIF
    assert vif_paper(g, r) != pytest.approx(vif_paper(g + 0.05, r + 0.05), rel=1e-3)
    assert vif_paper(g, g) == pytest.approx(1.0, abs=1e-5)  # eps terms: 1 − O(1e-6)
