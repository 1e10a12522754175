"""Snakemake entry point: central slices of every method with true and picked particles."""
from wedgebench import runlog
from wedgebench.downstream.run import read_catalogue
from wedgebench.io import read_mrc, read_star
from wedgebench.report.downstream import picks_orthoslice

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
classes = read_catalogue(sm.input.catalogue.rsplit("/", 1)[0])
volumes, picks, voxel = {}, {}, 1.0
for method, rec, star in zip(sm.params.methods, sm.input.recs, sm.input.picks):
    volumes[method], voxel = read_mrc(rec)
    picks[method] = read_star(star)
picks_orthoslice(volumes, read_star(sm.input.star), picks, sm.output[0],
                 {n: c["radius"] / voxel for n, c in classes.items()},
                 f"{sm.wildcards.dataset}, {sm.wildcards.acq}")
log.info("wrote %s", sm.output[0])
