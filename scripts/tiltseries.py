"""Snakemake entry point: simulate the tilt series of one acquisition."""
import numpy as np

from wedgebench import runlog
from wedgebench.io import read_mrc, write_mrc, write_tlt
from wedgebench.tiltseries import simulate_tiltseries

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
vol, voxel = read_mrc(sm.input[0])
opts = sm.params.opts
angles = np.asarray(sm.params.angles)
stack = simulate_tiltseries(vol, angles, oversampling=opts["oversampling"],
                            step=opts["ray_step"], noise=opts["noise"],
                            normalise_to_unit=opts["normalise"], seed=sm.params.seed)
log.info("%d tilts from %.1f to %.1f deg, stack %s", angles.size, angles.min(), angles.max(),
         stack.shape)
write_tlt(sm.output.tlt, angles)
write_mrc(sm.output.mrc, stack, voxel)
