"""Choose CN's budget-that-grows-with-the-data rule (``cn.scale_with_data``) on validation seeds.

The CPU sweep's P22 (96³ at 8 Å, ``configs/sweep_cpu.yaml``) flags CN ⚠ at every
acquisition: its present-region FSC area falls more than 0.25 (Table 1's margin) below
WBP's, because the default (3 × 64 SIREN, 8-slice slabs, 300/150 iterations) was sized for
config.yaml's 64³ P22, whose slabs have 2.25× fewer voxels (``cn_capacity.py``). This
script fits CN's anchor slab of that P22 on validation seeds (1001–1003 by default, never
Table 1's) under candidate rules — the iterations and the width multiplied by
``(slab voxels / 64·8·64)^exponent`` — beside WBP of the same rows, and applies one fixed
rule: **the cheapest candidate (CPU seconds) whose present-region FSC gap to WBP is below
the 0.25 margin at the upper end of its 95 % interval over seeds** becomes the default;
with none, the largest. Anchor slab, data and metric code as in ``cn_capacity.py``.

    python benchmarks/data_scaling.py [--seeds 1001 1002 1003]       # ~1 h on 2 cores
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

REFERENCE = 64 * 8 * 64  # config.yaml's P22: 64³, 8-slice slabs
SIZE = (96, 8.0, 24.0)   # the CPU sweep's P22: box, voxel Å, low-pass Å
#: candidate (iterations exponent, width exponent)
CANDIDATES = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (1.0, 0.855)]


def rule(it: float, width: float) -> dict:
    return {"reference_voxels": REFERENCE, "iterations": it, "width": width}


def run(seeds, threads: int) -> pd.DataFrame:
    import torch

    from wedgebench.budgets import apply_data_scaling
    from wedgebench.recon import wbp
    from wedgebench.recon.cn import fit
    from wedgebench.recon.cn.slabs import postprocess

    torch.set_num_threads(threads)
    base = base_config({})
    cn = dict(load_cn_configs()[0], log_every=0)
    box, voxel, resolution = SIZE
    rows = []
    for seed in seeds:
        gt, stack, angles = series(box, voxel, resolution, seed, base)
        rec = wbp.reconstruct(stack, angles, box, **wbp_options(base))
        rows.append(dict(seed=seed, candidate="WBP (reference)", **scores(gt, rec, voxel,
                                                                           angles)))
        for it, width in CANDIDATES:
            cfg = apply_data_scaling("cn", dict(cn, scale_with_data=rule(it, width)),
                                     (box, box, box))
            c0 = time.process_time()
            _, anchor, _ = fit.fit_anchor(stack, angles, box, cfg, seed=seed)
            cpu = time.process_time() - c0
            vol = postprocess(anchor.volume, cn["output"])
            rows.append(dict(seed=seed, candidate=f"iterations^{it:g}, width^{width:g}",
                             width=cfg["width"], anchor_iterations=cfg["anchor_iterations"],
                             **scores(gt, vol, voxel, angles), cpu_s=cpu))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def choose(df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Per candidate: means with intervals, the present-FSC gap to WBP (paired over
    seeds), and the rule's choice."""
    wbp_present = df[df.candidate == "WBP (reference)"].set_index("seed")["FSC present"]
    rows = []
    for cand, g in df[df.candidate != "WBP (reference)"].groupby("candidate", sort=False):
        g = g.set_index("seed")
        gap = wbp_present.reindex(g.index) - g["FSC present"]
        row = {"candidate": cand, "width": int(g["width"].iloc[0]),
               "anchor iterations": int(g["anchor_iterations"].iloc[0])}
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002, 1003])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--readme", default=str(REPO / "benchmarks" / "README.md"))
    args = ap.parse_args()
    if min(args.seeds) <= 1000:
        raise SystemExit("data_scaling.py: use validation seeds (> 1000), never Table 1's")
    t0 = time.perf_counter()
    df = run(args.seeds, args.threads)
    choice, table = choose(df)
    wbp = df[df.candidate == "WBP (reference)"]
    text = (f"P22 {SIZE[0]}³ at {SIZE[1]:g} Å (the CPU sweep's), central {ROWS} rows, "
            f"validation seeds {', '.join(map(str, args.seeds))}; CN's anchor slab from a "
            f"seeded random start, {args.threads} threads; WBP of the same rows: PSNR "
            f"{wbp['PSNR'].mean():.3f}, FSC present {wbp['FSC present'].mean():.3f}. "
            f"Rule: the cheapest candidate whose present-FSC gap to WBP stays below "
            f"{LOST_MARGIN:g} at the upper end of its interval → **{choice}**. "
            f"Run time {time.perf_counter() - t0:.0f} s.\n\n"
            + table.to_markdown(index=False))
    print(text)
    write_between_markers(Path(args.readme), text, "data-scaling")


if __name__ == "__main__":
    main()
