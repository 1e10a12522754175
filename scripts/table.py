"""Snakemake entry point: Table 1 from every metrics JSON: per replicate, and over
replicates with 95 % intervals and paired verdicts (CSV and Markdown)."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.io import atomic_path, read_json
from wedgebench.report.table import build_table1, summarise, summary_markdown

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
methods = sm.params.methods  # name -> {kind, variant_of, family, budget}, registry order
records = []
for path in sm.input:
    m = read_json(path)
    records.append({"dataset": m["dataset"], "acquisition": m["acquisition"],
                    "method": m["method"], "replicate": m.get("replicate", 1),
                    "shape": m.get("shape"),
                    **methods[m["method"]], "metrics": m,
                    "runtime_s": m["runtime_s"], "wall_s": m["wall_s"],
                    "cpu_s": m.get("cpu_s")})
table = build_table1(records, order=list(methods))
summary = summarise(table)
log.info("table 1 (%d replicate rows):\n%s", len(table), summary.to_string())
with atomic_path(sm.output.replicates) as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(sm.output.csv) as tmp:
    summary.to_csv(tmp, index=False)
with atomic_path(sm.output.md) as tmp:
    Path(tmp).write_text(summary_markdown(summary))
