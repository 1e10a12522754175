"""Snakemake entry point: stitch the CN slabs into the reconstruction; sum the job times."""
from wedgebench import runlog
from wedgebench.io import read_mrc, write_json, write_mrc
from wedgebench.recon.cn import slabs

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
stack, pixel = read_mrc(sm.input.mrc)
parts = [s for path in [sm.input.anchor, *sm.input.chunks] for s in slabs.load_slabs(path)]
vol = slabs.postprocess(slabs.merge([(a, b, v) for _, a, b, v in parts], stack.shape[1]),
                        sm.params.opts["output"])
runtime = slabs.runtime_summary(sm.input.anchor_bench, sm.input.chunk_benches)
log.info("%d slabs merged into %s; runtime %.1f s, wall %.1f s", len(parts), vol.shape,
         runtime["runtime_s"], runtime["wall_s"])
write_mrc(sm.output.mrc, vol, pixel)
write_json(sm.output.runtime, runtime)
