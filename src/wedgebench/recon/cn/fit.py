"""The CN reconstruction of a tilt series over its slab plan.

The volume is split into y-slabs (:func:`plan_for`, :mod:`.slabs`), one network each. The
workflow runs it as parallel jobs with learned initialisation: :func:`fit_anchor` fits
the middle slab from a seeded random initialisation (and with ``cn.chain_start: authors``
:func:`fit_lead` the two slabs below it, the anchor's own volume then discarded);
:func:`fit_chunk` fits the slabs of one chunk, each run starting from the anchor job's
final weights (:mod:`.drivers`: a warm-started
chain, or with ``cn.ensemble`` a batched ensemble); ``cn_merge`` stitches the slabs
(:func:`~.slabs.merge`). :func:`reconstruct` runs all of it in one process and gives the
same volume.

Modules below this one: :mod:`.drivers` (chains and ensembles of slab fits),
:mod:`.optimise` (the fit of one slab or one batched ensemble), :mod:`.loss`,
:mod:`.schedule`, :mod:`.model`, :mod:`.holdout`, :mod:`.ensemble`, :mod:`.slabs`.
"""

from __future__ import annotations

import logging

import numpy as np

from ...projector import Projector
from .drivers import fit_chain, fit_ensemble
from .holdout import holdout_options
from .model import build_network, n_parameters, options
from .slabs import SlabPlan, make_plan, merge, postprocess, slab_size


def plan_for(stack_shape, cfg: dict) -> SlabPlan:
    """The :class:`SlabPlan` of a tilt series of shape ``[tilt, ny, n_det]`` under ``cfg``."""
    cfg = options(cfg)
    n_tilts, ny, n_det = stack_shape
    j = slab_size(cfg["slab_size"], ny, n_tilts, n_det, n_parameters(build_network(cfg)),
                  cfg["params_per_measurement"])
    if cfg["chain_start"] == "authors" and (cfg["warm_start"] != "neighbour"
                                            or cfg["ensemble"]):
        raise ValueError("cn chain_start 'authors' needs warm_start 'neighbour' and ensemble "
                         f"false (got warm_start {cfg['warm_start']!r}, ensemble "
                         f"{cfg['ensemble']!r}): it is a chain of warm-started slabs")
    return make_plan(ny, j, int(cfg["overlap"]), int(cfg["chunks"]), cfg["chain_start"])


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
    fit : ~.drivers.SlabFit
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


def fit_lead(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, plan: SlabPlan,
             anchor_state: dict, *, seed: int, device="cpu",
             log: logging.Logger | None = None):
    """Fit the plan's lead (``cn.chain_start: authors``): the slabs below the anchor that
    the anchor job fits after it, a chain warm-started from ``anchor_state``.

    Returns
    -------
    fits : list of ~.drivers.SlabFit
        Empty when the plan has no lead (the default orchestration).
    state : dict
        The weights every chunk starts from: after the lead's last slab, else the anchor's.
    """
    if not plan.lead:
        return [], anchor_state
    return fit_chain(stack, angles_deg, thickness, [(i, *plan.slabs[i]) for i in plan.lead],
                     cfg, init_state=anchor_state, seed=seed, anchor=False, device=device,
                     log=log)


def fit_chunk(stack: np.ndarray, angles_deg, thickness: int, cfg: dict, chunk: int,
              anchor_state: dict, *, seed: int, device="cpu",
              log: logging.Logger | None = None):
    """Fit every run of ``chunk``, each starting from ``anchor_state``.

    Sequentially (:func:`~.drivers.fit_chain`, per ``cn.warm_start``), or with
    ``cn.ensemble`` all the chunk's slabs together, each from ``anchor_state``
    (:func:`~.drivers.fit_ensemble`).

    Returns
    -------
    fits : list of ~.drivers.SlabFit
    state : dict
        Weights after the chunk's last slab (the anchor's if the chunk is empty).
    """
    cfg = options(cfg)
    plan = plan_for(stack.shape, cfg)
    projector = Projector(thickness, stack.shape[2], angles_deg, device=device,
                              model=cfg["projector"])
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
    lead, state = fit_lead(stack, angles_deg, thickness, cfg, plan, state, seed=seed,
                           device=device, log=log)
    fits = ([anchor] if plan.keeps_anchor else []) + lead
    for c in range(len(plan.chunks)):
        fits += fit_chunk(stack, angles_deg, thickness, cfg, c, state, seed=seed,
                          device=device, log=log)[0]
    vol = merge([(f.y0, f.y1, f.volume) for f in fits], plan.ny)
    return postprocess(vol, options(cfg)["output"])
