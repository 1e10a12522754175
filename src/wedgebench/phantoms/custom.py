"""A user's own ground-truth volume from an MRC file."""

from __future__ import annotations

from wedgebench.io import InputError, read_mrc
from wedgebench.phantoms.filters import check_number, check_shape


def generate(shape=None, voxel_size=None, seed: int = 0, *, path):
    """Read the ground truth from ``path``.

    Parameters
    ----------
    shape : [nz, ny, nx], optional
        When given it must equal the file's shape.
    voxel_size : float, optional
        Å per voxel; default the file header's (1.0 when the header has 0).
    seed : int
        Unused.
    path : str
        MRC/CCP4 volume, optionally gzipped; NaN/Inf values are rejected.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]`` (values as stored)
    voxel_size : float
    """
    vol, header_voxel = read_mrc(path)
    if shape is not None and check_shape(shape, "custom.shape") != vol.shape:
        raise InputError(f"custom.shape: {list(shape)} differs from the shape "
                         f"{list(vol.shape)} of {path}")
    if voxel_size is None:
        return vol, header_voxel
    return vol, check_number(voxel_size, "custom.voxel_size", minimum=0, exclusive_min=True)
