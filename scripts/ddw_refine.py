"""Snakemake entry point: DeepDeWedge's reconstruction, the mean of both refined halves."""
from wedgebench import runlog
from wedgebench.io import read_mrc, read_tlt, write_mrc
from wedgebench.recon.deepdewedge import fit, predict
from wedgebench.recon.deepdewedge.options import options_from_config

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
opts = options_from_config(sm.params.opts)
v0, voxel = read_mrc(sm.input.v0)
v1, _ = read_mrc(sm.input.v1)
state = fit.load_state(sm.input.state)
out = predict.reconstruct(v0, v1, state, read_tlt(sm.input.tlt), opts,
                          device=runlog.pick_device(sm.params.device), log=log,
                          seed=sm.params.seed)
log.info("DeepDeWedge reconstruction %s after %d epochs", out.shape, state["epoch"])
write_mrc(sm.output[0], out, voxel)
