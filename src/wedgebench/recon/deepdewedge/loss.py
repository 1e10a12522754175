"""DeepDeWedge's masked Fourier-space loss.

For a network output ``f`` and target ``t = R v1`` (the rotated second half, which has
data only where the rotated wedge mask ``M_R`` is non-zero)::

    L = mean |F⁻¹[M_R · M · F(t − f)]|²  +  2 · mean |F⁻¹[M_R · (1 − M) · F(t − f)]|²

with orthonormal FFTs. The first term compares the components the input still had (the
measured region ``M``), the second the components that were removed from the input and
that the network must restore; the latter count twice. Components where the target has no
data (``M_R = 0``) do not count at all.

By Parseval's theorem (orthonormal FFT) ``mean |F⁻¹[X]|² = mean |X|²``, so both terms are
evaluated directly in Fourier space, without the inverse transforms.
"""

from __future__ import annotations


def masked_loss(pred, target, rot_mask, mask):
    """DeepDeWedge's loss, averaged over voxels and the batch.

    Parameters
    ----------
    pred, target : tensor ``[B, 1, n, n, n]`` (or ``[B, n, n, n]``)
        Network output ``f`` and target ``t``.
    rot_mask : tensor broadcastable to ``pred`` (e.g. ``[B, 1, n, n, n]``)
        ``M_R``, real-valued in [0, 1], unshifted FFT layout.
    mask : tensor broadcastable to ``pred`` (e.g. ``[n, n, n]``)
        ``M``, the binary wedge mask, unshifted FFT layout.

    Returns
    -------
    scalar tensor
    """
    import torch

    err = torch.fft.fftn((target - pred).to(torch.float32), dim=(-3, -2, -1), norm="ortho")
    power = err.real.square() + err.imag.square()
    seen = (rot_mask * mask).square()
    removed = (rot_mask * (1 - mask)).square()
    return (seen * power).mean() + 2.0 * (removed * power).mean()
