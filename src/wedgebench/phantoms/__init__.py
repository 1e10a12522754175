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
crowded     :mod:`wedgebench.phantoms.crowded` (cytoplasm: particle classes, vesicles, filaments)
=========== ==========================================================

``spheres`` and ``shapes`` are continuous objects rasterised at the voxel centres;
their modules also have ``objects(shape, voxel_size, seed, **params) -> dict`` (same
signature as ``generate``), the continuous description that ``generate`` rasterises,
and :func:`make_objects` dispatches to it (used by :mod:`wedgebench.analytic`).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from wedgebench.io import InputError

GENERATORS = ("spheres", "shapes", "p22", "ubiquitin", "custom", "crowded")
"""The phantom kinds; kind ``k`` is :func:`wedgebench.phantoms.<k>.generate`, imported only
when used (a phantom job loads only its own kind's dependencies)."""

OBJECT_KINDS = ("spheres", "shapes")
"""The kinds made of continuous objects: ``wedgebench.phantoms.<k>.objects`` exists."""


def generator(kind: str):
    """The ``generate`` function of a phantom kind."""
    if kind not in GENERATORS:
        raise InputError(f"kind: unknown phantom kind {kind!r}; choose from "
                         f"{sorted(GENERATORS)}")
    return importlib.import_module(f"wedgebench.phantoms.{kind}").generate


def _call_checked(kind: str, func, params: dict, seed: int):
    """``func(seed=seed, **params)`` after checking ``params`` against its signature."""
    sig = inspect.signature(func).parameters
    allowed = [p for p in sig if p != "seed"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InputError(f"{kind}: unknown parameter(s) {unknown}; allowed: {allowed}")
    missing = [p for p in allowed
               if sig[p].default is inspect.Parameter.empty and p not in params]
    if missing:
        raise InputError(f"{kind}: missing required parameter(s) {missing}")
    return func(seed=int(seed), **params)


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
    vol, voxel = _call_checked(kind, generator(kind), params, seed)
    return np.ascontiguousarray(vol, dtype=np.float32), float(voxel)


def make_objects(kind: str, params: dict, seed: int) -> dict:
    """The continuous objects behind :func:`make_phantom` ``(kind, params, seed)``.

    Parameters
    ----------
    kind : str
        One of :data:`OBJECT_KINDS`.
    params, seed
        As for :func:`make_phantom` (checked the same way).

    Returns
    -------
    dict
        The description of ``wedgebench.phantoms.<kind>.objects`` (voxel coordinates
        ``[z, y, x]``, integer ``i`` at the centre of voxel ``i``).

    Raises
    ------
    InputError
        A kind without a continuous description (naming it and :data:`OBJECT_KINDS`),
        or bad parameters as for :func:`make_phantom`.
    """
    if kind not in OBJECT_KINDS:
        raise InputError(f"kind: phantom kind {kind!r} has no continuous object "
                         f"description; supported: {list(OBJECT_KINDS)}")
    func = importlib.import_module(f"wedgebench.phantoms.{kind}").objects
    return _call_checked(kind, func, params, seed)
