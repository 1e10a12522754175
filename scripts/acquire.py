"""Snakemake entry point: simulate a measured-like acquisition (dose, optics, ice, errors)."""
import numpy as np

from wedgebench import runlog
from wedgebench.io import read_mrc, write_json, write_mrc
from wedgebench.tiltseries import make_projector, potential_scale, simulate_acquisition

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
vol, voxel = read_mrc(sm.input[0])
angles = np.asarray(sm.params.angles)
acq = sm.params.acq
project = make_projector(vol, sm.params.opts, sm.params.phantom, sm.params.seed)
out = simulate_acquisition(project, vol, voxel, angles, acq, seed=sm.params.seed)
log.info("acquisition model %s; dose per tilt %.3g-%.3g e/A^2; mean image %.4f",
         {k: v for k, v in acq.items() if k not in ("range", "step", "angles")},
         out["dose"].min(), out["dose"].max(), float(out["acquired"].mean()))
write_mrc(sm.output.acquired, out["acquired"], voxel)
write_mrc(sm.output.even, out["frames"][0], voxel)
write_mrc(sm.output.odd, out["frames"][1], voxel)
write_json(sm.output.meta, {
    "nominal_angles": angles.tolist(), "true_angles": out["true_angles"].tolist(),
    "shifts_px": out["shifts"].tolist(), "dose": out["dose"].tolist(),
    "prior_dose": out["prior_dose"].tolist(),
    "potential_scale": potential_scale(vol, voxel, acq), "model": acq})
