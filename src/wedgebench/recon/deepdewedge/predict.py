"""DeepDeWedge's refinement: the fitted model over each whole half tomogram.

For each half tomogram separately: the wedge mask ``M`` of the tomogram's own grid is
applied to the whole tomogram (``Re F⁻¹[M · F(v)]``, as the model inputs were during the
fit), the model (which normalises its input with the fitting statistics and de-normalises
its output, :mod:`.model`) runs without rotation on ``N³`` tiles that overlap by ``⌈N/3⌉``,
and the tiles are blended with products of 1-D linear ramps, divided by the summed weights
(so the weights sum to 1 everywhere: an identity model returns its input exactly, without
seams). Edges get reflected context (``overlap // 2`` voxels, and an axis shorter than ``N``
is reflection-padded up to ``N``), so any tomogram shape works. The tiling is
:func:`wedgebench.recon.isonet.predict.predict_volume`. The final reconstruction is the mean
of the two refined halves (:func:`reconstruct`).
"""

from __future__ import annotations

import logging

import numpy as np

from wedgebench.recon.deepdewedge.masks import apply_mask, volume_wedge_mask
from wedgebench.recon.deepdewedge.options import DDWOptions


def _as_model(model_or_state, device):
    if isinstance(model_or_state, dict):
        from wedgebench.recon.deepdewedge.fit import model_from_state

        return model_from_state(model_or_state, device)
    model = model_or_state.to(device)
    model.eval()
    return model


def filter_tomogram(tomo: np.ndarray, angles_deg) -> np.ndarray:
    """``Re F⁻¹[M · F(tomo)]`` with the wedge mask of the tomogram's own grid."""
    tomo = np.asarray(tomo, np.float32)
    return apply_mask(tomo, volume_wedge_mask(tomo.shape, angles_deg))


def refine_tomogram(model_or_state, tomo: np.ndarray, mask_angles, options: DDWOptions,
                    device="cpu", log: logging.Logger | None = None) -> np.ndarray:
    """One refined half tomogram.

    Parameters
    ----------
    model_or_state : torch.nn.Module or dict
        The fitted network, or a fit state (:func:`~.fit.fit_block`).
    tomo : ndarray ``[z, y, x]``, any shape
        A half tomogram (``v0`` or ``v1``).
    mask_angles : array of float
        The acquisition's tilt angles (their min and max give ``M``).
    options : DDWOptions
        ``cube_size`` (tile edge), ``tile_overlap``, ``refine_batch_size``, ``levels``.
    device : str or torch.device

    Returns
    -------
    ndarray float32 ``tomo.shape``
    """
    import torch

    from wedgebench.recon.isonet.predict import predict_volume

    log = log or logging.getLogger("wedgebench")
    dev = torch.device(device)
    model = _as_model(model_or_state, dev)
    n, overlap = options.cube_size, options.tile_overlap
    vol = filter_tomogram(tomo, mask_angles)
    # an axis shorter than a tile gets reflected context up to one tile
    pads = [((n - s) // 2, n - s - (n - s) // 2) if s < n else (0, 0) for s in vol.shape]
    padded = np.pad(vol, pads, mode="reflect" if min(vol.shape) > 1 else "edge")

    def fn(x):
        return model(x).float()

    out = predict_volume(padded, fn, n, overlap, 2 ** options.levels,
                         options.refine_batch_size, dev)
    log.info("deepdewedge: refined %s in tiles of %d (overlap %d)", tomo.shape, n, overlap)
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, vol.shape))
    return np.ascontiguousarray(out[crop], np.float32)


def reconstruct(v0: np.ndarray, v1: np.ndarray, model_or_state, mask_angles,
                options: DDWOptions, device="cpu",
                log: logging.Logger | None = None) -> np.ndarray:
    """DeepDeWedge's result: the mean of the two refined half tomograms.

    Parameters are those of :func:`refine_tomogram`; ``v0`` and ``v1`` have the same shape.

    Returns
    -------
    ndarray float32 ``v0.shape``
    """
    if np.shape(v0) != np.shape(v1):
        raise ValueError(f"half tomograms differ in shape: {np.shape(v0)} vs {np.shape(v1)}")
    model = _as_model(model_or_state, device)
    r0 = refine_tomogram(model, v0, mask_angles, options, device, log)
    r1 = refine_tomogram(model, v1, mask_angles, options, device, log)
    return (0.5 * (r0.astype(np.float64) + r1)).astype(np.float32)
