"""EMAN2-style direct Fourier inversion of a single-axis tilt series.

For a tilt axis along y, every y-slice is an independent 2-D problem: by the
Fourier-slice theorem the 1-D Fourier transform of a projection row at tilt θ
is the central line of the slice's 2-D transform in direction
``(kx, kz) = (cosθ, −sinθ)`` (:mod:`wedgebench.geometry`). The method, as in
EMAN2's ``e2tomogram``/Fourier reconstructor:

1. **Normalise and taper** each tilt image: subtract the mean of its x-edge
   pixels (the outer ``taper_fraction · nx`` columns on both sides), then
   multiply by a cosine (Hann) edge taper that falls to 0 over those columns.
2. **Pad** each row with zeros to ``Lx`` (≥ ``pad_factor · nx``) and Fourier
   transform it with its origin at the tilt axis (detector centre).
3. **Insert** every Fourier sample of every row as a point of the central
   line into an ``Lz × Lx`` grid (``Lz`` ≥ ``pad_factor · max(thickness, nx)``: a
   square-ish grid keeps the real-space fall-off of the interpolation kernel
   small across the slab; with ``Lz`` sized on a thin slab, an off-centre
   object in a ±60° reconstruction moved by ~0.3 voxel towards the centre), with
   the *bilinear* kernel (the 2-D case of EMAN2's default trilinear insertion)
   or a Gaussian kernel; value·weight and weight are accumulated separately.
4. **Normalise by the weights**: every grid sample is divided by its summed
   insertion weight; samples with a summed weight below ``weight_threshold``
   (nothing, or only the far tail of a kernel, landed there) are set to 0.
   There is no R-weighting: the division compensates the radial density of
   the lines.
5. **Inverse transform** with the origin at the centre of the output slice,
   keep ``thickness × nx``.
6. **Gaussian low-pass** (EMAN2's ``filter.lowpass.gauss``:
   ``H(f) = exp(−f² / f_c²)``, ``f_c = 1 / resolution``), applied in 3-D: in
   (kx, kz) on the grid and along y on the tilt images (which commutes with
   the per-slice reconstruction). EMAN2's tomogram default is 40 Å at its
   usual working pixel of ~10 Å (4× binned), i.e. a resolution of 4 voxels;
   since the phantoms have very different voxel sizes (1–12 Å), the default
   here is ``lowpass_voxels = 4`` (40 Å at 10 Å/voxel); ``lowpass_angstrom``
   sets an absolute resolution instead (divided by ``voxel_size``).

Everything is vectorised over y: the insertion is one sparse matrix (the
sample positions are the same for every slice) applied to all slices at once,
followed by one batched inverse FFT.

Amplitude: a row's DFT approximates the continuous transform of the slice
(pixel units) and ``ifft2`` supplies ``Δkx·Δkz``, so the sampled Fourier
components come back with the object's amplitude (up to interpolation error);
components the acquisition did not sample (the missing wedge) are zero. The
reconstruction's scale and offset are otherwise whatever the algorithm gives
(no fit to any ground truth); the metrics normalise intensities.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import fft as sfft

from wedgebench.io import InputError
from wedgebench.recon.wbp import check_inputs, fft_workers


def _fast_even(n: float) -> int:
    m = sfft.next_fast_len(int(np.ceil(n)))
    while m % 2:
        m = sfft.next_fast_len(m + 1)
    return m


def edge_taper(nx: int, width: int) -> np.ndarray:
    """Cosine taper of length ``nx``: 0 at the outermost pixel, 1 beyond ``width`` pixels."""
    w = np.ones(nx)
    if width > 0:
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(width) / width))
        w[:width] = ramp
        w[nx - width:] = ramp[::-1]
    return w


def insertion_matrix(angles_deg, n_line: int, lz: int, lx: int, kernel: str = "trilinear",
                     gauss_sigma: float = 0.6, weight_threshold: float = 0.01,
                     center_x: float = 0.0, center_z: float = 0.0,
                     det_center: float = 0.0) -> sp.csr_matrix:
    """Sparse map from row spectra to the normalised, phase-centred Fourier grid.

    Sample ``(t, m)`` is frequency ``ω = m / n_line`` (``m`` in FFT order) of
    the row at tilt ``θ_t``; it lies at ``(kx, kz) = ω (cosθ, −sinθ)``, i.e. at
    fractional grid indices ``(kx·lx, kz·lz)``. The returned matrix ``M`` of
    shape ``(lz·lx, n_tilts·n_line)`` gives the grid (row-major ``[kz, kx]``,
    FFT order) as ``M @ spectra``: kernel weights divided by the summed weight
    of each grid sample (0 below ``weight_threshold``), times the phase
    ``exp(2πi ω·det_center)`` that moves the row origin to the tilt axis and
    the phase ``exp(−2πi (kx·center_x + kz·center_z))`` that puts the output
    origin at the slice centre for :func:`numpy.fft.ifft2`.
    """
    th = np.deg2rad(np.asarray(angles_deg, np.float64))
    nt = th.size
    m = np.fft.fftfreq(n_line) * n_line  # signed integer indices
    omega = m / n_line
    kx = omega[None, :] * np.cos(th)[:, None]
    kz = -omega[None, :] * np.sin(th)[:, None]
    a = (kx * lx).ravel()
    b = (kz * lz).ravel()
    col = np.arange(nt * n_line)
    rows, cols, vals = [], [], []
    if kernel == "trilinear":
        a0, b0 = np.floor(a), np.floor(b)
        fa, fb = a - a0, b - b0
        for da, wa in ((0, 1 - fa), (1, fa)):
            for db, wb in ((0, 1 - fb), (1, fb)):
                rows.append((b0 + db, a0 + da))
                vals.append(wa * wb)
                cols.append(col)
    elif kernel == "gaussian":
        r = int(np.ceil(2.5 * gauss_sigma))
        a0, b0 = np.rint(a), np.rint(b)
        for da in range(-r, r + 1):
            for db in range(-r, r + 1):
                d2 = (a0 + da - a) ** 2 + (b0 + db - b) ** 2
                w = np.exp(-0.5 * d2 / gauss_sigma ** 2)
                keep = d2 <= (r + 0.5) ** 2
                rows.append(((b0 + db)[keep], (a0 + da)[keep]))
                vals.append(w[keep])
                cols.append(col[keep])
    else:
        raise InputError(f"eman2_fourier.kernel: unknown kernel {kernel!r} "
                         "(use 'trilinear' or 'gaussian')")
    iz = np.concatenate([r[0] for r in rows]).astype(np.int64)
    ix = np.concatenate([r[1] for r in rows]).astype(np.int64)
    cols = np.concatenate(cols)
    vals = np.concatenate(vals)
    cell = np.mod(iz, lz) * lx + np.mod(ix, lx)
    w = sp.csr_matrix((vals, (cell, cols)), shape=(lz * lx, nt * n_line))
    wsum = np.asarray(w.sum(axis=1)).ravel()
    inv = np.where(wsum >= max(weight_threshold, 1e-12), 1.0 / np.maximum(wsum, 1e-30), 0.0)
    fz = np.fft.fftfreq(lz)[:, None]
    fx = np.fft.fftfreq(lx)[None, :]
    out_phase = np.exp(-2j * np.pi * (fx * center_x + fz * center_z)).ravel()
    in_phase = np.exp(2j * np.pi * omega * det_center)
    in_phase = np.tile(in_phase, nt)
    w = w.tocoo()
    data = w.data * inv[w.row] * out_phase[w.row] * in_phase[w.col]
    return sp.csr_matrix((data.astype(np.complex128), (w.row, w.col)), shape=w.shape)


def _gauss_lowpass(f2: np.ndarray, res_vox: float) -> np.ndarray:
    """EMAN2's Gaussian low-pass ``exp(−f²/f_c²)``, ``f_c = 1/res`` (f in cycles/voxel)."""
    return np.exp(-f2 * res_vox ** 2)


def _lowpass_y(stack: np.ndarray, res_vox: float, workers: int) -> np.ndarray:
    """Gaussian low-pass of the tilt images along y (zero-padded, non-periodic)."""
    nt, ny, nx = stack.shape
    pad = int(np.ceil(2 * res_vox)) + 4
    n = sfft.next_fast_len(ny + 2 * pad)
    mean = stack.mean(axis=1, keepdims=True)
    buf = np.zeros((nt, n, nx), np.float32)
    buf[:, :ny] = stack - mean
    spec = sfft.rfft(buf, axis=1, workers=workers)
    fy = np.fft.rfftfreq(n)
    spec *= _gauss_lowpass(fy ** 2, res_vox)[None, :, None].astype(np.float32)
    return sfft.irfft(spec, n=n, axis=1, workers=workers)[:, :ny] + mean


def _check_options(pad_factor, kernel, gauss_sigma, weight_threshold, taper_fraction,
                   lowpass_angstrom, lowpass_voxels, voxel_size):
    if not 1 <= pad_factor <= 4:
        raise InputError(f"eman2_fourier.pad_factor: must be in [1, 4], got {pad_factor}")
    if kernel not in ("trilinear", "gaussian"):
        raise InputError(f"eman2_fourier.kernel: unknown kernel {kernel!r} "
                         "(use 'trilinear' or 'gaussian')")
    if not 0.1 <= gauss_sigma <= 3:
        raise InputError(f"eman2_fourier.gauss_sigma: must be in [0.1, 3], got {gauss_sigma}")
    if not 0 <= weight_threshold <= 1:
        raise InputError("eman2_fourier.weight_threshold: must be in [0, 1], got "
                         f"{weight_threshold}")
    if not 0 <= taper_fraction < 0.5:
        raise InputError("eman2_fourier.taper_fraction: must be in [0, 0.5), got "
                         f"{taper_fraction}")
    if lowpass_angstrom is not None:
        if not lowpass_angstrom > 0:
            raise InputError("eman2_fourier.lowpass_angstrom: must be > 0 (or null), got "
                             f"{lowpass_angstrom}")
        if voxel_size is None or not voxel_size > 0:
            raise InputError("eman2_fourier.lowpass_angstrom needs the voxel size (Å) of "
                             f"the tilt series, got voxel_size={voxel_size!r}")
    if not lowpass_voxels >= 0:
        raise InputError(f"eman2_fourier.lowpass_voxels: must be >= 0, got {lowpass_voxels}")


def reconstruct(stack, angles_deg, thickness: int, *, voxel_size: float | None = None,
                pad_factor: float = 2.0, kernel: str = "trilinear", gauss_sigma: float = 0.6,
                weight_threshold: float = 0.01, taper_fraction: float = 0.05,
                lowpass_angstrom: float | None = None,
                lowpass_voxels: float = 4.0,
                max_chunk_bytes: int = 512 * 2**20) -> np.ndarray:
    """Direct Fourier inversion of a single-axis tilt series (all y-slices at once).

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
        Aligned tilt series, tilt axis along y through the centre of x.
    angles_deg : array of float
        Tilt angles in degrees, one per image.
    thickness : int
        z size of the output.
    voxel_size : float, optional
        Pixel size in Å (needed only with ``lowpass_angstrom``).
    pad_factor : float
        Rows are padded to ≥ ``pad_factor · nx``, the grid's z size is
        ≥ ``pad_factor · max(thickness, nx)``.
    kernel : {"trilinear", "gaussian"}
        Insertion kernel (trilinear = bilinear in the (kx, kz) plane).
    gauss_sigma : float
        σ of the Gaussian kernel in grid cells (kernel radius ⌈2.5σ⌉).
    weight_threshold : float
        Grid samples whose summed weight is below this are set to 0.
    taper_fraction : float
        Width of the cosine edge taper (and of the edge band whose mean is
        subtracted) on each side, as a fraction of nx.
    lowpass_angstrom : float or None
        Gaussian low-pass resolution in Å; overrides ``lowpass_voxels``.
    lowpass_voxels : float
        Gaussian low-pass resolution in voxels (0 = no low-pass).
    max_chunk_bytes : int
        Memory bound of the Fourier grid of one batch of y-slices.

    Returns
    -------
    ndarray float32 ``[thickness, y, x]``
    """
    stack, angles = check_inputs(stack, angles_deg, thickness, "eman2_fourier")
    _check_options(pad_factor, kernel, gauss_sigma, weight_threshold, taper_fraction,
                   lowpass_angstrom, lowpass_voxels, voxel_size)
    nt, ny, nx = stack.shape
    nz = int(thickness)
    workers = fft_workers()
    res_vox = (lowpass_angstrom / voxel_size) if lowpass_angstrom is not None \
        else float(lowpass_voxels)

    # 1. normalise (edge mean) and taper
    width = int(round(taper_fraction * nx))
    band = max(width, 1)
    edges = np.concatenate([stack[..., :band], stack[..., nx - band:]], axis=-1)
    data = stack - edges.mean(axis=(1, 2), keepdims=True)
    data = data * edge_taper(nx, width).astype(np.float32)
    if res_vox > 0:
        data = _lowpass_y(data, res_vox, workers)

    # 2. pad and transform the rows (origin handled by the insertion phases)
    lx = _fast_even(pad_factor * nx)
    lz = _fast_even(pad_factor * max(nz, nx))
    spec = sfft.fft(data, n=lx, axis=-1, workers=workers)  # [t, y, lx]

    # 3-4. insertion + weight normalisation, all slices at once. The grid is
    # Hermitian (both signs of ω are inserted), so only kx >= 0 is kept.
    lxh = lx // 2 + 1
    mat = insertion_matrix(angles, lx, lz, lx, kernel, gauss_sigma, weight_threshold,
                           center_x=(nx - 1) / 2.0, center_z=(nz - 1) / 2.0,
                           det_center=(nx - 1) / 2.0)
    keep = (np.arange(lz)[:, None] * lx + np.arange(lxh)[None, :]).ravel()
    mat = mat[keep].astype(np.complex64)
    lowpass = None
    if res_vox > 0:  # 6. low-pass in (kx, kz)
        f2 = np.fft.fftfreq(lz)[:, None] ** 2 + np.fft.rfftfreq(lx)[None, :] ** 2
        lowpass = _gauss_lowpass(f2, res_vox).astype(np.float32)[None]
    out = np.empty((nz, ny, nx), np.float32)
    chunk = max(1, int(max_chunk_bytes // (lz * lxh * 8 * 2)))
    for y0 in range(0, ny, chunk):
        y1 = min(ny, y0 + chunk)
        cols = np.ascontiguousarray(spec[:, y0:y1].transpose(0, 2, 1),
                                    np.complex64).reshape(nt * lx, y1 - y0)
        grid = np.ascontiguousarray((mat @ cols).T).reshape(y1 - y0, lz, lxh)
        if lowpass is not None:
            grid *= lowpass
        # 5. inverse transform (z, then the real x transform of the kept rows), crop
        grid = sfft.ifft(grid, axis=1, workers=workers, overwrite_x=True)[:, :nz]
        vol = sfft.irfft(grid, n=lx, axis=2, workers=workers)[:, :, :nx]
        out[:, y0:y1] = vol.transpose(1, 0, 2)
    return out
