"""Snakemake entry point: the even/odd half-dose frame stacks of an acquisition, prepared
for the methods like `tiltseries.mrc` (``prepare_for_methods``: CTF correction, contrast).

Both use the normalisation map of the main series (``tiltseries.normalise``), so they keep
its scale and their mean is the main series up to float rounding.
"""
import numpy as np

from wedgebench import runlog
from wedgebench.io import read_json, read_mrc, write_mrc
from wedgebench.tiltseries import normalisation_map, prepare_for_methods

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
angles = np.asarray(p.angles)
meta = read_json(sm.input.meta)


def prepared(path):
    stack, voxel = read_mrc(path)
    return prepare_for_methods(stack, angles, voxel, p.acq, meta["potential_scale"],
                               normalise_to_unit=False).astype(np.float64), voxel


main, voxel = prepared(sm.input.acquired)
offset, divisor = normalisation_map(main, p.normalise)
divisor = 1.0 if np.isinf(divisor) else divisor
for name in ("even", "odd"):
    stack, _ = prepared(sm.input[name])
    out = ((stack - offset) / divisor).astype(np.float32)
    log.info("%s frames %s: range %.4f..%.4f (the main series' map: (x - %.4g) / %.4g)",
             name, out.shape, out.min(), out.max(), offset, divisor)
    write_mrc(sm.output[name], out, voxel)
