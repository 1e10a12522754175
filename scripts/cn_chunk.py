"""Snakemake entry point: fit the slabs of one CN chunk, warm-started from the anchor."""
from wedgebench import runlog
from wedgebench.io import read_tiltseries
from wedgebench.recon.cn import fit, model, slabs

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, _ = read_tiltseries(sm.input.mrc, sm.input.tlt)
fits, state = fit.fit_chunk(stack, angles, sm.params.thickness, sm.params.opts,
                            int(sm.wildcards.chunk), model.load_weights(sm.input.weights),
                            seed=sm.params.seed, device=runlog.pick_device(sm.params.device),
                            log=log)
log.info("chunk %s: %d slab(s) fitted in %.1f s", sm.wildcards.chunk, len(fits),
         sum(f.seconds for f in fits))
slabs.save_slabs(sm.output.slabs, fits)
slabs.save_losses(sm.output.loss, fits)
model.save_weights(sm.output.weights, state)
