"""The loss of slab volumes against their measured tilt-series rows.

The loss of one slab is the mean L1 distance between the reprojection of its volume
(:class:`wedgebench.projector.Projector`, differentiable) and its measured rows, plus an
optional squared finite-difference regulariser. Several slabs of the same height are
projected together, side by side along y (the projector treats every y-slice on its own),
and each keeps its own loss.
"""

from __future__ import annotations

import torch

from ...projector import Projector
from .holdout import EarlyStopping


def finite_difference_penalty(vol: torch.Tensor) -> torch.Tensor:
    """Mean squared forward differences of ``vol[..., z, y, x]`` along every one of its
    last three axes of length > 1; leading axes are batch axes (one value each)."""
    total = vol.new_zeros(vol.shape[:-3])
    for axis in (-3, -2, -1):
        if vol.shape[axis] > 1:
            total = total + torch.diff(vol, dim=axis).pow(2).mean(dim=(-3, -2, -1))
    return total


def slab_losses(projector: Projector, vols: torch.Tensor, targets: torch.Tensor,
                reg_weight: float = 0.0) -> torch.Tensor:
    """The loss of each of ``S`` slab volumes against its own measured rows.

    The slabs are projected together, side by side along y (the projector treats every
    y-slice independently), and each loss is the mean L1 distance over its own rows,
    plus ``reg_weight`` × :func:`finite_difference_penalty` of its own volume.

    Parameters
    ----------
    projector : Projector
    vols : Tensor ``[S, nz, j, nx]``
    targets : Tensor ``[tilt, S, j, n_det]``
    reg_weight : float

    Returns
    -------
    Tensor ``[S]``
    """
    loss = residuals(projector, vols, targets).mean(dim=(0, 2, 3))
    if reg_weight:
        loss = loss + reg_weight * finite_difference_penalty(vols)
    return loss


def residuals(projector: Projector, vols: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``|reprojection − targets|`` ``[tilt, S, j, n_det]`` of ``S`` slabs side by side."""
    s, nz, j, nx = vols.shape
    side_by_side = vols.permute(1, 0, 2, 3).reshape(nz, s * j, nx)
    proj = projector.forward(side_by_side).reshape(projector.n_tilts, s, j, projector.n_det)
    return (proj - targets).abs()


def training_losses(projector: Projector, vols: torch.Tensor, targets: torch.Tensor,
                    reg_weight: float, stopper: EarlyStopping | None):
    """Training loss ``[S]`` and held-out loss ``[S]`` (None without ``stopper``).

    Without ``stopper`` the training loss is :func:`slab_losses`; with it, the loss over
    the training rays only and the held-out rays' loss, both from one projection
    (:meth:`~.holdout.EarlyStopping.losses`).
    """
    if stopper is None:
        return slab_losses(projector, vols, targets, reg_weight), None
    reg = reg_weight * finite_difference_penalty(vols) if reg_weight else None
    return stopper.losses(residuals(projector, vols, targets), reg)
