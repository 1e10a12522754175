"""Tests of wedgebench.metrics: normalisation, PSNR/SSIM/VIF, FSC, shape, compute_metrics."""

import json

import numpy as np
import pytest
from scipy import ndimage

from wedgebench.geometry import present_mask, tilt_angles
from wedgebench.io import InputError
from wedgebench.metrics import compute_metrics, reprojection_error
from wedgebench.metrics.fsc import directional_fsc, fsc, fsc_auc, fsc_resolution
from wedgebench.metrics.image import (_vifp_terms, psnr, psnr_slices, ssim, ssim_slices, vif,
                                     vifp)
from wedgebench.metrics.normalise import affine_fit, normalise_pair
from wedgebench.metrics.shape import object_zx_ratios, sphere_zx_ratio

ANGLES = tilt_angles((-60, 60), 2)


def hollow_spheres(shape, spheres, thickness=2.0):
    """Binary hollow spheres ``(cz, cy, cx, r)`` in a ``[z, y, x]`` volume."""
    z, y, x = np.indices(shape)
    vol = np.zeros(shape, np.float32)
    for cz, cy, cx, r in spheres:
        d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        vol[(d <= r) & (d > r - thickness)] = 1.0
    return vol


@pytest.fixture(scope="module")
def phantom():
    return hollow_spheres((32, 48, 48), ((16, 14, 14, 8), (16, 32, 32, 9), (15, 36, 12, 6)))


def smooth_field(shape, seed=0, sigma=1.5):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma)


# ---------------------------------------------------------------- normalisation


def test_fair_normalisation_undoes_affine_map(phantom):
    gt_n, rec_n, dr = normalise_pair(phantom, -3.0 * phantom + 7.0, "fair")
    np.testing.assert_allclose(rec_n, phantom, atol=1e-9)
    assert dr == pytest.approx(1.0)
    assert gt_n is not None


def test_paper_normalisation(phantom):
    rec = 5 * phantom + 1 + np.random.default_rng(1).normal(0, 0.1, phantom.shape)
    gt_n, rec_n, dr = normalise_pair(phantom, rec, "paper")
    assert gt_n.max() == pytest.approx(0.1)
    assert rec_n.mean() == pytest.approx(gt_n.mean())
    assert rec_n.std() == pytest.approx(gt_n.std())
    assert dr == pytest.approx(0.1)


def test_minmax_and_bad_input(phantom):
    _, rec_n, dr = normalise_pair(phantom, 2 * phantom + 5, "minmax")
    assert rec_n.min() == 0 and rec_n.max() == 1 and dr == 1
    with pytest.raises(InputError):
        normalise_pair(phantom, phantom, "nope")
    with pytest.raises(InputError):
        normalise_pair(phantom, phantom[:-1])
    with pytest.raises(InputError):
        normalise_pair(np.zeros((8, 8, 8)), np.ones((8, 8, 8)))


def test_affine_fit():
    x = np.arange(10.0)
    assert affine_fit(x, 2 * x - 1) == pytest.approx((2.0, -1.0))
    assert affine_fit(np.ones(5), x[:5]) == pytest.approx((0.0, 2.0))


# ---------------------------------------------------------------- PSNR / SSIM


def test_psnr_ssim_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = smooth_field((16, 20, 24), 0)
    b = a + 0.05 * np.random.default_rng(2).normal(size=a.shape)
    dr = float(a.max() - a.min())
    assert psnr(a, b, dr) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=dr),
                                           rel=1e-12)
    assert ssim(a, b, dr) == pytest.approx(
        structural_similarity(a, b, data_range=dr, channel_axis=None), rel=1e-12)
    assert psnr(a, a, dr) == float("inf")
    assert ssim(a, a, dr) == pytest.approx(1.0)


def test_slice_variants():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = np.abs(smooth_field((12, 5, 16), 3))
    b = a + 0.02 * np.random.default_rng(4).normal(size=a.shape)
    want_p = np.mean([peak_signal_noise_ratio(a[:, j], b[:, j], data_range=a[:, j].max())
                      for j in range(a.shape[1])])
    want_s = np.mean([structural_similarity(a[:, j], b[:, j], data_range=0.3, win_size=7)
                      for j in range(a.shape[1])])
    assert psnr_slices(a, b) == pytest.approx(want_p, rel=1e-12)
    assert ssim_slices(a, b, 0.3) == pytest.approx(want_s, rel=1e-12)


# ---------------------------------------------------------------- VIF


@pytest.mark.parametrize("shape", [(41, 41), (48, 70), (64, 50)])
def test_vifp_matches_sewar(shape):
    sewar = pytest.importorskip("sewar.full_ref")
    rng = np.random.default_rng(sum(shape))
    a = ndimage.gaussian_filter(rng.random(shape), 2)
    a = 255 * (a - a.min()) / (a.max() - a.min())
    pairs = [(a, ndimage.gaussian_filter(a, (2, 0.5)) + rng.normal(0, 5, shape)),
             (255.0 * (a > 128), ndimage.gaussian_filter(255.0 * (a > 128), 1.5)),
             (a, 0.5 * a + 3), (a, a)]
    for gt, rec in pairs:
        assert vifp(gt, rec) == pytest.approx(sewar.vifp(gt, rec), abs=1e-6)


def test_vif_small_images_and_volumes():
    rng = np.random.default_rng(5)
    a = np.abs(smooth_field((32, 6, 60), 6))  # [z, y, x] with nz = 32 < 41
    b = a + 0.01 * rng.normal(size=a.shape)
    v = vif(a, b)
    assert 0 < v < 1
    assert vif(a, a) == pytest.approx(1.0, abs=1e-6)
    # VIFp pooled over the y-slices on the gt's 0-255 scale: sum(num) / sum(den)
    s = 255 / (a.max() - a.min())
    terms = [_vifp_terms((a[:, j] - a.min()) * s, (b[:, j] - a.min()) * s, 2.0, 1 / 12)
             for j in range(a.shape[1])]
    want = sum(n for n, _ in terms) / sum(d for _, d in terms)
    assert v == pytest.approx(want, rel=1e-12)
    assert np.isnan(vifp(np.ones((20, 20)), np.ones((20, 20))))  # flat gt: undefined


def test_vif_ignores_float_noise_of_an_empty_background():
    """Nearly empty y-slices (only the float tails of a low-pass) must not dominate: a
    per-slice mean gives them ratios of ~25 here (mean ~4.9); pooled VIF stays <= 1."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(2)
    gt = np.zeros((48, 12, 48))
    gt[20:28, 4:8, 20:28] = 1.0
    gt = gaussian_filter(gt, 1.0)
    rec = gt + 0.05 * gaussian_filter(rng.normal(size=gt.shape), 1.0)
    assert 0.5 < vif(gt, rec) <= 1.0


# ---------------------------------------------------------------- FSC


def test_fsc_self_and_noise():
    a = smooth_field((16, 24, 20), 6, sigma=1.0)
    df = fsc(a, a, 3.0)
    assert list(df.columns) == ["shell", "frequency", "fsc", "n_voxels"]
    assert df["shell"].tolist() == list(range(1, 13))
    np.testing.assert_allclose(df["fsc"], 1.0, atol=1e-12)
    assert df["frequency"].iloc[-1] == pytest.approx(0.5 / 3.0)
    noise = np.random.default_rng(7).normal(size=a.shape)
    assert abs(fsc(a, noise, 3.0)["fsc"].mean()) < 0.05
    assert fsc_resolution(df) == pytest.approx(6.0)  # never below 0.5: Nyquist, 2 voxels


def test_fsc_n_voxels_counts_full_fourier_space():
    shape = (8, 10, 12)
    df = fsc(np.ones(shape), np.ones(shape), 1.0)
    f = np.sqrt(sum(np.meshgrid(*(np.fft.fftfreq(n) ** 2 for n in shape), indexing="ij")))
    shells = np.rint(f * 12)
    assert df["n_voxels"].tolist() == [int((shells == s).sum()) for s in range(1, 7)]


def test_directional_fsc_of_wedge_filtered_copy():
    a = smooth_field((24, 20, 32), 8, sigma=1.0)
    present = present_mask(a.shape, ANGLES)
    b = np.fft.ifftn(np.fft.fftn(a) * present).real
    curves = directional_fsc(a, b, 2.0, ANGLES)
    assert set(curves) == {"full", "present", "missing"}
    np.testing.assert_allclose(curves["present"]["fsc"], 1.0, atol=1e-9)
    missing = curves["missing"]["fsc"].dropna()
    assert len(missing) > 5 and np.abs(missing).max() < 1e-6
    assert fsc_auc(curves["missing"]) == pytest.approx(0.0, abs=1e-6)
    same = fsc(a, b, 2.0, mask=present)
    np.testing.assert_allclose(same["fsc"], curves["present"]["fsc"])
    full = curves["full"]["fsc"].to_numpy()
    assert np.all(full <= 1 + 1e-12) and np.all(full > 0) and full[-1] < 0.95


def test_fsc_mask_validation():
    a = smooth_field((8, 8, 8), 9)
    with pytest.raises(InputError):
        fsc(a, a, 1.0, mask=np.ones((8, 8, 8)))  # not boolean
    bad = np.zeros((8, 8, 8), bool)
    bad[1, 0, 0] = True  # its Friedel mate [-1, 0, 0] is not set
    with pytest.raises(InputError):
        fsc(a, a, 1.0, mask=bad)


def test_fsc_resolution_interpolates():
    import pandas as pd

    curve = pd.DataFrame({"frequency": [0.1, 0.2, 0.3], "fsc": [0.9, 0.7, 0.3]})
    assert fsc_resolution(curve) == pytest.approx(1 / 0.25)
    assert fsc_resolution(curve.assign(fsc=[0.4, 0.3, 0.2])) is None


# ---------------------------------------------------------------- shape


def test_sphere_ratio(phantom):
    assert len(object_zx_ratios(phantom, phantom)) == 3
    assert sphere_zx_ratio(phantom, phantom) == pytest.approx(1.0, abs=0.05)
    blurred = ndimage.gaussian_filter(phantom, (4, 0, 1))
    assert sphere_zx_ratio(phantom, blurred) > 1.1
    iso = ndimage.gaussian_filter(phantom, 1.0)
    assert sphere_zx_ratio(phantom, iso) == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- compute_metrics


def test_compute_metrics(phantom):
    rng = np.random.default_rng(11)
    rec = 3 * ndimage.gaussian_filter(phantom, (2, 0.5, 0.5)) + 1 + rng.normal(0, 0.02,
                                                                               phantom.shape)
    m = compute_metrics(phantom, rec, 4.5, ANGLES, sphere_ratio=True)
    json.loads(json.dumps(m))
    for key in ("psnr", "ssim", "vif", "fsc_full_auc", "fsc_present_auc", "fsc_missing_auc",
                "fsc_full_res_A", "sphere_zx_ratio"):
        assert isinstance(m[key], float), key
    n = len(m["fsc"]["frequency"])
    assert n == 24 and all(len(m["fsc"][r]) == n for r in ("full", "present", "missing"))
    assert m["fsc_present_auc"] > m["fsc_missing_auc"]
    assert m["sphere_zx_ratio"] > 1.0
    perfect = compute_metrics(phantom, 2 * phantom - 1, 4.5, ANGLES, convention="paper")
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["vif"] == pytest.approx(1.0)
    assert "sphere_zx_ratio" not in perfect


def test_reprojection_error(phantom):
    from wedgebench.projector import project

    stack = project(phantom, ANGLES)
    assert reprojection_error(phantom, 2 * stack + 1, ANGLES) < 1e-4
    blurred = ndimage.gaussian_filter(phantom, (3, 0, 3))
    assert 0.1 < reprojection_error(blurred, stack, ANGLES) < 1.0
    with pytest.raises(InputError):
        reprojection_error(phantom, stack[:-1], ANGLES)
