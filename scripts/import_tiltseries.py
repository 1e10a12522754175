"""Snakemake entry point: check a measured tilt stack against its .tlt and copy both."""
from wedgebench import runlog
from wedgebench.io import read_tiltseries, write_mrc, write_tlt

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, pixel = read_tiltseries(sm.input.mrc, sm.input.tlt)
log.info("measured stack %s, %d angles, pixel %.3f Å", stack.shape, angles.size, pixel)
write_tlt(sm.output.tlt, angles)
write_mrc(sm.output.mrc, stack, pixel)
