"""Snakemake entry point: the downstream table over replicates, its agreement with the
voxel metrics' ranking, and the F-beta and resolution figures."""
import pandas as pd

from wedgebench import runlog
from wedgebench.io import read_json
from wedgebench.report.downstream import write_downstream_report

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
records = [read_json(p) for p in sm.input.scores]
written = write_downstream_report(records, pd.read_csv(sm.input.table1), sm.output[0])
log.info("wrote %s", [str(p) for p in written])
