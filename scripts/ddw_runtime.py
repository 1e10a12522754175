"""Snakemake entry point: DeepDeWedge's runtime = the sum of its jobs' benchmark seconds."""
from wedgebench import runlog
from wedgebench.io import write_json
from wedgebench.metrics.run import read_runtime

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
runtime = read_runtime(list(sm.input))
log.info("%d DeepDeWedge jobs (halves, extract, fit blocks, refine): %s", len(sm.input),
         runtime)
write_json(sm.output[0], runtime)
