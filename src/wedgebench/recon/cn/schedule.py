"""The learning-rate schedule of a CN fit.

The learning rate is held for the first half of the iterations, then decays
log-linearly to ``lr_end`` at the last one. The anchor slab (random initialisation) has
its own schedule (``anchor_iterations``, ``anchor_lr``, ``anchor_lr_end``); every
warm-started slab uses ``iterations``, ``lr``, ``lr_end``.
"""

from __future__ import annotations

import math


def learning_rate(iteration: int, iterations: int, lr: float, lr_end: float) -> float:
    """``lr`` for the first half, then log-linear decay reaching ``lr_end`` at the end.

    Parameters
    ----------
    iteration : int
        0-based iteration.
    iterations : int
        Total number of iterations.
    lr, lr_end : float
        Initial and final learning rate (> 0).
    """
    half = iterations // 2
    last = iterations - 1
    if iteration < half or last <= half:
        return float(lr)
    frac = (iteration - half) / (last - half)
    return float(math.exp(math.log(lr) + frac * (math.log(lr_end) - math.log(lr))))


def check_schedule(iterations: int, lr: float, lr_end: float) -> None:
    """Raise ValueError unless ``iterations`` ≥ 1 and both learning rates are > 0."""
    if iterations < 1:
        raise ValueError(f"cn iterations must be >= 1, got {iterations}")
    if not (lr > 0 and lr_end > 0):
        raise ValueError(f"cn learning rates must be > 0, got lr={lr}, lr_end={lr_end}")


def schedule(cfg: dict, anchor: bool) -> dict:
    """``iterations``, ``lr``, ``lr_end`` of the anchor or of the warm-started slabs.

    Parameters
    ----------
    cfg : dict
        The ``cn`` section (completed by :func:`~.model.options`).
    anchor : bool
        The anchor's schedule (``anchor_iterations``, ``anchor_lr``, ``anchor_lr_end``)
        instead of the warm-start one.
    """
    prefix = "anchor_" if anchor else ""
    return dict(iterations=int(cfg[prefix + "iterations"]), lr=float(cfg[prefix + "lr"]),
                lr_end=float(cfg[prefix + "lr_end"]))
