"""Coordinate-network (CN) reconstruction, fitted per y-slab.

- :mod:`.model`: the SIREN coordinate network (optional Fourier features).
- :mod:`.fit`: fitting a network to the tilt-series rows of a slab; anchor and
  chunk drivers; :func:`~.fit.reconstruct` runs everything in one process.
- :mod:`.slabs`: the slab plan, stitching with linear blending, slab/loss files.
- :mod:`.ensemble`: many slab networks evaluated as one batched ensemble (``vmap``).
"""

from .fit import (fit_anchor, fit_chain, fit_chunk, fit_ensemble, fit_slab, fit_slabs,
                  plan_for, reconstruct)
from .model import CoordinateNetwork, build_network, load_weights, n_parameters, save_weights
from .slabs import make_plan, merge, postprocess

__all__ = ["CoordinateNetwork", "build_network", "fit_anchor", "fit_chain", "fit_chunk",
           "fit_ensemble", "fit_slab", "fit_slabs", "load_weights", "make_plan", "merge",
           "n_parameters", "plan_for", "postprocess", "reconstruct", "save_weights"]
