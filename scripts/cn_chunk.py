"""Snakemake entry point: fit the slabs of one CN chunk, starting from the anchor's weights.

Sequentially, each slab warm-started from its neighbour (``cn.warm_start: neighbour``) or
from the anchor (``anchor``); with ``cn.ensemble: true`` all the chunk's slabs together as
a batched ensemble, each from the anchor's weights (``fit.fit_chunk`` picks the path).
"""
from wedgebench import runlog
from wedgebench.io import read_tiltseries
from wedgebench.recon.cn import fit, model, slabs

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
opts = model.options(sm.params.opts)
stack, angles, _ = read_tiltseries(sm.input.mrc, sm.input.tlt)
fits, state = fit.fit_chunk(stack, angles, sm.params.thickness, opts,
                            int(sm.wildcards.chunk), model.load_weights(sm.input.weights),
                            seed=sm.params.seed, device=runlog.pick_device(sm.params.device),
                            log=log)
log.info("chunk %s: %d slab(s) fitted in %.1f s (%s)", sm.wildcards.chunk, len(fits),
         sum(f.seconds for f in fits), "batched ensemble" if opts["ensemble"] else "sequential")
slabs.save_slabs(sm.output.slabs, fits)
slabs.save_losses(sm.output.loss, fits)
model.save_weights(sm.output.weights, state)
