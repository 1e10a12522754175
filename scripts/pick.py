"""Snakemake entry point: every class picked in one reconstruction (pytme, as a program)."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.downstream.run import pick_classes

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
picks = pick_classes(sm.input.tomo, Path(sm.input.catalogue).parent, sm.input.tlt,
                     sm.output[0], dict(sm.params.settings, threads=sm.threads),
                     log=sm.log[0])
log.info("%d picks: %s", len(picks),
         picks["wbClassName"].value_counts().to_dict() if len(picks) else {})
