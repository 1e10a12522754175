"""Snakemake entry point: IsoNet mask + random subtomograms of the WBP tomogram."""
from wedgebench import runlog
from wedgebench.io import read_mrc, write_mrc
from wedgebench.recon.isonet import extract

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
tomo, voxel = read_mrc(sm.input.tomo)
res = extract.extract_subtomos(tomo, p.n_subtomos, p.cube_size, p.crop_size, p.invert, p.seed,
                               p.percentiles, p.mask, source=sm.input.tomo,
                               normalisation=p.normalisation)
log.info("%d subtomograms of %d³ from %s (mask keeps %.1f %% of %s; contrast inverted: %s)",
         len(res["cubes"]), p.crop_size, sm.input.tomo, 100 * res["mask"].mean(), tomo.shape,
         p.invert)
write_mrc(sm.output.mask, res["mask"].astype("float32"), voxel)
extract.write_subtomos(sm.output.star, sm.output.stack, res["cubes"], res["centres"],
                       p.cube_size, sm.input.tomo, p.invert, voxel)
