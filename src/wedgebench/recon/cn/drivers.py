"""Fitting a list of slabs of one tilt series from given starting weights.

:func:`fit_chain` fits the slabs one after another: the first starts from the given
weights (the anchor's, or a seeded random initialisation), every later one from the final
weights of the slab before it (``warm_start: neighbour``) or from the same given weights
(``warm_start: anchor``). :func:`fit_ensemble` (``ensemble: true``) fits them *together*:
every slab starts from the given weights and all networks run as one batched ensemble
(:func:`~.optimise.fit_slabs`: one forward/backward per iteration; each slab keeps its own
weights, loss and optimiser moments), which keeps a GPU busy where one small network
would not. Both read their settings from the ``cn`` config section and return one
:class:`SlabFit` per slab.

With ``holdout_fraction`` > 0 (the ``cn_denoise`` variant) a seeded fraction of the
measured rays of the whole tilt series is left out of the training loss and used for
early stopping: every fit keeps the weights with the lowest held-out loss
(:mod:`.holdout`); a warm-started slab starts from its neighbour's kept weights.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...projector import Projector
from .ensemble import ensemble_groups
from .holdout import EarlyStopping, holdout_mask, holdout_options
from .model import CoordinateNetwork, build_network, options, output_gain
from .optimise import fit_slab, fit_slabs
from .schedule import schedule

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


def _fit_options(cfg: dict, stack: np.ndarray, thickness: int, log, anchor: bool) -> dict:
    """Keyword arguments of :func:`~.optimise.fit_slab` / :func:`~.optimise.fit_slabs` from
    the ``cn`` section."""
    holdout_options(cfg)  # bad hold-out values fail before any fitting
    return dict(schedule(cfg, anchor), gain=output_gain(stack, thickness, cfg["output_scale"]),
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
        projector = Projector(thickness, stack.shape[2], angles_deg, device=device,
                              model=cfg["projector"])
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
    (:func:`~.ensemble.ensemble_groups`); each group is one :func:`~.optimise.fit_slabs`
    with the warm-start schedule (``iterations``, ``lr``, ``lr_end``). Equivalent to
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
        projector = Projector(thickness, stack.shape[2], angles_deg, device=device,
                              model=cfg["projector"])
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
