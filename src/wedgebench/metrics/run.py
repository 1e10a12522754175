"""One reconstruction's full evaluation record, as the workflow writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wedgebench.io import read_benchmark_seconds, read_json
from wedgebench.metrics import compute_metrics, heldout_tilt_error, reprojection_error
from wedgebench.metrics.fsc import MIN_SHELL_VOXELS, fsc, fsc_auc, fsc_resolution
from wedgebench.metrics.slabs import SLAB_VOXELS


def read_runtime(paths) -> dict:
    """Runtime of a reconstruction from its Snakemake benchmark TSVs or a ``runtime.json``.

    Parameters
    ----------
    paths : list of path-like
        Benchmark TSV files (column ``s``; their seconds are summed) and/or JSON files
        with ``runtime_s`` and ``wall_s`` (CN and IsoNet, which run as several jobs).

    Returns
    -------
    dict with ``runtime_s`` (sum of job seconds), ``wall_s`` (seconds of the
    critical path; equal to ``runtime_s`` for a single job) and ``cpu_s`` (CPU seconds of
    every job, the benchmark files' ``cpu_time``; NaN when a JSON record lacks it, and for
    a ``precomputed`` tomogram, whose runtime JSON only states seconds).
    """
    runtime = wall = cpu = 0.0
    tsvs = []
    for path in map(Path, paths):
        if path.suffix == ".json":
            rec = read_json(path)
            runtime += float(rec["runtime_s"])
            wall += float(rec.get("wall_s", rec["runtime_s"]))
            cpu += float(rec.get("cpu_s", float("nan")))
        else:
            tsvs.append(path)
    if tsvs:
        secs = read_benchmark_seconds(tsvs)
        runtime += secs
        wall += secs
        cpu += read_benchmark_seconds(tsvs, column="cpu_time")
    return {"runtime_s": runtime, "wall_s": wall, "cpu_s": cpu}


def evaluate(rec, stack, angles_deg, voxel_size: float, gt=None, halves=None,
             half_tilts=None, runtime_files=(), sphere_ratio: bool = False,
             convention: str = "fair", guard_voxels: float | None = None,
             min_shell_voxels: int = MIN_SHELL_VOXELS,
             slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """Metrics of one reconstruction: ground-truth metrics when ``gt`` is given, always
    the reprojection error against the tilt series, the measured-data metrics when the
    even/odd halves are given, and the runtime.

    ``halves`` = (reconstruction from the even tilts, from the odd tilts) of the same
    method adds the even/odd-tilt FSC (``even_odd_fsc``, its area and its 0.143
    resolution in Å, both over shells with at least ``min_shell_voxels`` voxels): the
    measure of real data, which has no ground truth. With ``half_tilts`` =
    ((even stack, even angles), (odd stack, odd angles)), the tilts those halves were
    reconstructed from, it also adds the held-out-tilt error (``heldout_tilt_error``
    and its two directions; see :func:`wedgebench.metrics.heldout_tilt_error`), the
    headline measure of real data: the ``reprojection_error`` scores the tilts a
    reconstruction was made from, through the projector CN minimises, so it favours
    methods that fit the data through that projector.

    ``convention``, ``guard_voxels``, ``min_shell_voxels`` and ``slab_voxels`` are
    passed to :func:`wedgebench.metrics.compute_metrics` (the workflow passes the
    config's ``metrics`` section as keywords).

    Returns
    -------
    dict (JSON-serialisable); see :func:`wedgebench.metrics.compute_metrics`.
    """
    out = {}
    if gt is not None:
        out.update(compute_metrics(gt, rec, voxel_size, angles_deg, convention=convention,
                                   sphere_ratio=sphere_ratio, guard_voxels=guard_voxels,
                                   min_shell_voxels=min_shell_voxels,
                                   slab_voxels=slab_voxels))
    angles = np.sort(np.asarray(angles_deg, float))
    out.update(tilt_min=float(angles[0]), tilt_max=float(angles[-1]), n_tilts=int(angles.size),
               tilt_step=float(np.median(np.diff(angles))) if angles.size > 1 else 0.0)
    out["reprojection_error"] = float(reprojection_error(rec, stack, angles_deg))
    if halves is not None:
        out.update(even_odd_fsc(halves, voxel_size, min_shell_voxels, slab_voxels))
        if half_tilts is not None:
            (stack_even, angles_even), (stack_odd, angles_odd) = half_tilts
            out.update(heldout_tilt_error(halves[0], halves[1], stack_even, angles_even,
                                          stack_odd, angles_odd))
    out.update(read_runtime(runtime_files))
    return out


def even_odd_fsc(halves, voxel_size: float, min_shell_voxels: int = MIN_SHELL_VOXELS,
                 slab_voxels: int | None = SLAB_VOXELS) -> dict:
    """FSC between the reconstructions from the even and from the odd tilts.

    Parameters
    ----------
    halves : (ndarray, ndarray)
        Reconstructions ``[z, y, x]`` from the even and from the odd tilts.
    voxel_size : float
        Å per voxel.
    min_shell_voxels : int
        Shells with fewer voxels are left out of the area and the resolution.
    slab_voxels : int or None
        Voxels processed in float64 at a time (None: whole volumes).

    Returns
    -------
    dict
        ``even_odd_fsc`` = {``frequency`` (1/Å), ``fsc``, ``n_voxels``} (lists),
        ``even_odd_fsc_auc`` and ``even_odd_fsc_res_A`` (0.143-crossing in Å, or None).
    """
    curve = fsc(halves[0], halves[1], voxel_size, slab_voxels=slab_voxels)
    res = fsc_resolution(curve, 0.143, min_shell_voxels)
    return {"even_odd_fsc": {"frequency": curve["frequency"].tolist(),
                             "fsc": curve["fsc"].tolist(),
                             "n_voxels": curve["n_voxels"].tolist()},
            "even_odd_fsc_auc": float(fsc_auc(curve, min_shell_voxels)),
            "even_odd_fsc_res_A": None if res is None else float(res)}
