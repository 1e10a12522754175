"""Acquisition physics of a cryo-ET tilt series: optics, dose, counting, alignment, CTF correction.

Image model
-----------
The specimen is a weak phase object. For each tilt its projected Coulomb potential
``V_z`` (V·Å, ``[tilt, y, x]``) gives the exit wave ``exp(iσV_z) ≈ 1 + iσV_z``, where σ is
the relativistic interaction constant. To first order in σV_z the recorded intensity is::

    I(r) = 1 + 2σ · F⁻¹{ CTF(k) · E(k) · D(k) · F[V_z](k) }

with ``CTF(k) = −[√(1−A²) sin χ + A cos χ]``, ``χ = πλΔf k² − (π/2) C_s λ³ k⁴`` (Δf > 0 is
underfocus, so ``CTF(0) = −A`` and dense matter is dark), ``E`` the product of a B-factor,
a spatial-coherence and a temporal-coherence envelope, and ``D`` the exposure filter of
Grant & Grigorieff (2015) for the dose received *before* the image. Tilting by θ about
the y axis lifts a specimen point at x (Å from the axis, which is the centre column
``(nx − 1)/2`` as in :mod:`wedgebench.projector`) to height x·sinθ, so the defocus varies
across the image, ``Δf(x) = Δf₀ + h·x·sinθ`` (h = ±1, the handedness). The image is then
computed at the defoci of strips parallel to the tilt axis and assembled column by column.

The detector counts electrons, ``Poisson(I · D_tilt · p² · P_zl)``, with ``D_tilt`` the
dose of the tilt (e⁻/Å²), ``p`` the pixel size (Å) and ``P_zl = exp(−t / (Λ cosθ))`` the
zero-loss fraction left by an energy filter in ice of thickness t. Doses follow a
sequential or dose-symmetric (Hagen et al. 2017) tilt order. :func:`phase_flip` corrects
the CTF strip by strip like IMOD's ``ctfphaseflip``; :func:`shift_images` and
:func:`misalignment` model residual alignment errors.

Units: angles in degrees, pixel size in Å, dose in e⁻/Å², defocus in µm, voltage in kV,
C_s in mm, ice thickness and mean free path in nm, frequencies in 1/Å.
"""

from __future__ import annotations

import numpy as np
from scipy import constants as C

# Default defocus step between the strips of image_intensity: 10 nm, and at most the step
# that moves χ at the corner frequency (k² = 1/2p²) by 0.25 rad, so that blending between
# neighbouring strips stays accurate at small pixel sizes.
_GRADIENT_TOLERANCE_NM = 10.0
_GRADIENT_TOLERANCE_RAD = 0.25


# ----------------------------------------------------------------------------- helpers

def _positive(name, value):
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _nonneg(name, value):
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return arr


def _angles(angles_deg, n=None, below_90=False):
    a = np.atleast_1d(np.asarray(angles_deg, dtype=float))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"angles_deg must be a non-empty 1-D array of finite angles, "
                         f"got {angles_deg!r}")
    if n is not None and a.size != n:
        raise ValueError(f"angles_deg has {a.size} angles but the stack has {n} tilts")
    if below_90 and np.any(np.abs(a) >= 90):
        raise ValueError(f"angles_deg must lie strictly between -90 and 90, got {angles_deg!r}")
    return a


def _per_tilt(name, value, n, nonneg=False):
    arr = _nonneg(name, value) if nonneg else np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a scalar or one finite value per tilt ({n}), "
                         f"got {value!r}")
    return arr


def _stack(name, arr, ndim=(3,)):
    arr = np.asarray(arr)
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, "
                         f"got shape {arr.shape}")
    return arr


def _out_dtype(arr):
    return np.float64 if np.asarray(arr).dtype == np.float64 else np.float32


def _k_rfft2(ny, nx, pixel_A):
    """|k| (1/Å) on the rfft2 grid of a ``[ny, nx]`` image."""
    return np.hypot(np.fft.fftfreq(ny, pixel_A)[:, None], np.fft.rfftfreq(nx, pixel_A)[None, :])


def _strip_edges(nx, width):
    """Edges of ceil(nx / width) strips of near-equal width (each at most ``width``)."""
    return np.round(np.linspace(0, nx, -(-nx // width) + 1)).astype(int)


def _handedness(handedness):
    if handedness not in (1, -1):
        raise ValueError(f"handedness must be +1 or -1, got {handedness!r}")
    return int(handedness)


# ----------------------------------------------------------------------------- optics

def wavelength_A(voltage_kv: float) -> float:
    """Relativistic wavelength λ = h / √(2 m₀ eV (1 + eV / 2m₀c²)) in Å (300 kV: 0.019687)."""
    ev = C.e * _positive("voltage_kv", voltage_kv) * 1e3
    return C.h / np.sqrt(2 * C.m_e * ev * (1 + ev / (2 * C.m_e * C.c**2))) * 1e10


def interaction_constant(voltage_kv: float) -> float:
    """σ = 2π m e λ / h² with the relativistic mass m, in rad/(V·Å) (300 kV: 6.53e-4)."""
    ev = C.e * _positive("voltage_kv", voltage_kv) * 1e3
    m = C.m_e * (1 + ev / (C.m_e * C.c**2))
    return 2 * np.pi * m * C.e * wavelength_A(voltage_kv) * 1e-10 / C.h**2 * 1e-10


def frequency_grid_1d(n: int, pixel_A: float, real: bool = False) -> np.ndarray:
    """Spatial frequencies (1/Å) of an FFT of length ``n`` (``real=True``: of an rfft)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    p = _positive("pixel_A", pixel_A)
    return np.fft.rfftfreq(int(n), p) if real else np.fft.fftfreq(int(n), p)


def ctf(k_inv_A, defocus_um, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
        bfactor_A2=0.0, illumination_mrad=0.0, focal_spread_A=0.0) -> np.ndarray:
    """Contrast transfer function with envelopes.

    ``CTF(k) = −[√(1−A²) sin χ + A cos χ] · exp(−B k²/4) · E_s · E_t`` with
    ``χ = πλΔf k² − (π/2) C_s λ³ k⁴``, ``E_s = exp[−(πα)² (C_s λ² k³ − Δf k)²]`` (α the
    illumination semi-angle) and ``E_t = exp[−½ (πλδk²)²]`` (δ the focal spread).

    Parameters
    ----------
    k_inv_A : array of float
        Spatial frequencies (1/Å); the sign is irrelevant.
    defocus_um : float or array broadcastable with ``k_inv_A``
        Defocus in µm, positive = underfocus.
    voltage_kv, cs_mm, amplitude_contrast, bfactor_A2, illumination_mrad, focal_spread_A : float

    Returns
    -------
    ndarray float64, the shape of ``k_inv_A`` broadcast with ``defocus_um``; ``CTF(0) = −A``.
    """
    lam = wavelength_A(voltage_kv)
    cs = float(_nonneg("cs_mm", cs_mm)) * 1e7
    amp = float(amplitude_contrast)
    if not 0 <= amp <= 1:
        raise ValueError(f"amplitude_contrast must lie in [0, 1], got {amplitude_contrast!r}")
    alpha = float(_nonneg("illumination_mrad", illumination_mrad)) * 1e-3
    delta = float(_nonneg("focal_spread_A", focal_spread_A))
    k = np.asarray(k_inv_A, dtype=float)
    df = np.asarray(defocus_um, dtype=float) * 1e4
    k2 = k * k
    chi = np.pi * lam * df * k2 - 0.5 * np.pi * cs * lam**3 * k2 * k2
    out = -(np.sqrt(1 - amp * amp) * np.sin(chi) + amp * np.cos(chi))
    if bfactor_A2:
        out = out * np.exp(-float(bfactor_A2) * k2 / 4)
    if alpha:
        out = out * np.exp(-(np.pi * alpha) ** 2 * (cs * lam**2 * k2 * k - df * k) ** 2)
    if delta:
        out = out * np.exp(-0.5 * (np.pi * lam * delta * k2) ** 2)
    return out


# ----------------------------------------------------------------------------- dose

def tilt_order(angles_deg, scheme: str = "sequential", group: int = 2) -> np.ndarray:
    """Indices of the tilts in acquisition order.

    ``"sequential"``: from the most negative to the most positive angle.
    ``"dose_symmetric"`` (Hagen et al. 2017): the tilt closest to 0° first (of two equally
    close, the more negative), then ``group`` tilts on the negative side, ``group`` on the
    positive side, and so on, each side outwards; when a side runs out the other continues.
    For −6…6° in 2° steps and ``group=2``: 0, −2, −4, 2, 4, −6, 6.
    """
    a = _angles(angles_deg)
    srt = np.argsort(a, kind="stable")
    if scheme == "sequential":
        return srt
    if scheme != "dose_symmetric":
        raise ValueError(f"scheme must be 'sequential' or 'dose_symmetric', got {scheme!r}")
    if int(group) != group or group < 1:
        raise ValueError(f"group must be a positive integer, got {group!r}")
    group = int(group)
    start = int(np.argmin(np.abs(a[srt])))
    sides = [list(srt[:start][::-1]), list(srt[start + 1:])]  # each ordered outwards
    order, turn = [srt[start]], 0
    while sides[0] or sides[1]:
        side = sides[turn] if sides[turn] else sides[1 - turn]
        order += side[:group]
        del side[:group]
        turn = 1 - turn
    return np.asarray(order, dtype=np.intp)


def dose_schedule(angles_deg, total_dose: float, weighting: str = "equal",
                  order: str = "sequential", group: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Dose of each tilt and the cumulative dose received before it.

    Parameters
    ----------
    angles_deg : array of float (any order)
    total_dose : float
        e⁻/Å² of the whole series; the doses sum to it.
    weighting : {"equal", "cos"}
        ``"cos"``: dose ∝ 1/cosθ (more at high tilt, constant signal through thicker ice).
    order, group :
        Acquisition scheme, see :func:`tilt_order`.

    Returns
    -------
    dose, cumulative_before : ndarray float64, both indexed like ``angles_deg``.
    """
    a = _angles(angles_deg, below_90=weighting == "cos")
    total = float(_nonneg("total_dose", total_dose))
    if weighting == "equal":
        w = np.ones_like(a)
    elif weighting == "cos":
        w = 1 / np.cos(np.deg2rad(a))
    else:
        raise ValueError(f"weighting must be 'equal' or 'cos', got {weighting!r}")
    dose = total * w / w.sum()
    idx = tilt_order(a, order, group)
    before = np.empty_like(dose)
    before[idx] = np.concatenate([[0.0], np.cumsum(dose[idx])[:-1]])
    return dose, before


def critical_exposure(k_inv_A, voltage_kv: float = 300.0) -> np.ndarray:
    """Critical exposure N_e(k) in e⁻/Å² (Grant & Grigorieff 2015).

    ``N_e = 0.245 k^−1.665 + 2.81`` at 300 kV, times 0.8 at 200 kV; other voltages scale
    linearly in between (factor ``1 + 0.002 (V − 300)``, extrapolated likewise outside).
    ``N_e(0) = inf`` (no damage at DC).
    """
    k = np.abs(np.asarray(k_inv_A, dtype=float))
    scale = 1 + 0.002 * (_positive("voltage_kv", voltage_kv) - 300.0)
    with np.errstate(divide="ignore"):
        return scale * (0.245 * k ** -1.665 + 2.81)


def _damage(k, cumulative_dose, voltage_kv):
    return np.exp(-cumulative_dose / (2 * critical_exposure(k, voltage_kv)))


def exposure_filter(shape_yx, pixel_A, cumulative_dose, voltage_kv=300.0) -> np.ndarray:
    """Amplitude attenuation ``exp(−N / (2 N_e(k)))`` on the (full, unshifted) FFT grid.

    Parameters
    ----------
    shape_yx : (ny, nx)
    pixel_A : float
    cumulative_dose : float, or 1-D array (one per tilt)
        Dose N received before the image (e⁻/Å²).

    Returns
    -------
    ndarray float64 ``[ny, nx]`` (``[tilt, ny, nx]`` for an array of doses); 1 at DC.
    """
    ny, nx = (int(s) for s in shape_yx)
    p = _positive("pixel_A", pixel_A)
    dose = _nonneg("cumulative_dose", cumulative_dose)
    k = np.hypot(np.fft.fftfreq(ny, p)[:, None], np.fft.fftfreq(nx, p)[None, :])
    return _damage(k, dose[..., None, None], voltage_kv)


def ice_path_nm(angles_deg, thickness_nm) -> np.ndarray:
    """Path length t / cosθ (nm) through a slab of ice of thickness t."""
    a = _angles(angles_deg, below_90=True)
    return float(_nonneg("thickness_nm", thickness_nm)) / np.cos(np.deg2rad(a))


def zero_loss_fraction(angles_deg, thickness_nm, mfp_nm=350.0) -> np.ndarray:
    """Zero-loss (not inelastically scattered) fraction ``exp(−t / (Λ cosθ))``, Λ = ``mfp_nm``."""
    return np.exp(-ice_path_nm(angles_deg, thickness_nm) / _positive("mfp_nm", mfp_nm))


# ----------------------------------------------------------------------------- imaging

def image_intensity(projected_potential, angles_deg, pixel_A, defocus_um, *, voltage_kv=300.0,
                    cs_mm=2.7, amplitude_contrast=0.07, bfactor_A2=0.0, illumination_mrad=0.0,
                    focal_spread_A=0.0, defocus_gradient=True, handedness=1, strip_px=None,
                    cumulative_dose=None) -> np.ndarray:
    """Linear weak-phase image of each tilt, ``I = 1 + 2σ F⁻¹{CTF·E·D·F[V_z]}``.

    With ``defocus_gradient`` the image is computed at the defoci of node columns spaced
    evenly from the first column to the last, at most a strip width apart (``strip_px``, or
    such that the defocus changes by less than 10 nm and χ at the corner frequency
    1/(√2 p) by less than 0.25 rad between nodes), and each column is the linear blend of
    the images of the two nodes around it: strips parallel to the tilt axis, stitched
    smoothly. Node columns are exact (``strip_px=1``: every column).

    Parameters
    ----------
    projected_potential : ndarray ``[tilt, y, x]``
        Projected potential in V·Å.
    angles_deg : array of float, one per tilt
    pixel_A : float
    defocus_um : float or array (one per tilt)
        Defocus at the tilt axis, µm, positive = underfocus.
    voltage_kv, cs_mm, amplitude_contrast, bfactor_A2, illumination_mrad, focal_spread_A :
        Optics, see :func:`ctf`.
    defocus_gradient : bool
        Vary the defocus across x as ``Δf₀ + handedness · x sinθ``.
    handedness : {1, -1}
    strip_px : int, optional
        Largest spacing of the node columns (default from the tolerances above).
    cumulative_dose : array, optional
        Dose received before each tilt (e⁻/Å²); applies the exposure filter.

    Returns
    -------
    ndarray ``[tilt, y, x]`` (float64 for float64 input, else float32)
    """
    vz = _stack("projected_potential", projected_potential)
    nt, ny, nx = vz.shape
    a = _angles(angles_deg, n=nt, below_90=True)
    p = _positive("pixel_A", pixel_A)
    df0 = _per_tilt("defocus_um", defocus_um, nt)
    dose = (None if cumulative_dose is None
            else _per_tilt("cumulative_dose", cumulative_dose, nt, nonneg=True))
    hand = _handedness(handedness)
    if strip_px is not None and (int(strip_px) != strip_px or strip_px < 1):
        raise ValueError(f"strip_px must be a positive integer, got {strip_px!r}")
    optics = dict(voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast,
                  bfactor_A2=bfactor_A2, illumination_mrad=illumination_mrad,
                  focal_spread_A=focal_spread_A)
    sigma, lam = interaction_constant(voltage_kv), wavelength_A(voltage_kv)
    step_um = 1e-4 * min(_GRADIENT_TOLERANCE_NM * 10,
                         _GRADIENT_TOLERANCE_RAD * 2 * p**2 / (np.pi * lam))
    k = _k_rfft2(ny, nx, p)
    columns = np.arange(nx) - (nx - 1) / 2.0
    out = np.zeros(vz.shape, dtype=float)
    for t in range(nt):
        spec = np.fft.rfft2(vz[t].astype(float))
        if dose is not None:
            spec *= _damage(k, dose[t], voltage_kv)
        slope = hand * np.sin(np.deg2rad(a[t])) * p * 1e-4  # µm of defocus per column
        if not defocus_gradient or slope == 0:
            centres, pos = np.zeros(1), np.zeros(nx)
        else:
            width = int(strip_px or max(1, step_um / abs(slope)))
            nodes = np.linspace(0, nx - 1, -(-(nx - 1) // width) + 1)  # at most width apart
            centres = nodes - (nx - 1) / 2.0
            pos = np.interp(columns, centres, np.arange(centres.size, dtype=float))
        for s, c in enumerate(centres):
            weight = np.clip(1 - np.abs(pos - s), 0, None)
            cols = weight > 0
            img = np.fft.irfft2(spec * ctf(k, df0[t] + slope * c, **optics), s=(ny, nx))
            out[t][:, cols] += weight[cols] * img[:, cols]
    return (1 + 2 * sigma * out).astype(_out_dtype(vz))


def phase_flip(stack, angles_deg, pixel_A, defocus_um, *, voltage_kv=300.0, cs_mm=2.7,
               amplitude_contrast=0.07, defocus_gradient=True, handedness=1, tolerance_nm=10.0,
               pad_px=None) -> np.ndarray:
    """CTF correction by phase flipping, strip by strip like IMOD ``ctfphaseflip``.

    Each tilt is cut into strips parallel to the tilt axis, narrow enough that the defocus
    changes by less than ``tolerance_nm`` across one. Each strip, widened by ``pad_px``
    columns of context on both sides (the window is moved inwards at the image edges), is
    Fourier transformed, multiplied by ``sign(CTF)`` at the defocus of the strip's centre,
    transformed back, and only the strip's own columns are kept. Without the gradient (or at
    0°, or when one strip spans the image) the whole image is flipped at Δf₀.

    By default the context is the whole image (one FFT per tilt, one inverse FFT per strip),
    which is exact for the periodic images of :func:`image_intensity`. IMOD-like local
    windows (``pad_px``) are cheaper for large images but less accurate: the kernel of
    ``sign(CTF)`` decays slowly, so a window must be much wider than the delocalisation
    ``λΔf k_max``.

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
        Images with the mean removed (e.g. ``I − 1``).
    angles_deg, pixel_A, defocus_um, voltage_kv, cs_mm, amplitude_contrast,
    defocus_gradient, handedness :
        As in :func:`image_intensity`.
    tolerance_nm : float
    pad_px : int, optional
        Context columns on each side of a strip (default: the whole image).

    Returns
    -------
    ndarray ``[tilt, y, x]`` (float64 for float64 input, else float32)
    """
    img = _stack("stack", stack)
    nt, ny, nx = img.shape
    a = _angles(angles_deg, n=nt, below_90=True)
    p = _positive("pixel_A", pixel_A)
    df0 = _per_tilt("defocus_um", defocus_um, nt)
    hand = _handedness(handedness)
    tol = _positive("tolerance_nm", tolerance_nm)
    if pad_px is not None and (int(pad_px) != pad_px or pad_px < 0):
        raise ValueError(f"pad_px must be a non-negative integer, got {pad_px!r}")
    optics = dict(voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast)
    out = np.empty(img.shape, dtype=float)
    for t in range(nt):
        slope = hand * np.sin(np.deg2rad(a[t])) * p * 1e-4
        width = nx if not defocus_gradient or slope == 0 else int(max(1, tol * 1e-3 / abs(slope)))
        edges = _strip_edges(nx, min(width, nx))
        pad = nx if pad_px is None else int(pad_px)
        cache = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            wlo, whi = lo - pad, hi + pad
            if whi - wlo >= nx:
                wlo, whi = 0, nx
            elif wlo < 0:
                wlo, whi = 0, whi - wlo
            elif whi > nx:
                wlo, whi = wlo - (whi - nx), nx
            if (wlo, whi) not in cache:
                cache = {(wlo, whi): (np.fft.rfft2(img[t, :, wlo:whi].astype(float)),
                                      _k_rfft2(ny, whi - wlo, p))}
            spec, k = cache[(wlo, whi)]
            centre = (lo + hi - 1) / 2.0 - (nx - 1) / 2.0
            flip = np.sign(ctf(k, df0[t] + slope * centre, **optics))
            out[t][:, lo:hi] = np.fft.irfft2(spec * flip, s=(ny, whi - wlo))[:, lo - wlo:hi - wlo]
    return out.astype(_out_dtype(img))


# ----------------------------------------------------------------------------- detector

def _expected_per_pixel(dose_per_tilt, pixel_A, zero_loss, nt):
    dose = _per_tilt("dose_per_tilt", dose_per_tilt, nt, nonneg=True)
    zl = np.ones(nt) if zero_loss is None else _per_tilt("zero_loss", zero_loss, nt, nonneg=True)
    return (dose * _positive("pixel_A", pixel_A) ** 2 * zl)[:, None, None]


def count_electrons(intensity, dose_per_tilt, pixel_A, rng: np.random.Generator, frames: int = 1,
                    zero_loss=None) -> np.ndarray:
    """Poisson electron counts.

    Expected counts per pixel ``max(I, 0) · D_tilt · p² · P_zl``. With ``frames > 1`` each
    frame gets ``D_tilt / frames`` and independent noise, so the frame sum is distributed
    like one full-dose exposure.

    Parameters
    ----------
    intensity : ndarray ``[tilt, y, x]`` (1 = no specimen)
    dose_per_tilt : float or array (e⁻/Å² per tilt)
    pixel_A : float
    rng : numpy.random.Generator
    frames : int
    zero_loss : float or array, optional
        Zero-loss fraction per tilt (:func:`zero_loss_fraction`).

    Returns
    -------
    ndarray float32 ``[tilt, y, x]``, or ``[frames, tilt, y, x]`` when ``frames > 1``
    """
    inten = _stack("intensity", intensity)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    expect = _expected_per_pixel(dose_per_tilt, pixel_A, zero_loss, inten.shape[0])
    lam = np.clip(inten, 0, None) * expect
    if frames == 1:
        return rng.poisson(lam).astype(np.float32)
    return rng.poisson(lam / frames, size=(int(frames),) + lam.shape).astype(np.float32)


def flat_field(counts, dose_per_tilt, pixel_A, zero_loss=None) -> np.ndarray:
    """Counts divided by the expected counts of an empty image (≈ I; mean 1 where empty).

    ``counts`` is ``[tilt, y, x]`` or ``[frames, tilt, y, x]`` (each frame is divided by the
    per-frame expectation). Returns float32 of the same shape.
    """
    c = _stack("counts", counts, ndim=(3, 4))
    expect = _expected_per_pixel(dose_per_tilt, pixel_A, zero_loss, c.shape[-3])
    if c.ndim == 4:
        expect = expect / c.shape[0]
    if np.any(expect == 0):
        raise ValueError("dose_per_tilt (times zero_loss) must be > 0 to flat-field")
    return (c / expect).astype(np.float32)


# ----------------------------------------------------------------------------- alignment

def _shift_phase(n, d):
    """Per-tilt phase ramps ``[tilt, n]`` for shifts ``d`` (px); the Nyquist bin of even n,
    which a real image cannot shift by a fraction of a pixel, moves by the nearest whole one
    so that shifts stay real, exactly invertible and equal to np.roll when integral."""
    ph = np.exp(-2j * np.pi * np.fft.fftfreq(n)[None, :] * d[:, None])
    if n % 2 == 0:
        ph[:, n // 2] = (-1.0) ** np.round(d)
    return ph


def shift_images(stack, shifts_px) -> np.ndarray:
    """Shift each tilt by ``(dy, dx)`` pixels (Fourier shift theorem; periodic boundaries).

    Positive shifts move content towards larger indices (like ``np.roll``). Shifting by
    ``s`` and then by ``−s`` is the identity to rounding.

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
    shifts_px : array ``[tilt, 2]``, (dy, dx)
    """
    img = _stack("stack", stack)
    s = np.asarray(shifts_px, dtype=float)
    if s.shape != (img.shape[0], 2) or not np.all(np.isfinite(s)):
        raise ValueError(f"shifts_px must be finite with shape ({img.shape[0]}, 2), "
                         f"got shape {s.shape}")
    spec = np.fft.fft2(img.astype(float))
    spec *= _shift_phase(img.shape[1], s[:, 0])[:, :, None]
    spec *= _shift_phase(img.shape[2], s[:, 1])[:, None, :]
    return np.fft.ifft2(spec).real.astype(_out_dtype(img))


def misalignment(n_tilts, shift_px: float, angle_deg: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Residual alignment errors: Gaussian shifts ``[n, 2]`` (σ = ``shift_px``, px) and
    tilt-angle errors ``[n]`` (σ = ``angle_deg``, degrees)."""
    if int(n_tilts) != n_tilts or n_tilts < 1:
        raise ValueError(f"n_tilts must be a positive integer, got {n_tilts!r}")
    sd_shift = float(_nonneg("shift_px", shift_px))
    sd_angle = float(_nonneg("angle_deg", angle_deg))
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng.normal(0.0, sd_shift, (int(n_tilts), 2)), rng.normal(0.0, sd_angle, int(n_tilts))
