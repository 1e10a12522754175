"""Cubic boxes about the centre voxel ``n // 2`` (the convention of :mod:`wedgebench.euler`)."""

from __future__ import annotations

import numpy as np


def centre_box(vol: np.ndarray, box, fill: float = 0.0) -> np.ndarray:
    """``vol`` padded or cropped so that its centre voxel ``n // 2`` becomes ``box // 2``.

    Parameters
    ----------
    vol : ndarray, 3-D
    box : int or sequence of 3 int
        Output shape (an int gives a cube).
    fill : float
        Value of the padded voxels.

    Returns
    -------
    ndarray float32 of shape ``box``
    """
    vol = np.asarray(vol, np.float32)
    shape = (int(box),) * 3 if np.ndim(box) == 0 else tuple(int(b) for b in box)
    out = np.full(shape, fill, np.float32)
    src, dst = [], []
    for n_in, n_out in zip(vol.shape, shape):
        shift = n_out // 2 - n_in // 2  # out index = in index + shift
        lo, hi = max(0, -shift), min(n_in, n_out - shift)
        src.append(slice(lo, hi))
        dst.append(slice(lo + shift, hi + shift))
    out[tuple(dst)] = vol[tuple(src)]
    return out


def radius_grid(shape) -> np.ndarray:
    """Distance (voxels) of every voxel of ``shape`` from the centre voxel ``n // 2``."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum((g - n // 2).astype(np.float64) ** 2 for g, n in zip(grids, shape)))


def sphere_mask(shape, radius: float, soft_width: float = 0.0) -> np.ndarray:
    """A sphere about ``n // 2``: 1 inside ``radius`` (voxels), then a raised-cosine edge
    of ``soft_width`` voxels down to 0 (a hard edge when 0). float32."""
    r = radius_grid(shape)
    if soft_width <= 0:
        return (r <= radius).astype(np.float32)
    t = np.clip((r - radius) / soft_width, 0.0, 1.0)
    return (0.5 * (1 + np.cos(np.pi * t))).astype(np.float32)
