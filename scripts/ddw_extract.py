"""Snakemake entry point: DeepDeWedge's sub-tomogram cubes of both halves (STAR + MRC)."""
from wedgebench import runlog
from wedgebench.io import read_mrc
from wedgebench.recon.deepdewedge import subtomos
from wedgebench.recon.deepdewedge.options import options_from_config
from wedgebench.recon.isonet.mask import make_mask

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
opts = options_from_config(p.opts)
v0, voxel = read_mrc(sm.input.v0)
v1, _ = read_mrc(sm.input.v1)
mask = None
if p.mask == "isonet":
    mask = make_mask(0.5 * (v0 + v1), density_percentage=50.0, std_percentage=50.0)
    log.info("IsoNet mask keeps %.1f %% of the voxels", 100 * mask.mean())
res = subtomos.extract_subtomos(v0, v1, opts, mask=mask, seed=p.seed)
log.info("%d cubes of %d³ (network cube %d³, stride %d) from %s, %d held out",
         len(res["cubes0"]), opts.extract_size, opts.cube_size, opts.grid_stride, v0.shape,
         int(res["val"].sum()))
subtomos.write_subtomos(sm.output.star, sm.output.stack0, sm.output.stack1, res["table"],
                        res["cubes0"], res["cubes1"], voxel)
