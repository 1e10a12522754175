"""Snakemake entry point: IMOD-style weighted back-projection of one tilt series."""
from wedgebench import runlog
from wedgebench.io import read_tiltseries, write_mrc
from wedgebench.recon import wbp

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, pixel = read_tiltseries(sm.input.mrc, sm.input.tlt)
vol = wbp.reconstruct(stack, angles, sm.params.thickness, **sm.params.opts)
log.info("WBP volume %s", vol.shape)
write_mrc(sm.output[0], vol, pixel)
