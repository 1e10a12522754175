"""Tests of wedgebench.metrics: normalisation, PSNR/SSIM/VIF, FSC, shape, compute_metrics."""

import json

import numpy as np
import pytest
from scipy import ndimage

from wedgebench.geometry import present_mask, tilt_angles
from wedgebench.io import InputError
from wedgebench.metrics import compute_metrics, heldout_tilt_error, reprojection_error
from wedgebench.metrics.fsc import directional_fsc, fsc, fsc_auc, fsc_resolution
from wedgebench.metrics.image import _vifp_terms, psnr, ssim, ssim_slices, vif, vifp
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
    from skimage.metrics import structural_similarity

    a = np.abs(smooth_field((12, 5, 16), 3))
    b = a + 0.02 * np.random.default_rng(4).normal(size=a.shape)
    want_s = np.mean([structural_similarity(a[:, j], b[:, j], data_range=0.3, win_size=7)
                      for j in range(a.shape[1])])
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


# ---------------------------------------------------------------- held-out tilts (issue 13)

HELDOUT_ANGLES = tilt_angles((-54, 54), 12)  # 10 tilts


@pytest.fixture(scope="module")
def heldout_case():
    """A tiny non-negative volume and its even and odd tilts, simulated by the ray-driven
    projector (normalised to [0, 1], as the pipeline's tilt series)."""
    from wedgebench.tiltseries import simulate_tiltseries

    vol = smooth_field((12, 16, 20), seed=3).astype(np.float32)
    vol -= vol.min()
    stack = simulate_tiltseries(vol, HELDOUT_ANGLES)
    return vol, (stack[0::2], HELDOUT_ANGLES[0::2], stack[1::2], HELDOUT_ANGLES[1::2])


def test_heldout_tilt_error_perfect_reconstruction_is_zero(heldout_case):
    vol, halves = heldout_case
    err = heldout_tilt_error(vol, vol, *halves)
    assert set(err) == {"heldout_tilt_error", "heldout_tilt_error_even_to_odd",
                        "heldout_tilt_error_odd_to_even"}
    assert all(0 <= e < 1e-5 for e in err.values())  # float32 rounding only: ~2e-7


def test_heldout_tilt_error_featureless_reconstruction_is_one(heldout_case):
    vol, halves = heldout_case
    zero, const = np.zeros_like(vol), np.full_like(vol, 2.5)
    assert heldout_tilt_error(zero, zero, *halves)["heldout_tilt_error"] == pytest.approx(1.0)
    assert heldout_tilt_error(const, const, *halves)["heldout_tilt_error"] == pytest.approx(
        1.0, abs=1e-3)


def test_heldout_tilt_error_ignores_scale_and_offset(heldout_case):
    vol, (s_even, a_even, s_odd, a_odd) = heldout_case
    blurred = ndimage.gaussian_filter(vol, (3, 0, 3))
    ref = heldout_tilt_error(blurred, vol, s_even, a_even, s_odd, a_odd)
    assert 0.2 < ref["heldout_tilt_error_even_to_odd"] < 0.9
    moved = heldout_tilt_error(-3 * blurred + 7, 0.5 * vol - 1, 2 * s_even + 1, a_even,
                               s_odd - 4, a_odd)
    assert moved == pytest.approx(ref, abs=1e-5)


def test_heldout_tilt_error_checks_its_halves(heldout_case):
    vol, (s_even, a_even, s_odd, a_odd) = heldout_case
    with pytest.raises(InputError, match="tilts but"):
        heldout_tilt_error(vol, vol, s_even, a_even, s_odd, a_odd[:-1])


# ---------------------------------------------------------------- Fourier regions (issue 13)

ASYMMETRIC = tilt_angles((-50, 66), 2)
SPARSE = tilt_angles((-40, 40), 4)


def _index_coords(n):
    """Signed frequency indices of an FFT axis; the Nyquist index of an even axis has both."""
    idx = np.fft.fftfreq(n) * n
    alt = idx.copy()
    if n % 2 == 0:
        alt[n // 2] = n // 2
    return np.rint(idx), np.rint(alt)


def independent_regions(nz, nx, angles, guard):
    """Present / missing (kz, kx) masks built geometrically, without the package's formula.

    Each acquired central line is sampled densely in voxel-index space (direction
    (cosθ·nx, −sinθ·nz), since tilt θ samples physical direction (cosθ, −sinθ)): a voxel
    is present when a sample falls in its box; the distance to the nearest line comes from
    a k-d tree of the samples; "inside the range" is decided with cross products.
    """
    from scipy.spatial import cKDTree

    t = np.linspace(-1.0, 1.0, 40001)[:, None]
    lines = [t * np.array([np.cos(np.radians(a)) * nx, -np.sin(np.radians(a)) * nz])
             for a in angles]
    pts = np.concatenate(lines)
    present = np.zeros((nz, nx), bool)
    cells = np.rint(pts).astype(int)  # (kx, kz) voxel of each sample
    ok = (np.abs(cells[:, 0]) <= nx // 2) & (np.abs(cells[:, 1]) <= nz // 2)
    present[cells[ok, 1] % nz, cells[ok, 0] % nx] = True
    tree = cKDTree(pts)

    def e(a):
        return np.array([np.cos(np.radians(a)), -np.sin(np.radians(a))])

    e_lo, e_hi = e(min(angles)), e(max(angles))
    missing = np.ones((nz, nx), bool)
    for kz in _index_coords(nz):
        for kx in _index_coords(nx):
            KZ, KX = np.meshgrid(kz, kx, indexing="ij")
            dist, _ = tree.query(np.stack([KX.ravel(), KZ.ravel()], 1))
            fx, fz = KX / nx, KZ / nz  # physical direction
            flip = (fx < 0) | ((fx == 0) & (fz > 0))
            fx, fz = np.where(flip, -fx, fx), np.where(flip, -fz, fz)
            after_lo = fx * e_lo[1] - fz * e_lo[0] >= -1e-12  # cross(k, e_lo) >= 0
            before_hi = e_hi[0] * fz - e_hi[1] * fx >= -1e-12  # cross(e_hi, k) >= 0
            inside = (after_lo & before_hi) | ((KX == 0) & (KZ == 0))
            missing &= ~inside & (dist.reshape(KX.shape) > guard)
    return present, missing & ~present


@pytest.mark.parametrize("angles", [ANGLES, ASYMMETRIC, SPARSE], ids=["pm60", "m50p66", "pm40s4"])
def test_regions_match_independent_construction(angles):
    from wedgebench.geometry import fourier_regions_kzkx

    nz, nx = 48, 64
    present, missing = fourier_regions_kzkx((nz, 3, nx), angles, guard=1.5)
    want_p, want_m = independent_regions(nz, nx, angles, 1.5)
    assert present.mean() == pytest.approx(want_p.mean(), abs=0.005)
    assert missing.mean() == pytest.approx(want_m.mean(), abs=0.005)
    assert np.mean(present != want_p) < 0.005 and np.mean(missing != want_m) < 0.005
    assert not np.any(present & missing)


def test_region_locations_and_sign_convention():
    """Tilt θ samples (kx, kz) ∝ (cosθ, −sinθ): a voxel at (kx, kz) = (12, −25) lies at
    θ = +64.4° (acquired in −50…66, outside ±60), its mirror (12, +25) at −64.4°."""
    from wedgebench.geometry import fourier_regions_kzkx

    n = 64
    at = {"kz axis": (20, 0), "kx axis": (0, 20), "+64": (-25, 12), "-64": (25, 12),
          "+50": (-15, 13), "gap 38": (-19, 24)}
    regions = {name: fourier_regions_kzkx((n, 2, n), a, 1.5)
               for name, a in (("pm60", ANGLES), ("asym", ASYMMETRIC), ("sparse", SPARSE))}

    def where(name, key):
        p, m = regions[name]
        kz, kx = at[key]
        return "present" if p[kz % n, kx % n] else "missing" if m[kz % n, kx % n] else "neither"

    for name in regions:
        assert where(name, "kz axis") == "missing"
        assert where(name, "kx axis") == "present"
        assert where(name, "-64") == "missing"
    assert where("pm60", "+64") == "missing"
    assert where("asym", "+64") == "present"
    assert where("sparse", "+50") == "missing"
    assert where("sparse", "gap 38") == "neither"  # between the 36° and 40° planes


def test_present_region_is_where_a_projection_puts_power():
    """Back-projecting one tilt at +64° fills present_mask([64]), not its mirror (−64°)."""
    from wedgebench.projector import backproject, project

    vol = np.random.default_rng(3).normal(size=(64, 1, 64)).astype(np.float32)
    bp = backproject(project(vol, [64.0]), [64.0], 64)
    power = np.abs(np.fft.fftn(bp[:, 0, :])) ** 2
    plus = present_mask((64, 1, 64), [64.0])[:, 0, :]
    minus = present_mask((64, 1, 64), [-64.0])[:, 0, :]
    assert power[plus & ~minus].mean() > 20 * power[minus & ~plus].mean()


@pytest.mark.parametrize("shape", [(48, 64, 96), (33, 8, 47), (32, 5, 33), (31, 6, 64)])
@pytest.mark.parametrize("angles", [ASYMMETRIC, tilt_angles((-45, 45), 4), ANGLES])
def test_regions_are_centrosymmetric(shape, angles):
    """Regression (issue 13): asymmetric angle sets on even sizes raised InputError
    'Fourier mask is not centrosymmetric' in every metrics job."""
    from wedgebench.geometry import fourier_regions_kzkx, missing_mask

    for m in fourier_regions_kzkx(shape, angles):
        assert np.array_equal(m, np.roll(m[::-1, ::-1], 1, axis=(0, 1)))
    for m in (present_mask(shape, angles), missing_mask(shape, angles)):
        assert m.shape == shape
        assert np.array_equal(m, np.roll(np.flip(m), 1, axis=(0, 1, 2)))


def test_metrics_run_for_asymmetric_angles_on_even_volume():
    """Regression (issue 13): the custom [48, 64, 96] volume with −50…66° step 2."""
    rng = np.random.default_rng(13)
    gt = ndimage.gaussian_filter(rng.normal(size=(48, 64, 96)), 1.5).astype(np.float32)
    rec = gt + 0.3 * gt.std() * rng.normal(size=gt.shape).astype(np.float32)
    for angles in (ASYMMETRIC, tilt_angles((-45, 45), 4)):
        m = compute_metrics(gt, rec, 2.0, angles)
        assert all(isinstance(m[f"fsc_{r}_auc"], float) for r in ("full", "present", "missing"))


def _wedge_removed(a, angles, leak_voxels=0.0):
    """``a`` with every Fourier voxel outside the acquired angular range zeroed, except
    those within ``leak_voxels`` of an acquired plane (a WBP-like half-voxel leak).
    Built in the test (folded angle + distance to the lines), not with the package."""
    nz, _, nx = a.shape
    kz = np.fft.fftfreq(nz)[:, None] * nz
    kx = np.fft.fftfreq(nx)[None, :] * nx
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.degrees(np.arctan(-(kz / nz) / (kx / nx)))  # ±90° on the kz axis
    theta = np.where((kx == 0) & (kz == 0), 0.0, theta)
    inside = (theta >= angles.min() - 1e-9) & (theta <= angles.max() + 1e-9)
    inside |= (kx == 0) & (kz == 0)
    dist = np.min([np.abs(kx * np.sin(np.radians(t)) / nx + kz * np.cos(np.radians(t)) / nz)
                   / np.hypot(np.sin(np.radians(t)) / nx, np.cos(np.radians(t)) / nz)
                   for t in angles], axis=0)
    keep = inside | (dist <= leak_voxels)
    return np.fft.ifftn(np.fft.fftn(a) * keep[:, None, :]).real


def test_missing_fsc_measures_filling_not_leakage():
    a = smooth_field((40, 24, 48), 21, sigma=1.0)
    angles = SPARSE
    for leak in (0.0, 1.0):
        b = _wedge_removed(a, angles, leak)
        curves = directional_fsc(a, b, 2.0, angles)  # default guard 1.5 voxels
        assert abs(fsc_auc(curves["missing"])) <= 0.02
    # a leak of one voxel keeps every present voxel (all lie within 1/√2 voxel of a plane)
    assert fsc_auc(curves["present"]) == pytest.approx(1.0, abs=1e-9)
    # without a guard band the one-voxel leak counts as "filled"
    leaky = directional_fsc(a, _wedge_removed(a, angles, 1.0), 2.0, angles, guard=0.6)
    assert fsc_auc(leaky["missing"]) > 0.2
    m = compute_metrics(a, 2 * a + 1, 2.0, angles)
    for r in ("full", "present", "missing"):
        assert m[f"fsc_{r}_auc"] == pytest.approx(1.0, abs=1e-9)


def test_guard_band_must_be_non_negative():
    a = smooth_field((8, 8, 8), 2)
    with pytest.raises(InputError):
        directional_fsc(a, a, 1.0, ANGLES, guard=-1.0)


def test_fsc_auc_drops_sparse_shells():
    import pandas as pd

    curve = pd.DataFrame({"frequency": [0.1, 0.2, 0.3, 0.4], "fsc": [-0.9, 0.1, 0.3, np.nan],
                          "n_voxels": [6, 60, 200, 0]})
    assert fsc_auc(curve) == pytest.approx(0.2)  # the 6-voxel shell is left out
    assert fsc_auc(curve, min_voxels=1) == pytest.approx((-0.9 + 0.1 + 0.3) / 3)
    # the 6-voxel shell (FSC 0.1) does not count as "already below 0.5 at the start"
    assert fsc_resolution(curve.assign(fsc=[0.1, 0.9, 0.3, np.nan])) == pytest.approx(
        1 / (0.2 + 0.1 * 0.4 / 0.6))


# ---------------------------------------------------------------- slab-wise evaluation (issue 16)


@pytest.fixture(scope="module")
def f32_pair():
    rng = np.random.default_rng(16)
    gt = np.maximum(ndimage.gaussian_filter(rng.normal(size=(22, 30, 26)), 1.2), 0)
    rec = ndimage.gaussian_filter(gt, (1.5, 0.4, 0.4)) + 0.02 * rng.normal(size=gt.shape)
    return gt.astype(np.float32), rec.astype(np.float32)


def test_slabwise_metrics_equal_whole_volume(f32_pair):
    from skimage.metrics import structural_similarity

    from wedgebench.metrics.image import psnr_paper, ssim_paper, vif_paper

    gt, rec = f32_pair
    g64, r64 = gt.astype(np.float64), rec.astype(np.float64)
    dr = float(g64.max() - g64.min())
    for slab in (1, 700, 5000):  # 1 plane, a few planes (with halos), several planes
        assert ssim(gt, rec, dr, slab) == pytest.approx(
            structural_similarity(g64, r64, data_range=dr), rel=1e-9)
        for f in (psnr, vif):
            assert f(gt, rec, dr, slab_voxels=slab) == pytest.approx(
                f(g64, r64, dr, slab_voxels=None), rel=1e-9)
        for f in (psnr_paper, ssim_paper, vif_paper):
            assert f(gt, rec, slab) == pytest.approx(f(g64, r64, None), rel=1e-9)


def test_fsc_in_complex64_slabs_equals_float64(f32_pair):
    gt, rec = f32_pair
    whole = directional_fsc(gt.astype(np.float64), rec.astype(np.float64), 3.0, ASYMMETRIC,
                            slab_voxels=None)
    slabs = directional_fsc(gt, rec, 3.0, ASYMMETRIC, slab_voxels=500)
    for r in ("full", "present", "missing"):
        np.testing.assert_allclose(slabs[r]["fsc"], whole[r]["fsc"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(slabs[r]["n_voxels"], whole[r]["n_voxels"])


def test_compute_metrics_slabwise_equals_whole(f32_pair):
    gt, rec = f32_pair
    a = compute_metrics(gt, rec, 3.0, ANGLES, slab_voxels=700)
    b = compute_metrics(gt.astype(np.float64), rec.astype(np.float64), 3.0, ANGLES,
                        slab_voxels=None)
    for key in ("psnr", "ssim", "vif", "fsc_full_auc", "fsc_present_auc", "fsc_missing_auc"):
        assert a[key] == pytest.approx(b[key], rel=1e-6), key
    for c in ("fair", "paper"):
        for key in ("psnr", "ssim", "vif"):
            assert a["conventions"][c][key] == pytest.approx(b["conventions"][c][key],
                                                             rel=1e-6), (c, key)


def test_compute_metrics_memory_is_a_few_volumes():
    """Peak allocation beyond the two float32 inputs stays below 8 float32 volumes (at the
    paper's 268 M voxels: 8.6 GB + the inputs' 2.1 GB < 12 GB); float64 copies of whole
    volumes (4 in the old code, 2.1 GB each) would break it."""
    import tracemalloc

    rng = np.random.default_rng(5)
    gt = ndimage.gaussian_filter(rng.random((96, 64, 96), dtype=np.float32), 1.0)
    rec = gt + np.float32(0.05) * rng.random(gt.shape, dtype=np.float32)
    tracemalloc.start()
    try:
        compute_metrics(gt, rec, 1.0, ANGLES, sphere_ratio=True, slab_voxels=1 << 14)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * gt.nbytes
