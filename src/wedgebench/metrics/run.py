"""One reconstruction's full evaluation record, as the workflow writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wedgebench.io import read_benchmark_seconds, read_json
from wedgebench.metrics import compute_metrics, reprojection_error


def read_runtime(paths) -> dict:
    """Runtime of a reconstruction from its Snakemake benchmark TSVs or a ``runtime.json``.

    Parameters
    ----------
    paths : list of path-like
        Benchmark TSV files (column ``s``; their seconds are summed) and/or JSON files
        with ``runtime_s`` and ``wall_s`` (CN and IsoNet, which run as several jobs).

    Returns
    -------
    dict with ``runtime_s`` (sum of job seconds) and ``wall_s`` (seconds of the
    critical path; equal to ``runtime_s`` for a single job).
    """
    runtime = wall = 0.0
    tsvs = []
    for path in map(Path, paths):
        if path.suffix == ".json":
            rec = read_json(path)
            runtime += float(rec["runtime_s"])
            wall += float(rec.get("wall_s", rec["runtime_s"]))
        else:
            tsvs.append(path)
    if tsvs:
        secs = read_benchmark_seconds(tsvs)
        runtime += secs
        wall += secs
    return {"runtime_s": runtime, "wall_s": wall}


def evaluate(rec, stack, angles_deg, voxel_size: float, gt=None, runtime_files=(),
             sphere_ratio: bool = False, convention: str = "fair") -> dict:
    """Metrics of one reconstruction: ground-truth metrics when ``gt`` is given, always
    the reprojection error against the tilt series, and the runtime.

    Returns
    -------
    dict (JSON-serialisable); see :func:`wedgebench.metrics.compute_metrics`.
    """
    out = {}
    if gt is not None:
        out.update(compute_metrics(gt, rec, voxel_size, angles_deg, convention=convention,
                                   sphere_ratio=sphere_ratio))
    angles = np.sort(np.asarray(angles_deg, float))
    out.update(tilt_min=float(angles[0]), tilt_max=float(angles[-1]), n_tilts=int(angles.size),
               tilt_step=float(np.median(np.diff(angles))) if angles.size > 1 else 0.0)
    out["reprojection_error"] = float(reprojection_error(rec, stack, angles_deg))
    out.update(read_runtime(runtime_files))
    return out
