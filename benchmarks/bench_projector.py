"""Seconds to project a 256 x 256 x 64 (x, y, z) volume at 61 tilts, both projectors.

Run: python benchmarks/bench_projector.py [--repeats 3]
Prints median seconds of the simulation projector (ray-driven, oversampled) and of the
reconstruction projector (sparse linear splatting; matrix build and product separately).
"""
import argparse
import time

import numpy as np
import torch

from wedgebench.geometry import tilt_angles
from wedgebench.projector import Projector
from wedgebench.tiltseries import simulate_projections


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    vol = rng.random((64, 256, 256), dtype=np.float32)
    angles = tilt_angles([-60, 60], 2)
    t_sim = median_time(lambda: simulate_projections(vol, angles, oversampling=3), args.repeats)
    t_build = median_time(lambda: Projector(64, 256, angles), args.repeats)
    p = Projector(64, 256, angles)
    tv = torch.from_numpy(vol)
    with torch.no_grad():
        t_fwd = median_time(lambda: p.forward(tv), args.repeats)
        sino = p.forward(tv)
        t_adj = median_time(lambda: p.adjoint(sino), args.repeats)
    print(f"volume 256x256x64 (x, y, z), 61 tilts, {args.threads} threads, "
          f"median of {args.repeats}")
    print(f"simulation projector (3 sub-rays/pixel, 0.5-voxel steps): {t_sim:8.2f} s")
    print(f"reconstruction projector: build {t_build:.2f} s, forward {t_fwd:.3f} s, "
          f"adjoint {t_adj:.3f} s")


if __name__ == "__main__":
    main()
