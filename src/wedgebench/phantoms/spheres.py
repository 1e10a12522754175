"""Binarised hollow spheres of constant density in a slab (the paper's "spheres").

``count`` hollow spheres with outer diameters drawn uniformly from
``diameter = [min, max]`` voxels and a shell ``thickness`` voxels thick are
placed at random, entirely inside the box and at least ``gap`` voxels apart
(rejection sampling, largest first). A voxel belongs to a sphere of outer
radius ``r`` when the distance ``d`` of its centre from the sphere's centre
satisfies ``r - thickness < d <= r`` (value 1, else 0). The binary volume is
then Gaussian low-pass filtered with std ``lowpass`` voxels (0: no filter);
values stay in [0, 1].

:func:`objects` returns the continuous spheres (centres, radii, thickness, low-pass)
that :func:`generate` rasterises with :func:`rasterise`; :mod:`wedgebench.analytic`
projects them exactly.
"""

from __future__ import annotations

import numpy as np

from wedgebench.phantoms.filters import (check_fits, check_int, check_interval,
                                         check_number, check_shape, gaussian_lowpass,
                                         local_box, place_non_overlapping)


def place_spheres(shape, count: int, diameter, gap: float, rng: np.random.Generator,
                  max_tries: int = 1000):
    """Draw sphere radii and non-overlapping centres.

    Parameters
    ----------
    shape : (nz, ny, nx)
    count : int
        Number of spheres requested.
    diameter : (float, float)
        Range of outer diameters in voxels (uniform).
    gap : float
        Minimum clearance between sphere surfaces, voxels.
    rng : numpy Generator
    max_tries : int
        Random positions tried per sphere before giving up on it (with a warning).

    Returns
    -------
    centres : ndarray ``(m, 3)``, voxel coordinates ``[z, y, x]`` of the placed spheres
    radii : ndarray ``(m,)``, outer radii in voxels (``m <= count``)
    """
    radii = rng.uniform(diameter[0], diameter[1], size=count) / 2.0
    centres, placed = place_non_overlapping(rng, shape, radii, gap, max_tries, "spheres")
    return centres[placed], radii[placed]


def hollow_spheres(shape, centres, radii, thickness: float) -> np.ndarray:
    """Binary volume of hollow spheres (see module docstring).

    Parameters
    ----------
    shape : (nz, ny, nx)
    centres : array ``(m, 3)`` ``[z, y, x]`` voxels
    radii : array ``(m,)`` outer radii, voxels
    thickness : float
        Shell thickness in voxels (>= radius: full spheres).

    Returns
    -------
    ndarray float32 of 0 and 1
    """
    vol = np.zeros(shape, np.float32)
    for c, r in zip(np.asarray(centres, float), np.asarray(radii, float)):
        sl, (dz, dy, dx) = local_box(shape, c, r)
        if sl is None:
            continue
        d = np.sqrt(dz * dz + dy * dy + dx * dx)
        vol[sl][(d <= r) & (d > r - thickness)] = 1.0
    return vol


def objects(shape, voxel_size: float = 10.0, seed: int = 0, *, count: int = 20,
            diameter=(8.0, 24.0), thickness: float = 3.0, gap: float = 2.0,
            lowpass: float = 1.0, max_tries: int = 1000) -> dict:
    """Continuous description of the hollow-spheres phantom (what :func:`generate` draws).

    Parameters are those of :func:`generate` (validated the same way); the same
    parameters and seed give the same spheres that :func:`generate` rasterises.

    Returns
    -------
    dict
        ``phantom`` (``"spheres"``), ``shape`` (``(nz, ny, nx)``), ``voxel_size`` (Å),
        ``centres`` (ndarray ``(m, 3)``, voxel coordinates ``[z, y, x]``: integer
        ``i`` is the centre of voxel ``i``), ``radii`` (ndarray ``(m,)``, outer radii
        in voxels), ``thickness`` (shell thickness, voxels) and ``lowpass`` (Gaussian
        std, voxels; 0: none).
    """
    shape = check_shape(shape, "spheres.shape")
    voxel_size = check_number(voxel_size, "spheres.voxel_size", minimum=0, exclusive_min=True)
    count = check_int(count, "spheres.count", minimum=0)
    diameter = check_interval(diameter, "spheres.diameter", minimum=1.0)
    check_fits(diameter[1], shape, "spheres.diameter")
    thickness = check_number(thickness, "spheres.thickness", minimum=0, exclusive_min=True)
    gap = check_number(gap, "spheres.gap", minimum=0)
    lowpass = check_number(lowpass, "spheres.lowpass", minimum=0)
    max_tries = check_int(max_tries, "spheres.max_tries", minimum=1)
    rng = np.random.default_rng(seed)
    centres, radii = place_spheres(shape, count, diameter, gap, rng, max_tries)
    return dict(phantom="spheres", shape=shape, voxel_size=voxel_size, centres=centres,
                radii=radii, thickness=thickness, lowpass=lowpass)


def rasterise(desc: dict) -> np.ndarray:
    """Volume ``[z, y, x]`` (float32 in [0, 1]) of a description from :func:`objects`:
    binary hollow spheres, Gaussian low-pass, clipped to [0, 1]."""
    vol = gaussian_lowpass(hollow_spheres(desc["shape"], desc["centres"], desc["radii"],
                                          desc["thickness"]), desc["lowpass"])
    return np.clip(vol, 0.0, 1.0, out=vol)


def generate(shape, voxel_size: float = 10.0, seed: int = 0, *, count: int = 20,
             diameter=(8.0, 24.0), thickness: float = 3.0, gap: float = 2.0,
             lowpass: float = 1.0, max_tries: int = 1000):
    """Hollow-spheres phantom.

    Parameters
    ----------
    shape : [nz, ny, nx]
        Box in voxels (slab: nz smaller than ny, nx).
    voxel_size : float
        Å per voxel; only written to the header.
    seed : int
    count : int
        Spheres requested; fewer (with a warning) when they do not fit.
    diameter : [min, max]
        Outer diameter range in voxels; ``max`` must fit in the smallest box side.
    thickness : float
        Shell thickness in voxels (> 0).
    gap : float
        Minimum clearance between spheres in voxels (>= 0; >= 2 keeps them
        separate 26-connected components before filtering).
    lowpass : float
        Gaussian low-pass std in voxels (0 disables).
    max_tries : int
        Positions tried per sphere.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]`` in [0, 1]
    voxel_size : float

    See Also
    --------
    objects : the continuous spheres behind the volume (same signature).
    """
    desc = objects(shape, voxel_size, seed, count=count, diameter=diameter,
                   thickness=thickness, gap=gap, lowpass=lowpass, max_tries=max_tries)
    return rasterise(desc), desc["voxel_size"]
