"""Slab iteration: whole-volume metrics computed a bounded block at a time.

A metric on a volume of the paper's size (1024 × 1024 × 256 = 268 M voxels) cannot hold
several float64 copies of it (2.1 GB each). The metrics therefore keep the volumes in
their own precision (float32 from MRC files) and convert one *slab* at a time to
float64: a run of consecutive planes along one axis, extended by a *halo* of
neighbouring planes where a filter needs them. Sums are accumulated in float64, so a
slab-wise result equals the whole-volume computation up to the order of summation.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

#: Default number of output voxels per slab (4 M voxels: 32 MB per float64 array).
SLAB_VOXELS = 1 << 22


def planes_per_slab(plane_voxels: int, n_planes: int, slab_voxels: int | None) -> int:
    """Planes per slab so that a slab holds about ``slab_voxels`` voxels (at least one).

    ``slab_voxels=None`` means no limit: one slab of all ``n_planes``.
    """
    if slab_voxels is None:
        return max(1, int(n_planes))
    if not slab_voxels >= 1:
        raise ValueError(f"slab_voxels must be >= 1 or None, got {slab_voxels}")
    return int(min(max(1, n_planes), max(1, int(slab_voxels) // max(1, int(plane_voxels)))))


def halo_slabs(start: int, stop: int, step: int, halo: int, n: int
               ) -> Iterator[tuple[int, int, int, int]]:
    """Slabs covering planes ``start … stop − 1`` with a halo clipped to ``[0, n)``.

    Yields
    ------
    (s0, s1, lo, hi) : int
        Output planes ``[s0, s1)`` and the input planes ``[lo, hi)`` to read, with
        ``lo = max(0, s0 − halo)`` and ``hi = min(n, s1 + halo)``.
    """
    for s0 in range(int(start), int(stop), max(1, int(step))):
        s1 = min(s0 + int(step), int(stop))
        yield s0, s1, max(0, s0 - int(halo)), min(int(n), s1 + int(halo))


def flat_chunks(x: np.ndarray, slab_voxels: int | None = SLAB_VOXELS) -> Iterator[np.ndarray]:
    """Consecutive float64 chunks of ``x`` in C order (each ≤ ``slab_voxels`` elements)."""
    flat = np.asarray(x).reshape(-1)
    step = flat.size if slab_voxels is None else max(1, int(slab_voxels))
    for s in range(0, flat.size, step):
        yield np.asarray(flat[s:s + step], dtype=np.float64)


def mean_std(x: np.ndarray, slab_voxels: int | None = SLAB_VOXELS) -> tuple[float, float]:
    """Mean and (population, ddof = 0) standard deviation in float64, two passes."""
    n = np.asarray(x).size
    mean = sum(float(c.sum()) for c in flat_chunks(x, slab_voxels)) / n
    var = sum(float(np.dot(c - mean, c - mean)) for c in flat_chunks(x, slab_voxels)) / n
    return mean, float(np.sqrt(var))


def affine_map(x: np.ndarray, a: float, b: float, dtype=np.float64,
               slab_voxels: int | None = SLAB_VOXELS) -> np.ndarray:
    """``a·x + b`` as a new array of ``dtype``, evaluated in float64 one chunk at a time."""
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=dtype)
    flat = out.reshape(-1)
    pos = 0
    for c in flat_chunks(x, slab_voxels):
        flat[pos:pos + c.size] = a * c + b
        pos += c.size
    return out
