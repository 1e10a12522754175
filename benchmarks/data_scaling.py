"""Choose the learned methods' budget-that-grows-with-the-data rules (``scale_with_data``)
on validation seeds.

The CPU sweep's P22 (96³ at 8 Å, ``configs/sweep_cpu.yaml``) flags CN ⚠ at every
acquisition: its present-region FSC area falls more than 0.25 (Table 1's margin) below
WBP's, because the default (3 × 64 SIREN, 8-slice slabs, 300/150 iterations) was sized for
config.yaml's 64³ P22, whose slabs have 2.25× fewer voxels (``cn_capacity.py``); IsoNet's
default (64 subtomograms, 20 refine iterations for P22) was sized for the same 64³
tomogram, 3.375× fewer voxels. This script runs one method on that P22 on validation seeds
(1001–1003 by default, never Table 1's) under candidate rules — the method's scaled
settings multiplied by ``(fitted voxels / reference voxels)^exponent``
(:func:`wedgebench.budgets.apply_data_scaling`) — beside WBP of the same volume, and
applies one fixed rule: **the cheapest candidate (CPU seconds) whose present-region FSC gap
to WBP is below the 0.25 margin at the upper end of its 95 % interval over seeds** becomes
the default; with none, the largest.

* ``--method cn``: CN's anchor slab of the central rows (data and metric code as in
  ``cn_capacity.py``); exponents of ``iterations`` and ``width``; reference: one 64·8·64 slab.
* ``--method isonet``: IsoNet (extract, refine, predict in one process, as
  ``isonet_quality.py``) on the whole WBP tomogram; exponents of ``n_subtomos`` and
  ``iterations``; reference: the 64³ tomogram.

Candidates run in the listed order (the first is the default: every exponent 0); every
other candidate only adds work to the default, so when the default meets the rule it is the
choice and the others are run only with ``--all``.

    python benchmarks/data_scaling.py [--method cn] [--seeds 1001 1002 1003]   # ~25 min
    python benchmarks/data_scaling.py --method isonet [--all]                  # ~10 min
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_cn import load_cn_configs  # noqa: E402
from cn_capacity import ROWS, scores, series  # noqa: E402
from tune import base_config, wbp_options, write_between_markers  # noqa: E402

from wedgebench.report.table import LOST_MARGIN  # noqa: E402
from wedgebench.stats import mean_ci  # noqa: E402

SIZE = (96, 8.0, 24.0)   # the CPU sweep's P22: box, voxel Å, low-pass Å
#: per method: reference voxels, rows of the volume fitted (None: all), the settings shown
#: and the candidate exponents (the default first)
METHODS = {
    "cn": {"reference": 64 * 8 * 64, "rows": ROWS, "shown": ("width", "anchor_iterations"),
           "candidates": [{"iterations": 0.0, "width": 0.0}, {"iterations": 1.0, "width": 0.0},
                          {"iterations": 1.0, "width": 0.5},
                          {"iterations": 1.0, "width": 0.855}]},
    "isonet": {"reference": 64 ** 3, "rows": None, "shown": ("n_subtomos", "iterations"),
               "candidates": [{"n_subtomos": 0.0, "iterations": 0.0},
                              {"n_subtomos": 0.0, "iterations": 1.0},
                              {"n_subtomos": 1.0, "iterations": 0.0}]},
}


def label(exponents: dict) -> str:
    """``iterations^1, width^0.855``."""
    return ", ".join(f"{k}^{v:g}" for k, v in exponents.items())


def settings(method: str, base: dict) -> dict:
    """The method's default settings for the P22 (config.yaml, ``per_dataset`` merged)."""
    if method == "cn":
        return dict(load_cn_configs()[0], log_every=0)
    from wedgebench.config import isonet_settings

    return isonet_settings(base["isonet"], "p22")


def reconstruct(method: str, stack, tomo, angles, box: int, cfg: dict, seed: int):
    """One reconstruction of ``method`` with settings ``cfg``: CN's anchor slab from the tilt
    series, IsoNet from the WBP tomogram."""
    if method == "cn":
        from wedgebench.recon.cn import fit
        from wedgebench.recon.cn.slabs import postprocess

        _, anchor, _ = fit.fit_anchor(stack, angles, box, cfg, seed=seed)
        return postprocess(anchor.volume, cfg["output"])
    from isonet_quality import reconstruct as isonet

    return isonet(tomo, angles, cfg, seed)


def run(method: str, seeds, threads: int, every: bool = False) -> pd.DataFrame:
    """One row per seed for WBP, then per candidate and seed (see the module docstring)."""
    import torch

    from wedgebench.budgets import apply_data_scaling
    from wedgebench.recon import wbp

    torch.set_num_threads(threads)
    spec, base = METHODS[method], base_config({})
    default = settings(method, base)
    box, voxel, resolution = SIZE
    data, rows = {}, []
    for seed in seeds:
        gt, stack, angles = series(box, voxel, resolution, seed, base, spec["rows"])
        rec = wbp.reconstruct(stack, angles, box, **wbp_options(base))
        data[seed] = gt, stack, angles, rec
        rows.append(dict(seed=seed, candidate="WBP (reference)", **scores(gt, rec, voxel,
                                                                           angles)))
    for i, exponents in enumerate(spec["candidates"]):
        rule = {"reference_voxels": spec["reference"], **exponents}
        cfg = apply_data_scaling(method, dict(default, scale_with_data=rule), (box, box, box))
        for seed, (gt, stack, angles, rec) in data.items():
            c0 = time.process_time()
            vol = reconstruct(method, stack, rec, angles, box, cfg, seed)
            cpu = time.process_time() - c0
            rows.append(dict(seed=seed, candidate=label(exponents),
                             **{k: cfg[k] for k in spec["shown"]},
                             **scores(gt, vol, voxel, angles), cpu_s=cpu))
            print(rows[-1], flush=True)
        if i == 0 and not every and choose(pd.DataFrame(rows), spec["shown"])[0] == label(
                exponents):
            break  # the default meets the rule: no other candidate can be cheaper
    return pd.DataFrame(rows)


def choose(df: pd.DataFrame, shown=METHODS["cn"]["shown"]) -> tuple[str, pd.DataFrame]:
    """Per candidate: its scaled ``shown`` settings, means with intervals, the present-FSC
    gap to WBP (paired over seeds), and the rule's choice."""
    wbp_present = df[df.candidate == "WBP (reference)"].set_index("seed")["FSC present"]
    rows = []
    for cand, g in df[df.candidate != "WBP (reference)"].groupby("candidate", sort=False):
        g = g.set_index("seed")
        gap = wbp_present.reindex(g.index) - g["FSC present"]
        row = {"candidate": cand, **{k.replace("_", " "): int(g[k].iloc[0]) for k in shown}}
        for col in ("PSNR", "SSIM", "VIF", "FSC present", "FSC missing", "cpu_s"):
            m, lo, hi = mean_ci(g[col])
            row[col] = f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        m, lo, hi = mean_ci(gap)
        row["gap to WBP (present)"] = f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        row["_ok"], row["_cpu"] = bool(hi < LOST_MARGIN), float(g["cpu_s"].mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[table["_ok"]]
    choice = (ok.loc[ok["_cpu"].idxmin(), "candidate"] if len(ok)
              else table.loc[table["_cpu"].idxmax(), "candidate"])
    return choice, table[[c for c in table.columns if not c.startswith("_")]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=sorted(METHODS), default="cn")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002, 1003])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--all", action="store_true",
                    help="run every candidate even when the default meets the rule")
    ap.add_argument("--readme", default=str(REPO / "benchmarks" / "README.md"))
    args = ap.parse_args()
    if min(args.seeds) <= 1000:
        raise SystemExit("data_scaling.py: use validation seeds (> 1000), never Table 1's")
    t0 = time.perf_counter()
    spec = METHODS[args.method]
    df = run(args.method, args.seeds, args.threads, args.all)
    choice, table = choose(df, spec["shown"])
    wbp = df[df.candidate == "WBP (reference)"]
    what = (f"CN's anchor slab of the central {ROWS} rows" if args.method == "cn"
            else "IsoNet on the whole WBP tomogram")
    text = (f"P22 {SIZE[0]}³ at {SIZE[1]:g} Å (the CPU sweep's), validation seeds "
            f"{', '.join(map(str, args.seeds))}; {what} (seeded), "
            f"{args.threads} threads; reference size {spec['reference']} voxels; WBP of the "
            f"same volume: PSNR {wbp['PSNR'].mean():.3f}, FSC present "
            f"{wbp['FSC present'].mean():.3f}. Rule: the cheapest candidate whose present-FSC "
            f"gap to WBP stays below {LOST_MARGIN:g} at the upper end of its interval → "
            f"**{choice}**. Run time {time.perf_counter() - t0:.0f} s.\n\n"
            + table.to_markdown(index=False))
    print(text)
    marker = "data-scaling" if args.method == "cn" else f"data-scaling-{args.method}"
    write_between_markers(Path(args.readme), text, marker)


if __name__ == "__main__":
    main()
