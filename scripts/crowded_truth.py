"""Snakemake entry point: the ground truth of a crowded specimen (true particles, class
maps, catalogue), beside the volume the phantom job writes from the same seed."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.phantoms.crowded import specimen, write_ground_truth

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
kwargs = dict(p.extra)
if p.voxel_size is not None:
    kwargs["voxel_size"] = p.voxel_size
spec = specimen(list(p.shape), seed=p.seed, **kwargs)
paths = write_ground_truth(spec, Path(sm.output.star).parent)
log.info("%d particles of %d classes: %s", len(spec.particles), len(spec.classes),
         {c["name"]: c["count"] for c in spec.classes})
