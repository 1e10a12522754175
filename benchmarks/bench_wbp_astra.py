"""Classic baselines: our WBP (filter=ramp) against ASTRA's CPU FBP, and timings.

1. Agreement and speed against ASTRA toolbox: the same simulated ±60°/2° tilt
   series is reconstructed by ``wedgebench.recon.wbp.reconstruct(filter="ramp")``
   and by ASTRA's 2-D parallel-beam ``FBP`` (ram-lak, ``linear`` projector),
   one y-slice at a time. ASTRA's volume rows are our z (its angle sign and
   detector direction then agree with ``u = xc·cosθ − zc·sinθ``; a check with
   the opposite sign is printed too). ASTRA's FBP assumes 180° of data, so its
   result is multiplied by ``N·Δθ/π`` before comparing amplitudes. Reported:
   Pearson correlation over the volume, the lowest per-slice correlation, the
   amplitude ratio (least-squares slope), and the wall-time ratio ours/ASTRA
   (median of repeats; both single-threaded, set-up included on both sides).
2. Wall time of both baselines on the default dataset sizes with 61 tilts.

Run: ``python benchmarks/bench_wbp_astra.py [--quick]`` (about 2 minutes; the
64×256×256 case dominates).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wedgebench.projector import Projector
from wedgebench.recon import fourier, wbp
from wedgebench.tiltseries import simulate_projections


def sphere_phantom(shape, n=40, seed=0) -> np.ndarray:
    """Random soft-edged spheres of random densities inside a slab of ``shape``."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    vol = np.zeros(shape, np.float32)
    for _ in range(n):
        r = rng.uniform(2, max(3, nz / 5))
        c = [rng.uniform(r, s - r) for s in shape]
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        vol += rng.uniform(0.3, 1.0) * 0.5 * (1 - np.tanh((d - r) / 0.8))
    return vol


def astra_fbp(stack: np.ndarray, angles_deg, nz: int, sign: float = 1.0) -> np.ndarray:
    """ASTRA CPU FBP (ram-lak), one y-slice at a time, scaled by N·Δθ/π."""
    import astra

    nt, ny, nx = stack.shape
    vg = astra.create_vol_geom(nz, nx)
    pg = astra.create_proj_geom("parallel", 1.0, nx, sign * np.deg2rad(angles_deg))
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, 0)
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid,
               option={"FilterType": "ram-lak"})
    aid = astra.algorithm.create(cfg)
    out = np.empty((nz, ny, nx), np.float32)
    try:
        for iy in range(ny):
            astra.data2d.store(sid, stack[:, iy, :])
            astra.algorithm.run(aid)
            out[:, iy, :] = astra.data2d.get_shared(rid)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)
    dtheta = np.deg2rad(np.mean(np.diff(np.sort(angles_deg))))
    return out * (len(angles_deg) * dtheta / np.pi)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), res


def compare_with_astra(shape, angles, repeats):
    vol = sphere_phantom(shape)
    t0 = time.perf_counter()
    stack = simulate_projections(vol, angles)
    t_sim = time.perf_counter() - t0
    nz = shape[0]
    t_ours, ours = median_time(lambda: wbp.reconstruct(stack, angles, nz, filter="ramp"),
                               repeats)
    proj = Projector(nz, shape[2], angles)
    t_cached, _ = median_time(
        lambda: wbp.reconstruct(stack, angles, nz, filter="ramp", projector=proj), repeats)
    t_astra, ref = median_time(lambda: astra_fbp(stack, angles, nz), repeats)
    flipped = astra_fbp(stack, angles, nz, sign=-1.0)
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    per_slice = [np.corrcoef(ours[:, i].ravel(), ref[:, i].ravel())[0, 1]
                 for i in range(shape[1]) if ref[:, i].std() > 0]
    slope = float(np.dot(ours.ravel(), ref.ravel()) / np.dot(ours.ravel(), ours.ravel()))
    corr_flip = np.corrcoef(ours.ravel(), flipped.ravel())[0, 1]
    return dict(shape="x".join(map(str, shape)), corr=corr, min_slice=min(per_slice),
                slope=slope, corr_wrong_sign=corr_flip, t_ours=t_ours, t_cached=t_cached,
                t_astra=t_astra, ratio=t_ours / t_astra, ratio_cached=t_cached / t_astra,
                t_sim=t_sim)


def time_methods(shape, angles, repeats):
    vol = sphere_phantom(shape)
    stack = simulate_projections(vol, angles)
    nz = shape[0]
    t_w, _ = median_time(lambda: wbp.reconstruct(stack, angles, nz), repeats)
    t_f, _ = median_time(lambda: fourier.reconstruct(stack, angles, nz, voxel_size=10.0),
                         repeats)
    return t_w, t_f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 64x256x256 case")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    angles = np.arange(-60, 60 + 1e-9, 2.0)

    shapes = [(32, 96, 96)] + ([] if args.quick else [(64, 256, 256)])
    print(f"WBP (filter=ramp) vs ASTRA FBP ram-lak, ±60° step 2° ({angles.size} tilts), "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"{'volume':>11} {'corr':>7} {'min/slice':>9} {'slope':>6} {'corr(-θ)':>8} "
          f"{'ours s':>7} {'cached s':>8} {'ASTRA s':>7} {'ratio':>6} {'ratio*':>6}")
    for shape in shapes:
        r = compare_with_astra(shape, angles, args.repeats)
        print(f"{r['shape']:>11} {r['corr']:7.4f} {r['min_slice']:9.4f} {r['slope']:6.3f} "
              f"{r['corr_wrong_sign']:8.3f} {r['t_ours']:7.3f} {r['t_cached']:8.3f} "
              f"{r['t_astra']:7.3f} {r['ratio']:6.2f} {r['ratio_cached']:6.2f}")
    print("ratio = ours/ASTRA wall time; ratio* = with a reused Projector; "
          "slope = least-squares ASTRA·NΔθ/π ≈ slope·ours")

    print(f"\nBaseline wall time, {angles.size} tilts, median of {args.repeats} "
          f"({args.threads} thread(s))")
    print(f"{'volume':>11} {'imod_wbp s':>10} {'eman2_fourier s':>15}")
    for shape in [(32, 96, 96), (64, 64, 64), (48, 48, 48)]:
        t_w, t_f = time_methods(shape, angles, args.repeats)
        print(f"{'x'.join(map(str, shape)):>11} {t_w:10.3f} {t_f:15.3f}")


if __name__ == "__main__":
    main()
