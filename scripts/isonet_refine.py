"""Snakemake entry point: one IsoNet refine iteration (train, predict, fill)."""
from wedgebench import runlog
from wedgebench.recon.isonet import refine

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
res = refine.refine_iteration_files(
    sm.input.star, sm.input.tlt, sm.params.iteration, sm.params.opts, sm.output.model,
    sm.output.filled, sm.output.loss, prev_model=sm.input.get("prev_model") or None,
    prev_filled=sm.input.get("prev_filled") or None, level=sm.params.noise_level,
    seed=sm.params.seed, device=runlog.pick_device(sm.params.device), log=log)
last = res["history"][-1]
log.info("iteration %d done: train L1 %.5f, val L1 %.5f", sm.params.iteration,
         last["train_loss"], last["val_loss"])
