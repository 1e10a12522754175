"""Held-out rays and early stopping of a CN fit (``cn.holdout_fraction`` > 0).

A network fitted to noisy projections ends up fitting the noise. With a hold-out, a
seeded random fraction of the measured rays (detector pixels) is left out of the
training loss; its own mean L1 loss is evaluated every ``holdout_every`` iterations,
and the fit keeps the weights of the evaluation with the lowest held-out loss. The
fit stops once ``patience`` evaluations in a row have not improved on the best — but
not before the learning rate starts to decay (the second half of the iterations):
while it is held at its initial value the held-out loss jumps with the optimiser's
large steps (on noise-free data by ±25 % between evaluations ten steps apart), so a
run of evaluations without improvement there is no evidence of fitting noise. The
best weights are still looked for among all the evaluations.

Which rays: in every row (tilt, y) of the tilt series the same number
``k = round(fraction · n_det)`` of detector pixels, chosen at random. Holding out
pixels instead of whole tilts keeps the angular coverage of the fit intact (a held-out
tilt would widen the gaps between measured directions, i.e. change the reconstruction
problem), and the stratification keeps the held-out set spread evenly over tilts and
rows. The held-out loss is an unbiased estimate of the prediction error on rays whose
noise the network has not seen, provided the noise of neighbouring pixels is
independent (true of the counting noise of simulated acquisitions; an interpolated,
e.g. aligned and resampled, stack correlates neighbouring pixels and makes the
held-out loss optimistic). The mask is one array for the whole tilt series, drawn
from the job's seed, so the anchor and chunk jobs and overlapping slabs agree on
which rays are held out.

Costs: the training loss sees ``1 − fraction`` of the rays; the held-out loss comes
from the same forward projection as the training loss (no extra pass), plus one
forward pass of the final weights and a copy of the weights at each improvement.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

#: Mixed into the job's seed so that the held-out rays are independent of every other
#: random draw made from that seed (network initialisation, phantoms, noise).
HOLDOUT_STREAM = 0x401D


def holdout_options(cfg: dict) -> tuple[float, int, int]:
    """``(holdout_fraction, holdout_every, patience)`` of a (completed) ``cn`` section.

    Raises
    ------
    ValueError
        A value out of range, naming its key.
    """
    fraction, every, patience = (cfg["holdout_fraction"], cfg["holdout_every"],
                                 cfg["patience"])
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) \
            or not 0 <= fraction < 1:
        raise ValueError(f"cn holdout_fraction must be a number in [0, 1), got {fraction!r}")
    for key, value, low in (("holdout_every", every, 1), ("patience", patience, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"cn {key} must be an integer >= {low}, got {value!r}")
    return float(fraction), int(every), int(patience)


def holdout_mask(shape, fraction: float, seed: int) -> np.ndarray:
    """The held-out rays of a tilt series: ``True`` = held out.

    Parameters
    ----------
    shape : (n_tilts, ny, n_det)
        Shape of the whole tilt series.
    fraction : float
        In [0, 1); every row (tilt, y) holds out ``k = round(fraction · n_det)`` pixels,
        clipped to ``[1, n_det − 1]`` (0 when ``fraction`` is 0).
    seed : int

    Returns
    -------
    ndarray of bool, ``shape``
    """
    fraction = holdout_options({"holdout_fraction": fraction, "holdout_every": 1,
                                "patience": 0})[0]
    n_tilts, ny, n_det = (int(n) for n in shape)
    mask = np.zeros((n_tilts, ny, n_det), bool)
    if fraction == 0:
        return mask
    if n_det < 2:
        raise ValueError(f"cn holdout_fraction needs at least 2 detector pixels, got {n_det}")
    k = min(max(int(round(fraction * n_det)), 1), n_det - 1)
    rng = np.random.default_rng([int(seed), HOLDOUT_STREAM])
    rows = np.arange(ny)[:, None]
    for t in range(n_tilts):  # one tilt at a time bounds the memory of the draw
        keys = rng.random((ny, n_det), dtype=np.float32)
        mask[t, rows, np.argpartition(keys, k - 1, axis=1)[:, :k]] = True
    return mask


class EarlyStopping:
    """The held-out rays of ``S`` slabs fitted together, and the record of their losses.

    Passed to :func:`~.optimise.fit_slab` (``S = 1``) or :func:`~.optimise.fit_slabs`, which
    evaluate the held-out losses at step 0, every ``every`` steps and after the last
    step, call :meth:`update`, stop when :attr:`done`, and load each slab's
    :attr:`best_state` before evaluating its volume.

    Parameters
    ----------
    held_out : ndarray or Tensor of bool ``[tilt, S, j, n_det]``
        ``True`` = held out; every slab needs at least one held-out and one training ray.
    every : int
        Evaluate every this many optimiser steps (≥ 1).
    patience : int
        A slab stops after this many evaluations in a row without a lower held-out loss,
        at the first evaluation where :meth:`update` is told ``may_stop`` (0 = never: all
        the iterations run, the best weights are still kept).

    Attributes
    ----------
    history : list (one per slab) of lists of (step, held-out loss)
        ``step`` = optimiser steps taken by the evaluated weights (0 = initial weights).
    best_loss, best_step : lists (one per slab)
    best_state : list (one per slab) of state dicts
    stopped : list (one per slab) of int or None
        The step at which the slab ran out of patience (None: it never did).
    """

    def __init__(self, held_out, every: int = 10, patience: int = 0):
        held = torch.as_tensor(np.asarray(held_out, bool)) if not torch.is_tensor(held_out) \
            else held_out.bool()
        if held.ndim != 4:
            raise ValueError(f"held-out mask must be [tilt, S, j, n_det], got {tuple(held.shape)}")
        self.held_out = held
        self.n_held = held.sum(dim=(0, 2, 3))
        self.n_train = held[:, 0].numel() - self.n_held
        if int(self.n_held.min()) < 1 or int(self.n_train.min()) < 1:
            raise ValueError("cn holdout_fraction: every slab needs at least one held-out and "
                             "one training ray")
        _, self.every, self.patience = holdout_options(
            {"holdout_fraction": 0.5, "holdout_every": every, "patience": patience})
        s = held.shape[1]
        self.history = [[] for _ in range(s)]
        self.best_loss = [math.inf] * s
        self.best_step = [None] * s
        self.best_state = [None] * s
        self.stopped = [None] * s
        self._since = [0] * s

    def __len__(self) -> int:
        return self.held_out.shape[1]

    def to(self, device) -> "EarlyStopping":
        """Move the mask and counts to ``device`` (in place); returns self."""
        self.held_out = self.held_out.to(device)
        self.n_held, self.n_train = self.n_held.to(device), self.n_train.to(device)
        return self

    def due(self, step: int) -> bool:
        """Whether the weights after ``step`` optimiser steps are evaluated."""
        return step % self.every == 0

    @property
    def active(self) -> list[bool]:
        """Per slab: still updating its best (patience not exhausted)."""
        return [s is None for s in self.stopped]

    @property
    def done(self) -> bool:
        """Every slab has run out of patience."""
        return not any(self.active)

    def losses(self, residual: torch.Tensor, reg=None):
        """``(training loss [S], held-out loss [S])`` from ``|reprojection − measured|``.

        The training loss is the mean over the training rays (plus ``reg``, ``[S]``); the
        held-out rays enter it as exact zeros (``torch.where``), so neither their values
        nor their gradients reach the fit. The held-out loss (detached) is the mean over
        the held-out rays, without the regulariser.
        """
        zero = residual.new_zeros(())
        train = torch.where(self.held_out, zero, residual).sum(dim=(0, 2, 3)) / self.n_train
        if reg is not None:
            train = train + reg
        held = torch.where(self.held_out, residual.detach(), zero).sum(dim=(0, 2, 3))
        return train, held / self.n_held

    def update(self, step: int, values, snapshot, may_stop: bool = True) -> None:
        """Record the held-out losses ``values`` (one per slab) of the weights after ``step``
        steps; ``snapshot(i)`` returns slab ``i``'s current weights (called on improvement).
        A slab runs out of patience only where ``may_stop``; slabs that did are no longer
        updated."""
        for i, value in enumerate(values):
            if self.stopped[i] is not None:
                continue
            value = float(value)
            self.history[i].append((int(step), value))
            if value < self.best_loss[i]:
                self.best_loss[i], self.best_step[i] = value, int(step)
                self.best_state[i] = snapshot(i)
                self._since[i] = 0
            else:
                self._since[i] += 1
                if self.patience and may_stop and self._since[i] >= self.patience:
                    self.stopped[i] = int(step)

    def summary(self, i: int, iterations: int) -> str:
        """One line for the log: slab ``i``'s kept step and why the fit ended."""
        end = (f"stopped early at step {self.stopped[i]}" if self.stopped[i] is not None
               else f"ran all {iterations} steps")
        return (f"kept the weights after {self.best_step[i]} steps (held-out loss "
                f"{self.best_loss[i]:.6g}, best of {len(self.history[i])} evaluations; "
                f"{end})")
