"""Seconds per IsoNet refine iteration and for predict, at the default (config.yaml) and the
paper's (configs/isonet_paper.yaml) sizes, on this machine's CPU.

Default sizes are timed end to end (extract, refine iterations 1 and 2, predict) on a
synthetic blob tomogram of each default dataset's shape. At the paper's sizes a full
iteration takes hours on a CPU, so a few training steps and forward passes are timed and
the iteration is extrapolated from the per-step times (stated in the output):

    iteration ≈ epochs · steps · t_step + val_batches · t_fwd(cube) + n_subtomos/batch · t_fwd(crop)
    predict   ≈ n_tiles · t_fwd(tile)

Run: ``python benchmarks/bench_isonet.py [--threads 2] [--paper-batch 2]`` (a few minutes).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from wedgebench.config import isonet_settings
from wedgebench.geometry import tilt_angles
from wedgebench.recon.isonet import extract, predict, refine
from wedgebench.recon.isonet.rotations import cube_wedge, isonet_rotations, make_pairs

REPO = Path(__file__).resolve().parents[1]
ANGLES = tilt_angles([-60, 60], 2)


def blob_tomogram(shape, seed=0, density=2e-3):
    """Random Gaussian blobs on a zero background (bright density)."""
    rng = np.random.default_rng(seed)
    vol = np.zeros(shape, np.float32)
    n = max(4, int(density * np.prod(shape)))
    idx = [rng.integers(0, s, n) for s in shape]
    np.add.at(vol, tuple(idx), 1.0)
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(vol, 2.0) + rng.normal(0, 1e-3, shape).astype(np.float32)


def timed(fn, *args, **kwargs):
    """``(result, wall seconds)``; the process CPU seconds are added to ``CPU[0]``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    CPU[0] += time.process_time() - c
    return out, time.perf_counter() - t


CPU = [0.0]


def bench_default(isonet: dict, shapes: dict) -> list[dict]:
    """End-to-end seconds of extract, two refine iterations and predict per dataset shape
    (each dataset with its ``per_dataset`` overrides)."""
    rows = []
    for name, shape in shapes.items():
        cfg = isonet_settings(isonet, name)
        opts = refine.TrainOptions(**refine.train_options(cfg))
        tomo = blob_tomogram(shape)
        CPU[0] = 0.0
        ex, t_ex = timed(extract.extract_subtomos, tomo, cfg["n_subtomos"], cfg["cube_size"],
                         cfg["crop_size"], False, 1, cfg["percentiles"], cfg["mask"])
        r1, t1 = timed(refine.refine_iteration, ex["cubes"], ANGLES, 1, opts, seed=1)
        r2, t2 = timed(refine.refine_iteration, ex["cubes"], ANGLES, 2, opts, filled=r1["filled"],
                       state=r1["state"], seed=1)
        p = cfg["predict"]
        _, t_pred = timed(predict.predict_tomogram, tomo, r2["state"], opts, False, p["tile"],
                          p["overlap"], p["batch_size"])
        total = t_ex + cfg["iterations"] * (t1 + t2) / 2 + t_pred
        cpu = CPU[0] / (t_ex + t1 + t2 + t_pred) * total
        rows.append(dict(dataset=name, shape=shape, iterations=cfg["iterations"], extract_s=t_ex,
                         iter1_s=t1, iter2_s=t2, predict_s=t_pred, steps=r1["history"][0]["steps"],
                         est_total_s=total, est_cpu_s=cpu))
    return rows


def bench_paper(cfg: dict, batch: int, steps: int = 2) -> dict:
    """Per-step and per-forward seconds at the paper's sizes, extrapolated to an iteration."""
    opts = refine.TrainOptions(**refine.train_options(cfg))
    model = refine.build_model(opts)
    optimiser = torch.optim.Adam(model.parameters(), lr=opts.learning_rate)
    crop, cube = opts.crop_size, opts.cube_size
    rng = np.random.default_rng(0)
    cubes = torch.from_numpy(rng.normal(size=(batch, crop, crop, crop)).astype(np.float32))
    mask = torch.from_numpy(cube_wedge(crop, ANGLES, opts.wedge))
    rots = isonet_rotations()

    def step():
        inp, tgt = make_pairs(cubes, rng.integers(0, 20, batch), rots, mask, cube)
        optimiser.zero_grad()
        loss = F.l1_loss(model(inp), tgt)
        loss.backward()
        optimiser.step()

    model.train()
    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    t_step = (time.perf_counter() - t) / steps * (opts.batch_size / batch)

    def forward(size, b):
        model.eval()
        x = torch.randn(b, 1, size, size, size)
        with torch.no_grad():
            model(x)  # warm-up
            t0 = time.perf_counter()
            model(x)
        return time.perf_counter() - t0

    t_fwd_cube = forward(cube, batch) * opts.batch_size / batch
    t_fwd_crop = forward(crop, batch) * opts.batch_size / batch
    t_fwd_tile = forward(cfg["predict"]["tile"], 1)
    n = cfg["n_subtomos"]
    n_steps = max(1, min(int(opts.steps_per_subtomo * n / opts.batch_size), opts.max_steps))
    val_batches = math.ceil(round(opts.val_fraction * n * 20) / opts.batch_size)
    iteration = (opts.epochs * (n_steps * t_step + val_batches * t_fwd_cube)
                 + math.ceil(n / opts.batch_size) * t_fwd_crop)
    # the paper's spheres/shapes volumes: 256 x 1024 x 1024 (z, y, x)
    tile, overlap = cfg["predict"]["tile"], cfg["predict"]["overlap"]
    tiles = np.prod([len(predict.tile_starts(s + 2 * (overlap // 2), tile, overlap))
                     for s in (256, 1024, 1024)])
    return dict(batch_timed=batch, t_step=t_step, t_fwd_cube=t_fwd_cube, t_fwd_crop=t_fwd_crop,
                t_fwd_tile=t_fwd_tile, steps_per_epoch=n_steps, iteration_s=iteration,
                refine_s=iteration * cfg["iterations"], tiles=int(tiles),
                predict_s=float(tiles * t_fwd_tile))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper-batch", type=int, default=2,
                    help="batch actually run at paper size (times scaled to the config's batch)")
    ap.add_argument("--skip-paper", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = dict(default["isonet"])
    paper.update(yaml.safe_load((REPO / "configs" / "isonet_paper.yaml").read_text())["isonet"])
    shapes = {name: tuple(ds["shape"]) for name, ds in default["datasets"].items()}
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings scale with it)")
    print("\n== default sizes (config.yaml), measured end to end ==")
    for r in bench_default(default["isonet"], shapes):
        print(f"{r['dataset']:10s} {str(r['shape']):15s} extract {r['extract_s']:5.2f} s | "
              f"iteration 1 {r['iter1_s']:5.1f} s, 2 {r['iter2_s']:5.1f} s "
              f"({r['steps']} steps/epoch) | predict {r['predict_s']:5.2f} s | "
              f"est. total ({r['iterations']} iterations) "
              f"{r['est_total_s']:6.1f} s wall, {r['est_cpu_s']:6.1f} CPU-s")
    if args.skip_paper:
        return
    print("\n== paper sizes (configs/isonet_paper.yaml), EXTRAPOLATED from a few steps ==")
    p = bench_paper(paper, args.paper_batch)
    print(f"timed at batch {p['batch_timed']}, scaled to batch {paper['batch_size']}: "
          f"train step {p['t_step']:.1f} s, forward cube {p['t_fwd_cube']:.1f} s, "
          f"forward crop {p['t_fwd_crop']:.1f} s, forward {paper['predict']['tile']}³ tile "
          f"{p['t_fwd_tile']:.1f} s")
    print(f"one refine iteration ({paper['epochs']} epochs x {p['steps_per_epoch']} steps, "
          f"{paper['n_subtomos']} subtomograms): ~{p['iteration_s'] / 3600:.1f} h; "
          f"{paper['iterations']} iterations: ~{p['refine_s'] / 3600:.0f} h")
    print(f"predict 256x1024x1024 ({p['tiles']} tiles): ~{p['predict_s'] / 3600:.1f} h")


if __name__ == "__main__":
    main()
