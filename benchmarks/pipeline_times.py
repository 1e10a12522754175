"""Seconds and peak memory per job of a finished run, from its Snakemake benchmark files:
the median seconds per rule step, the job count, the sum, and the largest peak RSS (MB),
for comparing runs.

Run: ``python benchmarks/pipeline_times.py [RESULTS_DIR]`` (default ``results``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd


def job_times(results: Path) -> pd.DataFrame:
    """One row per benchmark file: dataset, method (or ``-``), step, seconds."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = tsv.relative_to(results / "benchmarks").parts
        dataset = parts[0]
        step = re.sub(r"_\d+$", "", tsv.stem)  # refine_3 -> refine, chunk_1 -> chunk
        parent = parts[-2] if len(parts) > 1 else ""
        is_method = len(parts) > 2 and not re.match(r"(tilt|measured|rep\d)", parent)
        method = parent if is_method else "-"
        bench = pd.read_csv(tsv, sep="\t")
        rss = pd.to_numeric(bench.get("max_rss", pd.Series([float("nan")])), errors="coerce")
        rows.append({"dataset": dataset, "method": method, "step": step,
                     "s": float(bench["s"].mean()), "max_rss_MB": float(rss.max())})
    return pd.DataFrame(rows)


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    df = job_times(results)
    if df.empty:
        sys.exit(f"no benchmark files under {results / 'benchmarks'}")
    table = df.groupby(["method", "step"]).agg(
        count=("s", "size"), median=("s", "median"), sum=("s", "sum"),
        max_rss_MB=("max_rss_MB", "max")).round(2).reset_index()
    print(table.to_string(index=False))
    print(f"\n{len(df)} timed jobs, {df['s'].sum():.0f} s in all")


if __name__ == "__main__":
    main()
