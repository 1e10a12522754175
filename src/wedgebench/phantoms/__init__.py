"""Ground-truth phantoms: one module per kind, each with ``generate(shape, voxel_size,
seed, **params) -> (vol, voxel_size)``; :func:`make_phantom` dispatches by name.

=========== ==========================================================
kind        module
=========== ==========================================================
spheres     :mod:`wedgebench.phantoms.spheres` (hollow spheres)
shapes      :mod:`wedgebench.phantoms.shapes` (mixed geometric shapes)
p22         :mod:`wedgebench.phantoms.p22` (procedural phage or real map)
ubiquitin   :mod:`wedgebench.phantoms.ubiquitin` (atomic model → map)
custom      :mod:`wedgebench.phantoms.custom` (a user's MRC volume)
=========== ==========================================================
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from wedgebench.io import InputError

GENERATORS = ("spheres", "shapes", "p22", "ubiquitin", "custom")
"""The phantom kinds; kind ``k`` is :func:`wedgebench.phantoms.<k>.generate`, imported only
when used (a phantom job loads only its own kind's dependencies)."""


def generator(kind: str):
    """The ``generate`` function of a phantom kind."""
    if kind not in GENERATORS:
        raise InputError(f"kind: unknown phantom kind {kind!r}; choose from "
                         f"{sorted(GENERATORS)}")
    return importlib.import_module(f"wedgebench.phantoms.{kind}").generate


def make_phantom(kind: str, params: dict, seed: int) -> tuple[np.ndarray, float]:
    """Build the ground-truth volume of one dataset.

    Parameters
    ----------
    kind : str
        One of :data:`GENERATORS`.
    params : dict
        ``shape`` ([nz, ny, nx] voxels), ``voxel_size`` (Å) and the kind's own
        parameters (see each module's ``generate``).
    seed : int
        Seed of ``np.random.default_rng``; the same params and seed give a
        bit-identical volume.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]``
    voxel_size : float, Å

    Raises
    ------
    InputError
        Unknown kind, unknown or missing parameter, or a bad value (the message
        names the key or file).
    """
    func = generator(kind)
    sig = inspect.signature(func).parameters
    allowed = [p for p in sig if p != "seed"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InputError(f"{kind}: unknown parameter(s) {unknown}; allowed: {allowed}")
    missing = [p for p in allowed
               if sig[p].default is inspect.Parameter.empty and p not in params]
    if missing:
        raise InputError(f"{kind}: missing required parameter(s) {missing}")
    vol, voxel = func(seed=int(seed), **params)
    return np.ascontiguousarray(vol, dtype=np.float32), float(voxel)
