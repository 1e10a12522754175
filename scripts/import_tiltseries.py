"""Snakemake entry point: check a measured tilt stack against its .tlt, copy it (or half)."""
from wedgebench import runlog
from wedgebench.io import write_mrc, write_tlt
from wedgebench.tiltseries import load_measured

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, pixel = load_measured(sm.input.mrc, sm.input.tlt, sm.params.shape,
                                     subset=sm.params.subset)
log.info("measured stack %s (%s tilts), pixel %.3f Å", stack.shape, sm.params.subset, pixel)
write_tlt(sm.output.tlt, angles)
write_mrc(sm.output.mrc, stack, pixel)
