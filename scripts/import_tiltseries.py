"""Snakemake entry point: a user's measured tilt series (stack + .tlt/.rawtlt/.mdoc/.xf),
checked, aligned, sorted by angle, optionally dose-weighted, all tilts or every other one;
with its acquisition record (angles, acquisition order, dose, prior dose per tilt)."""
from wedgebench import runlog
from wedgebench.io import write_json, write_mrc, write_tlt
from wedgebench.measured import load_measured_series

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, angles, pixel, record, meta = load_measured_series(
    sm.params.measured, sm.params.shape, subset=sm.params.subset)
for note in meta.notes:
    log.info("%s", note)
log.info("measured stack %s (%s tilts, %.1f to %.1f deg), pixel %.3f A; acquisition order "
         "from %s, dose from %s, dose weighting %s, .xf %s", stack.shape, sm.params.subset,
         angles.min(), angles.max(), pixel, record["order_from"], record["dose_from"],
         record["dose_weighted"], "applied" if record["xf_applied"] else "none")
write_json(sm.output.meta, record)
write_tlt(sm.output.tlt, angles)
write_mrc(sm.output.mrc, stack, pixel)
