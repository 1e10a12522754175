"""Snakemake entry point: build one ground-truth volume."""
from wedgebench import runlog
from wedgebench.io import write_mrc
from wedgebench.phantoms import make_phantom

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
params = dict(sm.params.extra, shape=list(sm.params.shape))
if sm.params.voxel_size is not None:  # else the kind's default (custom: the MRC header)
    params["voxel_size"] = sm.params.voxel_size
vol, voxel = make_phantom(sm.params.kind, params, seed=sm.params.seed)
log.info("phantom %s: shape %s, voxel %.3f Å, range [%.3g, %.3g]", sm.params.kind,
         vol.shape, voxel, vol.min(), vol.max())
write_mrc(sm.output[0], vol, voxel)
