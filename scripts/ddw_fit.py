"""Snakemake entry point: one block of DeepDeWedge's fit (epochs [from, to)), resumed from
the previous block's state."""
from wedgebench import runlog
from wedgebench.io import atomic_path, read_tlt
from wedgebench.recon.deepdewedge import fit
from wedgebench.recon.deepdewedge.options import options_from_config
from wedgebench.recon.deepdewedge.subtomos import read_subtomos

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
opts = options_from_config(p.opts)
e0, e1 = p.epochs
sub = read_subtomos(sm.input.star)
data = fit.FitData(sub["cubes0"], sub["cubes1"], sub["val"], read_tlt(sm.input.tlt))
prev = sm.input.get("prev") or None
state = fit.load_state(prev) if prev else None
log.info("epochs [%d, %d) on %d cubes (%d held out)%s", e0, e1, len(data.val),
         int(data.val.sum()), f", resumed from {prev}" if prev else "")
state = fit.fit_block(state, data, e0, e1, opts, seed=p.seed,
                      device=runlog.pick_device(p.device), log=log)
fit.save_state(state, sm.output.state)
with atomic_path(sm.output.history) as tmp:
    tmp.write_text(fit.history_csv(state))
