"""IsoNet and DeepDeWedge at the paper preset's settings on one device: measured stages,
the whole fit extrapolated from them.

Prepared for a lent GPU (``benchmarks/gpu_check.sh`` runs it after the CN checks) and
runnable on the CPU at a reduced size (``--shape``), which is how the tests exercise it.
CN's side of the same dataset is ``bench_cn_gpu.py``.

Data: ``configs/paper.yaml``'s dataset (default P22 360³ at 4.5 Å/voxel, 61 tilts ±60°
every 2°, no noise), simulated as the workflow does, and its WBP at ``imod_wbp``'s settings
(IsoNet's input; DeepDeWedge's halves are the WBPs of the even and the odd tilts).
Settings: ``configs/paper.yaml``'s ``isonet`` and ``deepdewedge`` sections, each with its
``per_dataset`` entry (IsoNet v1's defaults; DeepDeWedge's published ones).

Measured (wall seconds, each stage ends with its result on the host):

IsoNet
    extraction of the subtomograms; **one whole refine iteration reduced to one epoch** at
    full length (``max_steps`` steps of ``batch_size``), from which the epoch's seconds
    (the iteration's own history) and the iteration's fixed part (set-up, the fill of every
    subtomogram) follow; the noise pool of the denoising iterations; predict of the whole
    tomogram. Extrapolated: ``iterations × (fixed + epochs × epoch) + noisy iterations ×
    noise pool + predict``.
DeepDeWedge
    half tomograms, sub-tomogram extraction, ``--ddw-epochs`` plain epochs (no validation,
    no wedge update), one validation pass and one wedge update timed on their own, and the
    refinement of both halves. Extrapolated: ``epochs × epoch + epochs / val_every ×
    validation + epochs / update_every × update + refine``.

The JSON record is rewritten after every stage, so a run stopped by a time limit keeps what
it measured. A stage that fails (out of memory, say) is recorded with its error.
Usage: ``python benchmarks/bench_learned_gpu.py --device cuda --out results/gpu/learned.json``;
on the CPU, e.g. ``--device cpu --shape 48 48 48 --isonet-steps 2 --ddw-epochs 1``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cn_gpu import attempt, paper_config, peak_memory_gb, simulate  # noqa: E402


class Record(dict):
    """A dict that rewrites itself as JSON at ``path`` whenever :meth:`save` is called."""

    def __init__(self, path: str | None, **kw):
        super().__init__(**kw)
        self.path = Path(path) if path else None

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self, indent=1))


def isonet_paper(rec: Record, tomo, angles, cfg: dict, dataset: str, seed: int, device: str,
                 steps: int | None) -> None:
    """IsoNet's measured stages and its extrapolated whole run into ``rec["isonet"]``."""
    from wedgebench.config import isonet_settings
    from wedgebench.recon.isonet import extract, predict, refine

    r: dict = {}
    rec["isonet"] = r
    s = isonet_settings(cfg["isonet"], dataset)
    opts_all = refine.train_options(s)
    opts = refine.TrainOptions(**dict(opts_all, epochs=1, **(
        {"max_steps": steps} if steps else {})))
    n_steps = max(1, min(int(opts.steps_per_subtomo * s["n_subtomos"] / opts.batch_size),
                         opts.max_steps))
    r.update(n_subtomos=s["n_subtomos"], cube=s["cube_size"], crop=s["crop_size"],
             iterations=s["iterations"], epochs=opts_all["epochs"], steps_timed=n_steps,
             steps_per_epoch=max(1, min(int(opts.steps_per_subtomo * s["n_subtomos"]
                                            / opts.batch_size), opts_all["max_steps"])),
             batch_size=opts.batch_size, mixed_precision=opts.mixed_precision)
    ex = attempt(r, "extract", lambda: extract.extract_subtomos(
        tomo, s["n_subtomos"], s["cube_size"], s["crop_size"], False, seed, s["percentiles"],
        s["mask"], normalisation=s["normalisation"]))
    rec.save()
    if ex is None:
        return
    it = attempt(r, "iteration", lambda: refine.refine_iteration(
        ex["cubes"], angles, 1, opts, seed=seed, device=device))
    r["peak_gb_iteration"] = peak_memory_gb(device)
    rec.save()
    if it is None:
        return
    epoch = it["history"][0]["seconds"] * r["steps_per_epoch"] / n_steps
    r.update(epoch_s=epoch, fixed_s=r["iteration_s"] - it["history"][0]["seconds"],
             train_loss=it["history"][0]["train_loss"], val_loss=it["history"][0]["val_loss"])
    noise = s["noise"]
    noisy = sum(refine.noise_level(i, noise["start_iter"], noise["every"], noise["levels"]) > 0
                for i in range(1, s["iterations"] + 1))
    import numpy as np

    attempt(r, "noise_pool", lambda: refine.noise_cubes(
        angles, s["cube_size"], noise["pool"], noise["filter"], np.random.default_rng(seed),
        device))
    p = s["predict"]
    attempt(r, "predict", lambda: predict.predict_tomogram(
        tomo, it["state"], opts, False, p["tile"], p["overlap"], p["batch_size"],
        device=device))
    r["peak_gb_predict"] = peak_memory_gb(device)
    if "predict_s" in r:
        r["noisy_iterations"] = int(noisy)
        r["whole_refine_min"] = (r["iterations"] * (r["fixed_s"] + r["epochs"] * epoch)
                                 + noisy * r.get("noise_pool_s", 0.0)) / 60
        r["whole_min"] = r["extract_s"] / 60 + r["whole_refine_min"] + r["predict_s"] / 60
    rec.save()


def ddw_paper(rec: Record, stack, angles, nz: int, cfg: dict, dataset: str, seed: int,
              device: str, epochs: int) -> None:
    """DeepDeWedge's measured stages and its extrapolated whole run into ``rec["ddw"]``."""
    import numpy as np
    import torch

    from wedgebench.config import dataset_settings
    from wedgebench.recon.deepdewedge import fit, halves, masks, predict, subtomos
    from wedgebench.recon.deepdewedge.options import options_from_config

    r: dict = {}
    rec["ddw"] = r
    s = dataset_settings(cfg["deepdewedge"], dataset)
    opts = options_from_config({k: v for k, v in s.items()
                                if k not in ("split", "mask", "block_epochs", "mem_mb", "runtime")})
    r.update(split="tilts (no dose model)", cube=opts.cube_size,
             extract_size=opts.extract_size, epochs=opts.epochs, val_every=opts.val_every,
             update_every=opts.update_every, batch_size=opts.batch_size,
             base_channels=opts.base_channels, levels=opts.levels, epochs_timed=epochs)
    wbp = {k: v for k, v in cfg["imod_wbp"].items()
           if k not in ("per_dataset", "mem_mb", "runtime")}
    hv = attempt(r, "halves", lambda: halves.tilt_half_tomograms(stack, angles, nz, wbp))
    rec.save()
    if hv is None:
        return
    v0, v1 = hv
    sub = attempt(r, "extract", lambda: subtomos.extract_subtomos(v0, v1, opts, seed=seed))
    rec.save()
    if sub is None:
        return
    r.update(cubes=int(len(sub["cubes0"])), cubes_val=int(np.sum(sub["val"])))
    data = fit.FitData(sub["cubes0"], sub["cubes1"], sub["val"], np.asarray(angles))
    state = attempt(r, "fit", lambda: fit.fit_block(None, data, 0, epochs, opts, seed=seed,
                                                    device=device))
    r["peak_gb_fit"] = peak_memory_gb(device)
    rec.save()
    if state is None:
        return
    r["epoch_s"] = float(np.median([h["seconds"] for h in state["history"]]))
    n, m = opts.cube_size, opts.extract_size
    model = fit.model_from_state(state, device)
    val_idx = np.flatnonzero(data.val)
    rots = [np.eye(3)] * len(val_idx)
    attempt(r, "validation", lambda: fit.validation_loss(
        model, data.cubes0, data.cubes1, val_idx, rots, masks.wedge_mask(n, data.angles),
        masks.big_wedge_mask(n, data.angles), n, opts.spline_order, opts.batch_size,
        device))
    attempt(r, "update", lambda: fit.wedge_update(
        model, data.cubes0.copy(), masks.wedge_mask(m, data.angles), opts.batch_size, device))
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    attempt(r, "refine", lambda: predict.reconstruct(v0, v1, state, angles, opts,
                                                     device=device))
    r["peak_gb_refine"] = peak_memory_gb(device)
    if "refine_s" in r and "update_s" in r and "validation_s" in r:
        e = opts.epochs
        r["whole_fit_min"] = (e * r["epoch_s"] + math.floor(e / opts.val_every)
                              * r["validation_s"] + math.floor(e / opts.update_every)
                              * r["update_s"]) / 60
        r["whole_min"] = (r["halves_s"] + r["extract_s"] + r["refine_s"]) / 60 \
            + r["whole_fit_min"]
    rec.save()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="p22", choices=["p22", "spheres", "shapes"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", type=int, nargs=3, default=None,
                    help="phantom shape z y x (default: the paper preset's)")
    ap.add_argument("--methods", nargs="+", default=["isonet", "deepdewedge"],
                    choices=["isonet", "deepdewedge"])
    ap.add_argument("--isonet-steps", type=int, default=None,
                    help="steps of the timed epoch (default: the settings' own)")
    ap.add_argument("--ddw-epochs", type=int, default=2, help="plain epochs timed")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a setting of the paper preset (YAML value), e.g. "
                         "isonet.n_subtomos=8; repeatable (for runs at a reduced size)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="write the record as JSON here")
    args = ap.parse_args()
    start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = paper_config()
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in ("isonet", "deepdewedge") or not name or not _:
            ap.error(f"--set {item!r}: expected isonet.KEY=VALUE or deepdewedge.KEY=VALUE")
        cfg[section] = dict(cfg[section], **{name: yaml.safe_load(value)})
        cfg[section].pop("per_dataset", None)  # an override applies to every dataset
    seed = int(cfg["seed"])
    rec = Record(args.out, dataset=args.dataset, device=args.device, torch=torch.__version__)
    if args.device.startswith("cuda"):
        rec["gpu"] = torch.cuda.get_device_name(0)
    t0 = time.perf_counter()
    gt, stack, angles, voxel, shape = simulate(args.dataset, args.shape)
    rec.update(shape=list(shape), simulate_s=time.perf_counter() - t0)
    from wedgebench.recon import wbp

    opts = {k: v for k, v in cfg["imod_wbp"].items()
            if k not in ("per_dataset", "mem_mb", "runtime")}
    tomo = attempt(rec, "wbp", lambda: wbp.reconstruct(stack, angles, gt.shape[0], **opts))
    rec.save()
    if tomo is not None and "isonet" in args.methods:
        isonet_paper(rec, tomo, angles, cfg, args.dataset, seed, args.device,
                     args.isonet_steps)
    if "deepdewedge" in args.methods:
        ddw_paper(rec, stack, angles, gt.shape[0], cfg, args.dataset, seed, args.device,
                  args.ddw_epochs)
    rec["total_s"] = time.perf_counter() - start
    rec.save()
    print(json.dumps(rec, indent=1), flush=True)


if __name__ == "__main__":
    main()
