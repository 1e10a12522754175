"""Slab decomposition of a CN reconstruction: plan, storage and stitching.

The tomogram is cut along y into slabs of ``j`` slices, each fitted by its own
network. The *anchor* is the middle slab (fitted first, from a random
initialisation); the other slabs form two sides ordered outward from it (below:
anchor−1, anchor−2, …, 0; above: anchor+1, …, last). Each side is split into
contiguous *runs*; every run starts from the anchor's weights and warm-starts
each following slab from the one before. The runs are distributed over
``chunks`` jobs that can run in parallel.

``chain_start: authors`` is the authors' orchestration instead: the anchor job goes on
down the chain to the slab two below the anchor (its *lead*: anchor−1, anchor−2, or as
many as exist), the anchor's own volume is discarded, and both sides start from the
weights of the lead's last slab: below from anchor−3 down, above with a refit of the
anchor slab itself, then anchor+1 up, one chain per side (more chunks stay empty). (The
authors' code also refits the central slices
into chunk 0 when the anchor's index is 0; that is a bug and is not reproduced: with no
slab below the anchor there is no lead and the orchestration is the default one.)

With ``overlap > 0`` neighbouring slabs share ``overlap`` slices, which
:func:`merge` blends with linear weights to remove seams along y.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

import numpy as np

from ...io import InputError, atomic_path, read_benchmark_seconds


@dataclass(frozen=True)
class SlabPlan:
    """Which slabs exist and who fits them.

    Attributes
    ----------
    ny, j, overlap : int
        Rows of the tilt series, slab size and overlap.
    slabs : tuple of (y0, y1)
        Slab ``i`` covers rows ``y0:y1``; ordered by y.
    anchor : int
        Index of the anchor (middle) slab.
    chunks : tuple of tuple of tuple of int
        ``chunks[c]`` = the runs of chunk ``c``; a run is a tuple of slab indices in
        fitting order, outward from the anchor. A chunk may be empty when there
        are fewer slabs than chunks.
    lead : tuple of int
        Slabs the anchor job fits after the anchor, in order, each warm-started from the
        one before (``chain_start: authors``; empty by default). When not empty, the
        anchor slab is refitted by a chunk and the anchor job's own volume of it is not
        kept (:attr:`keeps_anchor`), and every run starts from the lead's last weights.
    """

    ny: int
    j: int
    overlap: int
    slabs: tuple
    anchor: int
    chunks: tuple
    lead: tuple = ()

    @property
    def keeps_anchor(self) -> bool:
        """Whether the anchor job's volume of the anchor slab goes into the merge."""
        return not self.lead

    def chunk_slabs(self, chunk: int):
        """The runs of ``chunk`` as lists of ``(index, y0, y1)``."""
        if not 0 <= chunk < len(self.chunks):
            raise ValueError(f"chunk {chunk} out of range 0..{len(self.chunks) - 1}")
        return [[(i, *self.slabs[i]) for i in run] for run in self.chunks[chunk]]


def slab_size(size, ny: int, n_tilts: int, n_det: int, n_params: int,
              params_per_measurement: float = 2.0) -> int:
    """Slab size ``j`` (the ``cn.slab_size`` option).

    ``size`` is either an integer or ``"auto"``: then ``j`` is chosen so that
    ``n_params / (n_tilts · j · n_det)`` is closest to ``params_per_measurement``.
    The result is clipped to ``[1, ny]``.
    """
    if size == "auto":
        ratio = float(params_per_measurement)
        if not ratio > 0:
            raise ValueError(f"cn params_per_measurement must be > 0, got {ratio}")
        size = int(round(n_params / (ratio * n_tilts * n_det)))
    elif isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"cn slab_size must be an integer >= 1 or 'auto', got {size!r}")
    return int(min(max(size, 1), ny))


def slab_ranges(ny: int, j: int, overlap: int = 0):
    """``(y0, y1)`` of every slab: size ``j``, stepping ``j − overlap``, the last one
    ending at ``ny`` (it may overlap its neighbour by more than ``overlap``)."""
    if not 1 <= j:
        raise ValueError(f"slab size must be >= 1, got {j}")
    j = min(j, ny)
    if not 0 <= overlap < j:
        raise ValueError(f"cn overlap must be in [0, slab size {j}), got {overlap}")
    step = j - overlap
    starts = list(range(0, max(ny - j, 0) + 1, step))
    if starts[-1] + j < ny:
        starts.append(ny - j)
    return tuple((s, s + j) for s in starts)


def _split(run: list, parts: int) -> list:
    """``run`` cut into ``parts`` contiguous pieces of near-equal length."""
    bounds = np.linspace(0, len(run), parts + 1).round().astype(int)
    return [tuple(run[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


#: Values of ``cn.chain_start`` (module docstring).
CHAIN_STARTS = ("anchor", "authors")


def make_plan(ny: int, j: int, overlap: int, chunks: int,
              chain_start: str = "anchor") -> SlabPlan:
    """The slab plan (see the module docstring).

    Parameters
    ----------
    ny : int
        Rows of the tilt series.
    j, overlap : int
        Slab size and overlap (slices).
    chunks : int
        Number of chunk jobs (≥ 1). With one chunk both sides are fitted by it;
        otherwise the chunks are shared between the two sides so that the
        longest run is as short as possible, one run per chunk.
    chain_start : {"anchor", "authors"}
        Where the two chains start: both from the anchor (default), or the authors'
        orchestration (a lead of up to two slabs below the anchor, then both sides from
        its last weights, the anchor slab refitted at the start of the upper side).
    """
    if int(chunks) < 1:
        raise ValueError(f"cn chunks must be >= 1, got {chunks}")
    if chain_start not in CHAIN_STARTS:
        raise ValueError(f"cn chain_start must be one of {CHAIN_STARTS}, got {chain_start!r}")
    slabs = slab_ranges(ny, j, overlap)
    n = len(slabs)
    anchor = (n - 1) // 2
    lead = tuple(range(anchor - 1, max(anchor - 3, -1), -1)) if chain_start == "authors" \
        else ()
    below = range((lead[-1] if lead else anchor) - 1, -1, -1)
    sides = [list(below), list(range(anchor + (0 if lead else 1), n))]
    sides = [s for s in sides if s]
    if chunks == 1:
        out = [tuple(tuple(s) for s in sides)]
    else:
        parts = [1] * len(sides)
        # the authors' two chains are never cut (a cut run restarts from the anchor job)
        budget = 0 if lead else min(int(chunks), n - 1) - len(sides)
        for _ in range(max(budget, 0)):
            k = max(range(len(sides)), key=lambda i: math.ceil(len(sides[i]) / parts[i])
                    if parts[i] < len(sides[i]) else -1)
            parts[k] += 1
        runs = [r for s, p in zip(sides, parts) for r in _split(s, p)]
        out = [(r,) for r in runs]
    out += [()] * (int(chunks) - len(out))
    return SlabPlan(int(ny), slabs[0][1] - slabs[0][0], int(overlap), slabs, anchor,
                    tuple(out), lead)


def blend_weights(y0: int, y1: int, ranges) -> np.ndarray:
    """Linear blending weights of slab ``[y0, y1)`` among all slab ``ranges``.

    The weight rises linearly across the slab's overlap with its lower
    neighbour and falls across the overlap with its upper one, so that the
    weights of two overlapping slabs sum to one; it is 1 elsewhere.
    """
    lo = max([b - y0 for a, b in ranges if a < y0 < b] + [0])
    hi = max([y1 - a for a, b in ranges if a < y1 < b] + [0])
    y = np.arange(y0, y1)
    return np.minimum.reduce([np.ones(y.size), (y - y0 + 1) / (lo + 1),
                              (y1 - y) / (hi + 1)]).astype(np.float32)


def merge(slabs, ny: int) -> np.ndarray:
    """Stitch slab volumes along y.

    Parameters
    ----------
    slabs : iterable of (y0, y1, volume ``[nz, y1 − y0, nx]``)
    ny : int
        Rows of the full volume.

    Returns
    -------
    ndarray ``[nz, ny, nx]`` float32; overlapping rows are blended linearly.

    Raises
    ------
    ValueError
        A slab lies outside ``[0, ny)``, has the wrong size, or some rows are not
        covered by any slab.
    """
    slabs = [(int(a), int(b), np.asarray(v, np.float32)) for a, b, v in slabs]
    if not slabs:
        raise ValueError("merge: no slabs")
    ranges = [(a, b) for a, b, _ in slabs]
    if len(set(ranges)) != len(ranges):
        raise ValueError(f"merge: some slabs are given twice: {sorted(ranges)}")
    nz, _, nx = slabs[0][2].shape
    acc = np.zeros((nz, ny, nx), np.float64)
    wsum = np.zeros(ny, np.float64)
    for a, b, vol in slabs:
        if not 0 <= a < b <= ny or vol.shape != (nz, b - a, nx):
            raise ValueError(f"merge: slab y {a}:{b} with shape {vol.shape} does not fit a "
                             f"volume of {(nz, ny, nx)}")
        w = blend_weights(a, b, ranges)
        acc[:, a:b] += vol * w[None, :, None]
        wsum[a:b] += w
    missing = np.flatnonzero(wsum == 0)
    if missing.size:
        raise ValueError(f"merge: y rows {missing.tolist()} are covered by no slab")
    return (acc / wsum[None, :, None]).astype(np.float32)


def postprocess(vol: np.ndarray, output: str = "clip_rescale") -> np.ndarray:
    """``raw``: unchanged; ``clip_rescale``: clipped to [0, 1], then min–max rescaled
    to [0, 1] (the paper's output; a constant volume stays as clipped)."""
    if output == "raw":
        return vol.astype(np.float32, copy=False)
    if output != "clip_rescale":
        raise ValueError(f"cn output must be 'clip_rescale' or 'raw', got {output!r}")
    v = np.clip(vol, 0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    return ((v - lo) / (hi - lo) if hi > lo else v).astype(np.float32)


def save_slabs(path, fits) -> None:
    """Write fitted slabs (objects with ``index, y0, y1, volume``) to one ``.npz``.

    Fits with a hold-out (``kept`` not None, ``cn.holdout_fraction`` > 0) add the arrays
    ``kept`` (the step whose weights were kept) and ``stopped`` (the early-stopping step,
    −1 = ran every iteration)."""
    arrays = {"index": np.array([f.index for f in fits], np.int64),
              "y0": np.array([f.y0 for f in fits], np.int64),
              "y1": np.array([f.y1 for f in fits], np.int64)}
    if any(getattr(f, "kept", None) is not None for f in fits):
        for key in ("kept", "stopped"):
            arrays[key] = np.array([-1 if getattr(f, key, None) is None else getattr(f, key)
                                    for f in fits], np.int64)
    for f in fits:
        arrays[f"volume_{f.index}"] = np.asarray(f.volume, np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_slabs(path):
    """``[(index, y0, y1, volume), …]`` from a file written by :func:`save_slabs`."""
    try:
        with np.load(path) as data:
            return [(int(i), int(a), int(b), data[f"volume_{int(i)}"])
                    for i, a, b in zip(data["index"], data["y0"], data["y1"])]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a CN slab file ({exc})") from exc


def save_losses(path, fits) -> None:
    """Write ``slab, iteration, loss, seconds`` rows of every fit as CSV.

    When a fit has held-out losses (``holdout``: (step, loss) pairs, ``cn.holdout_fraction``
    > 0) two columns follow: ``holdout_loss`` (empty where not evaluated; the evaluation of
    the final weights, after the last iteration, is a row of its own with empty ``loss``)
    and ``kept`` (1 on the row whose weights the fit kept)."""
    held = any(getattr(f, "holdout", None) for f in fits)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["slab", "iteration", "loss", "seconds"]
                       + (["holdout_loss", "kept"] if held else []))
            for f in fits:
                if not held:
                    for it, loss, sec in f.losses:
                        w.writerow([f.index, it, f"{loss:.8g}", f"{sec:.4f}"])
                    continue
                evaluated = dict(getattr(f, "holdout", None) or [])
                kept = getattr(f, "kept", None)
                rows = {it: [f"{loss:.8g}", f"{sec:.4f}"] for it, loss, sec in f.losses}
                for it in sorted(set(rows) | set(evaluated)):
                    w.writerow([f.index, it, *rows.get(it, ["", ""]),
                                f"{evaluated[it]:.8g}" if it in evaluated else "",
                                int(it == kept)])


def runtime_summary(anchor_tsv, chunk_tsvs) -> dict:
    """``runtime_s`` = anchor + Σ chunks (total compute), ``wall_s`` = anchor + max
    chunk (wall time when the chunks run in parallel), ``cpu_s`` = CPU seconds of all
    of them, from benchmark TSVs."""
    anchor = read_benchmark_seconds(anchor_tsv)
    chunks = [read_benchmark_seconds(p) for p in chunk_tsvs]
    cpu = read_benchmark_seconds([anchor_tsv, *chunk_tsvs], column="cpu_time")
    return {"runtime_s": anchor + sum(chunks), "wall_s": anchor + max(chunks, default=0.0),
            "cpu_s": cpu,
            "anchor_s": anchor, "chunks_s": chunks,
            "sources": [os.fspath(anchor_tsv)] + [os.fspath(p) for p in chunk_tsvs]}
