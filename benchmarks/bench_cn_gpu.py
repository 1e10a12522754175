"""CN at the paper's scale on one device: chunk slabs one by one vs as a batched ensemble.

Prepared for a lent GPU (issue "Performance", item 3; ``benchmarks/gpu_check.sh`` runs it
with the other device checks in one call) and runnable on the CPU at a reduced size
(``--shape``, ``--iterations``), which is how the tests exercise it.

Data: ``configs/paper.yaml``'s dataset (``--dataset p22``: 360³ at 4.5 Å/voxel;
``spheres``: 256 × 1024 × 1024), simulated as the workflow does (schema defaults ←
``config.yaml`` ← ``configs/paper.yaml``; the config's seed; 61 tilts, ±60° every 2°).
CN at ``configs/paper.yaml``'s settings: the paper's (SIREN 5 × 256, 2-slice slabs, 2001
anchor and 401 slab iterations, fp16 autocast on CUDA). Tilting about y leaves every row of
the tilt series a function of the same rows of the volume, so the slab timings use the
volume's central rows only (2 (K + 2) j + 1 of them; their projections are the whole
volume's, normalised on their own, and the slabs are the same size as the whole volume's);
the extrapolation counts the whole volume's slabs.

Steps, each timed in wall seconds (every fit ends by copying its volume to the host):

1. the anchor (middle) slab from a seeded random initialisation;
2. the first ``--slabs`` K slabs of chunk 0 one by one, the paper's procedure (each
   warm-started from its neighbour);
3. the same K slabs as one batched ensemble (``cn.ensemble``), each from the anchor's
   weights, in groups of ``--group`` (default K);
4. whole volume, extrapolated: anchor + (slabs − 1) × seconds per slab, both ways (the
   paper: 19.6 min for P22 on a Quadro RTX 8000);
5. with ``--full``, when the ensemble extrapolation fits in what is left of ``--deadline``
   seconds (counted from the start): the whole reconstruction with the ensemble, its wall
   time, and PSNR / SSIM / VIF in both conventions and the FSC areas against the phantom.

A step that fails (out of memory, say) is recorded with its error and the script goes on.
Usage: ``python benchmarks/bench_cn_gpu.py --dataset p22 --device cuda --slabs 16 --full
--out results/gpu/p22.json``; on the CPU, e.g. ``--shape 16 24 24 --iterations 5
--anchor-iterations 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cn import load_cn_configs  # noqa: E402
from bench_cn_ensemble import final_loss, relative_difference  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER_MINUTES = {"p22": 19.6}  # the CN paper's GPU time (Quadro RTX 8000), P22 only


def paper_config() -> dict:
    """``config.yaml`` with ``configs/paper.yaml`` merged over it, schema defaults beneath
    the ``tiltseries`` section (not ``tune.base_config``: that validates with Snakemake,
    which the lent GPU machine does not have)."""
    from wedgebench.config import deep_merge

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    ts = {k: v["default"] for k, v in
          schema["properties"]["tiltseries"]["properties"].items() if "default" in v}
    cfg = deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()),
                     yaml.safe_load((REPO / "configs/paper.yaml").read_text()))
    cfg["tiltseries"] = deep_merge(ts, cfg["tiltseries"])
    return cfg


def simulate(dataset: str, shape=None, rows: int | None = None):
    """Phantom of ``configs/paper.yaml``'s ``dataset`` (``shape`` overrides its size), and
    the tilt series of its ``rows`` central y-rows (all rows if None).

    With ``BENCH_SIM_CACHE`` set to a folder, the result is kept there as ``.npz`` and read
    back by later calls with the same arguments (``gpu_check.sh`` simulates P22 once for
    the CN and the IsoNet/DeepDeWedge checks).

    Returns
    -------
    gt : ndarray ``[z, rows, x]``; stack : ndarray ``[tilt, rows, x]``; angles : ndarray;
    voxel_size : float; full_shape : tuple (the whole phantom's shape)
    """
    cfg = paper_config()
    ds = cfg["datasets"][dataset]
    shape = list(shape or ds["shape"])
    cache = os.environ.get("BENCH_SIM_CACHE")
    path = (Path(cache) / f"{dataset}_{'x'.join(map(str, shape))}_{rows or 'all'}.npz"
            if cache else None)
    if path is not None and path.exists():
        f = np.load(path)
        return (f["gt"], f["stack"], f["angles"], float(f["voxel"]),
                tuple(int(v) for v in f["shape"]))
    out = _simulate(cfg, ds, shape, rows)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, gt=out[0], stack=out[1], angles=out[2], voxel=out[3], shape=out[4])
    return out


def _simulate(cfg: dict, ds: dict, shape: list, rows: int | None):
    """:func:`simulate` without the cache."""
    from wedgebench.geometry import tilt_angles
    from wedgebench.phantoms import make_phantom
    from wedgebench.tiltseries import make_projector, simulate_tiltseries

    seed = int(ds.get("seed", cfg["seed"]))
    params = dict(ds.get("params") or {}, shape=shape, voxel_size=ds["voxel_size"])
    vol, _ = make_phantom(ds["kind"], params, seed)
    if rows is not None and rows < vol.shape[1]:
        y0 = (vol.shape[1] - rows) // 2
        vol = np.ascontiguousarray(vol[:, y0:y0 + rows])
    acq = cfg["acquisitions"][0]
    angles = tilt_angles(acq.get("range"), acq.get("step"), acq.get("angles"))
    opts = dict(cfg["tiltseries"], projector="ray")  # the cropped rows: ray-driven
    stack = simulate_tiltseries(vol, angles, noise=opts["noise"],
                                project=make_projector(vol, opts), seed=seed,
                                normalise_to_unit=opts["normalise"])
    return vol, stack, angles, float(ds["voxel_size"]), tuple(shape)


def attempt(record: dict, name: str, func):
    """``func()`` timed into ``record[name + "_s"]``; an exception is recorded, not raised."""
    t0 = time.perf_counter()
    try:
        out = func()
    except Exception as err:  # noqa: BLE001 - a device check reports every failure
        record[name + "_error"] = f"{type(err).__name__}: {err}"[:500]
        print(f"{name}: failed: {record[name + '_error']}", flush=True)
        return None
    record[name + "_s"] = time.perf_counter() - t0
    print(f"{name}: {record[name + '_s']:.1f} s", flush=True)
    return out


def peak_memory_gb(device: str) -> float | None:
    """Peak device memory allocated by torch since the last reset (CUDA only; None on the
    CPU), then reset the peak."""
    import torch

    if not device.startswith("cuda"):
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return peak


def time_slabs(stack, angles, nz: int, cfg: dict, n_slabs: int, group: int, seed: int,
               device: str) -> dict:
    """Steps 1–3 on ``stack`` (``nz`` slices thick): anchor, then K chunk slabs
    sequentially and as an ensemble."""
    from wedgebench.recon.cn import drivers, fit

    rec: dict = {}
    res = attempt(rec, "anchor", lambda: fit.fit_anchor(stack, angles, nz, cfg, seed=seed,
                                                        device=device))
    if res is None:
        return rec
    plan, _, anchor = res
    rec["peak_gb_anchor"] = peak_memory_gb(device)
    slabs = [s for run in plan.chunk_slabs(0) for s in run][:n_slabs]
    rec.update(slab_size=plan.j, slabs=len(slabs), group=group)
    seq = attempt(rec, "sequential", lambda: drivers.fit_chain(
        stack, angles, nz, slabs, cfg, init_state=anchor, seed=seed, anchor=False,
        device=device)[0])
    rec["peak_gb_sequential"] = peak_memory_gb(device)
    ens = attempt(rec, "ensemble", lambda: drivers.fit_ensemble(
        stack, angles, nz, slabs, dict(cfg, ensemble=True, ensemble_size=group),
        init_state=anchor, seed=seed, device=device)[0])
    rec["peak_gb_ensemble"] = peak_memory_gb(device)
    for name, fits in (("sequential", seq), ("ensemble", ens)):
        if fits is not None:
            rec[f"{name}_s_per_slab"] = rec[f"{name}_s"] / len(slabs)
            rec[f"loss_{name}"] = final_loss(fits)
    if seq is not None and ens is not None:
        rec["speedup"] = rec["sequential_s"] / rec["ensemble_s"]
        # different starts (neighbour vs anchor): a scale, not an equality check
        rec["rel_diff_seq_vs_ens"] = relative_difference(seq, ens)
    return rec


def extrapolate(rec: dict, n_total: int) -> None:
    """Step 4: whole-volume minutes from the anchor and the per-slab seconds."""
    for name in ("sequential", "ensemble"):
        if "anchor_s" in rec and f"{name}_s_per_slab" in rec:
            rec[f"whole_{name}_min"] = (rec["anchor_s"] + (n_total - 1)
                                        * rec[f"{name}_s_per_slab"]) / 60


def full_run(gt, stack, angles, voxel: float, cfg: dict, group: int, seed: int,
             device: str) -> dict:
    """Step 5: the whole reconstruction as ensembles, and its metrics against ``gt``."""
    from wedgebench.metrics import compute_metrics
    from wedgebench.recon.cn import fit

    rec: dict = {}
    vol = attempt(rec, "full", lambda: fit.reconstruct(
        stack, angles, gt.shape[0],
        # an ensemble starts every slab from the anchor: wedgebench's orchestration
        dict(cfg, ensemble=True, ensemble_size=group, chain_start="anchor"), seed=seed,
        device=device))
    rec["peak_gb_full"] = peak_memory_gb(device)
    if vol is not None:
        m = attempt(rec, "metrics", lambda: compute_metrics(gt, vol, voxel, angles,
                                                            convention="fair"))
        if m is not None:
            rec["metrics"] = {c: {k: m["conventions"][c][k] for k in ("psnr", "ssim", "vif")}
                              for c in ("paper", "fair")}
            rec["metrics"].update({k: v for k, v in m.items() if k.startswith("fsc_")
                                   and isinstance(v, float)})
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="p22", choices=["p22", "spheres", "shapes"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", type=int, nargs=3, default=None,
                    help="phantom shape z y x (default: the paper preset's)")
    ap.add_argument("--slabs", type=int, default=16, help="K chunk slabs timed each way")
    ap.add_argument("--group", type=int, default=0, help="ensemble group size (0: K)")
    ap.add_argument("--iterations", type=int, default=None, help="override cn.iterations")
    ap.add_argument("--anchor-iterations", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--full", action="store_true", help="also the whole volume (step 5)")
    ap.add_argument("--deadline", type=float, default=480.0,
                    help="seconds from the start within which step 5 must fit")
    ap.add_argument("--out", default=None, help="write the record as JSON here")
    args = ap.parse_args()
    start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dict(load_cn_configs()[1], log_every=0)
    for key, value in (("iterations", args.iterations),
                       ("anchor_iterations", args.anchor_iterations)):
        if value is not None:
            cfg[key] = value
    group = args.group or args.slabs
    seed = int(paper_config()["seed"])
    rec = dict(dataset=args.dataset, device=args.device, torch=torch.__version__,
               iterations=cfg["iterations"], anchor_iterations=cfg["anchor_iterations"],
               width=cfg["width"], depth=cfg["depth"], slab_size=cfg["slab_size"],
               mixed_precision=cfg["mixed_precision"])
    if args.device.startswith("cuda"):
        rec["gpu"] = torch.cuda.get_device_name(0)
    rows = 2 * (args.slabs + 2) * int(cfg["slab_size"]) + 1  # anchor + K slabs each side
    t0 = time.perf_counter()
    gt, stack, angles, voxel, full_shape = simulate(args.dataset, args.shape, rows)
    rec.update(shape=list(full_shape), rows_timed=int(stack.shape[1]),
               simulate_rows_s=time.perf_counter() - t0)
    rec.update(time_slabs(stack, angles, gt.shape[0], cfg, args.slabs, group, seed,
                          args.device))
    from wedgebench.recon.cn.fit import plan_for

    n_total = len(plan_for((stack.shape[0], full_shape[1], full_shape[2]), cfg).slabs)
    rec["slabs_whole_volume"] = n_total
    extrapolate(rec, n_total)
    rec["paper_min"] = PAPER_MINUTES.get(args.dataset)
    if args.full and "whole_ensemble_min" in rec:
        left = args.deadline - (time.perf_counter() - start)
        # the whole series is simulated again (all rows), then the metrics: allow for both
        simulate_all = rec["simulate_rows_s"] * full_shape[1] / rec["rows_timed"]
        if rec["whole_ensemble_min"] * 60 * 1.2 + 2 * simulate_all < left:
            gt, stack, angles, voxel, _ = simulate(args.dataset, args.shape)
            rec.update(full_run(gt, stack, angles, voxel, cfg, group, seed, args.device))
        else:
            rec["full_skipped"] = f"predicted beyond the deadline ({left:.0f} s left)"
    rec["total_s"] = time.perf_counter() - start
    print(json.dumps(rec, indent=1), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
