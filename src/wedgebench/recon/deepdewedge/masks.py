"""DeepDeWedge's Fourier masks: the wedge of the actual tilt range, and its rotations.

The *wedge mask* ``M`` is binary in ``(k_z, k_x)`` and constant along ``k_y`` (the tilt
axis): 1 where the direction lies inside the measured tilt range ``[min, max]`` of the
acquisition's angles (asymmetric ranges are honoured: the actual minimum and maximum, not
a symmetric ±θ), DC included. Tilt θ measures the central plane spanned by ``k_y`` and
``(k_x, k_z) = (cosθ, −sinθ)``, the plane perpendicular to the beam direction at θ (see
:mod:`wedgebench.geometry`, whose :func:`~wedgebench.geometry.wedge_mask` computes it).

The *rotated mask* ``M_R`` marks where a cube rotated by ``R`` has data: the wedge mask
built on the ``ceil_to_even(√2·N)`` grid (so that the rotated array is defined over most of
the ``N³`` crop), rotated about its DC voxel and centre-cropped to ``N³``. The wedge is a
double cone (it depends on the direction only), so the crop of the larger grid's mask is the
mask on the ``N³`` grid. Two ways (``deepdewedge.mask_rotation``):

* ``cubic`` (the official code): cubic-spline interpolation, values outside the larger grid
  (the crop's corners) zero, not clipped (spline overshoot stays), as interpolated;
* ``linear_clipped`` (wedgebench's earlier way): trilinear, the edge values continued
  beyond the grid, clipped to [0, 1] and made Friedel-symmetric.

The unrotated masks are in unshifted FFT layout (DC at index 0) and Friedel-symmetric
(``m(k) = m(−k)``): on even grids the Nyquist planes of a geometric mask are not, and a
Fourier voxel counts only as far as its conjugate partner does too, so that masking a real
volume keeps it real.
"""

from __future__ import annotations

import numpy as np

from wedgebench.geometry import wedge_mask as _geometric_wedge
from wedgebench.recon.deepdewedge.options import extraction_size
from wedgebench.recon.deepdewedge.rotation import rotate_crop
from wedgebench.recon.isonet.rotations import hermitian_part


def _range(angles_deg) -> tuple[float, float]:
    a = np.asarray(angles_deg, np.float64).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(np.abs(a) >= 90):
        raise ValueError(f"tilt angles must be a non-empty list within ±90°, got {a}")
    return float(a.min()), float(a.max())


def _friedel_min(m: np.ndarray) -> np.ndarray:
    """``min(m(k), m(−k))`` on an unshifted FFT grid (equals ``m`` where it is symmetric)."""
    neg = np.roll(np.flip(m, axis=(-3, -2, -1)), shift=1, axis=(-3, -2, -1))
    return np.minimum(m, neg)


def volume_wedge_mask(shape, angles_deg) -> np.ndarray:
    """The wedge mask of any ``(nz, ny, nx)`` grid (e.g. a whole tomogram).

    Returns
    -------
    ndarray float32 ``shape``, binary, unshifted FFT layout, Friedel-symmetric
    """
    lo, hi = _range(angles_deg)
    shape = tuple(int(s) for s in shape)
    return hermitian_part(_geometric_wedge(shape, lo, hi)).astype(np.float32)


def wedge_mask(n: int, angles_deg) -> np.ndarray:
    """The wedge mask ``M`` of an ``n³`` cube.

    Parameters
    ----------
    n : int
        Cube edge.
    angles_deg : array of float
        The acquisition's tilt angles; their minimum and maximum bound the measured range.

    Returns
    -------
    ndarray float32 ``(n, n, n)``: 1 inside the measured range (and at DC), 0 in the
    missing wedge; constant along axis 1 (``k_y``); unshifted FFT layout.
    """
    return volume_wedge_mask((n, n, n), angles_deg)


def big_wedge_mask(n: int, angles_deg) -> np.ndarray:
    """The wedge mask on the ``extraction_size(n)`` grid, *fftshifted* (DC at ``m // 2``).

    The input of :func:`rotated_mask`; built once per fit.
    """
    m = extraction_size(n)
    lo, hi = _range(angles_deg)
    return np.ascontiguousarray(np.fft.fftshift(_geometric_wedge((m, m, m), lo, hi)),
                                dtype=np.float32)


def rotated_mask(mask_big: np.ndarray, rot: np.ndarray, n: int,
                 how: str = "cubic") -> np.ndarray:
    """``M_R``: the wedge mask rotated by ``rot`` and centre-cropped to ``n³``.

    Parameters
    ----------
    mask_big : ndarray ``(m, m, m)``
        :func:`big_wedge_mask` (fftshifted, ``m − n`` even).
    rot : (3, 3) rotation matrix on ``(z, y, x)``, the rotation applied to the cubes
        (:func:`~wedgebench.recon.deepdewedge.rotation.rotate_crop`).
    n : int
    how : {"cubic", "linear_clipped"}
        The official cubic spline (zeros outside, not clipped) or wedgebench's earlier
        trilinear, clipped, Friedel-symmetric mask (module docstring).

    Returns
    -------
    ndarray float32 ``(n, n, n)``, unshifted FFT layout (``linear_clipped``: in [0, 1],
    Friedel-symmetric). ``rot = identity`` gives :func:`wedge_mask` exactly up to the
    Nyquist planes of even grids, which only ``linear_clipped`` symmetrises.
    """
    m = mask_big.shape[-1]
    if how == "cubic":
        out = rotate_crop(mask_big, rot, n, centre=m // 2, order=3, mode="constant")
        return np.ascontiguousarray(np.fft.ifftshift(out), np.float32)
    if how != "linear_clipped":
        raise ValueError(f"mask rotation must be 'cubic' or 'linear_clipped', got {how!r}")
    # trilinear, about the DC voxel; beyond the array (corners of the crop, outside the
    # inscribed sphere of the larger grid) the nearest edge value continues the cone
    out = rotate_crop(mask_big, rot, n, centre=m // 2, order=1, mode="nearest")
    return _friedel_min(np.fft.ifftshift(np.clip(out, 0.0, 1.0))).astype(np.float32)


def apply_mask(vol: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``Re F⁻¹[mask · F(vol)]`` over the last three axes (NumPy, float32 result).

    ``mask`` is in unshifted layout and broadcasts against ``vol``'s last three axes.
    """
    from scipy import fft as sfft

    from wedgebench.recon.wbp import fft_workers

    spec = sfft.fftn(np.asarray(vol, np.float32), axes=(-3, -2, -1), workers=fft_workers())
    out = sfft.ifftn(spec * mask, axes=(-3, -2, -1), workers=fft_workers()).real
    return out.astype(np.float32)
