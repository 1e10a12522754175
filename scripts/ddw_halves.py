"""Snakemake entry point: DeepDeWedge's half tomograms v0, v1 by our WBP (even/odd tilts or
even/odd frames)."""
from wedgebench import runlog
from wedgebench.io import read_mrc, read_tiltseries, read_tlt, write_mrc
from wedgebench.recon.deepdewedge import halves

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
if p.split == "frames":
    even, voxel = read_mrc(sm.input.even)
    odd, _ = read_mrc(sm.input.odd)
    angles = read_tlt(sm.input.tlt)
    v0, v1 = halves.frame_half_tomograms(even, odd, angles, p.thickness, p.wbp)
    log.info("halves from the even/odd frames of %d tilts %s", angles.size, even.shape)
else:
    stack, angles, voxel = read_tiltseries(sm.input.mrc, sm.input.tlt)
    v0, v1 = halves.tilt_half_tomograms(stack, angles, p.thickness, p.wbp)
    log.info("halves from the even/odd tilts of %d tilts %s", angles.size, stack.shape)
log.info("half tomograms %s (WBP %s)", v0.shape, p.wbp)
write_mrc(sm.output.v0, v0, voxel)
write_mrc(sm.output.v1, v1, voxel)
