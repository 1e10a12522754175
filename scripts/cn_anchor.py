"""Snakemake entry point: fit the CN anchor (middle) slab from a random initialisation, then
the lead slabs below it with ``cn.chain_start: authors``."""
from wedgebench import runlog
from wedgebench.io import read_tiltseries
from wedgebench.recon.cn import fit, model, slabs

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, _ = read_tiltseries(sm.input.mrc, sm.input.tlt)
plan, anchor, state = fit.fit_anchor(stack, angles, sm.params.thickness, sm.params.opts,
                                     seed=sm.params.seed,
                                     device=runlog.pick_device(sm.params.device), log=log)
log.info("anchor slab %d (y %d:%d) fitted in %.1f s", anchor.index, anchor.y0, anchor.y1,
         anchor.seconds)
lead, state = fit.fit_lead(stack, angles, sm.params.thickness, sm.params.opts, plan, state,
                           seed=sm.params.seed, device=runlog.pick_device(sm.params.device),
                           log=log)
if lead:
    log.info("chain_start authors: lead slabs %s fitted, the anchor's volume not kept",
             [f.index for f in lead])
kept = ([anchor] if plan.keeps_anchor else []) + lead
slabs.save_slabs(sm.output.slabs, kept)
slabs.save_losses(sm.output.loss, [anchor, *lead])
model.save_weights(sm.output.weights, state)
