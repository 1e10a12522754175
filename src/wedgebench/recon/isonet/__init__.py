"""IsoNet (Liu et al. 2022) in PyTorch: self-supervised missing-wedge completion.

Steps, one module each, driven by the workflow one Snakemake job at a time:

* :mod:`.mask` — where subtomograms may be centred (density / std masks, z crop);
* :mod:`.extract` — random subtomograms, contrast inversion, percentile
  normalisation, STAR list;
* :mod:`.rotations` — the 20 wedge-moving cube rotations, the subtomogram wedge,
  training pairs and the Fourier-space filling rule;
* :mod:`.unet` — IsoNet's residual 3-D U-Net;
* :mod:`.refine` — one refine iteration (train, predict, fill), resumable from files;
* :mod:`.predict` — the final network over the whole tomogram in blended tiles.
"""
