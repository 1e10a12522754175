"""Coordinate-network (CN) reconstruction, fitted per y-slab.

- :mod:`.model`: the SIREN coordinate network (optional Fourier features), its output
  gain, coordinates and weight files.
- :mod:`.fit`: the reconstruction over the slab plan: the anchor and chunk jobs;
  :func:`~.fit.reconstruct` runs everything in one process.
- :mod:`.drivers`: a list of slabs fitted from given weights, as a warm-started chain
  (:func:`~.drivers.fit_chain`) or as batched ensembles (:func:`~.drivers.fit_ensemble`).
- :mod:`.optimise`: the optimisation loop: one slab (:func:`~.optimise.fit_slab`) or a
  batched ensemble of slabs (:func:`~.optimise.fit_slabs`).
- :mod:`.loss`: the L1 reprojection loss of slabs and the finite-difference penalty.
- :mod:`.schedule`: the learning-rate schedule.
- :mod:`.slabs`: the slab plan, stitching with linear blending, slab/loss files.
- :mod:`.ensemble`: many slab networks evaluated as one batched ensemble (``vmap``).
- :mod:`.holdout`: held-out rays and early stopping (``cn.holdout_fraction``, ``cn_denoise``).
"""

import importlib

# Names are imported from their modules on first use (PEP 562), so that jobs that need
# only .slabs (cn_merge) do not import torch through .fit and .model.
_WHERE = {**dict.fromkeys(["fit_anchor", "fit_chunk", "fit_lead", "plan_for", "reconstruct"],
                          "fit"),
          **dict.fromkeys(["SlabFit", "fit_chain", "fit_ensemble"], "drivers"),
          **dict.fromkeys(["fit_slab", "fit_slabs"], "optimise"),
          **dict.fromkeys(["CoordinateNetwork", "build_network", "load_weights",
                           "n_parameters", "output_gain", "save_weights"], "model"),
          **dict.fromkeys(["make_plan", "merge", "postprocess"], "slabs")}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["CoordinateNetwork", "SlabFit", "build_network", "fit_anchor", "fit_chain",
           "fit_chunk", "fit_ensemble", "fit_lead", "fit_slab", "fit_slabs", "load_weights",
           "make_plan",
           "merge", "n_parameters", "output_gain", "plan_for", "postprocess", "reconstruct",
           "save_weights"]
