"""DeepDeWedge (Wiedemann & Heckel, Nat Commun 2024) in PyTorch.

Self-supervised missing-wedge completion and denoising from two independent half
tomograms ``v0`` and ``v1`` of the same specimen. A 3-D U-Net learns to map the
randomly rotated ``v0`` sub-tomogram, with the wedge removed once more, onto the same
rotation of ``v1``; the loss compares them only where ``v1`` has data and counts the
artificially removed region twice. Every ``update_every`` epochs the missing wedge of
each ``v0`` cube is refilled from the model.

One module per step, functions on arrays, no global state:

* :mod:`.options` — :class:`DDWOptions` (published defaults) and :func:`options_from_config`;
* :mod:`.halves` — even/odd tilt (or frame) half tomograms by our weighted back-projection;
* :mod:`.masks` — the wedge mask of the actual tilt range and its rotated version;
* :mod:`.subtomos` — sub-tomograms on a regular grid, validation split, STAR table;
* :mod:`.model` — the residual 3-D U-Net with built-in input normalisation;
* :mod:`.loss` — the masked Fourier-space loss;
* :mod:`.fit` — pairs, fitting in resumable blocks of epochs, wedge updates;
* :mod:`.predict` — refinement of whole half tomograms in blended tiles.

torch is imported only inside the functions that need it.
"""
