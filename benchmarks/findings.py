"""Which of the CN paper's Table 1 findings hold in a replicated run, with 95 % confidence.

Every ordering of two of the paper's methods in its Table 1 (per dataset and metric: PSNR,
SSIM, VIF) is a finding, e.g. "on P22, CN has a higher SSIM than IsoNet". For each one this
script pairs the two methods' per-seed values of a finished run (``table1_replicates.csv``;
every method of a replicate sees the same phantom and tilt series), takes the mean paired
difference and its 95 % Student-t interval (:func:`wedgebench.stats.paired_difference`)
and says ``holds`` where the interval excludes 0 on the paper's side, ``reversed`` where it
excludes 0 on the other side, and ``tie`` otherwise (``n < 2``: no interval, ``–``).
Both metric conventions are reported: ``paper`` (the authors' metric code, the one their
numbers use) and ``fair``.

    python benchmarks/findings.py results/report/table1_replicates.csv [--pairs cn:isonet ...]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from wedgebench.report.table import PAPER_ACQUISITION, PAPER_METHODS, PAPER_TABLE1
from wedgebench.stats import paired_difference

#: Metric columns of ``table1_replicates.csv`` per convention (index into the paper's tuple).
CONVENTIONS = {"paper": {"PSNR": "paper_conv_PSNR", "SSIM": "paper_conv_SSIM",
                         "VIF": "paper_conv_VIF"},
               "fair": {"PSNR": "PSNR", "SSIM": "SSIM", "VIF": "VIF"}}
METRICS = ("PSNR", "SSIM", "VIF")

#: The findings the paper draws (CN against every other method, IsoNet against both
#: classic baselines), as (a, b) method kinds: the finding is the sign of a − b in its table.
DEFAULT_PAIRS = (("cn", "isonet"), ("cn", "imod_wbp"), ("cn", "eman2_fourier"),
                 ("isonet", "imod_wbp"), ("isonet", "eman2_fourier"),
                 ("eman2_fourier", "imod_wbp"))


def verdict(paper_diff: float, low: float, high: float) -> str:
    """``holds`` / ``reversed`` / ``tie`` of a paper difference against our interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "–"
    if low > 0 or high < 0:
        ours = 1.0 if low > 0 else -1.0
        if paper_diff == 0:
            return "paper: equal"
        return "holds" if np.sign(paper_diff) == ours else "reversed"
    return "tie"


def findings(df: pd.DataFrame, pairs=DEFAULT_PAIRS, acquisition: str = PAPER_ACQUISITION,
             convention: str = "paper", confidence: float = 0.95) -> pd.DataFrame:
    """One row per dataset × pair × metric: the paper's difference, ours and the verdict.

    Parameters
    ----------
    df : DataFrame
        Per-replicate Table 1 (``table1_replicates.csv``).
    pairs : sequence of (str, str)
        Method names (each the kind's own instance) to compare, ``a − b``.
    acquisition : str
        Acquisition label (the paper's is ±60° every 2°).
    convention : {"paper", "fair"}
    confidence : float

    Returns
    -------
    DataFrame
        ``dataset, finding, metric, paper_diff, n, diff, low, high, verdict``.
    """
    cols = CONVENTIONS[convention]
    rows = []
    sub = df[df["acquisition"] == acquisition]
    for dataset, group in sub.groupby("dataset", sort=False):
        wide = {m: g.set_index("replicate") for m, g in group.groupby("method")}
        for a, b in pairs:
            pa, pb = PAPER_METHODS.get(a), PAPER_METHODS.get(b)
            if a not in wide or b not in wide or (dataset, pa) not in PAPER_TABLE1 \
                    or (dataset, pb) not in PAPER_TABLE1:
                continue
            reps = wide[a].index.intersection(wide[b].index)
            for i, metric in enumerate(METRICS):
                va = wide[a].loc[reps, cols[metric]].to_numpy(float)
                vb = wide[b].loc[reps, cols[metric]].to_numpy(float)
                diff, low, high = paired_difference(va, vb, confidence)
                paper_diff = PAPER_TABLE1[(dataset, pa)][i] - PAPER_TABLE1[(dataset, pb)][i]
                rows.append({"dataset": dataset, "finding": f"{pa} − {pb}", "metric": metric,
                             "paper_diff": paper_diff, "n": int(len(reps)), "diff": diff,
                             "low": low, "high": high,
                             "verdict": verdict(paper_diff, low, high)})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Compact markdown: one row per dataset × finding, one column per metric."""
    def cell(r) -> str:
        fmt = ".2f" if r["metric"] == "PSNR" else ".3f"
        ours = format(r["diff"], "+" + fmt)
        if np.isfinite(r["low"]):
            ours += f" [{format(r['low'], '+' + fmt)}, {format(r['high'], '+' + fmt)}]"
        return f"{format(r['paper_diff'], '+' + fmt)} → {ours} **{r['verdict']}**"

    lines = ["| dataset | paper's finding (a − b) | n | " + " | ".join(
        f"{m}: paper → ours" for m in METRICS) + " |", "|---|---|---:|" + "---|" * len(METRICS)]
    for (dataset, finding), g in table.groupby(["dataset", "finding"], sort=False):
        cells = {r["metric"]: cell(r) for _, r in g.iterrows()}
        lines.append(f"| {dataset} | {finding} | {int(g['n'].iloc[0])} | "
                     + " | ".join(cells.get(m, "–") for m in METRICS) + " |")
    counts = table["verdict"].value_counts()
    lines.append("")
    kinds = ["holds", "tie", "reversed"] + [k for k in ("paper: equal", "–") if k in counts]
    lines.append(", ".join(f"{k}: {counts.get(k, 0)}" for k in kinds)
                 + f" of {len(table)} findings")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="results/report/table1_replicates.csv of a finished run")
    ap.add_argument("--pairs", nargs="*", help="a:b method pairs (default: the paper's)")
    ap.add_argument("--acquisition", default=PAPER_ACQUISITION)
    args = ap.parse_args(argv)
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else DEFAULT_PAIRS
    df = pd.read_csv(args.table)
    for convention in CONVENTIONS:
        print(f"\n{convention} convention\n")
        print(markdown(findings(df, pairs, args.acquisition, convention)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
