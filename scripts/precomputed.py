"""Snakemake entry point: check a tomogram reconstructed elsewhere and score it like ours."""
from wedgebench import runlog
from wedgebench.io import read_mrc, write_json, write_mrc
from wedgebench.recon import external

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
pixel = read_mrc(sm.input.mrc)[1]
vol, voxel = external.load_checked(p.method, sm.input.tomogram, p.shape)
if voxel and abs(voxel - pixel) > 1e-3 * pixel:
    log.warning("method %s: %s has voxel size %.4g Å, the tilt series %.4g Å (using the "
                "tilt series')", p.method, sm.input.tomogram, voxel, pixel)
log.info("method %s: %s checked (shape %s)", p.method, sm.input.tomogram, vol.shape)
write_mrc(sm.output.mrc, vol, pixel)
write_json(sm.output.runtime, {"runtime_s": p.runtime_s, "wall_s": p.runtime_s})
