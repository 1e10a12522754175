"""Tests of the classic baselines: IMOD-style WBP and EMAN2-style Fourier inversion.

Tilt series are simulated with the ray-driven simulation projector
(:func:`wedgebench.tiltseries.simulate_projections`, a different discretisation
from the reconstruction projector). Volumes are tiny (ny = 4) so the file runs
in a few seconds.

Bounds (measured values in brackets, for a 32×4×64 three-blob phantom, tilts
−89…89° step 1°, PSNR after an affine least-squares fit of rec to gt):
WBP ``ramp``/``imod`` ≥ 36 dB [39.1 / 38.9]; Fourier (no low-pass) ≥ 36 dB
[39.5]; with the angles negated (a θ sign error) all give ≈ 15.4 dB; an
unweighted back-projection gives 20.4 dB. The amplitude (slope of rec against
gt) must be within 10 % of 1 [0.97] for both, which a wrong π/N-type factor
fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from wedgebench.io import InputError
from wedgebench.projector import backproject
from wedgebench.recon import fourier, wbp
from wedgebench.tiltseries import simulate_projections

NZ, NY, NX = 32, 4, 64
FULL = np.arange(-89, 89 + 1e-9, 1.0)
WEDGE60 = np.arange(-60, 60 + 1e-9, 2.0)


def _coords():
    z, y, x = np.meshgrid(np.arange(NZ) - (NZ - 1) / 2, np.arange(NY),
                          np.arange(NX) - (NX - 1) / 2, indexing="ij")
    return z, x


def _disc(z0, x0, r, edge=1.0):
    z, x = _coords()
    d = np.sqrt((z - z0) ** 2 + (x - x0) ** 2)
    return 0.5 * (1 - np.tanh((d - r) / edge))


def _phantom():
    return (_disc(3, -10, 6) + 0.6 * _disc(-5, 12, 4) + 0.3 * _disc(0, 0, 9)).astype(np.float32)


def _affine_psnr(rec, gt):
    a = np.stack([rec.ravel(), np.ones(rec.size)], 1)
    coef, *_ = np.linalg.lstsq(a, gt.ravel().astype(np.float64), rcond=None)
    mse = np.mean((a @ coef - gt.ravel()) ** 2)
    return 10 * np.log10(np.ptp(gt) ** 2 / mse)


def _slope(rec, gt):
    return np.polyfit(gt.ravel(), rec.ravel(), 1)[0]


def _wbp(stack, ang, **kw):
    return wbp.reconstruct(stack, ang, NZ, **kw)


def _fourier(stack, ang, **kw):
    return fourier.reconstruct(stack, ang, NZ, voxel_size=10.0, **kw)


METHODS = {
    "wbp_ramp": lambda s, a: _wbp(s, a, filter="ramp"),
    "wbp_imod": lambda s, a: _wbp(s, a, filter="imod"),
    "fourier": lambda s, a: _fourier(s, a, lowpass_voxels=0),
}


@pytest.fixture(scope="module")
def full_data():
    gt = _phantom()
    return gt, simulate_projections(gt, FULL)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_full_range_recovers_phantom(full_data, name):
    gt, stack = full_data
    rec = METHODS[name](stack, FULL)
    assert rec.shape == gt.shape and rec.dtype == np.float32
    assert _affine_psnr(rec, gt) >= 36.0
    assert abs(_slope(rec, gt) - 1.0) < 0.1
    # a sign error in θ (mirror in z) is caught by the same bound
    assert _affine_psnr(METHODS[name](stack, -FULL), gt) < 25.0


def test_unweighted_backprojection_fails_the_bound(full_data):
    """The PSNR bound is sensitive to the filter: plain back-projection fails it."""
    gt, stack = full_data
    bp = backproject(stack, FULL, NZ)
    assert _affine_psnr(bp, gt) < 30.0


def test_fourier_lowpass_matches_gaussian_of_given_resolution(full_data):
    """EMAN2's exp(-f²·res²) equals a real-space Gaussian of σ = res/(π√2) voxels."""
    gt, stack = full_data
    plain = _fourier(stack, FULL, lowpass_voxels=0)
    lp = _fourier(stack, FULL, lowpass_voxels=4)
    lp_a = _fourier(stack, FULL, lowpass_angstrom=40.0)  # 40 Å at 10 Å/voxel
    np.testing.assert_allclose(lp, lp_a, atol=1e-6)
    sigma = 4 / (np.pi * np.sqrt(2))
    inner = (slice(4, -4), slice(None), slice(4, -4))
    ref = ndimage.gaussian_filter(plain, sigma, mode="nearest")
    assert _affine_psnr(lp[inner], ref[inner]) > 80.0  # measured 105 dB
    for wrong in (0.85 * sigma, 1.15 * sigma):  # measured 48 dB
        ref = ndimage.gaussian_filter(plain, wrong, mode="nearest")
        assert _affine_psnr(lp[inner], ref[inner]) < 55.0


def _fwhm(profile):
    i = int(np.argmax(profile))
    half = profile[i] / 2
    lo = i
    while lo > 0 and profile[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < profile.size - 1 and profile[hi + 1] > half:
        hi += 1
    left = lo - (profile[lo] - half) / (profile[lo] - profile[lo - 1])
    right = hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
    return right - left


def _z_over_x(rec):
    sl = rec.mean(1)
    iz, ix = np.unravel_index(np.argmax(sl), sl.shape)
    return _fwhm(sl[:, ix]) / _fwhm(sl[iz, :])


@pytest.mark.parametrize("method", [_wbp, _fourier])
def test_missing_wedge_elongates_sphere_along_z(method):
    sphere = _disc(0, 0, 4, edge=0.7).astype(np.float32)
    wedge = method(simulate_projections(sphere, WEDGE60), WEDGE60)
    full = method(simulate_projections(sphere, FULL), FULL)
    # measured: WBP 1.42, Fourier 1.29 at ±60°; both 1.00 at ±89°
    assert _z_over_x(wedge) > 1.15
    assert abs(_z_over_x(full) - 1.0) < 0.05


def _centroid(rec):
    sl = rec.mean(1)
    w = np.where(sl > 0.5 * sl.max(), sl, 0.0)
    zc = np.arange(NZ) - (NZ - 1) / 2
    xc = np.arange(NX) - (NX - 1) / 2
    return (w.sum(1) @ zc) / w.sum(), (w.sum(0) @ xc) / w.sum()


@pytest.mark.parametrize("method", [_wbp, _fourier])
def test_off_centre_blob_lands_in_place(method):
    """Axes, origin and handedness with an asymmetric tilt range (−50…+64°)."""
    z0, x0 = 5.0, -9.0
    z, x = _coords()
    blob = np.exp(-((z - z0) ** 2 + (x - x0) ** 2) / (2 * 1.2 ** 2)).astype(np.float32)
    ang = np.arange(-50, 64 + 1e-9, 2.0)
    stack = simulate_projections(blob, ang)
    zr, xr = _centroid(method(stack, ang))
    assert abs(zr - z0) < 0.25 and abs(xr - x0) < 0.25, (zr, xr)
    # the same data read with θ → −θ would put it at −z0: the test can tell
    zr_bad, _ = _centroid(method(stack, -ang))
    assert abs(zr_bad + z0) < 0.5


def test_radial_filter_follows_imod():
    n = 256
    f = np.arange(n // 2 + 1) / n
    h = wbp.radial_filter(n, "imod", cutoff=0.35, falloff=0.035)
    k_c = int(0.35 * n)
    np.testing.assert_allclose(h[1:k_c + 1], f[1:k_c + 1])
    assert h[0] == pytest.approx(0.2 / n)  # IMOD: 0.2 of one frequency step at DC
    # Gaussian fall-off with a true sigma: one sigma past the cutoff -> exp(-1/2)
    k_s = k_c + int(round(0.035 * n))
    assert h[k_s] == pytest.approx(h[k_c] * np.exp(-0.5 * ((k_s - k_c) / n / 0.035) ** 2))
    assert np.all(np.diff(h[k_c:]) < 0)


def test_ramp_filter_is_abs_frequency():
    """Kak–Slaney's sampled ramp kernel has the DFT |f| (up to a small DC term)."""
    n = 512
    f = np.arange(n // 2 + 1) / n
    h = wbp.radial_filter(n, "ramp")
    np.testing.assert_allclose(h[1:], f[1:], atol=0.25 / n)  # measured max 0.2/n
    assert 0 < h[0] < 1.0 / n


def test_fake_sirt_filter():
    n = 256
    ramp = wbp.radial_filter(n, "imod")
    s10 = wbp.radial_filter(n, "imod", fake_sirt_iterations=10)
    s_many = wbp.radial_filter(n, "imod", fake_sirt_iterations=5000)
    k = 3
    f = k / n
    # IMOD: H = ramp * (1 - (1 - alpha/f)^(N + 0.3)), alpha = 0.00195
    assert s10[k] == pytest.approx(f * (1 - (1 - 0.00195 / f) ** 10.3))
    assert np.all(s10[1:] <= ramp[1:] + 1e-12)
    # few iterations: low frequencies are flattened; many: back to the ramp
    assert s10[1] / s10[20] > ramp[1] / ramp[20] * 1.5
    np.testing.assert_allclose(s_many[40:], ramp[40:], rtol=1e-3)
    assert s10[0] == ramp[0]


def test_angle_weights_follow_imod_density_weighting():
    np.testing.assert_allclose(wbp.angle_weights(np.arange(-60, 61, 3.0)), np.deg2rad(3.0))
    # uneven: intervals 1, 1, 4 between -2, -1, 0, 4; weights 2 (j=1) and 2/3 (j=2)
    w = wbp.angle_weights([0.0, -1.0, 4.0, -2.0])
    expect_at_0 = (2 * 1 + 2 * 4 + (2 / 3) * 1) / (2 + 2 + 2 / 3)
    assert np.rad2deg(w[0]) == pytest.approx(expect_at_0)
    assert np.rad2deg(w[2]) == pytest.approx((2 * 4 + (2 / 3) * 1) / (2 + 2 / 3))


def test_projector_can_be_reused():
    from wedgebench.projector import Projector

    gt = _phantom()
    stack = simulate_projections(gt, WEDGE60)
    p = Projector(NZ, NX, WEDGE60)
    np.testing.assert_allclose(_wbp(stack, WEDGE60, projector=p), _wbp(stack, WEDGE60),
                               atol=1e-6)
    with pytest.raises(InputError, match="projector"):
        wbp.reconstruct(stack, WEDGE60, NZ + 2, projector=p)


@pytest.mark.parametrize("func", [wbp.reconstruct, fourier.reconstruct])
def test_errors(func):
    stack = np.zeros((5, 4, 16), np.float32)
    with pytest.raises(InputError, match="5 images but 4 tilt angles"):
        func(stack, [0, 1, 2, 3], 8)
    with pytest.raises(InputError, match="3-D"):
        func(stack[0], [0, 1, 2, 3, 4], 8)
    with pytest.raises(InputError, match="thickness"):
        func(stack, [0, 1, 2, 3, 4], 0)
    with pytest.raises(InputError, match="±90"):
        func(stack, [0, 1, 2, 3, 95], 8)
    bad = stack.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        func(bad, [0, 1, 2, 3, 4], 8)


def test_option_errors_name_the_key():
    stack = np.zeros((3, 4, 16), np.float32)
    ang = [-10, 0, 10]
    with pytest.raises(InputError, match="imod_wbp.filter"):
        wbp.reconstruct(stack, ang, 8, filter="shepp")
    with pytest.raises(InputError, match="imod_wbp.cutoff"):
        wbp.reconstruct(stack, ang, 8, cutoff=0.7)
    with pytest.raises(InputError, match="imod_wbp.fake_sirt_iterations"):
        wbp.reconstruct(stack, ang, 8, fake_sirt_iterations=-1)
    with pytest.raises(InputError, match="eman2_fourier.kernel"):
        fourier.reconstruct(stack, ang, 8, kernel="sinc")
    with pytest.raises(InputError, match="voxel size"):
        fourier.reconstruct(stack, ang, 8, lowpass_angstrom=40.0)
    with pytest.raises(TypeError):
        wbp.reconstruct(stack, ang, 8, unknown_key=1)


def test_fourier_gaussian_kernel_and_thickness(full_data):
    gt, stack = full_data
    rec = _fourier(stack, FULL, kernel="gaussian", lowpass_voxels=0)
    assert _affine_psnr(rec, gt) >= 33.0  # measured 36.9
    thin = _fourier(stack, FULL, lowpass_voxels=0)
    # a thicker output keeps the object at the same place relative to the centre
    thick = fourier.reconstruct(stack, FULL, NZ + 8, lowpass_voxels=0)
    np.testing.assert_allclose(thick[4:-4], thin, atol=0.05 * np.ptp(thin))
    thick_w = wbp.reconstruct(stack, FULL, NZ + 8)
    np.testing.assert_allclose(thick_w[4:-4], _wbp(stack, FULL), atol=0.05 * np.ptp(thin))
