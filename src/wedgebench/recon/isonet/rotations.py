"""IsoNet's training pairs: cube rotations, the subtomogram wedge and wedge filtering.

IsoNet learns missing-wedge completion from the data themselves: a subtomogram
(whose own wedge is missing around kz) is rotated so that some *other* direction
of Fourier space now lies where the wedge is, the wedge is removed from it again,
and the network learns to map the doubly-wedged cube back to the rotated one.

Rotations are the 24 proper rotations of a cube (signed permutation matrices with
determinant +1) acting on centred ``(z, y, x)`` coordinates. Four of them keep a
wedge about the y axis where it is (identity and the 180° turns about x, y and z:
the diagonal matrices); IsoNet uses the other 20.

All array functions accept leading batch dimensions: the last three axes are
``(z, y, x)`` of a cube. They work on numpy arrays and torch tensors alike. torch is
imported only by the functions that need it, so that importing this module (the
workflow does, through :mod:`.refine`, to read IsoNet's options) stays cheap.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from wedgebench.geometry import wedge_mask

WEDGE_MODES = ("from_angles", "isonet_v1")


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations of a cube as 3×3 integer matrices on ``(z, y, x)``.

    Returns
    -------
    list of ndarray (3, 3), int
        Identity first; fixed order.
    """
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=int)
            m[np.arange(3), perm] = signs
            if round(np.linalg.det(m)) == 1:
                out.append(m)
    out.sort(key=lambda m: (not np.array_equal(m, np.eye(3, dtype=int)), m.ravel().tolist()))
    return out


def keeps_wedge(rot: np.ndarray) -> bool:
    """Whether ``rot`` maps every axis onto itself (up to sign), i.e. keeps a y-axis wedge."""
    return bool(np.count_nonzero(rot - np.diag(np.diag(rot))) == 0)


def isonet_rotations() -> list[np.ndarray]:
    """IsoNet's 20 rotations: the cube rotations that move a y-axis wedge."""
    return [r for r in cube_rotations() if not keeps_wedge(r)]


def rotate(vol, rot: np.ndarray):
    """Apply the cube rotation ``rot`` to the last three axes of a cube (or a batch).

    The voxel at centred position ``p`` moves to ``rot @ p``. Exact (no
    interpolation): a transpose followed by flips.

    Parameters
    ----------
    vol : ndarray or torch.Tensor, ``[..., n, n, n]``
    rot : (3, 3) signed permutation matrix

    Returns
    -------
    Same type as ``vol`` (a new array/tensor).
    """
    rot = np.asarray(rot)
    lead = vol.ndim - 3
    if vol.shape[-3:] != (vol.shape[-1],) * 3:
        raise ValueError(f"rotate needs cubes, got shape {tuple(vol.shape)}")
    src = [int(np.flatnonzero(rot[a])[0]) for a in range(3)]  # output axis a <- input axis
    signs = [int(rot[a, src[a]]) for a in range(3)]
    axes = list(range(lead)) + [lead + s for s in src]
    flip = [lead + a for a in range(3) if signs[a] < 0]
    torch = sys.modules.get("torch")  # a tensor implies torch is imported
    if torch is not None and isinstance(vol, torch.Tensor):
        out = vol.permute(*axes)
        return out.flip(flip) if flip else out.contiguous()
    out = np.transpose(vol, axes)
    return np.ascontiguousarray(np.flip(out, flip) if flip else out)


def hermitian_part(mask: np.ndarray) -> np.ndarray:
    """``mask(k) · mask(−k)`` on an unshifted FFT grid.

    A real mask that is symmetric under ``k → −k`` keeps the inverse FFT of a
    masked real volume exactly real; on even-sized grids the Nyquist planes of a
    geometric mask are not, so they are made so here (a Fourier voxel counts as
    measured only if its conjugate partner is measured too).
    """
    neg = np.roll(np.flip(mask, axis=(-3, -2, -1)), shift=1, axis=(-3, -2, -1))
    return mask * neg


def cube_wedge(n: int, angles_deg=None, mode: str = "from_angles") -> np.ndarray:
    """The measured-region mask of an ``n³`` subtomogram (1 = measured), unshifted FFT layout.

    Parameters
    ----------
    n : int
        Cube edge in voxels.
    angles_deg : array of float
        The acquisition's tilt angles; ``from_angles`` uses their min and max
        (asymmetric ranges allowed).
    mode : {"from_angles", "isonet_v1"}
        ``isonet_v1``: IsoNet v1's fixed mask, ±60° and zero outside the sphere of
        radius n/2 (in Fourier voxels), whatever the acquisition.

    Returns
    -------
    ndarray float32 ``(n, n, n)``, Hermitian-symmetric (see :func:`hermitian_part`).
    """
    if mode == "from_angles":
        if angles_deg is None or len(angles_deg) == 0:
            raise ValueError("cube_wedge(mode='from_angles') needs the tilt angles")
        a = np.asarray(angles_deg, float)
        m = wedge_mask((n, n, n), float(a.min()), float(a.max()))
    elif mode == "isonet_v1":
        m = wedge_mask((n, n, n), -60.0, 60.0)
        f = np.fft.fftfreq(n) * n
        r2 = f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2
        m = m * (r2 <= (n / 2.0) ** 2)
    else:
        raise ValueError(f"isonet.wedge: unknown mode {mode!r} (allowed: {WEDGE_MODES})")
    return hermitian_part(m.astype(np.float32)).astype(np.float32)


def apply_fourier_mask(vol: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``IFFT[mask · F(vol)]`` over the last three axes (real part; float32)."""
    import torch

    spec = torch.fft.fftn(vol.to(torch.float32), dim=(-3, -2, -1))
    return torch.fft.ifftn(spec * mask, dim=(-3, -2, -1)).real


def fill_wedge(pred: torch.Tensor, orig: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """IsoNet's update: ``IFFT[(1 − mask)·F(pred)] + IFFT[mask·F(orig)]``.

    The Fourier coefficients of ``orig`` where ``mask`` is 1 (the measured region)
    are kept unchanged; the rest comes from ``pred``.
    """
    import torch

    fp = torch.fft.fftn(pred.to(torch.float32), dim=(-3, -2, -1))
    fo = torch.fft.fftn(orig.to(torch.float32), dim=(-3, -2, -1))
    return torch.fft.ifftn(fp * (1 - mask) + fo * mask, dim=(-3, -2, -1)).real


def centre_crop(vol, size: int):
    """The central ``size³`` cube of the last three axes."""
    n = vol.shape[-1]
    s = (n - size) // 2
    return vol[..., s:s + size, s:s + size, s:s + size]


def make_pairs(cubes: torch.Tensor, rot_ids, rotations, mask: torch.Tensor,
               size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs: ``(wedge-filtered rotated crop, rotated crop)``, centre-cropped.

    Parameters
    ----------
    cubes : tensor ``[B, n, n, n]``
        Crop-size subtomograms (the current filled ones).
    rot_ids : sequence of int, length B
        Index into ``rotations`` for each cube.
    rotations : list of (3, 3) matrices
    mask : tensor ``[n, n, n]``
        The measured-region mask (:func:`cube_wedge`), on the cubes' device.
    size : int
        Cube size of the network's input and target.

    Returns
    -------
    inputs, targets : tensors ``[B, 1, size, size, size]``
    """
    import torch

    rotated = torch.stack([rotate(c, rotations[int(r)]) for c, r in zip(cubes, rot_ids)])
    wedged = apply_fourier_mask(rotated, mask)
    return (centre_crop(wedged, size).unsqueeze(1).contiguous(),
            centre_crop(rotated, size).unsqueeze(1).contiguous())
