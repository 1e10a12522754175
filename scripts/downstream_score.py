"""Snakemake entry point: one reconstruction's picks scored and its particles averaged."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.downstream.run import score_and_average, write_record

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
record = score_and_average(sm.input.tomo, Path(sm.input.catalogue).parent, sm.input.picks,
                           sm.input.tlt, sm.params.settings)
log.info("downstream summary: %s", record["summary"])
write_record(sm.output[0], record, sm.params.info)
