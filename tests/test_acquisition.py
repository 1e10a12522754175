"""Acquisition physics (wedgebench.acquisition) against known answers."""
import numpy as np
import pytest

from wedgebench import acquisition as acq


def _potential(n_tilts=2, n=64, seed=0, smooth=2.0):
    """Random projected potential in V·Å (band-limited noise, ~10 V·Å rms)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_tilts, n, n))
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    vz = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(k * smooth * np.pi) ** 2 / 2)).real
    return 10 * vz / vz.std()


def _fft_k(ny, nx, p):
    return np.hypot(np.fft.fftfreq(ny, p)[:, None], np.fft.fftfreq(nx, p)[None, :])


# ----------------------------------------------------------------------------- optics

def test_wavelength_and_interaction_constant_match_reference_values():
    assert f"{acq.wavelength_A(300):.5g}" == "0.019687"
    assert f"{acq.wavelength_A(200):.5g}" == "0.025079"
    assert acq.interaction_constant(300) == pytest.approx(6.53e-4, rel=1e-3)
    assert acq.interaction_constant(200) == pytest.approx(7.29e-4, rel=1e-3)
    for kv in (100, 200, 300):  # independent form: σ = 2π/(λV) · (E0 + eV)/(2E0 + eV)
        e0 = 510.99895
        expected = 2 * np.pi / (acq.wavelength_A(kv) * kv * 1e3) * (e0 + kv) / (2 * e0 + kv)
        assert acq.interaction_constant(kv) == pytest.approx(expected, rel=1e-6)
        approx = 12.2643 / np.sqrt(kv * 1e3 * (1 + 0.978476e-6 * kv * 1e3))  # textbook formula
        assert acq.wavelength_A(kv) == pytest.approx(approx, rel=1e-5)


def test_ctf_at_zero_frequency_is_minus_amplitude_contrast():
    for amp in (0.0, 0.07, 0.1):
        for df in (0.5, 3.0, -1.0):
            v = acq.ctf(0.0, df, amplitude_contrast=amp, bfactor_A2=50, illumination_mrad=0.02,
                        focal_spread_A=80)
            assert v == pytest.approx(-amp, abs=1e-15)


def test_ctf_zeros_without_spherical_aberration():
    lam, df = acq.wavelength_A(300), 2.5
    n = np.arange(1, 8)
    zeros = np.sqrt(n / (lam * df * 1e4))
    assert np.abs(acq.ctf(zeros, df, cs_mm=0, amplitude_contrast=0)).max() < 1e-9
    peaks = np.sqrt((n + 0.5) / (lam * df * 1e4))  # χ = (n + ½)π: |CTF| = 1 between zeros
    assert np.abs(acq.ctf(peaks, df, cs_mm=0, amplitude_contrast=0)) == pytest.approx(1.0)


def test_ctf_envelopes_have_their_closed_forms():
    k, df, lam, cs = 0.2, 3.0, acq.wavelength_A(300), 2.7e7
    bare = acq.ctf(k, df)
    assert acq.ctf(k, df, bfactor_A2=100) == pytest.approx(bare * np.exp(-100 * k**2 / 4))
    et = np.exp(-0.5 * (np.pi * lam * 80 * k**2) ** 2)
    assert acq.ctf(k, df, focal_spread_A=80) == pytest.approx(bare * et)
    es = np.exp(-(np.pi * 0.05e-3) ** 2 * (cs * lam**2 * k**3 - df * 1e4 * k) ** 2)
    assert acq.ctf(k, df, illumination_mrad=0.05) == pytest.approx(bare * es)
    assert es < 0.999 and et < 0.999  # the envelopes are not trivially 1 here


# ----------------------------------------------------------------------------- dose

def test_tilt_order_sequential_and_dose_symmetric():
    angles = np.arange(-6, 7, 2.0)
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(angles)
    assert list(shuffled[acq.tilt_order(shuffled)]) == list(angles)
    expected = [0, -2, -4, 2, 4, -6, 6]
    assert list(angles[acq.tilt_order(angles, "dose_symmetric")]) == expected
    assert list(shuffled[acq.tilt_order(shuffled, "dose_symmetric")]) == expected
    one = acq.tilt_order(angles, "dose_symmetric", group=1)
    assert list(angles[one]) == [0, -2, 2, -4, 4, -6, 6]
    asym = np.arange(-50, 31, 10.0)
    got = asym[acq.tilt_order(asym, "dose_symmetric")]
    assert list(got) == [0, -10, -20, 10, 20, -30, -40, 30, -50]


def test_dose_schedule_sums_weights_and_accumulates_in_acquisition_order():
    angles = np.arange(-60, 61, 3.0)
    for weighting in ("equal", "cos"):
        for order in ("sequential", "dose_symmetric"):
            dose, before = acq.dose_schedule(angles, 123.0, weighting, order)
            assert dose.sum() == pytest.approx(123.0)
            idx = acq.tilt_order(angles, order)
            assert before[idx[0]] == 0
            assert np.all(np.diff(before[idx]) > 0)
            assert np.allclose(before[idx[1:]], np.cumsum(dose[idx])[:-1])
    dose, _ = acq.dose_schedule(angles, 123.0, "cos")
    assert dose[angles == 60][0] / dose[angles == 0][0] == pytest.approx(2.0)
    dose, before = acq.dose_schedule(angles, 123.0, order="dose_symmetric")
    assert np.allclose(dose, 3.0)
    assert before[angles == 0][0] == 0 and before[angles == 3][0] == 9.0  # after 0, -3, -6
    assert before[angles == 60][0] > before[angles == 30][0]
    # an asymmetric, unsorted range
    asym = np.random.default_rng(2).permutation(np.arange(-50, 31, 2.0))
    dose, before = acq.dose_schedule(asym, 80.0, "cos", "dose_symmetric", group=3)
    assert dose.sum() == pytest.approx(80.0) and before[asym == 0][0] == 0
    assert before.max() == pytest.approx(80.0 - dose[np.argmax(before)])


def test_critical_exposure_and_exposure_filter():
    k = 0.1
    ne300 = 0.245 * k**-1.665 + 2.81
    assert acq.critical_exposure(k) == pytest.approx(ne300)
    assert acq.critical_exposure(k, 200) == pytest.approx(0.8 * ne300)
    assert acq.critical_exposure(k, 250) == pytest.approx(0.9 * ne300)
    assert np.isinf(acq.critical_exposure(0.0))
    n, p, dose = 64, 2.0, 20.0
    filt = acq.exposure_filter((n, n), p, dose)
    assert filt.shape == (n, n) and filt[0, 0] == 1.0
    j = 10
    kj = j / (n * p)
    assert filt[0, j] == pytest.approx(np.exp(-dose / (2 * (0.245 * kj**-1.665 + 2.81))))
    assert filt[j, 0] == pytest.approx(filt[0, j])
    assert np.all(np.diff(filt[0, : n // 2]) < 0)
    more = acq.exposure_filter((n, n), p, 2 * dose)
    assert np.all(more[0, 1:] < filt[0, 1:])
    stack = acq.exposure_filter((n, n), p, [0.0, dose])
    assert stack.shape == (2, n, n) and np.all(stack[0] == 1) and np.allclose(stack[1], filt)


def test_ice_path_and_zero_loss():
    assert acq.ice_path_nm([0, 60], 200) == pytest.approx([200, 400])
    zl = acq.zero_loss_fraction([0, 60], 200, mfp_nm=350)
    assert zl == pytest.approx([np.exp(-200 / 350), np.exp(-2 * 200 / 350)])


# ----------------------------------------------------------------------------- detector

def test_counts_are_poisson_and_frames_split_the_dose():
    rng = np.random.default_rng(3)
    flat = np.ones((4, 128, 128))
    counts = acq.count_electrons(flat, 3.0, 2.0, rng)  # 12 e- per pixel
    assert counts.shape == flat.shape
    assert counts.mean() == pytest.approx(12.0, rel=0.01)
    assert counts.var() == pytest.approx(12.0, rel=0.03)
    zl = np.array([1.0, 0.5, 0.5, 1.0])
    counts = acq.count_electrons(flat, 3.0, 2.0, rng, zero_loss=zl)
    assert counts[1:3].mean() == pytest.approx(6.0, rel=0.02)
    frames = acq.count_electrons(flat, 3.0, 2.0, rng, frames=2)
    assert frames.shape == (2,) + flat.shape
    assert frames[0].mean() == pytest.approx(6.0, rel=0.01)
    assert frames[1].mean() == pytest.approx(6.0, rel=0.01)
    total = frames.sum(0)
    assert total.mean() == pytest.approx(12.0, rel=0.01)
    assert total.var() == pytest.approx(12.0, rel=0.03)
    assert abs(np.corrcoef(frames[0].ravel(), frames[1].ravel())[0, 1]) < 0.02
    assert np.all(acq.count_electrons(-flat, 3.0, 2.0, rng) == 0)  # negative I clipped


def test_flat_field_recovers_intensity_on_average():
    rng = np.random.default_rng(4)
    x = np.arange(32)
    pattern = 1 + 0.3 * np.sin(2 * np.pi * x / 8)[None, :] * np.ones((32, 1))
    inten = np.repeat(pattern[None], 64, axis=0)
    zl = np.full(64, 0.6)
    counts = acq.count_electrons(inten, 20.0, 2.0, rng, zero_loss=zl)  # 48 e- per pixel
    ff = acq.flat_field(counts, 20.0, 2.0, zero_loss=zl)
    assert np.abs(ff.mean(0) - pattern).max() < 0.1
    assert np.abs(ff.mean((0, 1)) - pattern[0]).max() < 0.02
    frames = acq.count_electrons(inten, 5.0, 2.0, rng, frames=3)
    ff = acq.flat_field(frames, 5.0, 2.0)
    assert ff.shape == frames.shape
    assert np.abs(ff.mean((0, 1, 2)) - pattern[0]).max() < 0.02


# ----------------------------------------------------------------------------- alignment

def test_shift_images_round_trip_and_integer_roll():
    rng = np.random.default_rng(5)
    for shape in ((3, 32, 48), (3, 31, 33)):
        stack = rng.standard_normal(shape)
        s = rng.uniform(-5, 5, (3, 2))
        back = acq.shift_images(acq.shift_images(stack, s), -s)
        assert np.abs(back - stack).max() < 1e-12
        ints = np.array([[1, -3], [0, 2], [-4, 5]])
        rolled = acq.shift_images(stack, ints)
        for t, (dy, dx) in enumerate(ints):
            assert np.allclose(rolled[t], np.roll(stack[t], (dy, dx), axis=(0, 1)), atol=1e-12)
    # a smooth blob moves by a sub-pixel amount
    y, x = np.mgrid[:48, :48]
    blob = np.exp(-((x - 24.0) ** 2 + (y - 24.0) ** 2) / (2 * 3.0**2))[None]
    moved = acq.shift_images(blob, [[0.25, 1.5]])[0]
    assert (moved * x).sum() / moved.sum() == pytest.approx(25.5, abs=1e-6)
    assert (moved * y).sum() / moved.sum() == pytest.approx(24.25, abs=1e-6)


def test_misalignment_draws_gaussian_errors():
    shifts, angles = acq.misalignment(4000, 0.5, 0.2, np.random.default_rng(6))
    assert shifts.shape == (4000, 2) and angles.shape == (4000,)
    assert shifts.std() == pytest.approx(0.5, rel=0.05)
    assert angles.std() == pytest.approx(0.2, rel=0.05)
    shifts, angles = acq.misalignment(5, 0.0, 0.0, np.random.default_rng(6))
    assert np.all(shifts == 0) and np.all(angles == 0)


# ----------------------------------------------------------------------------- imaging

def test_image_intensity_mean_and_exposure_filter():
    vz = _potential()
    sigma = acq.interaction_constant(300)
    img = acq.image_intensity(vz, [0, 30], 2.0, 3.0, amplitude_contrast=0.1,
                              defocus_gradient=False)
    assert img.dtype == np.float64 and img.shape == vz.shape
    assert img.mean((1, 2)) == pytest.approx(1 - 2 * sigma * 0.1 * vz.mean((1, 2)), abs=1e-12)
    assert img.std() > 1e-3  # phase contrast is visible
    dosed = acq.image_intensity(vz, [0, 30], 2.0, 3.0, cumulative_dose=[0.0, 60.0],
                                defocus_gradient=False)
    plain = acq.image_intensity(vz, [0, 30], 2.0, 3.0, defocus_gradient=False)
    k = _fft_k(64, 64, 2.0)
    damage = acq.exposure_filter((64, 64), 2.0, 60.0)
    ref = np.fft.ifft2(np.fft.fft2(vz[1]) * acq.ctf(k, 3.0) * damage)
    assert np.allclose(dosed[1], 1 + 2 * acq.interaction_constant(300) * ref.real, atol=1e-12)
    assert np.allclose(dosed[0], plain[0])
    assert (dosed[1] - 1).std() < 0.9 * (plain[1] - 1).std()
    assert dosed[1].mean() == pytest.approx(plain[1].mean(), abs=1e-12)
    assert acq.image_intensity(vz.astype(np.float32), [0, 30], 2.0, 3.0).dtype == np.float32


def test_defocus_gradient_strips_match_per_column_defocus():
    n, p, th, df0 = 128, 1.0, 60.0, 2.0
    vz = _potential(1, n, seed=7, smooth=0.5)
    no_grad = acq.image_intensity(vz, [0.0], p, df0, defocus_gradient=False)
    assert np.array_equal(acq.image_intensity(vz, [0.0], p, df0), no_grad)
    # exact reference: the image at each column's own defocus
    x = (np.arange(n) - (n - 1) / 2) * p
    dfx = df0 + x * np.sin(np.deg2rad(th)) * 1e-4
    ref = np.stack([acq.image_intensity(vz, [th], p, d, defocus_gradient=False)[0, :, j]
                    for j, d in enumerate(dfx)], axis=1)
    exact = acq.image_intensity(vz, [th], p, df0, strip_px=1)[0]
    assert np.abs(exact - ref).max() < 1e-12
    flat = acq.image_intensity(vz, [th], p, df0, defocus_gradient=False)[0]
    err_flat = np.abs(flat - ref).max()
    strips = acq.image_intensity(vz, [th], p, df0)[0]  # default: nodes 9 px apart here
    assert np.abs(strips - ref).max() < 0.01 * err_flat
    wide = acq.image_intensity(vz, [th], p, df0, strip_px=32)[0]  # blending error ~ width²
    assert 0.01 * err_flat < np.abs(wide - ref).max() < 0.1 * err_flat
    # handedness -1 at +θ is handedness +1 at -θ
    assert np.allclose(acq.image_intensity(vz, [th], p, df0, handedness=-1, strip_px=4),
                       acq.image_intensity(vz, [-th], p, df0, strip_px=4))


def test_phase_flip_without_gradient_gives_abs_ctf():
    vz = _potential(2, 96, seed=8)
    angles, p, df = [0.0, 40.0], 2.0, [2.0, 3.5]
    sigma = acq.interaction_constant(300)
    img = acq.image_intensity(vz, angles, p, df, defocus_gradient=False)
    flipped = acq.phase_flip(img - 1, angles, p, df, defocus_gradient=False)
    k = _fft_k(96, 96, p)
    for t in range(2):
        ref = np.fft.ifft2(np.abs(acq.ctf(k, df[t])) * np.fft.fft2(2 * sigma * vz[t])).real
        assert np.abs(flipped[t] - ref).max() < 1e-9 * np.abs(ref).max()
    # at 0° the gradient changes nothing
    assert np.allclose(acq.phase_flip(img - 1, angles, p, df)[0], flipped[0], atol=1e-15)


def test_phase_flip_strips_follow_the_defocus_gradient():
    n, p, th, df0 = 128, 1.0, 60.0, 2.0
    vz = _potential(1, n, seed=9, smooth=0.3)
    img = acq.image_intensity(vz, [th], p, df0, strip_px=1) - 1
    x = (np.arange(n) - (n - 1) / 2) * p
    dfx = df0 + x * np.sin(np.deg2rad(th)) * 1e-4
    # reference: every column corrected at its own defocus
    ref = np.stack([acq.phase_flip(img, [th], p, d, defocus_gradient=False)[0, :, j]
                    for j, d in enumerate(dfx)], axis=1)
    flat = acq.phase_flip(img, [th], p, df0, defocus_gradient=False)[0]
    mse_flat = np.mean((flat - ref) ** 2)
    strips = acq.phase_flip(img, [th], p, df0, tolerance_nm=1.0)  # 12 strips of <= 11 px
    assert np.mean((strips[0] - ref) ** 2) < 0.2 * mse_flat
    corr = [np.corrcoef(x.ravel(), ref.ravel())[0, 1] for x in (strips, flat)]
    assert corr[0] > corr[1]
    finer = acq.phase_flip(img, [th], p, df0, tolerance_nm=0.5)
    assert np.mean((finer[0] - ref) ** 2) < 0.6 * np.mean((strips[0] - ref) ** 2)
    assert np.array_equal(acq.phase_flip(img, [th], p, df0, tolerance_nm=1.0, pad_px=n), strips)


def test_phase_flip_local_windows():
    n, p, th, df0 = 128, 2.0, 60.0, 0.5
    img = acq.image_intensity(_potential(1, n, seed=10), [th], p, df0) - 1
    slope = np.sin(np.deg2rad(th)) * p * 1e-4  # µm per column
    # pad_px=0: every strip is corrected on its own; 20 Å / (2 Å sin 60°) -> 12 strips <= 11 px
    out = acq.phase_flip(img, [th], p, df0, tolerance_nm=2.0, pad_px=0)[0]
    lo, hi = 64, 75  # the 7th of np.round(np.linspace(0, 128, 13))
    k = np.hypot(np.fft.fftfreq(n, p)[:, None], np.fft.rfftfreq(hi - lo, p)[None, :])
    flip = np.sign(acq.ctf(k, df0 + slope * ((lo + hi - 1) / 2 - (n - 1) / 2)))
    manual = np.fft.irfft2(np.fft.rfft2(img[0, :, lo:hi]) * flip, s=(n, hi - lo))
    assert np.allclose(out[:, lo:hi], manual, atol=1e-14)
    # 32 columns of context on each side (windows shifted inwards at the edges)
    whole = acq.phase_flip(img, [th], p, df0, tolerance_nm=2.0)[0]
    local = acq.phase_flip(img, [th], p, df0, tolerance_nm=2.0, pad_px=32)[0]
    assert np.corrcoef(local.ravel(), whole.ravel())[0, 1] > 0.9


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("call, name", [
    (lambda: acq.dose_schedule([0, 10], -1.0), "total_dose"),
    (lambda: acq.dose_schedule([0, 10], 10.0, weighting="sqrt"), "weighting"),
    (lambda: acq.dose_schedule([0, 90], 10.0, weighting="cos"), "angles_deg"),
    (lambda: acq.tilt_order([0, 10], "spiral"), "scheme"),
    (lambda: acq.tilt_order([0, 10], "dose_symmetric", group=0), "group"),
    (lambda: acq.tilt_order([], "sequential"), "angles_deg"),
    (lambda: acq.wavelength_A(0), "voltage_kv"),
    (lambda: acq.ctf(0.1, 2.0, amplitude_contrast=1.5), "amplitude_contrast"),
    (lambda: acq.ctf(0.1, 2.0, cs_mm=-1), "cs_mm"),
    (lambda: acq.exposure_filter((8, 8), 1.0, -3.0), "cumulative_dose"),
    (lambda: acq.exposure_filter((8, 8), 0.0, 3.0), "pixel_A"),
    (lambda: acq.zero_loss_fraction([0], 100, mfp_nm=0), "mfp_nm"),
    (lambda: acq.ice_path_nm([0], -5), "thickness_nm"),
    (lambda: acq.count_electrons(np.ones((1, 4, 4)), -1.0, 1.0, np.random.default_rng()),
     "dose_per_tilt"),
    (lambda: acq.count_electrons(np.ones((1, 4, 4)), 1.0, 1.0, 0), "rng"),
    (lambda: acq.count_electrons(np.ones((1, 4, 4)), 1.0, 1.0, np.random.default_rng(), 0),
     "frames"),
    (lambda: acq.image_intensity(np.ones((2, 8, 8)), [0], 1.0, 2.0), "angles_deg"),
    (lambda: acq.image_intensity(np.ones((1, 8, 8)), [0], 1.0, 2.0, handedness=0), "handedness"),
    (lambda: acq.image_intensity(np.ones((1, 8, 8)), [0], 1.0, [2.0, 3.0]), "defocus_um"),
    (lambda: acq.image_intensity(np.ones((8, 8)), [0], 1.0, 2.0), "projected_potential"),
    (lambda: acq.phase_flip(np.ones((1, 8, 8)), [30], 1.0, 2.0, tolerance_nm=0), "tolerance_nm"),
    (lambda: acq.shift_images(np.ones((2, 8, 8)), [[0, 1]]), "shifts_px"),
    (lambda: acq.misalignment(3, -0.5, 0.1, np.random.default_rng()), "shift_px"),
])
def test_bad_inputs_raise_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
