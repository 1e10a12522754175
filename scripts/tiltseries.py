"""Snakemake entry point: the tilt series every method receives, for one acquisition.

Noise-free acquisitions are simulated here; an acquisition with a model (dose, optics,
ice, misalignment) was simulated by the `acquire` rule and is prepared here (CTF
correction, contrast, normalisation).
"""
import numpy as np

from wedgebench import runlog
from wedgebench.io import read_json, read_mrc, write_mrc, write_tlt
from wedgebench.tiltseries import make_projector, prepare_for_methods, simulate_tiltseries

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
opts = sm.params.opts
angles = np.asarray(sm.params.angles)
if "acquired" in sm.input.keys():
    acquired, voxel = read_mrc(sm.input.acquired)
    meta = read_json(sm.input.meta)
    stack = prepare_for_methods(acquired, angles, voxel, sm.params.acq, meta["potential_scale"],
                                normalise_to_unit=opts["normalise"])
    log.info("prepared the measured-like series (ctf_correction %s)",
             sm.params.acq.get("ctf_correction", "none"))
else:
    vol, voxel = read_mrc(sm.input.gt)
    project = make_projector(vol, opts, sm.params.phantom, sm.params.seed)
    stack = simulate_tiltseries(vol, angles, noise=opts["noise"], project=project,
                                normalise_to_unit=opts["normalise"], seed=sm.params.seed)
log.info("%d tilts from %.1f to %.1f deg, stack %s", angles.size, angles.min(), angles.max(),
         stack.shape)
write_tlt(sm.output.tlt, angles)
write_mrc(sm.output.mrc, stack, voxel)
