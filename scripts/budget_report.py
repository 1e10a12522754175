"""Snakemake entry point: quality against compute of the budget ladders (tables, figures)."""

import pandas as pd

from wedgebench import runlog
from wedgebench.report.budget import write_budget_report

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
table = pd.read_csv(sm.input[0])
written = write_budget_report(table, sm.output[0], sm.params.cpu_minutes, sm.params.targets)
log.info("wrote %s", [str(p) for p in written])
