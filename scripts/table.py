"""Snakemake entry point: Table 1 (CSV and Markdown) from every metrics JSON."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.io import atomic_path, read_json
from wedgebench.report.table import build_table1, to_markdown

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
methods = sm.params.methods  # name -> {kind, variant_of}, in the registry's order
records = []
for path in sm.input:
    m = read_json(path)
    records.append({"dataset": m["dataset"], "acquisition": m["acquisition"],
                    "method": m["method"], **methods[m["method"]], "metrics": m,
                    "runtime_s": m["runtime_s"], "wall_s": m["wall_s"]})
table = build_table1(records, order=list(methods))
log.info("table 1:\n%s", table.to_string())
with atomic_path(sm.output.csv) as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(sm.output.md) as tmp:
    Path(tmp).write_text(to_markdown(table) + "\n")
