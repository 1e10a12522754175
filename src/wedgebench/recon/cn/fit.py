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
one from the final weights of the slab before it.
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
from .model import CoordinateNetwork, build_network, n_parameters, options, slab_coordinates
from .slabs import SlabPlan, make_plan, merge, postprocess, slab_size

#: A loss this many times the first iteration's loss counts as divergence.
EXPLODE_FACTOR = 1.0e4


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
    """

    index: int
    y0: int
    y1: int
    volume: np.ndarray
    losses: list = field(default_factory=list)
    seconds: float = 0.0


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
    """Mean squared forward differences of ``vol[z, y, x]`` along every axis of length > 1."""
    total = vol.new_zeros(())
    for axis in range(3):
        if vol.shape[axis] > 1:
            total = total + torch.diff(vol, dim=axis).pow(2).mean()
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


def _evaluate(net: CoordinateNetwork, coords: torch.Tensor, shape, amp: bool,
              gain: float) -> torch.Tensor:
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        out = net(coords)
    return (gain * out.float()).reshape(shape)


def fit_slab(measured: np.ndarray, projector: Projector, net: CoordinateNetwork, *,
             iterations: int, lr: float, lr_end: float, gain: float = 1.0,
             reg_weight: float = 0.0, coordinates: str = "unit",
             mixed_precision: bool = True, name: str = "slab",
             log: logging.Logger | None = None, log_every: int = 0, callback=None):
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

    Returns
    -------
    volume : ndarray ``[nz, j, nx]`` float32
    losses : list of (iteration, loss, seconds)

    Raises
    ------
    FloatingPointError
        The loss became NaN/inf or exploded (> ``EXPLODE_FACTOR`` × its first value),
        or the final volume is not finite.
    """
    if iterations < 1:
        raise ValueError(f"cn iterations must be >= 1, got {iterations}")
    if not (lr > 0 and lr_end > 0):
        raise ValueError(f"cn learning rates must be > 0, got lr={lr}, lr_end={lr_end}")
    n_tilts, j, n_det = measured.shape
    if (n_tilts, n_det) != (projector.n_tilts, projector.n_det):
        raise ValueError(f"{name}: tilt-series rows {measured.shape} do not match the "
                         f"projector ({projector.n_tilts} tilts, {projector.n_det} px)")
    device = projector.device
    amp = bool(mixed_precision) and device.type == "cuda"
    shape = (projector.nz, j, projector.nx)
    coords = slab_coordinates(*shape, device=device, mode=coordinates).reshape(-1, 3)
    target = torch.from_numpy(np.ascontiguousarray(measured, np.float32)).to(device)
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0, amsgrad=True)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    log_every = int(log_every) or max(1, iterations // 10)
    losses = []
    first = None
    t0 = time.perf_counter()
    for it in range(iterations):
        for group in opt.param_groups:
            group["lr"] = learning_rate(it, iterations, lr, lr_end)
        vol = _evaluate(net, coords, shape, amp, gain)
        loss = (projector.forward(vol) - target).abs().mean()
        if reg_weight:
            loss = loss + reg_weight * finite_difference_penalty(vol)
        value = float(loss.detach())
        if callback is not None:
            callback(it, vol.detach())
        if first is None:
            first = value
        if not math.isfinite(value) or value > EXPLODE_FACTOR * max(first, 1e-12):
            raise FloatingPointError(
                f"CN fit of {name} diverged at iteration {it}: loss = {value!r} "
                f"(first loss {first!r}); lower cn lr / anchor_lr")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        seconds = time.perf_counter() - t0
        losses.append((it, value, seconds))
        if log is not None and (it % log_every == 0 or it == iterations - 1):
            log.info("%s it %d/%d loss %.6g lr %.3g %.1f s", name, it, iterations, value,
                     opt.param_groups[0]["lr"], seconds)
    net.eval()
    with torch.no_grad():
        out = _evaluate(net, coords, shape, False, gain).cpu().numpy()
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"CN fit of {name}: the fitted volume has NaN/inf values")
    return out.astype(np.float32, copy=False), losses


def fit_chain(stack: np.ndarray, angles_deg, thickness: int, slabs, cfg: dict, *,
              init_state: dict | None, seed: int, anchor: bool, device="cpu",
              projector: Projector | None = None, log: logging.Logger | None = None):
    """Fit a chain of slabs, each warm-started from the one before.

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
    torch.manual_seed(int(seed))
    n_det = stack.shape[2]
    if projector is None:
        projector = Projector(thickness, n_det, angles_deg, device=device)
    net = build_network(cfg, seed=seed)
    if init_state is not None:
        net.load_state_dict(init_state)
    prefix = "anchor_" if anchor else ""
    gain = output_gain(stack, thickness, cfg["output_scale"])
    fits = []
    for index, y0, y1 in slabs:
        t0 = time.perf_counter()
        vol, losses = fit_slab(
            stack[:, y0:y1], projector, net,
            iterations=int(cfg[prefix + "iterations"]), lr=float(cfg[prefix + "lr"]),
            lr_end=float(cfg[prefix + "lr_end"]), gain=gain,
            reg_weight=float(cfg["reg_weight"]), coordinates=cfg["coordinates"],
            mixed_precision=bool(cfg["mixed_precision"]), name=f"slab {index} (y {y0}:{y1})",
            log=log, log_every=int(cfg["log_every"]))
        fits.append(SlabFit(index, y0, y1, vol, losses, time.perf_counter() - t0))
    state = ({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
             if fits or init_state is None else copy.deepcopy(init_state))
    return fits, state


def plan_for(stack_shape, cfg: dict) -> SlabPlan:
    """The :class:`SlabPlan` of a tilt series of shape ``[tilt, ny, n_det]`` under ``cfg``."""
    cfg = options(cfg)
    n_tilts, ny, n_det = stack_shape
    j = slab_size(cfg["slab_size"], ny, n_tilts, n_det, n_parameters(build_network(cfg)),
                  cfg["params_per_measurement"])
    return make_plan(ny, j, int(cfg["overlap"]), int(cfg["chunks"]))


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
    fits, state = fit_chain(stack, angles_deg, thickness, [(plan.anchor, y0, y1)], cfg,
                            init_state=None, seed=seed, anchor=True, device=device, log=log)
    return plan, fits[0], state


def fit_chunk(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, chunk: int,
              anchor_state: dict, *, seed: int, device="cpu",
              log: logging.Logger | None = None):
    """Fit every run of ``chunk``, each starting from ``anchor_state``.

    Returns
    -------
    fits : list of SlabFit
    state : dict
        Weights after the chunk's last slab (the anchor's if the chunk is empty).
    """
    plan = plan_for(stack.shape, cfg)
    projector = Projector(thickness, stack.shape[2], angles_deg, device=device)
    fits, state = [], anchor_state
    runs = plan.chunk_slabs(chunk)
    if log is not None:
        log.info("CN chunk %d: runs %s", chunk, [[s[0] for s in r] for r in runs])
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
