"""Random rotations from SO(3) and rotate-then-centre-crop of cubes.

Rotations act on centred ``(z, y, x)`` index coordinates: the voxel at centred position
``p`` of the input moves to ``R @ p`` in the output (``out(p) = in(Rᵀ p)``). Rotating a
real-space cube by ``R`` therefore rotates its Fourier transform by the same ``R`` (an
orthogonal ``R`` keeps ``F[v(Rᵀ·)](k) = F[v](Rᵀ k)``), so a Fourier-space mask rotated with
the same function, about its DC voxel, marks where the rotated cube has data.
"""

from __future__ import annotations

import numpy as np


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3) (Haar measure).

    A unit quaternion with independent standard-normal components is uniform on the
    3-sphere, and the quaternion → rotation map carries that measure to the uniform one on
    SO(3).

    Returns
    -------
    ndarray float64 (3, 3), orthogonal with determinant +1
    """
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, a, b, c = q
    return np.array([
        [1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)],
        [2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)],
        [2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)],
    ])


def rotate_crop(vol: np.ndarray, rot: np.ndarray, size: int, centre: float | None = None,
                order: int = 3, mode: str = "reflect", prefilter: bool = True,
                output=np.float32) -> np.ndarray:
    """Rotate a cube by ``rot`` about ``centre`` and keep the central ``size³`` cube.

    Only the output voxels are interpolated, which equals rotating the whole cube and
    cropping it. ``vol`` has an edge ``m`` with ``m − size`` even.

    Parameters
    ----------
    vol : ndarray ``(m, m, m)``
    rot : (3, 3) rotation matrix on ``(z, y, x)``
    size : int
        Edge of the output cube.
    centre : float, optional
        Centre of rotation (same on every axis), in input index units. Default
        ``(m − 1) / 2`` (the cube's geometric centre, for real-space cubes); use ``m // 2``
        for an fftshifted spectrum (its DC voxel). The output's centre is ``centre −
        (m − size) / 2``.
    order : int
        Spline order of :func:`scipy.ndimage.affine_transform` (3: cubic; 1: trilinear).
    mode : str
        How values outside ``vol`` are extended (corners of the output cube reach beyond a
        ``√2·size`` input).
    prefilter : bool
        False when ``vol`` already holds spline coefficients
        (:func:`scipy.ndimage.spline_filter` of the same order and mode).
    output : dtype

    Returns
    -------
    ndarray ``(size, size, size)``
    """
    from scipy import ndimage

    m = vol.shape[-1]
    if vol.shape != (m, m, m) or (m - size) % 2 or size > m:
        raise ValueError(f"rotate_crop needs a cube of edge >= {size} with an even "
                         f"difference, got shape {vol.shape}")
    c_in = (m - 1) / 2.0 if centre is None else float(centre)
    c_out = c_in - (m - size) / 2.0
    rot = np.asarray(rot, np.float64)
    matrix = rot.T  # input coordinate = Rᵀ (output − c_out) + c_in
    offset = c_in - matrix @ np.full(3, c_out)
    return ndimage.affine_transform(vol, matrix, offset=offset, output_shape=(size,) * 3,
                                    order=order, mode=mode, prefilter=prefilter,
                                    output=output)
