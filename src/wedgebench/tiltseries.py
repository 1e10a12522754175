"""Simulated tilt series: an accurate projector, acquisition noise, normalisation.

The *simulation* projector is deliberately a different and more accurate
discretisation than :mod:`wedgebench.projector` (which every reconstruction
uses), so that no method profits from an "inverse crime": it is *ray-driven*,
with ``oversampling`` sub-rays per detector pixel, each sampled every ``step``
voxels in z (rays cross the thin slab), reading the volume by bilinear
interpolation in the (z, x) plane. Each detector value is the mean over its sub-rays of the
numerically integrated line integral.
"""

from __future__ import annotations

import numpy as np



def simulate_projections(vol: np.ndarray, angles_deg, oversampling: int = 3,
                         step: float = 0.5, n_det: int | None = None,
                         max_chunk_bytes: int = 256 * 2**20) -> np.ndarray:
    """Accurate line integrals of ``vol[z, y, x]`` for tilts about y.

    Parameters
    ----------
    vol : ndarray, ``[z, y, x]``
    angles_deg : array of float
    oversampling : int
        Sub-rays per detector pixel (spread uniformly across the pixel).
    step : float
        Sampling interval in z along each ray, in voxels (the ray is sampled once per
        ``step`` in z, so ``step / cosθ`` along the ray; the slab is thin in z).
    n_det : int, optional
        Detector width (default nx).
    max_chunk_bytes : int
        Memory bound of one interpolation call (y-slices are processed in chunks).

    Returns
    -------
    ndarray float32 ``[tilt, y, n_det]``
    """
    import torch
    import torch.nn.functional as F

    vol = np.ascontiguousarray(vol, np.float32)
    nz, ny, nx = vol.shape
    n_det = nx if n_det is None else int(n_det)
    s = int(oversampling)
    # rays are parametrised by z (the slab is thin): x = (u + z sinθ) / cosθ, ds = dz / cosθ
    z_samples = np.arange(-(nz / 2.0) + step / 2.0, nz / 2.0, step)
    u = (np.arange(n_det) - (n_det - 1) / 2.0)[:, None] + ((np.arange(s) + 0.5) / s - 0.5)[None]
    u = u.ravel()  # detector sub-positions
    inp = torch.from_numpy(vol).permute(1, 0, 2)[None]  # [1, y, z, x]
    per_slice = z_samples.size * u.size * 4 * 2
    chunk = max(1, int(max_chunk_bytes // per_slice))
    out = np.empty((len(angles_deg), ny, n_det), np.float32)
    for i, th in enumerate(np.deg2rad(np.asarray(angles_deg, float))):
        c, sn = np.cos(th), np.sin(th)
        xc = (u[None, :] + z_samples[:, None] * sn) / c
        zc = np.broadcast_to(z_samples[:, None], xc.shape)
        gx = 2 * (xc + (nx - 1) / 2.0) / max(nx - 1, 1) - 1
        gz = 2 * (zc + (nz - 1) / 2.0) / max(nz - 1, 1) - 1
        grid = torch.from_numpy(np.stack([gx, gz], -1).astype(np.float32))[None]
        for y0 in range(0, ny, chunk):
            samp = F.grid_sample(inp[:, y0:y0 + chunk], grid, mode="bilinear",
                                 padding_mode="zeros", align_corners=True)
            line = samp[0].sum(1) * (step / c)  # [y, n_det*s]
            out[i, y0:y0 + chunk] = line.reshape(-1, n_det, s).mean(-1).numpy()
    return out


def add_noise(proj: np.ndarray, kind: str = "none", snr: float | None = None,
              dose: float | None = None, seed: int = 0) -> np.ndarray:
    """Acquisition noise.

    Parameters
    ----------
    proj : ndarray ``[tilt, y, x]``, non-negative line integrals
    kind : {"none", "gaussian", "poisson"}
        ``gaussian``: additive white noise with variance ``var(proj) / snr``.
        ``poisson``: each tilt is scaled so that its mean is ``dose`` electrons per
        pixel, Poisson counts are drawn, and the result is scaled back.
    seed : int

    Returns
    -------
    ndarray float32
    """
    rng = np.random.default_rng(seed)
    if kind == "none":
        return proj.astype(np.float32, copy=True)
    if kind == "gaussian":
        if not snr or snr <= 0:
            raise ValueError(f"gaussian noise needs snr > 0, got {snr}")
        sigma = np.sqrt(np.var(proj) / snr)
        return (proj + rng.normal(0.0, sigma, proj.shape)).astype(np.float32)
    if kind == "poisson":
        if not dose or dose <= 0:
            raise ValueError(f"poisson noise needs dose > 0, got {dose}")
        mean = proj.mean(axis=(1, 2), keepdims=True)
        scale = dose / np.where(mean > 0, mean, 1.0)
        return (rng.poisson(np.clip(proj, 0, None) * scale) / scale).astype(np.float32)
    raise ValueError(f"unknown noise kind {kind!r}")


#: ``tiltseries.normalise`` values: the whole stack's affine map before any method sees it.
NORMALISATIONS = ("minmax", "range", "none")


def normalisation_mode(value) -> str:
    """``tiltseries.normalise`` as one of :data:`NORMALISATIONS` (true = minmax, false = none)."""
    mode = {True: "minmax", False: "none"}.get(value, value) if isinstance(value, bool) else value
    if mode not in NORMALISATIONS:
        raise ValueError(f"tiltseries.normalise: {value!r} is not one of true, false, "
                         f"{', '.join(NORMALISATIONS)}")
    return mode


def normalisation_map(stack: np.ndarray, mode="minmax") -> tuple[float, float]:
    """``(offset, divisor)`` of the map ``(stack − offset) / divisor`` of one whole stack.

    ``minmax`` (the CN paper): onto [0, 1]. ``range``: divided by the same range
    ``max − min`` but not shifted, so zero stays zero: a noise-free stack of projections
    of a non-negative density (minimum 0) gets the same numbers as ``minmax``, while a
    noisy stack whose empty background averages 0 keeps it at 0 instead of being lifted
    by its most negative noise value (a constant offset in every projection, which no
    density inside the reconstructed box can produce at every tilt). ``none``: (0, 1).
    A constant stack maps to zeros (``divisor`` inf) unless ``none``.
    """
    mode = normalisation_mode(mode)
    lo, hi = float(stack.min()), float(stack.max())
    if mode == "none":
        return 0.0, 1.0
    if hi <= lo:
        return 0.0, float("inf")
    return (lo if mode == "minmax" else 0.0), hi - lo


def normalise(stack: np.ndarray, mode="minmax") -> np.ndarray:
    """``stack`` mapped by :func:`normalisation_map` (default: min–max to [0, 1]), float32."""
    offset, divisor = normalisation_map(stack, mode)
    if np.isinf(divisor):
        return np.zeros_like(stack, dtype=np.float32)
    return ((stack - offset) / divisor).astype(np.float32)


def simulate_tiltseries(vol: np.ndarray, angles_deg, *, oversampling: int = 3,
                        step: float = 0.5, noise: dict | None = None,
                        normalise_to_unit=True, seed: int = 0,
                        project=None) -> np.ndarray:
    """Project, add noise and normalise: the tilt series of the pipeline.

    ``project`` (:func:`make_projector`) replaces the ray-driven projector when given;
    ``normalise_to_unit`` is a ``tiltseries.normalise`` value (:func:`normalisation_map`).

    Returns
    -------
    ndarray float32 ``[tilt, y, x]``
    """
    proj = (project(angles_deg) if project is not None else
            simulate_projections(vol, angles_deg, oversampling=oversampling, step=step))
    noise = dict(noise or {})
    proj = add_noise(proj, kind=noise.pop("kind", "none"), seed=seed, **noise)
    return normalise(proj, normalise_to_unit)


def make_projector(vol: np.ndarray, opts: dict, phantom: dict | None = None, seed: int = 0):
    """``project(angles_deg) -> [tilt, y, x]``: the simulation projector of ``opts``.

    ``opts["projector"]``: ``"ray"`` (:func:`simulate_projections` of ``vol`` with
    ``oversampling`` and ``ray_step``) or ``"analytic"`` (exact line integrals of the
    continuous objects of ``phantom = {kind, params, shape}`` built with ``seed``,
    :func:`wedgebench.analytic.analytic_projections`; spheres and shapes only).
    """
    kind = opts.get("projector", "ray")
    if kind == "ray":
        return lambda a: simulate_projections(vol, a, oversampling=opts["oversampling"],
                                              step=opts["ray_step"])
    if kind == "analytic":
        from .analytic import analytic_projections

        return lambda a: analytic_projections(phantom["kind"], phantom["shape"],
                                              phantom["params"], seed, a,
                                              oversampling=opts["oversampling"])
    raise ValueError(f"tiltseries.projector: unknown projector {kind!r} (allowed: ray, "
                     "analytic)")


#: Keys of an acquisition that describe its physics (the acquisition model); everything
#: else in an acquisition dict is geometry (range/step/angles/name).
MODEL_KEYS = ("dose", "damage", "optics", "ctf_correction", "ice", "misalignment",
              "specimen_potential_v")


def has_model(acq: dict) -> bool:
    """Whether an acquisition dict asks for anything beyond noise-free line integrals."""
    return any(acq.get(k) not in (None, False, "none", {}) for k in MODEL_KEYS)


def acquisition_summary(acq: dict) -> dict:
    """The acquisition model in a few columns of a metrics record (sweeps plot against them).

    ``dose_total`` (e⁻/Å², NaN when noise-free), ``defocus_um`` (NaN without optics),
    ``ctf_correction``, ``ice_nm`` (NaN without ice) and ``model`` (a label of everything
    but the dose, so that a dose sweep compares acquisitions that differ only in dose).
    """
    from .geometry import acquisition_label

    rest = {k: v for k, v in acq.items() if k in MODEL_KEYS and k != "dose"}
    rest_label = acquisition_label({"range": [0, 0], "step": 1, **rest})
    nan = float("nan")
    return {"dose_total": float((acq.get("dose") or {}).get("total", nan)),
            "defocus_um": float((acq.get("optics") or {}).get("defocus_um", nan)),
            "ctf_correction": str(acq.get("ctf_correction", "none")),
            "ice_nm": float((acq.get("ice") or {}).get("thickness_nm", nan)),
            "model": rest_label.replace("tilt0_0_step1", "") or "none"}


def potential_scale(vol: np.ndarray, voxel_A: float, acq: dict) -> float:
    """V·Å of projected potential per unit of line integral (voxel lengths) of ``vol``.

    The densest voxel of the ground truth is given the specimen's potential *contrast*
    against its surroundings: ``specimen_potential_v`` (default 7 V, an assumed mean inner
    potential of protein) minus the ice's mean potential when the specimen sits in ice.
    """
    ice = acq.get("ice") or {}
    contrast = float(acq.get("specimen_potential_v", 7.0)) - float(ice.get("potential_v", 0.0)
                                                                    if ice else 0.0)
    if contrast <= 0:
        raise ValueError(f"specimen_potential_v ({acq.get('specimen_potential_v', 7.0)} V) must "
                         f"exceed the ice's potential_v ({ice.get('potential_v')} V)")
    peak = float(np.max(vol))
    return contrast * voxel_A / (peak if peak > 0 else 1.0)


def _voltage(acq: dict) -> float:
    return float((acq.get("optics") or {}).get("voltage_kv", 300.0))


def _optics_kwargs(optics: dict) -> dict:
    keys = ("voltage_kv", "cs_mm", "amplitude_contrast", "defocus_gradient", "handedness")
    return {k: optics[k] for k in keys if k in optics}


def simulate_acquisition(project, vol: np.ndarray, voxel_A: float, angles_deg, acq: dict,
                         seed: int = 0) -> dict:
    """A measured-like tilt series: misaligned projections through optics, damage and dose.

    Parameters
    ----------
    project : callable
        ``project(angles_deg) -> [tilt, y, x]`` line integrals of ``vol`` (voxel lengths) at
        the *true* angles (the ray-driven simulator or the analytic projector).
    vol : ndarray
        The ground truth (only its maximum is used, for :func:`potential_scale`).
    voxel_A : float
        Voxel (= detector pixel) size, Å.
    angles_deg : array
        Nominal tilt angles (what the ``.tlt`` says).
    acq : dict
        The acquisition with its model keys (:data:`MODEL_KEYS`; README, "Realistic
        acquisitions").
    seed : int

    Returns
    -------
    dict
        ``acquired`` (flat-field-normalised intensity, ≈ 1 where the beam meets only ice),
        ``frames`` ([2, tilt, y, x]: the two half-dose frames, flat-fielded; both equal
        ``acquired`` without dose), ``true_angles``, ``shifts`` ([tilt, 2] px),
        ``dose`` and ``prior_dose`` (e⁻/Å² per tilt; zeros without dose).
    """
    from . import acquisition as phys

    angles = np.asarray(angles_deg, float)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xAC0]))
    mis = acq.get("misalignment") or {}
    shifts, errors = phys.misalignment(angles.size, float(mis.get("shift_px", 0.0)),
                                       float(mis.get("angle_deg", 0.0)), rng)
    true_angles = angles + errors
    vz = project(true_angles).astype(np.float64) * potential_scale(vol, voxel_A, acq)
    dose_cfg = acq.get("dose") or {}
    if dose_cfg:
        dose, prior = phys.dose_schedule(angles, float(dose_cfg["total"]),
                                         dose_cfg.get("weighting", "equal"),
                                         dose_cfg.get("order", "dose_symmetric"),
                                         int(dose_cfg.get("group", 2)))
    else:
        dose, prior = np.zeros(angles.size), np.zeros(angles.size)
    damage = prior if (acq.get("damage") and dose_cfg) else None
    optics = acq.get("optics") or {}
    sigma = phys.interaction_constant(_voltage(acq))
    if optics:
        image = phys.image_intensity(vz, true_angles, voxel_A, float(optics["defocus_um"]),
                                     bfactor_A2=float(optics.get("bfactor_A2", 0.0)),
                                     cumulative_dose=damage, **_optics_kwargs(optics))
    else:  # ideal contrast (transfer -1 at every frequency), kept positive: exp(-2 sigma Vz)
        if damage is not None:
            n = vz.shape[-1]
            vz = np.fft.irfft2(np.fft.rfft2(vz) * phys.exposure_filter(
                vz.shape[1:], voxel_A, damage, _voltage(acq))[..., : n // 2 + 1],
                s=vz.shape[1:])
        image = np.exp(-2.0 * sigma * vz)
    if mis.get("shift_px"):
        image = phys.shift_images(image, shifts)
    ice = acq.get("ice") or {}
    zero_loss = (phys.zero_loss_fraction(true_angles, float(ice["thickness_nm"]),
                                         float(ice.get("mfp_nm", 350.0))) if ice else None)
    if dose_cfg:
        counts = phys.count_electrons(image, dose, voxel_A, rng, frames=2, zero_loss=zero_loss)
        frames = phys.flat_field(counts, dose, voxel_A, zero_loss=zero_loss)
        acquired = frames.mean(axis=0)
    else:
        acquired = image
        frames = np.stack([image, image])
    return {"acquired": acquired.astype(np.float32), "frames": frames.astype(np.float32),
            "true_angles": true_angles, "shifts": shifts, "dose": dose, "prior_dose": prior}


def _counts_per_pixel(acq: dict, n_tilts: int, voxel_A: float) -> float:
    """Mean expected electrons per pixel of one tilt (infinite without dose)."""
    dose = acq.get("dose") or {}
    return float(dose["total"]) / n_tilts * voxel_A**2 if dose else float("inf")


def prepare_for_methods(acquired: np.ndarray, angles_deg, voxel_A: float, acq: dict,
                        vol_peak_scale: float, normalise_to_unit=True) -> np.ndarray:
    """The tilt series every method receives, from a flat-field-normalised acquisition.

    With optics: ``1 − I`` (contrast inverted, so density is bright) or, with
    ``ctf_correction: phase_flip``, the phase-flipped ``I − 1`` (flipping makes the
    transfer positive at every frequency, so density is bright too), at the *nominal*
    angles and defocus. Without optics (ideal contrast, ``I = exp(−2σV_z)``): ``−ln I``,
    with ``I`` floored at half an electron's worth. Then divided by ``2σ`` and the
    potential scale so that a noise-free, aberration-free acquisition gives back the line
    integrals; then normalised like every other tilt series (``tiltseries.normalise``,
    :func:`normalisation_map`).

    Parameters
    ----------
    vol_peak_scale : float
        :func:`potential_scale` of the ground truth (the script reads it from the
        acquisition's metadata; methods never see the ground truth itself).
    """
    from . import acquisition as phys

    x = acquired.astype(np.float64) - 1.0
    optics = acq.get("optics") or {}
    if not optics:  # ideal contrast I = exp(-2 sigma Vz): -ln I, at least half an electron
        floor = 0.5 / max(_counts_per_pixel(acq, np.size(angles_deg), voxel_A), 1.0)
        x = np.log(np.maximum(acquired.astype(np.float64), floor))
    if acq.get("ctf_correction", "none") == "phase_flip":
        if not optics:
            raise ValueError("ctf_correction: phase_flip needs optics (there is no CTF)")
        x = phys.phase_flip(x, angles_deg, voxel_A, float(optics["defocus_um"]),
                            **_optics_kwargs(optics))
    else:
        x = -x
    x /= 2.0 * phys.interaction_constant(_voltage(acq)) * vol_peak_scale
    return normalise(x, normalise_to_unit)
