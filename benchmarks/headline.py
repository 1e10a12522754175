"""The README's headline Table 1: a compact view of a finished run's ``table1.csv``.

One row per dataset × method (one acquisition), the mean of PSNR, SSIM, VIF, the FSC areas
(missing and present region) and runtime with their 95 % interval as ``mean ± half-width``,
**bold** where the method is best with every paired interval excluding 0, ``=`` where it
ties with the best (its paired interval includes 0), ⚠ where it lost measured information.
Every other metric and both conventions stay in ``results/report/table1.md``.

    python benchmarks/headline.py results/report/table1.csv
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

COLUMNS = {"PSNR": ("PSNR (dB)", ".2f"), "SSIM": ("SSIM", ".3f"), "VIF": ("VIF", ".3f"),
           "fsc_missing_auc": ("FSC area missing", ".2f"),
           "fsc_present_auc": ("FSC area present", ".2f"),
           "runtime_min": ("runtime (min)", ".2g")}


def cell(row: pd.Series, metric: str, fmt: str) -> str:
    """``mean ± half-width`` with the verdict mark of ``metric`` in ``row``."""
    mean, low, high = (row.get(f"{metric}_{k}") for k in ("mean", "low", "high"))
    if mean is None or not np.isfinite(mean):
        return "–"
    text = format(mean, fmt)
    if np.isfinite(low) and np.isfinite(high):
        text += f" ± {format((high - low) / 2, fmt)}"
    mark = row.get(f"{metric}_mark")
    return f"**{text}**" if mark == "best" else f"= {text}" if mark == "tie" else text


def headline(summary: pd.DataFrame) -> str:
    """Markdown of the compact table (see the module docstring)."""
    cols = [m for m in COLUMNS if f"{m}_mean" in summary.columns]
    lines = ["| dataset | method | n | " + " | ".join(COLUMNS[m][0] for m in cols) + " |",
             "|:---|:---|---:|" + "---:|" * len(cols)]
    for _, row in summary.iterrows():
        name = row["method"] + (" ⚠" if row.get("lost_measured") is True
                                or row.get("lost_measured") == "True" else "")
        cells = [cell(row, m, COLUMNS[m][1]) for m in cols]
        lines.append(f"| {row['dataset']} | {name} | {int(row['n'])} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="results/report/table1.csv of a finished run")
    ap.add_argument("--acquisition", help="one acquisition label (default: each dataset's first)")
    args = ap.parse_args(argv)
    df = pd.read_csv(args.table)
    if args.acquisition:
        df = df[df["acquisition"] == args.acquisition]
    else:
        first = df.groupby("dataset", sort=False)["acquisition"].transform("first")
        df = df[df["acquisition"] == first]
    if df.empty:
        sys.exit(f"{args.table}: no rows for that acquisition")
    print(headline(df))


if __name__ == "__main__":
    main()
