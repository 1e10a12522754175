"""IsoNet quality against its WBP input for config overrides, on a finished default run.

Re-runs extract, refine and predict in one process (same seeds as the workflow, so the
unmodified default reproduces ``results/{dataset}/.../recon/isonet.mrc`` exactly) with the
``isonet`` section of ``config.yaml`` (and its ``per_dataset`` entry) updated by a YAML
override, and prints PSNR / SSIM / missing-region FSC AUC of IsoNet and of the WBP input.

    snakemake --cores 2                                   # the default run, once
    python benchmarks/isonet_quality.py p22 "{iterations: 5}" "{iterations: 10}" "{iterations: 20}"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from wedgebench.config import deep_merge, isonet_settings
from wedgebench.io import read_mrc, read_tiltseries
from wedgebench.metrics import compute_metrics
from wedgebench.recon.isonet import extract, predict, refine

REPO = Path(__file__).resolve().parents[1]


def run(results: Path, dataset: str, acq: str, cfg: dict, seed: int) -> tuple[dict, dict, float]:
    """(IsoNet metrics, WBP metrics, seconds) for one dataset and isonet settings."""
    base = results / dataset / acq
    tomo, voxel = read_mrc(base / "recon" / "imod_wbp.mrc")
    gt = read_mrc(results / dataset / "ground_truth.mrc")[0]
    _, angles, _ = read_tiltseries(base / "tiltseries.mrc", base / "tiltseries.tlt")
    t0 = time.perf_counter()
    rec = reconstruct(tomo, angles, cfg, seed)
    seconds = time.perf_counter() - t0
    return (compute_metrics(gt, rec, voxel, angles), compute_metrics(gt, tomo, voxel, angles),
            seconds)


def reconstruct(tomo, angles, cfg: dict, seed: int):
    """IsoNet's extract, refine and predict on a (non-inverted) WBP tomogram in one process,
    with the workflow's seeds; ``cfg``: the ``isonet`` settings of one dataset."""
    ex = extract.extract_subtomos(tomo, cfg["n_subtomos"], cfg["cube_size"], cfg["crop_size"],
                                  False, seed, cfg["percentiles"], cfg["mask"],
                                  normalisation=cfg["normalisation"])
    opts = refine.TrainOptions(**refine.train_options(cfg))
    schedule = {k: cfg["noise"][k] for k in ("start_iter", "every", "levels")}
    res = refine.run_refine(ex["cubes"], angles, cfg["iterations"], opts, schedule=schedule,
                            seed=seed)
    p = cfg["predict"]
    return predict.predict_tomogram(tomo, res["state"], opts, False, p["tile"], p["overlap"],
                                    p["batch_size"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("overrides", nargs="*", default=["{}"], help="YAML dicts over `isonet`")
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--acq", default="tilt-60_60_step2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    base = isonet_settings(config["isonet"], args.dataset)
    seed = int(config["datasets"][args.dataset].get("seed", config["seed"]))  # as the workflow
    fmt = "{psnr:6.2f} {ssim:6.3f} {fsc_missing_auc:7.3f}"
    print(f"{'override':50s} {'PSNR':>6s} {'SSIM':>6s} {'miss':>7s}   WBP: PSNR SSIM miss   s")
    for text in args.overrides:
        cfg = deep_merge(base, yaml.safe_load(text) or {})
        iso, wbp, sec = run(args.results, args.dataset, args.acq, cfg, seed)
        print(f"{text:50s} {fmt.format(**iso)}   {fmt.format(**wbp)} {sec:5.0f}", flush=True)


if __name__ == "__main__":
    main()
