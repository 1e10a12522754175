"""Snakemake entry point: EMAN2-style direct Fourier inversion of one tilt series."""
from wedgebench import runlog
from wedgebench.io import read_tiltseries, write_mrc
from wedgebench.recon import fourier

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, pixel = read_tiltseries(sm.input.mrc, sm.input.tlt)
vol = fourier.reconstruct(stack, angles, sm.params.thickness, voxel_size=pixel,
                          **sm.params.opts)
log.info("Fourier-inversion volume %s", vol.shape)
write_mrc(sm.output[0], vol, pixel)
