"""CN chunk slabs fitted one by one vs together as a batched ensemble, on this CPU.

Data: the default ``spheres`` dataset of ``config.yaml`` (32 × 96 × 96, 61 tilts),
simulated with the helpers of ``bench_cn.py``. For each setting an anchor is fitted
briefly (untimed) on the plan's middle slab; then the first slabs of chunk 0 are fitted,
every one from the anchor's weights, with the chunk schedule shortened (slabs, iterations
and anchor iterations per setting: :data:`SETTINGS`):

- sequential: :func:`wedgebench.recon.cn.drivers.fit_chain` with ``warm_start: anchor``;
- ensemble: :func:`wedgebench.recon.cn.drivers.fit_ensemble` (``ensemble: true``), all
  slabs in one batched group.

Reported: wall seconds of each (median of ``--repeats``, the two alternating), the
speed-up, CPU seconds of this process (``time.process_time``, less inflated than wall time
when others share the machine), the final loss (mean over the slabs) of each, and the
largest absolute difference between the two fits' slab volumes, relative to the largest
density. For scale, the same difference between the sequential fit and itself started
from the anchor's weights each moved up by one float32 ulp (``1-ulp ref``): how far
rounding-sized changes are carried by the fit (Adam's normalised steps amplify them
quickly while a fit is far from converged). Settings: ``default`` = config.yaml's CN
(SIREN 3 × 64, 8-slice slabs), ``paper`` = configs/cn_paper.yaml (SIREN 5 × 256, 2-slice
slabs).

Usage: ``python benchmarks/bench_cn_ensemble.py --settings default`` and
``… --settings paper`` (each about 2 minutes on 2 shared cores; ``--threads 2 --repeats 3``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cn import load_cn_configs, spheres_data  # noqa: E402

#: (slabs, iterations, anchor iterations) per setting.
SETTINGS = {"default": (4, 20, 40), "paper": (8, 4, 20)}


def timed(funcs: dict, repeats: int) -> dict:
    """Median wall and CPU seconds of each function, called in turn ``repeats`` times
    (interleaved, so that changes in the machine's load hit every function alike).

    Returns
    -------
    dict name → (median wall s, median CPU s of this process, the last call's result)
    """
    wall = {name: [] for name in funcs}
    cpu = {name: [] for name in funcs}
    out = {}
    for _ in range(repeats):
        for name, func in funcs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out[name] = func()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), out[name])
            for name in funcs}


def relative_difference(fits_a, fits_b) -> float:
    """max |a − b| over the slab volumes / max |a|."""
    diff = max(float(np.abs(a.volume - b.volume).max()) for a, b in zip(fits_a, fits_b))
    return diff / max(float(np.abs(a.volume).max()) for a in fits_a)


def one_ulp_up(state: dict) -> dict:
    """``state`` with every floating-point value moved to the next float up."""
    import torch

    return {k: torch.nextafter(v, torch.full_like(v, float("inf")))
            if v.is_floating_point() else v for k, v in state.items()}


def final_loss(fits) -> float:
    """Mean over the slabs of the last iteration's loss."""
    return float(np.mean([f.losses[-1][1] for f in fits]))


def run_setting(name: str, cfg: dict, data, n_slabs: int, iterations: int,
                anchor_iterations: int, repeats: int, device: str = "cpu") -> dict:
    """Sequential (from the anchor) vs ensemble fits of ``n_slabs`` slabs of chunk 0."""
    from wedgebench.projector import Projector
    from wedgebench.recon.cn import drivers, fit, model

    vol, ts, angles = data
    nz = vol.shape[0]
    cfg = dict(cfg, iterations=iterations, anchor_iterations=anchor_iterations, log_every=0)
    plan, _, anchor = fit.fit_anchor(ts, angles, nz, cfg, seed=1, device=device)
    slabs = [s for run in plan.chunk_slabs(0) for s in run][:n_slabs]
    proj = Projector(nz, ts.shape[2], angles, device=device)

    def sequential(start):
        return drivers.fit_chain(ts, angles, nz, slabs, dict(cfg, warm_start="anchor"),
                                 init_state=start, seed=1, anchor=False, projector=proj)[0]

    res = timed({"sequential": lambda: sequential(anchor),
                 "ensemble": lambda: drivers.fit_ensemble(ts, angles, nz, slabs,
                                                          dict(cfg, ensemble=True),
                                                          init_state=anchor, seed=1,
                                                          projector=proj)[0]}, repeats)
    (t_seq, c_seq, seq), (t_ens, c_ens, ens) = res["sequential"], res["ensemble"]
    nudged = sequential(one_ulp_up(anchor))
    return dict(setting=name, width=cfg["width"], depth=cfg["depth"], slab_size=plan.j,
                n_params=model.n_parameters(model.build_network(cfg)), slabs=len(slabs),
                iterations=iterations, sequential_s=t_seq, ensemble_s=t_ens,
                speedup=t_seq / t_ens, sequential_cpu_s=c_seq, ensemble_cpu_s=c_ens,
                loss_sequential=final_loss(seq), loss_ensemble=final_loss(ens),
                rel_diff=relative_difference(seq, ens),
                rel_diff_ulp=relative_difference(seq, nudged))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=["default"], choices=list(SETTINGS))
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ours, paper = load_cn_configs()
    data = spheres_data(96)
    configs = {"default": ours, "paper": paper}
    rows = [run_setting(s, configs[s], data, *SETTINGS[s], args.repeats, args.device)
            for s in args.settings]
    print(f"default spheres 32x96x96, 61 tilts; {args.threads} thread(s), device "
          f"{args.device}, median of {args.repeats}; torch {torch.__version__}")
    print(f"{'setting':8} {'SIREN':>7} {'params':>7} {'j':>2} {'slabs':>5} {'its':>4} "
          f"{'seq s':>7} {'ens s':>7} {'speed-up':>8} {'seq CPU-s':>9} {'ens CPU-s':>9} "
          f"{'loss seq':>9} {'loss ens':>9} {'rel diff':>9} {'1-ulp ref':>9}")
    for r in rows:
        print(f"{r['setting']:8} {r['depth']}x{r['width']:<5} {r['n_params']:7d} "
              f"{r['slab_size']:2d} {r['slabs']:5d} {r['iterations']:4d} "
              f"{r['sequential_s']:7.2f} {r['ensemble_s']:7.2f} {r['speedup']:8.2f} "
              f"{r['sequential_cpu_s']:9.2f} {r['ensemble_cpu_s']:9.2f} "
              f"{r['loss_sequential']:9.5g} {r['loss_ensemble']:9.5g} "
              f"{r['rel_diff']:9.2g} {r['rel_diff_ulp']:9.2g}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
