"""Snakemake entry point: metrics of one reconstruction, with its runtime."""
from wedgebench import runlog
from wedgebench.io import read_mrc, read_tiltseries, write_json
from wedgebench.metrics.run import evaluate

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
rec, voxel = read_mrc(sm.input.rec)
stack, angles, _ = read_tiltseries(sm.input.mrc, sm.input.tlt)
gt = read_mrc(sm.input.gt)[0] if sm.input.gt else None
halves = [read_mrc(p)[0] for p in sm.input.halves] or None
half_tilts = [read_tiltseries(m, t)[:2]  # (stack, angles) of the even, then the odd tilts
              for m, t in zip(sm.input.half_tilts[::2], sm.input.half_tilts[1::2])] or None
result = evaluate(rec, stack, angles, voxel, gt=gt, halves=halves, half_tilts=half_tilts,
                  runtime_files=list(sm.input.runtime),
                  sphere_ratio=sm.params.sphere_ratio, **sm.params.opts)
result.update(sm.params.info)  # dataset, replicate, seed, acquisition, method, kind, variant_of
log.info("metrics: %s", {k: v for k, v in result.items() if not isinstance(v, (list, dict))})
write_json(sm.output[0], result)
