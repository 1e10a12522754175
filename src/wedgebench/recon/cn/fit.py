"""Fitting a coordinate network to the tilt-series rows of one y-slab.

The loss is the mean L1 distance between the reprojection of the network's slab
volume (:class:`wedgebench.projector.Projector`, differentiable) and the measured
rows of the slab, plus an optional squared finite-difference regulariser. One
optimiser step per iteration over the whole slab; AdamW (amsgrad, no weight
decay); the learning rate is held for the first half of the iterations, then
decays log-linearly to ``lr_end`` at the last one. On CUDA the network runs under
fp16 autocast with a GradScaler; on CPU in fp32 with the job's threads.

The slab volume is ``gain · f(p)``: with ``output_scale: auto`` the gain is
``max(tilt series) / thickness`` (the density of a column that alone would
produce the brightest measured pixel), so that the network works with outputs of
order one whatever the thickness and normalisation of the data; the paper uses
no gain (``output_scale: 1``). Without it a SIREN spends its first hundreds of
iterations shrinking its default-initialised output to the data's tiny density
scale (≈ 0.02–0.1 for data normalised to [0, 1]).

A chain of slabs is fitted by :func:`fit_chain`: the first slab starts from the
given weights (the anchor's, or a seeded random initialisation), every later
one from the final weights of the slab before it (``warm_start: neighbour``) or
from the same given weights (``warm_start: anchor``). With ``ensemble: true`` a
chunk's slabs are instead fitted *together* by :func:`fit_ensemble`: every slab
starts from the anchor's weights and all networks run as one batched ensemble
(one forward/backward per iteration; each slab keeps its own weights, loss and
optimiser moments), which keeps a GPU busy where one small network would not.

With ``holdout_fraction`` > 0 (the ``cn_denoise`` variant) a seeded fraction of the
measured rays is left out of the training loss and used for early stopping: every fit
(anchor, chain slab or ensemble slab) keeps the weights with the lowest held-out loss
(:mod:`.holdout`); a warm-started slab starts from its neighbour's kept weights.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...projector import Projector
from .ensemble import NetworkEnsemble, ensemble_groups
from .holdout import EarlyStopping, holdout_mask, holdout_options
from .model import CoordinateNetwork, build_network, n_parameters, options, slab_coordinates
from .slabs import SlabPlan, make_plan, merge, postprocess, slab_size

#: A loss this many times the first iteration's loss counts as divergence.
EXPLODE_FACTOR = 1.0e4

#: Values of ``cn.warm_start``: the initial weights of each slab after a chain's first.
WARM_STARTS = ("neighbour", "anchor")


@dataclass
class SlabFit:
    """Result of fitting one slab.

    Attributes
    ----------
    index : int
        Slab number in the plan.
    y0, y1 : int
        The slab covers rows ``y0:y1`` of the tilt series.
    volume : ndarray ``[nz, y1 - y0, nx]`` float32
        The network's (raw) slab volume.
    losses : list of (iteration, loss, seconds)
    seconds : float
        Wall time of the fit.
    holdout : list of (step, held-out loss)
        With ``holdout_fraction`` > 0: every evaluation of the held-out rays (else empty).
    kept : int or None
        The step whose weights were kept (lowest held-out loss); None without hold-out.
    stopped : int or None
        The step at which the fit stopped early (None: it ran every iteration).
    """

    index: int
    y0: int
    y1: int
    volume: np.ndarray
    losses: list = field(default_factory=list)
    seconds: float = 0.0
    holdout: list = field(default_factory=list)
    kept: int | None = None
    stopped: int | None = None


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


def finite_difference_penalty(vol: torch.Tensor) -> torch.Tensor:
    """Mean squared forward differences of ``vol[..., z, y, x]`` along every one of its
    last three axes of length > 1; leading axes are batch axes (one value each)."""
    total = vol.new_zeros(vol.shape[:-3])
    for axis in (-3, -2, -1):
        if vol.shape[axis] > 1:
            total = total + torch.diff(vol, dim=axis).pow(2).mean(dim=(-3, -2, -1))
    return total


def output_gain(stack: np.ndarray, thickness: int, output_scale="auto") -> float:
    """The factor between network output and density (see the module docstring).

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
        The whole tilt series (every slab of a reconstruction uses the same gain).
    thickness : int
    output_scale : "auto" or float > 0
    """
    if output_scale == "auto":
        peak = float(np.max(np.abs(stack)))
        return peak / int(thickness) if peak > 0 else 1.0
    if isinstance(output_scale, bool) or not isinstance(output_scale, (int, float)) \
            or not output_scale > 0:
        raise ValueError(f"cn output_scale must be 'auto' or a number > 0, got "
                         f"{output_scale!r}")
    return float(output_scale)


def _evaluate(forward, coords: torch.Tensor, shape, amp: bool, gain: float) -> torch.Tensor:
    """``gain · forward(coords)`` in fp32, reshaped to ``shape``."""
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        out = forward(coords)
    return (gain * out.float()).reshape(shape)


def slab_losses(projector: Projector, vols: torch.Tensor, targets: torch.Tensor,
                reg_weight: float = 0.0) -> torch.Tensor:
    """The loss of each of ``S`` slab volumes against its own measured rows.

    The slabs are projected together, side by side along y (the projector treats every
    y-slice independently), and each loss is the mean L1 distance over its own rows,
    plus ``reg_weight`` × :func:`finite_difference_penalty` of its own volume.

    Parameters
    ----------
    projector : Projector
    vols : Tensor ``[S, nz, j, nx]``
    targets : Tensor ``[tilt, S, j, n_det]``
    reg_weight : float

    Returns
    -------
    Tensor ``[S]``
    """
    loss = _residuals(projector, vols, targets).mean(dim=(0, 2, 3))
    if reg_weight:
        loss = loss + reg_weight * finite_difference_penalty(vols)
    return loss


def _residuals(projector: Projector, vols: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``|reprojection − targets|`` ``[tilt, S, j, n_det]`` of ``S`` slabs side by side."""
    s, nz, j, nx = vols.shape
    side_by_side = vols.permute(1, 0, 2, 3).reshape(nz, s * j, nx)
    proj = projector.forward(side_by_side).reshape(projector.n_tilts, s, j, projector.n_det)
    return (proj - targets).abs()


def _losses(projector, vols, targets, reg_weight: float, stopper: EarlyStopping | None):
    """Training loss ``[S]`` and held-out loss ``[S]`` (None without ``stopper``)."""
    if stopper is None:
        return slab_losses(projector, vols, targets, reg_weight), None
    reg = reg_weight * finite_difference_penalty(vols) if reg_weight else None
    return stopper.losses(_residuals(projector, vols, targets), reg)


def _check_schedule(iterations: int, lr: float, lr_end: float) -> None:
    if iterations < 1:
        raise ValueError(f"cn iterations must be >= 1, got {iterations}")
    if not (lr > 0 and lr_end > 0):
        raise ValueError(f"cn learning rates must be > 0, got lr={lr}, lr_end={lr_end}")


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
    learning rate (:func:`learning_rate`), evaluates ``volumes()`` (``[S, nz, j, nx]``),
    and steps on the *sum* of the ``S`` :func:`slab_losses`, so that (Adam being
    elementwise) the slabs' weights move exactly as if each had its own optimiser.

    With ``stopper`` the loss is over the training rays only; the held-out losses of the
    weights of iteration ``it`` (before its step) come from the same projection and are
    passed to ``stopper.update`` at its evaluation steps, with ``snapshot(i)`` (slab
    ``i``'s current weights); patience may run out only once the learning rate decays
    (``it >= iterations // 2``, see :func:`learning_rate`). The loop ends before the step
    of an iteration at which every slab ran out of patience; after a complete run the
    final weights are evaluated too.

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
        loss, held = _losses(projector, vols, targets, reg_weight, stopper)
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
                held = _losses(projector, volumes(), targets, 0.0, stopper)[1]
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
        Learning-rate schedule (see :func:`learning_rate`).
    gain : float
        The slab volume is ``gain · net(p)`` (see :func:`output_gain`).
    reg_weight : float
        Weight of :func:`finite_difference_penalty` (0 = off).
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
    _check_schedule(iterations, lr, lr_end)
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
    _check_schedule(iterations, lr, lr_end)
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


def _schedule(cfg: dict, anchor: bool) -> dict:
    """``iterations``, ``lr``, ``lr_end`` of the anchor or of the warm-started slabs."""
    prefix = "anchor_" if anchor else ""
    return dict(iterations=int(cfg[prefix + "iterations"]), lr=float(cfg[prefix + "lr"]),
                lr_end=float(cfg[prefix + "lr_end"]))


def _fit_options(cfg: dict, stack: np.ndarray, thickness: int, log, anchor: bool) -> dict:
    """Keyword arguments of :func:`fit_slab` / :func:`fit_slabs` from the ``cn`` section."""
    holdout_options(cfg)  # bad hold-out values fail before any fitting
    return dict(_schedule(cfg, anchor), gain=output_gain(stack, thickness, cfg["output_scale"]),
                reg_weight=float(cfg["reg_weight"]), coordinates=cfg["coordinates"],
                mixed_precision=bool(cfg["mixed_precision"]), log=log,
                log_every=int(cfg["log_every"]))


def _start_network(cfg: dict, init_state: dict | None, seed: int) -> CoordinateNetwork:
    """The seeded network, loaded with ``init_state`` when given."""
    net = build_network(cfg, seed=seed)
    if init_state is not None:
        net.load_state_dict(init_state)
    return net


def _stop_record(stop: EarlyStopping | None, i: int) -> dict:
    """The :class:`SlabFit` fields ``holdout``, ``kept``, ``stopped`` of slab ``i``."""
    if stop is None:
        return {}
    return dict(holdout=list(stop.history[i]), kept=stop.best_step[i], stopped=stop.stopped[i])


def _cpu_state(net: CoordinateNetwork) -> dict:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _slab_name(index: int, y0: int, y1: int) -> str:
    return f"slab {index} (y {y0}:{y1})"


def _held_out_rays(stack: np.ndarray, cfg: dict, seed: int) -> np.ndarray | None:
    """The held-out rays of the whole tilt series (None when ``holdout_fraction`` is 0)."""
    fraction = holdout_options(cfg)[0]
    return holdout_mask(stack.shape, fraction, seed) if fraction > 0 else None


def _stopper(mask: np.ndarray | None, slabs, cfg: dict) -> EarlyStopping | None:
    """The :class:`EarlyStopping` of ``slabs`` ((index, y0, y1), all of one height)."""
    if mask is None:
        return None
    return EarlyStopping(np.stack([mask[:, y0:y1] for _, y0, y1 in slabs], axis=1),
                         every=cfg["holdout_every"], patience=cfg["patience"])


def fit_chain(stack: np.ndarray, angles_deg, thickness: int, slabs, cfg: dict, *,
              init_state: dict | None, seed: int, anchor: bool, device="cpu",
              projector: Projector | None = None, log: logging.Logger | None = None):
    """Fit a chain of slabs one after another.

    With ``cn.warm_start: neighbour`` (the default) each slab starts from the final
    weights of the one before; with ``anchor`` every slab starts from the first
    slab's initial network (``init_state``).

    Parameters
    ----------
    stack : ndarray ``[tilt, ny, n_det]``
        The whole tilt series.
    angles_deg : array of float
    thickness : int
        nz of the reconstruction.
    slabs : list of (index, y0, y1)
        In fitting order.
    cfg : dict
        The ``cn`` config section.
    init_state : dict or None
        State dict of the first slab's initial network; None: random (seeded).
    seed : int
        Seed of the random initialisation.
    anchor : bool
        Use the anchor's schedule (``anchor_iterations``, ``anchor_lr``,
        ``anchor_lr_end``) instead of the warm-start one.
    device : str
    projector : Projector, optional
        Reused if given (built for ``thickness`` × n_det otherwise).
    log : logging.Logger, optional

    Returns
    -------
    fits : list of SlabFit
    state : dict
        State dict (on CPU) of the network after the last slab (``init_state`` if
        ``slabs`` is empty).
    """
    cfg = options(cfg)
    if cfg["warm_start"] not in WARM_STARTS:
        raise ValueError(f"cn warm_start must be one of {WARM_STARTS}, got "
                         f"{cfg['warm_start']!r}")
    torch.manual_seed(int(seed))
    if projector is None:
        projector = Projector(thickness, stack.shape[2], angles_deg, device=device)
    net = _start_network(cfg, init_state, seed)
    start = _cpu_state(net) if cfg["warm_start"] == "anchor" else None
    kwargs = _fit_options(cfg, stack, thickness, log, anchor)
    mask = _held_out_rays(stack, cfg, seed)
    fits = []
    for index, y0, y1 in slabs:
        if start is not None:
            net.load_state_dict(start)
        t0 = time.perf_counter()
        stop = _stopper(mask, [(index, y0, y1)], cfg)
        vol, losses = fit_slab(stack[:, y0:y1], projector, net,
                               name=_slab_name(index, y0, y1), holdout=stop, **kwargs)
        fits.append(SlabFit(index, y0, y1, vol, losses, time.perf_counter() - t0,
                            **_stop_record(stop, 0)))
    state = (_cpu_state(net) if fits or init_state is None else copy.deepcopy(init_state))
    return fits, state


def fit_ensemble(stack: np.ndarray, angles_deg, thickness: int, slabs, cfg: dict, *,
                 init_state: dict | None, seed: int, device="cpu",
                 projector: Projector | None = None, log: logging.Logger | None = None):
    """Fit slabs together as batched ensembles, every slab from ``init_state``.

    The slabs are grouped by height and in groups of at most ``cn.ensemble_size``
    (:func:`~.ensemble.ensemble_groups`); each group is one :func:`fit_slabs` with the
    warm-start schedule (``iterations``, ``lr``, ``lr_end``). Equivalent to
    :func:`fit_chain` with ``warm_start: anchor`` (up to float rounding).

    Parameters
    ----------
    stack, angles_deg, thickness, slabs, cfg, init_state, seed, device, projector, log
        As in :func:`fit_chain`.

    Returns
    -------
    fits : list of SlabFit
        In the order of ``slabs``; ``seconds`` is the wall time of the slab's group
        divided by the group's size (so the sum over fits is the total wall time).
    state : dict
        State dict (on CPU) of the last slab's fitted network (``init_state`` if
        ``slabs`` is empty).
    """
    cfg = options(cfg)
    torch.manual_seed(int(seed))
    if projector is None:
        projector = Projector(thickness, stack.shape[2], angles_deg, device=device)
    start = _start_network(cfg, init_state, seed)
    kwargs = _fit_options(cfg, stack, thickness, log, anchor=False)
    mask = _held_out_rays(stack, cfg, seed)
    slabs = list(slabs)
    fits = {}
    state = (copy.deepcopy(init_state) if init_state is not None else _cpu_state(start))
    for group in ensemble_groups(slabs, cfg["ensemble_size"]):
        nets = [copy.deepcopy(start) for _ in group]
        t0 = time.perf_counter()
        stop = _stopper(mask, group, cfg)
        vols, losses = fit_slabs(np.stack([stack[:, y0:y1] for _, y0, y1 in group], axis=1),
                                 projector, nets, names=[_slab_name(*s) for s in group],
                                 holdout=stop, **kwargs)
        seconds = (time.perf_counter() - t0) / len(group)
        for i, ((index, y0, y1), vol, loss, net) in enumerate(zip(group, vols, losses, nets)):
            fits[index] = SlabFit(index, y0, y1, vol, loss, seconds, **_stop_record(stop, i))
            if index == slabs[-1][0]:
                state = _cpu_state(net)
    return [fits[s[0]] for s in slabs], state


def plan_for(stack_shape, cfg: dict) -> SlabPlan:
    """The :class:`SlabPlan` of a tilt series of shape ``[tilt, ny, n_det]`` under ``cfg``."""
    cfg = options(cfg)
    n_tilts, ny, n_det = stack_shape
    j = slab_size(cfg["slab_size"], ny, n_tilts, n_det, n_parameters(build_network(cfg)),
                  cfg["params_per_measurement"])
    return make_plan(ny, j, int(cfg["overlap"]), int(cfg["chunks"]))


def _log_holdout(log: logging.Logger, cfg: dict) -> None:
    fraction, every, patience = holdout_options(options(cfg))
    if fraction > 0:
        log.info("CN hold-out: %.3g of the rays of every tilt row held out; held-out loss "
                 "every %d iterations, best weights kept, patience %d evaluations%s",
                 fraction, every, patience, "" if patience else " (0: no early stop)")


def fit_anchor(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, *, seed: int,
               device="cpu", log: logging.Logger | None = None):
    """Fit the anchor (middle) slab from a seeded random initialisation.

    Returns
    -------
    plan : SlabPlan
    fit : SlabFit
    state : dict
        The anchor network's state dict (CPU tensors).
    """
    plan = plan_for(stack.shape, cfg)
    y0, y1 = plan.slabs[plan.anchor]
    if log is not None:
        log.info("CN plan: ny %d, slab size %d, overlap %d, %d slabs, anchor %d, %d chunk(s); "
                 "%d network parameters, device %s", plan.ny, plan.j, plan.overlap,
                 len(plan.slabs), plan.anchor, len(plan.chunks),
                 n_parameters(build_network(cfg)), device)
        _log_holdout(log, cfg)
    fits, state = fit_chain(stack, angles_deg, thickness, [(plan.anchor, y0, y1)], cfg,
                            init_state=None, seed=seed, anchor=True, device=device, log=log)
    return plan, fits[0], state


def fit_chunk(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, chunk: int,
              anchor_state: dict, *, seed: int, device="cpu",
              log: logging.Logger | None = None):
    """Fit every run of ``chunk``, each starting from ``anchor_state``.

    Sequentially (:func:`fit_chain`, per ``cn.warm_start``), or with ``cn.ensemble``
    all the chunk's slabs together, each from ``anchor_state`` (:func:`fit_ensemble`).

    Returns
    -------
    fits : list of SlabFit
    state : dict
        Weights after the chunk's last slab (the anchor's if the chunk is empty).
    """
    cfg = options(cfg)
    plan = plan_for(stack.shape, cfg)
    projector = Projector(thickness, stack.shape[2], angles_deg, device=device)
    runs = plan.chunk_slabs(chunk)
    if log is not None:
        log.info("CN chunk %d: runs %s, %s", chunk, [[s[0] for s in r] for r in runs],
                 f"batched ensemble (size {cfg['ensemble_size'] or 'all'}) from the anchor"
                 if cfg["ensemble"] else f"sequential, warm start from {cfg['warm_start']}")
        _log_holdout(log, cfg)
    if cfg["ensemble"]:
        return fit_ensemble(stack, angles_deg, thickness, [s for r in runs for s in r], cfg,
                            init_state=anchor_state, seed=seed, device=device,
                            projector=projector, log=log)
    fits, state = [], anchor_state
    for run in runs:
        f, state = fit_chain(stack, angles_deg, thickness, run, cfg, init_state=anchor_state,
                             seed=seed, anchor=False, device=device, projector=projector,
                             log=log)
        fits += f
    return fits, state


def reconstruct(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, *, seed: int = 0,
                device="cpu", log: logging.Logger | None = None) -> np.ndarray:
    """The whole CN reconstruction in one process (anchor, every chunk, merge).

    Returns
    -------
    ndarray ``[thickness, ny, n_det]`` float32, post-processed per ``cfg["output"]``.
    """
    plan, anchor, state = fit_anchor(stack, angles_deg, thickness, cfg, seed=seed,
                                     device=device, log=log)
    fits = [anchor]
    for c in range(len(plan.chunks)):
        fits += fit_chunk(stack, angles_deg, thickness, cfg, c, state, seed=seed,
                          device=device, log=log)[0]
    vol = merge([(f.y0, f.y1, f.volume) for f in fits], plan.ny)
    return postprocess(vol, options(cfg)["output"])
