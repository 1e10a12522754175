"""Snakemake entry point: Figure 5-style metric-versus-tilt-scheme plots of one dataset."""

import pandas as pd

from wedgebench import runlog
from wedgebench.io import read_json
from wedgebench.report.figures import sweep_figures

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
rows = [read_json(p) for p in sm.input]
written = sweep_figures(pd.DataFrame(rows), sm.output[0], sm.wildcards.dataset)
log.info("wrote %s", written)
