"""Fitting coordinate networks to the tilt-series rows of their y-slabs.

:func:`fit_slab` fits one network to one slab; :func:`fit_slabs` fits ``S`` networks, one
per slab, as one batched ensemble (:class:`~.ensemble.NetworkEnsemble`). Both run the same
loop: one optimiser step per iteration over the whole slab on the loss of :mod:`.loss`;
AdamW (amsgrad, no weight decay) with the learning rate of :mod:`.schedule`. On CUDA the
network runs under fp16 autocast with a GradScaler; on CPU in fp32 with the job's threads.
The slab volume is ``gain · f(p)`` (:func:`~.model.output_gain`).

With an :class:`~.holdout.EarlyStopping` (``holdout_fraction`` > 0, the ``cn_denoise``
variant) a fit trains on the other rays only, evaluates the held-out rays' loss and keeps
the weights with the lowest one (it may stop early).

A fit that diverges (NaN/inf loss, or more than :data:`EXPLODE_FACTOR` times its first
loss) or ends with a non-finite volume raises FloatingPointError naming the slab.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from ...projector import Projector
from .ensemble import NetworkEnsemble
from .holdout import EarlyStopping
from .loss import training_losses
from .model import CoordinateNetwork, slab_coordinates
from .schedule import check_schedule, learning_rate

#: A loss this many times the first iteration's loss counts as divergence.
EXPLODE_FACTOR = 1.0e4


def _evaluate(forward, coords: torch.Tensor, shape, amp: bool, gain: float) -> torch.Tensor:
    """``gain · forward(coords)`` in fp32, reshaped to ``shape``."""
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        out = forward(coords)
    return (gain * out.float()).reshape(shape)


def _check_rows(shape, projector: Projector, name: str) -> None:
    """``shape`` = (tilt, …, n_det) of measured rows must match ``projector``."""
    if (shape[0], shape[-1]) != (projector.n_tilts, projector.n_det):
        raise ValueError(f"{name}: tilt-series rows {tuple(shape)} do not match the "
                         f"projector ({projector.n_tilts} tilts, {projector.n_det} px)")


def _check_divergence(values, first, iteration: int, names) -> None:
    """Raise FloatingPointError if a slab's loss is NaN/inf or exploded."""
    for value, start, name in zip(values, first, names):
        if not math.isfinite(value) or value > EXPLODE_FACTOR * max(start, 1e-12):
            raise FloatingPointError(
                f"CN fit of {name} diverged at iteration {iteration}: loss = {value!r} "
                f"(first loss {start!r}); lower cn lr / anchor_lr")


def _check_holdout(holdout: EarlyStopping | None, shape, s: int) -> None:
    """The held-out mask must have the shape of the targets ``[tilt, S, j, n_det]``."""
    if holdout is not None and tuple(holdout.held_out.shape) != tuple(shape):
        raise ValueError(f"held-out mask {tuple(holdout.held_out.shape)} does not match the "
                         f"measured rows {tuple(shape)} of {s} slab(s)")


def _check_finite(volumes: np.ndarray, names) -> None:
    """Raise FloatingPointError if a fitted slab volume (``volumes[i]``) has NaN/inf."""
    for vol, name in zip(volumes, names):
        if not np.all(np.isfinite(vol)):
            raise FloatingPointError(f"CN fit of {name}: the fitted volume has NaN/inf values")


def _optimise(params, volumes, targets: torch.Tensor, projector: Projector, *,
              iterations: int, lr: float, lr_end: float, reg_weight: float, amp: bool,
              names, log: logging.Logger | None, log_every: int, callback=None,
              stopper: EarlyStopping | None = None, snapshot=None):
    """The optimisation loop shared by :func:`fit_slab` and :func:`fit_slabs`.

    One AdamW (amsgrad, no weight decay) over ``params``; each iteration sets the
    learning rate (:func:`~.schedule.learning_rate`), evaluates ``volumes()``
    (``[S, nz, j, nx]``), and steps on the *sum* of the ``S`` :func:`~.loss.slab_losses`,
    so that (Adam being elementwise) the slabs' weights move exactly as if each had its
    own optimiser.

    With ``stopper`` the loss is over the training rays only; the held-out losses of the
    weights of iteration ``it`` (before its step) come from the same projection and are
    passed to ``stopper.update`` at its evaluation steps, with ``snapshot(i)`` (slab
    ``i``'s current weights); patience may run out only once the learning rate decays
    (``it >= iterations // 2``, see :func:`~.schedule.learning_rate`). The loop ends
    before the step of an iteration at which every slab ran out of patience; after a
    complete run the final weights are evaluated too.

    Returns
    -------
    list (one per slab) of lists of (iteration, loss, seconds)
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, amsgrad=True)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    log_every = int(log_every) or max(1, iterations // 10)
    history = [[] for _ in names]
    label = names[0] if len(names) == 1 else f"{len(names)} slabs ({names[0]}, …)"
    first = None
    t0 = time.perf_counter()
    for it in range(iterations):
        for group in opt.param_groups:
            group["lr"] = learning_rate(it, iterations, lr, lr_end)
        vols = volumes()
        loss, held = training_losses(projector, vols, targets, reg_weight, stopper)
        values = loss.detach().cpu().tolist()
        if callback is not None:
            callback(it, vols.detach())
        first = values if first is None else first
        _check_divergence(values, first, it, names)
        if stopper is not None and stopper.due(it):
            stopper.update(it, held.cpu().tolist(), snapshot, may_stop=it >= iterations // 2)
        stop = stopper is not None and stopper.done
        if not stop:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss.sum()).backward()
            scaler.step(opt)
            scaler.update()
        seconds = time.perf_counter() - t0
        for h, value in zip(history, values):
            h.append((it, value, seconds))
        if log is not None and (it % log_every == 0 or it == iterations - 1 or stop):
            log.info("%s it %d/%d loss %s%s lr %.3g %.1f s", label, it, iterations,
                     _loss_text(values), _held_text(stopper),
                     opt.param_groups[0]["lr"], seconds)
        if stop:
            if log is not None:
                log.info("%s: no lower held-out loss in the last %d or more evaluations; "
                         "stopped at step %d of %d", label, stopper.patience, it, iterations)
            break
    else:
        if stopper is not None:  # the weights after the last step
            with torch.no_grad():
                held = training_losses(projector, volumes(), targets, 0.0, stopper)[1]
            stopper.update(iterations, held.cpu().tolist(), snapshot)
    return history


def _held_text(stopper: EarlyStopping | None) -> str:
    """The latest held-out loss (mean over the slabs) for the log line, if any."""
    if stopper is None or not any(stopper.history):
        return ""
    latest = [h[-1] for h in stopper.history if h]
    return f" held-out {np.mean([v for _, v in latest]):.6g} (step {latest[0][0]})"


def _loss_text(values) -> str:
    """One loss, or the mean and maximum of several, for the log."""
    if len(values) == 1:
        return f"{values[0]:.6g}"
    return f"{np.mean(values):.6g} (mean; max {max(values):.6g})"


def fit_slab(measured: np.ndarray, projector: Projector, net: CoordinateNetwork, *,
             iterations: int, lr: float, lr_end: float, gain: float = 1.0,
             reg_weight: float = 0.0, coordinates: str = "unit",
             mixed_precision: bool = True, name: str = "slab",
             log: logging.Logger | None = None, log_every: int = 0, callback=None,
             holdout: EarlyStopping | None = None):
    """Fit ``net`` (in place) so that the projection of its slab matches ``measured``.

    Parameters
    ----------
    measured : ndarray ``[tilt, j, n_det]``
        The tilt-series rows of the slab.
    projector : Projector
        For the slab's (nz, nx) plane and the tilt angles; its device is used.
    net : CoordinateNetwork
        Initial network (random or warm-started); trained in place.
    iterations : int
        Optimiser steps (≥ 1).
    lr, lr_end : float
        Learning-rate schedule (see :func:`~.schedule.learning_rate`).
    gain : float
        The slab volume is ``gain · net(p)`` (see :func:`~.model.output_gain`).
    reg_weight : float
        Weight of :func:`~.loss.finite_difference_penalty` (0 = off).
    coordinates : {"unit", "isotropic"}
        See :func:`wedgebench.recon.cn.model.slab_coordinates`.
    mixed_precision : bool
        fp16 autocast + GradScaler (CUDA only; ignored on CPU).
    name : str
        Used in log messages and errors.
    log : logging.Logger, optional
    log_every : int
        Log every this many iterations (0: about ten times per fit).
    callback : callable, optional
        ``callback(iteration, volume)`` with the detached slab volume of every
        iteration, before that iteration's step (for monitoring; its time counts in the
        recorded seconds).
    holdout : EarlyStopping, optional
        Held-out rays of this slab (mask ``[tilt, 1, j, n_det]``) and the early-stopping
        rule: the training loss excludes them, and ``net`` ends with the weights of the
        lowest held-out loss (the fit may stop early); the record stays in ``holdout``.

    Returns
    -------
    volume : ndarray ``[nz, j, nx]`` float32
        Evaluated from the final (with ``holdout``: the kept) weights.
    losses : list of (iteration, loss, seconds)

    Raises
    ------
    FloatingPointError
        The loss became NaN/inf or exploded (> ``EXPLODE_FACTOR`` × its first value),
        or the final volume is not finite.
    """
    check_schedule(iterations, lr, lr_end)
    _check_rows(measured.shape, projector, name)
    device = projector.device
    amp = bool(mixed_precision) and device.type == "cuda"
    shape = (1, projector.nz, measured.shape[1], projector.nx)
    coords = slab_coordinates(*shape[1:], device=device, mode=coordinates).reshape(-1, 3)
    target = torch.from_numpy(np.ascontiguousarray(measured, np.float32)).to(device)[:, None]
    _check_holdout(holdout, target.shape, 1)
    net.to(device).train()
    losses = _optimise(
        list(net.parameters()), lambda: _evaluate(net, coords, shape, amp, gain), target,
        projector, iterations=iterations, lr=lr, lr_end=lr_end, reg_weight=reg_weight,
        amp=amp, names=[name], log=log, log_every=log_every,
        callback=None if callback is None else (lambda it, vols: callback(it, vols[0])),
        stopper=None if holdout is None else holdout.to(device),
        snapshot=lambda i: {k: v.detach().clone() for k, v in net.state_dict().items()})[0]
    if holdout is not None:
        net.load_state_dict(holdout.best_state[0])
        if log is not None:
            log.info("%s: %s", name, holdout.summary(0, iterations))
    net.eval()
    with torch.no_grad():
        out = _evaluate(net, coords, shape, False, gain).cpu().numpy()
    _check_finite(out, [name])
    return out[0].astype(np.float32, copy=False), losses


def fit_slabs(measured: np.ndarray, projector: Projector, nets: list, *,
              iterations: int, lr: float, lr_end: float, gain: float = 1.0,
              reg_weight: float = 0.0, coordinates: str = "unit",
              mixed_precision: bool = True, names=None,
              log: logging.Logger | None = None, log_every: int = 0,
              holdout: EarlyStopping | None = None):
    """Fit ``S`` networks (in place), one per slab, as one batched ensemble.

    Every slab keeps its own weights, loss and optimiser moments; one batched forward
    and backward per iteration serves them all (:class:`~.ensemble.NetworkEnsemble`).
    The result equals :func:`fit_slab` of each network on its own rows, up to float
    rounding of the batched products — except under CUDA mixed precision, where one
    GradScaler serves the whole ensemble (an overflow in any slab skips the step of
    all of them, once, while the loss scale adapts).

    Parameters
    ----------
    measured : ndarray ``[tilt, S, j, n_det]``
        The tilt-series rows of every slab (all of the same height ``j``).
    projector : Projector
    nets : list of S CoordinateNetwork
        The initial networks; each is overwritten with its fitted weights.
    iterations, lr, lr_end, gain, reg_weight, coordinates, mixed_precision, log, log_every
        As in :func:`fit_slab`.
    names : list of str, optional
        One per slab, for log messages and errors.
    holdout : EarlyStopping, optional
        Held-out rays of every slab (mask ``[tilt, S, j, n_det]``): as in :func:`fit_slab`,
        per slab (each keeps its own best weights; a slab that ran out of patience keeps
        training with the others but its kept weights no longer change, and the ensemble
        stops when every slab has).

    Returns
    -------
    volumes : ndarray ``[S, nz, j, nx]`` float32
        Evaluated from the final (with ``holdout``: the kept) weights.
    losses : list (one per slab) of lists of (iteration, loss, seconds)

    Raises
    ------
    FloatingPointError
        As :func:`fit_slab`, naming the first slab that failed.
    """
    n_tilts, s, j, n_det = measured.shape
    names = list(names) if names is not None else [f"slab {i}" for i in range(s)]
    if len(nets) != s or len(names) != s:
        raise ValueError(f"fit_slabs: {s} slabs of rows but {len(nets)} networks and "
                         f"{len(names)} names")
    check_schedule(iterations, lr, lr_end)
    _check_rows(measured.shape, projector, ", ".join(names))
    device = projector.device
    amp = bool(mixed_precision) and device.type == "cuda"
    shape = (s, projector.nz, j, projector.nx)
    coords = slab_coordinates(*shape[1:], device=device, mode=coordinates).reshape(-1, 3)
    target = torch.from_numpy(np.ascontiguousarray(measured, np.float32)).to(device)
    _check_holdout(holdout, target.shape, s)
    for net in nets:
        net.to(device).train()
    ensemble = NetworkEnsemble(nets)
    losses = _optimise(
        ensemble.parameters(), lambda: _evaluate(ensemble, coords, shape, amp, gain), target,
        projector, iterations=iterations, lr=lr, lr_end=lr_end, reg_weight=reg_weight,
        amp=amp, names=names, log=log, log_every=log_every,
        stopper=None if holdout is None else holdout.to(device), snapshot=ensemble.snapshot)
    if holdout is not None:
        for i, state in enumerate(holdout.best_state):
            ensemble.load_state(i, state)
            if log is not None:
                log.info("%s: %s", names[i], holdout.summary(i, iterations))
    with torch.no_grad():
        out = _evaluate(ensemble, coords, shape, False, gain).cpu().numpy()
    for i, net in enumerate(nets):
        net.load_state_dict(ensemble.state_dict(i))
        net.eval()
    _check_finite(out, names)
    return out.astype(np.float32, copy=False), losses
