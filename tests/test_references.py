"""The field's own libraries as independent references for our physics and numerics.

Each test runs one of our functions and a library of the cryo-EM field on the same input,
maps the two conventions onto each other explicitly, and compares within a tolerance that
is a named constant below, with the reason for its size. None of these inputs is a table
seed or was used to develop our code.

* ``torch-ctf`` (teamtomo): the electron wavelength, the CTF in 1-D and 2-D, its zeros,
  and the weak-phase image of :func:`wedgebench.acquisition.image_intensity`.
* ``torch-fourier-shell-correlation`` (teamtomo): :mod:`wedgebench.metrics.fsc`.
* ``torch-fourier-slice`` (teamtomo): our projectors and our EMAN2-style direct Fourier
  inversion (:mod:`wedgebench.recon.fourier`) against its central-slice projection and
  insertion.
* ``gemmi.DensityCalculatorE``: the atomic-model potential of
  :mod:`wedgebench.phantoms.ubiquitin`, on the packaged 1UBQ, on a small hand-made model
  with a modified residue and a ligand, and on PDB 1HVR (when it is shipped in
  ``data/pdb/`` or the shared data folder is present).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch
import torch_ctf
import torch_fourier_slice as tfs
from scipy.optimize import brentq
from torch_fourier_shell_correlation import fourier_correlation, fourier_shell_correlation

from wedgebench import acquisition as acq
from wedgebench.metrics.fsc import fsc
from wedgebench.phantoms import ubiquitin
from wedgebench.projector import project
from wedgebench.recon import fourier
from wedgebench.tiltseries import simulate_projections

FLOAT32_EPS = float(np.finfo(np.float32).eps)


# =========================================================================== CTF
#
# Sign convention. torch-ctf computes CTF_tc = −sin(γ) with
# γ = −πλΔf k² + (π/2) C_s λ³ k⁴ − arcsin(A) (phase shift 0; Δf > 0 underfocus in both).
# With our χ = πλΔf k² − (π/2) C_s λ³ k⁴ this is γ = −(χ + arcsin A), so
# CTF_tc = sin(χ + arcsin A) = √(1−A²) sin χ + A cos χ = −CTF_ours:
# the two differ by the overall sign only (torch-ctf: CTF(0) = +A; ours: −A, dense matter
# dark, as in reference.md §6). The tests compare ours with −CTF_tc.

#: Combinations none of our tests or defaults use (defocus µm, kV, C_s mm, A, pixel Å):
#: 80–300 kV, C_s 0–3.3 mm, amplitude contrast 0–0.2, under- and near focus.
CTF_SETTINGS = [
    (1.3, 300.0, 2.7, 0.10, 1.35),
    (4.2, 200.0, 2.0, 0.07, 2.1),
    (0.7, 120.0, 1.4, 0.15, 0.8),
    (5.9, 300.0, 0.0, 0.0, 3.4),
    (2.5, 100.0, 3.3, 0.20, 1.0),
    (3.7, 80.0, 1.0, 0.05, 1.7),
]

#: torch-ctf works in float32, so its phase χ (up to ~10³ rad at Nyquist here) carries an
#: absolute error of a few float32 ulps of χ; the CTF then differs by at most that much.
#: The tolerance is this many ulps of the largest |χ| of the curve (measured: ≤ 2).
CTF_PHASE_ULPS = 8

#: Wavelength: torch-ctf evaluates h c / √(eV (2 m c² + eV)) in float32 (relative error
#: ~1e-7, measured ≤ 9e-8); ours is float64.
WAVELENGTH_RTOL = 1e-6

#: Zeros: torch-ctf's curve sampled every 0.5/(N−1) cycles/pixel (N = 20001) is
#: interpolated linearly between the two samples around each sign change; the error of
#: that zero is ~h²·|f''/f'| ≪ 1e-5 relative (measured ≤ 1.2e-7). Our zero (brentq on our
#: CTF to 1e-15) must also lie inside torch-ctf's bracketing interval.
ZERO_RTOL = 1e-5
N_ZEROS = 5


def _chi(k, defocus_um, voltage_kv, cs_mm):
    lam = acq.wavelength_A(voltage_kv)
    return np.pi * lam * defocus_um * 1e4 * k**2 - 0.5 * np.pi * cs_mm * 1e7 * lam**3 * k**4


def _ctf_tol(k, defocus_um, voltage_kv, cs_mm):
    return CTF_PHASE_ULPS * FLOAT32_EPS * float(np.abs(_chi(k, defocus_um, voltage_kv,
                                                             cs_mm)).max()) + 1e-6


@pytest.mark.parametrize("voltage_kv", [80.0, 120.0, 200.0, 300.0])
def test_wavelength_matches_torch_ctf(voltage_kv):
    ref = float(torch_ctf.calculate_relativistic_electron_wavelength(voltage_kv * 1e3)) * 1e10
    assert acq.wavelength_A(voltage_kv) == pytest.approx(ref, rel=WAVELENGTH_RTOL)


@pytest.mark.parametrize("defocus,kv,cs,amp,pixel", CTF_SETTINGS)
def test_ctf_1d_matches_torch_ctf(defocus, kv, cs, amp, pixel):
    n = 1025
    ref = torch_ctf.calculate_ctf_1d(
        defocus=defocus, voltage=kv, spherical_aberration=cs, amplitude_contrast=amp,
        phase_shift=0.0, pixel_size=pixel, n_samples=n, oversampling_factor=1).numpy()
    k = np.linspace(0.0, 0.5, n) / pixel  # torch-ctf's grid: linspace(0, 0.5) / pixel
    ours = acq.ctf(k, defocus, kv, cs, amp)
    assert ours[0] == pytest.approx(-amp) and ref[0] == pytest.approx(amp, abs=1e-7)
    err = np.abs(ours - (-ref)).max()
    assert err <= _ctf_tol(k, defocus, kv, cs), err


@pytest.mark.parametrize("shape", [(45, 64), (64, 51)])
@pytest.mark.parametrize("setting", [CTF_SETTINGS[1], CTF_SETTINGS[4]])
def test_ctf_2d_and_weak_phase_image_match_torch_ctf(shape, setting):
    """Our CTF on the rfft2 grid of odd/even, non-square images, and the weak-phase image
    I = 1 + 2σ F⁻¹{CTF · F[V_z]} of ``image_intensity`` (one tilt, no defocus gradient)
    against the same image built with torch-ctf's 2-D CTF (sign mapped as above)."""
    defocus, kv, cs, amp, pixel = setting
    ny, nx = shape
    ref = torch_ctf.calculate_ctf_2d(
        defocus=defocus, astigmatism=0.0, astigmatism_angle=0.0, voltage=kv,
        spherical_aberration=cs, amplitude_contrast=amp, phase_shift=0.0, pixel_size=pixel,
        image_shape=shape, rfft=True, fftshift=False).numpy().astype(np.float64)
    k = np.hypot(np.fft.fftfreq(ny, pixel)[:, None], np.fft.rfftfreq(nx, pixel)[None, :])
    assert ref.shape == k.shape
    ours = acq.ctf(k, defocus, kv, cs, amp)
    err = np.abs(ours + ref).max()
    assert err <= _ctf_tol(k, defocus, kv, cs), err

    vz = np.random.default_rng(2024).normal(0.0, 5.0, shape)  # V·Å
    image = acq.image_intensity(vz[None], [0.0], pixel, defocus, voltage_kv=kv, cs_mm=cs,
                                amplitude_contrast=amp, defocus_gradient=False)[0]
    sigma = acq.interaction_constant(kv)
    expected = 1 + 2 * sigma * np.fft.irfft2(np.fft.rfft2(vz) * -ref, s=shape)
    rel = np.linalg.norm(image - expected) / np.linalg.norm(expected - 1)
    # the CTF tolerance relative to the CTF's own size, plus float32 output rounding
    assert rel <= _ctf_tol(k, defocus, kv, cs) + 1e-5, rel


@pytest.mark.parametrize("defocus,kv,cs,amp,pixel", CTF_SETTINGS)
def test_ctf_zeros_match_torch_ctf(defocus, kv, cs, amp, pixel):
    n = 20001
    ref = torch_ctf.calculate_ctf_1d(
        defocus=defocus, voltage=kv, spherical_aberration=cs, amplitude_contrast=amp,
        phase_shift=0.0, pixel_size=pixel, n_samples=n, oversampling_factor=1
    ).numpy().astype(np.float64)
    k = np.linspace(0.0, 0.5, n) / pixel
    i = np.flatnonzero(np.sign(ref[1:]) != np.sign(ref[:-1]))
    i = i[i > 0] if ref[0] == 0 else i  # A = 0: k = 0 is a zero of both, not counted
    ref_zeros = k[i] - ref[i] * (k[i + 1] - k[i]) / (ref[i + 1] - ref[i])

    def ours(x):
        return float(acq.ctf(x, defocus, kv, cs, amp))

    grid = np.linspace(0.0, 0.5 / pixel, 10 * n)
    v = acq.ctf(grid, defocus, kv, cs, amp)
    j = np.flatnonzero(np.sign(v[1:]) != np.sign(v[:-1]))
    j = j[j > 0] if v[0] == 0 else j
    our_zeros = np.array([brentq(ours, grid[m], grid[m + 1], xtol=1e-15) for m in j])

    assert our_zeros.size == ref_zeros.size  # the same number of zeros up to Nyquist
    assert our_zeros.size >= N_ZEROS
    for z, lo, hi, zr in zip(our_zeros[:N_ZEROS], k[i], k[i + 1], ref_zeros):
        assert lo <= z <= hi
        assert z == pytest.approx(zr, rel=ZERO_RTOL)


# =========================================================================== FSC
#
# Conventions. Ours: one-voxel shells round(|k|·N), N = the largest dimension, shells
# 1 … N//2; Re Σ F₁F₂* / √(Σ|F₁|² Σ|F₂|²) over the full Fourier space (the rfft half with
# Friedel weights); no mean subtraction; the DC voxel is in no shell.
# torch-fourier-shell-correlation (TFSC): bins at rfftfreq(min(shape)), each voxel shared
# linearly between the two bins around its |k| (a triangular kernel one bin wide on each
# side); the same correlation, no mean subtraction; bin 0 (DC) is 1 by definition, so
# its bin i ≥ 1 is compared with our shell at the same frequency.
# Its default (rfft) path sums the rfft half without Friedel weights, which counts the
# kx = 0 plane (and Nyquist plane) twice relative to the rest; its full-FFT path
# (``fourier_correlation(..., rfft=False)``) does not, so the exact comparison uses that.

#: When the spectra live only on voxels whose radius is a whole number of TFSC bins, the
#: two binnings coincide (the triangular weight is 1 there) and the curves must agree to
#: float rounding (TFSC's frequency grid is float32: weights 1 − O(1e-7); measured ≤ 3e-7).
FSC_EXACT_TOL = 1e-5

#: Dense volumes: the two estimators weight the same noisy voxels differently (hard
#: shells vs the triangular kernel), so they differ by a fraction of the sampling error of
#: one shell estimate, SE = (1 − ρ²)/√(n/2) for n voxels (n/2 independent complex
#: coefficients). Tolerance: this many SE, plus FSC_FLOOR for shells where ρ ≈ 1.
#: Measured: ≤ 1.8 SE wherever ρ < 0.99 (cubes and slabs); up to 4.8 SE at the lowest
#: shells (ρ > 0.999) but there |Δ| ≤ 3e-4; every shell within a third of its tolerance.
FSC_Z_TOL = 4.0
FSC_FLOOR = 2e-3


def _kgrid(shape):
    fz, fy, fx = (np.fft.fftfreq(n) for n in shape)
    return np.sqrt(fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2)


def _sparse_pair(shape, coarse, rng):
    """Two correlated volumes whose Fourier content lies only on voxels with |k|·coarse a
    whole number; both kx = 0 and kx > 0 voxels carry power."""
    r = _kgrid(shape) * coarse
    sel = np.abs(r - np.rint(r)) < 1e-9
    a = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * sel
    b = 0.6 * a + (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * sel
    return np.fft.ifftn(a).real, np.fft.ifftn(b).real


def _random_pair(shape, rng):
    """White signal s and s + noise whose amplitude grows as k/0.12: expected FSC
    1/√(1 + (k/0.12)²), smooth in k."""
    s = rng.normal(size=shape)
    noise = np.fft.ifftn(np.fft.fftn(rng.normal(size=shape)) * (_kgrid(shape) / 0.12)).real
    return s, s + noise


def _structured_pair(shape, rng):
    """Soft-edged balls and a blurred, noisy copy (a reconstruction-like pair)."""
    from scipy.ndimage import gaussian_filter

    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    vol = np.zeros(shape)
    for _ in range(30):
        c = [rng.uniform(0.2 * n, 0.8 * n) for n in shape]
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        vol += rng.uniform(0.3, 1.0) * 0.5 * (1 - np.tanh((d - rng.uniform(2, 6)) / 0.7))
    return vol, gaussian_filter(vol, 1.0) + 0.05 * rng.normal(size=shape)


@pytest.mark.parametrize("shape,coarse", [((33, 33, 33), 33), ((32, 32, 32), 32),
                                          ((24, 48, 48), 24), ((25, 50, 50), 25)])
def test_fsc_equals_tfsc_where_the_binnings_coincide(shape, coarse):
    a, b = _sparse_pair(shape, coarse, np.random.default_rng(sum(shape)))
    ours = fsc(a, b, 1.0)
    step = max(shape) // coarse  # our shell step·i is TFSC's bin i
    curve = ours["fsc"].to_numpy()[step - 1::step]
    ref = fourier_correlation(torch.from_numpy(np.fft.fftn(a)), torch.from_numpy(np.fft.fftn(b)),
                              shape, rfft=False).numpy()[1:]
    assert curve.size == ref.size == min(shape) // 2
    assert np.abs(curve - ref).max() <= FSC_EXACT_TOL


@pytest.mark.parametrize("maker", [_random_pair, _structured_pair])
@pytest.mark.parametrize("size", [41, 48])
def test_fsc_curve_agrees_with_tfsc_on_cubes(maker, size):
    rng = np.random.default_rng(500 + size)
    a, b = maker((size,) * 3, rng)
    ours = fsc(a, b, 1.0)
    rho, n = ours["fsc"].to_numpy(), ours["n_voxels"].to_numpy()
    ref = fourier_shell_correlation(torch.from_numpy(a), torch.from_numpy(b)).numpy()[1:]
    se = (1 - rho**2) / np.sqrt(n / 2)
    assert ref.size == rho.size
    assert np.all(np.abs(rho - ref) <= FSC_Z_TOL * se + FSC_FLOOR), np.abs(rho - ref) / se
    if maker is _random_pair:  # both estimate the known curve
        expected = 1 / np.sqrt(1 + (ours["shell"].to_numpy() / size / 0.12) ** 2)
        assert np.all(np.abs(rho - expected) <= FSC_Z_TOL * se + FSC_FLOOR)


@pytest.mark.parametrize("shape", [(24, 48, 48), (25, 60, 60)])
def test_fsc_curve_agrees_with_tfsc_on_slabs(shape):
    """Slabs: TFSC's bins are 1/min(shape) wide, ours 1/max(shape), so our curve is
    interpolated at TFSC's frequencies: a like-for-like comparison only for a curve that is
    smooth over a TFSC bin, i.e. the random pair with its known smooth FSC. (Our shells on
    slabs are checked exactly above.)"""
    a, b = _random_pair(shape, np.random.default_rng(sum(shape)))
    ours = fsc(a, b, 1.0)
    freq = np.fft.rfftfreq(min(shape))[1:]
    rho = np.interp(freq, ours["frequency"], ours["fsc"])
    n = np.interp(freq, ours["frequency"], ours["n_voxels"]) * max(shape) / min(shape)
    ref = fourier_shell_correlation(torch.from_numpy(a), torch.from_numpy(b)).numpy()[1:]
    se = (1 - rho**2) / np.sqrt(n / 2)
    assert np.all(np.abs(rho - ref) <= FSC_Z_TOL * se + FSC_FLOOR), np.abs(rho - ref) / se


# =========================================================================== Fourier slice
#
# Geometry. Ours (wedgebench.geometry): a centred point (x, z) projects at tilt θ to
# u = x cosθ − z sinθ; the detector row is y. torch-fourier-slice (TFS) extracts the
# central slice spanned by R·x̂ and R·ŷ (xyz rotation matrices acting on column vectors),
# image axes (y, x): R = R_y(θ) = [[cosθ, 0, sinθ], [0, 1, 0], [−sinθ, 0, cosθ]] maps the
# image's x to (cosθ, 0, −sinθ) — our detector direction — and the beam to (sinθ, 0, cosθ).
# Centres: ours (n − 1)/2, TFS n//2; TFS needs even cubes (it takes the size from the
# rfft width as (n//2)·2, and for odd n its images come out ~0.5 px off along x), so an
# even cube of d = 48 is used. The object is continuous (Gaussian blobs) and sampled about
# each code's own centre; TFS's images (pixel j at j − d/2) are then moved by −½ pixel in y
# and u (Fourier shift) onto our pixels (i at i − (d−1)/2), and its volumes by −½ voxel on
# every axis.

SLICE_D = 48

#: Projections, TFS at pad_factor 4. TFS's own error against the analytic line integrals
#: is ≤ 1.0 % per tilt (relative L2; largest at 0°, where its real-space sinc²
#: pre-correction is not undone by interpolation because the slice falls on grid planes;
#: up to 4.2 % at its default pad 2), and it over-estimates each projection's mass by
#: 0.4–1.1 % (2.3–4.4 % at pad 2); our projectors are within 0.8 % of the analytic ones
#: away from 45°. Tolerances per tilt: relative L2 ≤ 2.5 % (measured ≤ 1.4 %), mass
#: within 1.5 % (measured ≤ 1.1 %), centroid along u within 0.012 px (measured ≤ 0.006 px;
#: a 1° error in the tilt angle moves it by up to 0.027 px on this object), and a
#: correlation ≥ 0.9995 over the stack (measured ≥ 0.9999).
PROJ_REL_TOL = 0.025
PROJ_MASS_TOL = 0.015
PROJ_CENTROID_TOL_PX = 0.012
PROJ_CORR_MIN = 0.9995
TFS_PAD = 4.0

#: Reconstruction within the central ball: the two are 4.0 % apart (relative L2),
#: r = 0.9996, amplitude ours/TFS 0.968; against the ground truth ours is 3.8 % off
#: (r = 0.9992, amplitude 0.987), TFS 4.4 % (r = 0.9991, amplitude 1.020: its sinc²
#: correction over-shoots, as in projection). Tolerances: ≤ 6 % apart, r ≥ 0.999,
#: amplitude within 5 %, each r ≥ 0.998 with the ground truth. Half a voxel of offset in
#: ours gives 9 % and r = 0.995.
RECON_REL_TOL = 0.06
RECON_CORR_MIN = 0.999
RECON_AMP_TOL = 0.05
RECON_TRUTH_CORR_MIN = 0.998

#: Tilts of the projection test: asymmetric, a set off the grid diagonals and one on them.
#: Near ±45° the voxel-driven linear-splatting model aliases (the xfail case, the reason
#: for the footprint model that the fits use since 2026-12-04).
ANGLES_GENERAL = [-58.0, -37.0, -23.0, -7.0, 0.0, 12.0, 29.0, 38.0, 61.0]
ANGLES_DIAGONAL = [-46.0, -44.0, 45.0]


def _blobs():
    rng = np.random.default_rng(4321)
    return [(rng.uniform(-10, 10, 3), rng.uniform(1.5, 3.5), rng.uniform(0.3, 1.0))
            for _ in range(25)]


def _blob_volume(blobs, centre, d=SLICE_D):
    g = np.arange(d) - centre
    z, y, x = g[:, None, None], g[None, :, None], g[None, None, :]
    vol = np.zeros((d, d, d))
    for (pz, py, px), s, a in blobs:
        vol += a * np.exp(-((z - pz) ** 2 + (y - py) ** 2 + (x - px) ** 2) / (2 * s * s))
    return vol


def _blob_projections(blobs, angles, centre, d=SLICE_D):
    """Analytic line integrals: a 3-D Gaussian projects to a 2-D Gaussian at (y, u)."""
    g = np.arange(d) - centre
    out = np.zeros((len(angles), d, d))
    for t, th in enumerate(np.deg2rad(angles)):
        for (pz, py, px), s, a in blobs:
            u0 = px * np.cos(th) - pz * np.sin(th)
            out[t] += (a * np.sqrt(2 * np.pi) * s
                       * np.exp(-((g[:, None] - py) ** 2 + (g[None, :] - u0) ** 2) / (2 * s * s)))
    return out


def _rot_y(angles_deg):
    t = np.deg2rad(np.asarray(angles_deg, float))
    c, s, o = np.cos(t), np.sin(t), np.zeros_like(t)
    return torch.from_numpy(np.stack([np.stack([c, o, s], -1), np.stack([o, o + 1, o], -1),
                                      np.stack([-s, o, c], -1)], -2)).float()


def _fourier_shift(arr, shift):
    """Shift every axis after the first ``arr.ndim - len(shift)`` by ``shift`` (periodic)."""
    spec = np.fft.fftn(arr, axes=range(arr.ndim - len(shift), arr.ndim))
    for ax, s in zip(range(arr.ndim - len(shift), arr.ndim), shift):
        shape = [1] * arr.ndim
        shape[ax] = arr.shape[ax]
        spec = spec * np.exp(-2j * np.pi * np.fft.fftfreq(arr.shape[ax]) * s).reshape(shape)
    return np.fft.ifftn(spec, axes=range(arr.ndim - len(shift), arr.ndim)).real


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("projector,angles", [
    ("ray-driven simulator", ANGLES_GENERAL + ANGLES_DIAGONAL),
    ("footprint projector", ANGLES_GENERAL + ANGLES_DIAGONAL),
    ("linear-splat projector", ANGLES_GENERAL),
    pytest.param("linear-splat projector", ANGLES_DIAGONAL, marks=pytest.mark.xfail(
        strict=True, reason="voxel-driven linear splatting aliases near 45° (unit-width "
        "kernel: at 45° its per-pixel gain swings 0.91–1.14): 4.5–6.7 % from the analytic "
        "projection at 44–46°, 2 % at 43°/47°, ≤ 0.6 % elsewhere; why the fits use the "
        "footprint model (cn.projector)")),
])
def test_projections_agree_with_torch_fourier_slice(projector, angles):
    blobs, d = _blobs(), SLICE_D
    ours_vol = _blob_volume(blobs, (d - 1) / 2).astype(np.float32)
    tfs_vol = torch.from_numpy(_blob_volume(blobs, d / 2)).float()
    ref = tfs.project_3d_to_2d(tfs_vol, _rot_y(angles), pad_factor=TFS_PAD).numpy()
    ref = _fourier_shift(ref.astype(np.float64), (-0.5, -0.5))
    if projector == "ray-driven simulator":
        ours = simulate_projections(ours_vol, angles)
    else:
        model = "footprint" if projector.startswith("footprint") else "linear"
        ours = project(ours_vol, angles, model=model)
    truth = _blob_projections(blobs, angles, (d - 1) / 2)
    n = len(angles)
    u = np.arange(d) - (d - 1) / 2
    mass_o, mass_r = ours.sum(axis=(1, 2)), ref.sum(axis=(1, 2))
    centroid_o = (ours.sum(axis=1) * u).sum(axis=1) / mass_o
    centroid_r = (ref.sum(axis=1) * u).sum(axis=1) / mass_r
    per_tilt = np.array([_rel(ours[t], ref[t]) for t in range(n)])
    info = dict(ours_vs_tfs=np.round(per_tilt, 4),
                ours_vs_analytic=np.round([_rel(ours[t], truth[t]) for t in range(n)], 4),
                tfs_vs_analytic=np.round([_rel(ref[t], truth[t]) for t in range(n)], 4),
                mass=np.round(mass_o / mass_r - 1, 4),
                centroid=np.round(centroid_o - centroid_r, 4))
    assert per_tilt.max() <= PROJ_REL_TOL, info
    assert np.abs(mass_o / mass_r - 1).max() <= PROJ_MASS_TOL, info
    assert np.abs(centroid_o - centroid_r).max() <= PROJ_CENTROID_TOL_PX, info
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] >= PROJ_CORR_MIN, info


def test_fourier_inversion_agrees_with_torch_fourier_slice_insertion():
    """A nearly full-range acquisition (±85° every 2°) of the blob object, simulated with
    our ray-driven projector, reconstructed by our direct Fourier inversion (no low-pass:
    TFS has none) and by TFS's central-slice insertion (``backproject_2d_to_3d``)."""
    blobs, d = _blobs(), SLICE_D
    angles = np.arange(-85.0, 86.0, 2.0)
    truth = _blob_volume(blobs, (d - 1) / 2).astype(np.float32)
    stack = simulate_projections(truth, angles)
    ours = fourier.reconstruct(stack, angles, d, lowpass_voxels=0)
    tfs_input = torch.from_numpy(_fourier_shift(stack.astype(np.float64), (0.5, 0.5))).float()
    ref = tfs.backproject_2d_to_3d(tfs_input, _rot_y(angles)).numpy().astype(np.float64)
    ref = _fourier_shift(ref, (-0.5, -0.5, -0.5))
    g = np.arange(d) - (d - 1) / 2
    ball = (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
            <= (d / 2 - 4) ** 2)
    o, r, t = ours[ball], ref[ball], truth[ball]
    info = dict(rel=_rel(o, r), corr=np.corrcoef(o, r)[0, 1], amp=(o @ r) / (r @ r),
                ours_truth=np.corrcoef(o, t)[0, 1], tfs_truth=np.corrcoef(r, t)[0, 1])
    assert info["rel"] <= RECON_REL_TOL, info
    assert info["corr"] >= RECON_CORR_MIN, info
    assert abs(info["amp"] - 1) <= RECON_AMP_TOL, info
    assert min(info["ours_truth"], info["tfs_truth"]) >= RECON_TRUTH_CORR_MIN, info


# =========================================================================== gemmi
#
# Mapping. Ours: each atom a sum of five Gaussians (Peng's electron scattering factors,
# gemmi's c4322 table) blurred by its isotropic B, *integrated over each voxel*, divided
# by the voxel volume; molecule's scattering-weighted centre at the box centre (n − 1)/2.
# gemmi.DensityCalculatorE: the same sum *sampled at grid points*, anisotropic ADPs when
# present. To compare like with like, gemmi's map is computed on a grid GEMMI_SUBSAMPLE×
# finer and averaged over each voxel's sub-grid (the midpoint rule for the voxel
# integral), with its ``blur`` set to the B of one fine cell's box (8π²·h²/12, the box's
# variance h²/12), anisotropic ADPs cleared (ours are isotropic), a P1 cell the size of the
# box, the same atoms (waters, ligands and alternative conformations removed by gemmi's own
# functions) and the same centre. Units are the same (scattering-factor Å per Å³).

GEMMI_SUBSAMPLE = 4

#: Measured (1UBQ at 1 and 2 Å, 1HVR at 1 and 3 Å, the fragment): 1 − r ≤ 5e-8, slope
#: 1 + (0.4–8)e-5, mass ratio 1 + (0.9–1.8)e-4 (gemmi drops each atom's density where it
#: falls below ``cutoff`` = 1e-5). Tolerances leave ≥ 5× for the midpoint rule on the
#: narrowest atoms and other gemmi versions. (Before our reader kept modified residues it
#: dropped 1HVR's two CSO residues as ligands: 1 − r = 7e-3, slope 0.988.)
GEMMI_ONE_MINUS_CORR = 1e-6
GEMMI_SLOPE_TOL = 5e-4
GEMMI_MASS_TOL = 1e-3

UBQ = importlib.resources.files("wedgebench").joinpath("data/1ubq.pdb")


def _unseen_model(name="1HVR.pdb.gz"):
    """A PDB entry our phantom code was not developed on: shipped with the package when
    ``data/pdb/`` is there, else from the project's shared data folder; None if neither."""
    shipped = importlib.resources.files("wedgebench").joinpath(f"data/pdb/{name}")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdb" / name
    for path in (shipped, shared):
        if path.is_file():
            return path
    return None


UNSEEN = _unseen_model()

# A hand-made tripeptide whose middle residue is a modified cysteine written as HETATM
# (as PDB files write MSE, CSO, ...), then a ligand and a water (coordinates invented).
FRAGMENT_PDB = """\
ATOM      1  N   GLY A   1       0.000   0.000   0.000  1.00 20.00           N
ATOM      2  CA  GLY A   1       1.458   0.000   0.000  1.00 18.00           C
ATOM      3  C   GLY A   1       2.009   1.420   0.000  1.00 17.00           C
ATOM      4  O   GLY A   1       1.251   2.390   0.000  1.00 22.00           O
HETATM    5  N   CSO A   2       3.332   1.536   0.000  1.00 16.00           N
HETATM    6  CA  CSO A   2       3.970   2.846   0.000  1.00 15.00           C
HETATM    7  CB  CSO A   2       5.486   2.695   0.000  1.00 19.00           C
HETATM    8  SG  CSO A   2       6.220   4.340   0.000  0.80 24.00           S
HETATM    9  C   CSO A   2       3.500   3.640   1.220  1.00 16.00           C
HETATM   10  O   CSO A   2       2.800   3.100   2.080  1.00 21.00           O
HETATM   11  OD  CSO A   2       7.600   4.100   0.600  0.80 30.00           O
ATOM     12  N   GLY A   3       3.860   4.910   1.300  1.00 18.00           N
ATOM     13  CA  GLY A   3       3.480   5.800   2.400  1.00 20.00           C
ATOM     14  C   GLY A   3       4.600   6.800   2.700  1.00 23.00           C
ATOM     15  O   GLY A   3       5.700   6.700   2.100  1.00 26.00           O
TER      16      GLY A   3
HETATM   17  C1  LIG A 101       9.000   0.000   3.000  1.00 20.00           C
HETATM   18  O1  LIG A 101      10.200   0.400   3.400  1.00 20.00           O
HETATM   19  O   HOH A 201      -3.000   2.000   1.000  1.00 30.00           O
END
"""


def _gemmi_density(path, shape, voxel_size, b_factor=None, ligands=False):
    """gemmi's electron-scattering density, voxel-averaged, on our grid and centre."""
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    if ligands:
        st.remove_waters()
    else:
        st.remove_ligands_and_waters()
    st.remove_alternative_conformations()
    while len(st) > 1:
        del st[len(st) - 1]
    model = st[0]
    xyz, w = [], []
    for cra in model.all():
        atom = cra.atom
        atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
        if b_factor is not None:
            atom.b_iso = b_factor
        xyz.append(atom.pos.tolist())
        w.append(atom.occ * sum(atom.element.c4322.get_coefs()[:5]))
    xyz, w = np.array(xyz), np.array(w)
    k, h = GEMMI_SUBSAMPLE, voxel_size / GEMMI_SUBSAMPLE
    fine = [n * k for n in shape]  # [z, y, x]
    # voxel i averages fine points i·k … i·k + k − 1, centred at ((n·k − 1)/2)·h for the
    # middle voxel (n − 1)/2: put the molecule's centre there
    shift = (np.array(fine[::-1]) - 1) / 2 * h - (w @ xyz) / w.sum()
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    calc = gemmi.DensityCalculatorE()
    calc.grid.set_unit_cell(gemmi.UnitCell(*(n * h for n in fine[::-1]), 90, 90, 90))
    calc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    calc.grid.set_size(*fine[::-1])
    calc.blur = 8 * np.pi**2 * h**2 / 12
    calc.initialize_grid()
    calc.add_model_density_to_grid(model)
    calc.grid.symmetrize_sum()
    dens = np.array(calc.grid, copy=True).transpose(2, 1, 0)  # gemmi [x, y, z] -> [z, y, x]
    nz, ny, nx = shape
    return dens.reshape(nz, k, ny, k, nx, k).mean(axis=(1, 3, 5)), len(xyz)


def _compare_with_gemmi(path, shape, voxel_size, b_factor=None, ligands=False):
    ours, _ = ubiquitin.generate(shape, voxel_size, pdb=str(path), b_factor=b_factor,
                                 ligands=ligands, spin=0, normalise=False)
    n_ours = len(ubiquitin.read_atoms(path, ligands=ligands)[0])
    ref, n_ref = _gemmi_density(path, shape, voxel_size, b_factor, ligands)
    assert n_ours == n_ref  # the same atoms
    o, r = ours.ravel().astype(np.float64), ref.ravel()
    info = dict(one_minus_r=1 - np.corrcoef(o, r)[0, 1], slope=(o @ r) / (r @ r),
                mass=o.sum() / r.sum())
    assert info["one_minus_r"] <= GEMMI_ONE_MINUS_CORR, info
    assert abs(info["slope"] - 1) <= GEMMI_SLOPE_TOL, info
    assert abs(info["mass"] - 1) <= GEMMI_MASS_TOL, info


@pytest.mark.parametrize("shape,voxel_size,b_factor", [
    ((48, 52, 56), 1.0, None),      # the file's B-factors, the phantom's default voxel
    ((26, 28, 30), 2.0, 40.0),      # a uniform B, coarser voxels
])
def test_ubiquitin_density_matches_gemmi(shape, voxel_size, b_factor):
    _compare_with_gemmi(UBQ, shape, voxel_size, b_factor)


@pytest.mark.parametrize("ligands", [False, True])
def test_modified_residue_and_ligand_selection_match_gemmi(tmp_path, ligands):
    """A HETATM residue inside a chain is protein (kept), a ligand only with ``ligands``."""
    path = tmp_path / "fragment.pdb"
    path.write_text(FRAGMENT_PDB)
    _compare_with_gemmi(path, (20, 20, 24), 1.0, ligands=ligands)


@pytest.mark.skipif(UNSEEN is None, reason="PDB 1HVR is neither shipped (data/pdb/) nor "
                    "in the shared data folder")
@pytest.mark.parametrize("shape,voxel_size,b_factor", [
    ((64, 72, 80), 1.0, None),
    ((28, 30, 32), 3.0, 25.0),
])
def test_unseen_model_density_matches_gemmi(shape, voxel_size, b_factor):
    """HIV-1 protease (PDB 1HVR: hydrogens, zero-occupancy atoms, two CSO residues written
    as HETATM, an inhibitor and waters), a model our code was not developed on."""
    _compare_with_gemmi(UNSEEN, shape, voxel_size, b_factor)
