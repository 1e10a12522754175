"""DeepDeWedge's refinement: the fitted model over each whole half tomogram.

For each half tomogram separately: the wedge mask ``M`` of the tomogram's own grid is
applied to the whole tomogram (``Re F⁻¹[M · F(v)]``, as the model inputs were during the
fit); the model (which normalises its input with the fitting statistics and de-normalises
its output, :mod:`.model`) runs without rotation on ``N³`` tiles that overlap by ``⌈N/3⌉``,
and the tiles are blended with products of 1-D linear ramps, divided by the summed weights.
The final reconstruction is the mean of the two refined halves (:func:`reconstruct`).

Two named settings follow the official code by default:

* ``refine_statistics: recompute``: before the model, each masked half is divided by its own
  standard deviation and multiplied by ``scale``, then shifted so that its mean is ``loc``,
  where ``(loc, scale)`` are the input statistics recomputed on ``v0`` as in the fit (the
  mean of per-cube means and the root mean per-cube variance of the masked inputs of
  ``v0``'s cubes, extracted at ``ceil_to_even(√2·N)`` with stride ``N − overlap``, each at a
  random rotation from ``(seed, 0xDD, 4)``); both halves use ``v0``'s statistics. ``fit``:
  the halves go in as they are.
* ``tiling: end_padded`` (:func:`tile_end_padded`): tiles start at the origin every
  ``N − overlap`` voxels; each axis is reflection-padded at its end to complete the last
  tile; the ramps are ``linspace(0, 1, overlap) + 1e-6`` at both ends of each tile; the
  result is cropped to the original shape. ``centred``: IsoNet's tiling
  (:func:`wedgebench.recon.isonet.predict.predict_volume`), symmetric reflected margins of
  ``overlap // 2`` voxels, an axis shorter than ``N`` reflection-padded up to ``N``, tiles
  spread evenly (an identity model returns its input exactly).
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


def tile_end_padded(vol: np.ndarray, fn, n: int, overlap: int, batch_size: int = 1,
                    device="cpu") -> np.ndarray:
    """``fn`` over ``vol`` in the official code's tiling (module docstring).

    Parameters
    ----------
    vol : ndarray ``[z, y, x]``
    fn : callable on tensors ``[B, 1, n, n, n]`` (on ``device``)
    n : int
        Tile edge.
    overlap : int
        Overlap of neighbouring tiles, ``0 <= overlap < n``.
    batch_size : int
    device : str or torch.device

    Returns
    -------
    ndarray float32 ``vol.shape``
    """
    import torch

    if not 0 <= overlap < n:
        raise ValueError(f"overlap must be in [0, {n}), got {overlap}")
    vol = np.asarray(vol, np.float32)
    stride = n - overlap
    pads = []
    for s in vol.shape:
        p = stride - (s - n) % stride  # as the official code: a full stride when it divides
        while s + p < n:
            p += stride
        pads.append((0, p))
    padded = np.pad(vol, pads, mode="reflect" if min(vol.shape) > 1 else "edge")
    w1 = np.ones(n)
    if overlap:
        ramp = np.linspace(0.0, 1.0, overlap) + 1e-6
        w1[:overlap], w1[-overlap:] = ramp, ramp[::-1]
    weight = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
    starts = [range(0, s - n + 1, stride) for s in padded.shape]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    acc = np.zeros(padded.shape, np.float64)
    wsum = np.zeros(padded.shape, np.float64)
    with torch.no_grad():
        for b in range(0, len(corners), batch_size):
            group = corners[b:b + batch_size]
            tiles = np.stack([padded[z:z + n, y:y + n, x:x + n] for z, y, x in group])
            out = fn(torch.from_numpy(tiles)[:, None].to(device))[:, 0].cpu().numpy()
            for (z, y, x), t in zip(group, out):
                acc[z:z + n, y:y + n, x:x + n] += t * weight
                wsum[z:z + n, y:y + n, x:x + n] += weight
    out = acc / wsum
    return np.ascontiguousarray(out[:vol.shape[0], :vol.shape[1], :vol.shape[2]], np.float32)


def refinement_statistics(v0: np.ndarray, mask_angles, options: DDWOptions,
                          seed: int = 0) -> tuple[float, float]:
    """``(loc, scale)`` recomputed on the half tomogram ``v0`` (module docstring)."""
    from wedgebench.recon.deepdewedge.fit import input_statistics, seeded_rng
    from wedgebench.recon.deepdewedge.masks import wedge_mask
    from wedgebench.recon.deepdewedge.rotation import random_rotation
    from wedgebench.recon.deepdewedge.subtomos import cut_cubes, grid_positions

    n, m = options.cube_size, options.extract_size
    v0 = np.asarray(v0, np.float32)
    cubes = cut_cubes(v0, grid_positions(v0.shape, m, n - options.tile_overlap), m)
    rng = seeded_rng(seed, 4)
    rots = [random_rotation(rng) for _ in range(len(cubes))]
    return input_statistics(cubes, wedge_mask(n, mask_angles), n, "per_cube", rots,
                            options.spline_order)


def refine_tomogram(model_or_state, tomo: np.ndarray, mask_angles, options: DDWOptions,
                    device="cpu", log: logging.Logger | None = None,
                    statistics: tuple[float, float] | None = None) -> np.ndarray:
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
        ``cube_size`` (tile edge), ``tile_overlap``, ``refine_batch_size``, ``levels``,
        ``tiling``.
    device : str or torch.device
    statistics : (loc, scale), optional
        With ``refine_statistics: recompute``, the statistics the half is mapped to
        (:func:`refinement_statistics`); None feeds the half as it is.

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
    if statistics is not None:
        loc, scale = statistics
        sd = float(vol.std())
        vol = vol / (sd if sd > 0 else 1.0) * np.float32(scale)
        vol = (vol - vol.mean() + np.float32(loc)).astype(np.float32)

    def fn(x):
        return model(x).float()

    if options.tiling == "end_padded":
        out = tile_end_padded(vol, fn, n, overlap, options.refine_batch_size, dev)
        log.info("deepdewedge: refined %s in tiles of %d (overlap %d, end padded)",
                 tomo.shape, n, overlap)
        return out
    # an axis shorter than a tile gets reflected context up to one tile
    pads = [((n - s) // 2, n - s - (n - s) // 2) if s < n else (0, 0) for s in vol.shape]
    padded = np.pad(vol, pads, mode="reflect" if min(vol.shape) > 1 else "edge")
    out = predict_volume(padded, fn, n, overlap, 2 ** options.levels,
                         options.refine_batch_size, dev)
    log.info("deepdewedge: refined %s in tiles of %d (overlap %d)", tomo.shape, n, overlap)
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, vol.shape))
    return np.ascontiguousarray(out[crop], np.float32)


def reconstruct(v0: np.ndarray, v1: np.ndarray, model_or_state, mask_angles,
                options: DDWOptions, device="cpu",
                log: logging.Logger | None = None, seed: int = 0) -> np.ndarray:
    """DeepDeWedge's result: the mean of the two refined half tomograms.

    Parameters are those of :func:`refine_tomogram`; ``v0`` and ``v1`` have the same shape;
    ``seed`` draws the rotations of :func:`refinement_statistics` (``refine_statistics:
    recompute``).

    Returns
    -------
    ndarray float32 ``v0.shape``
    """
    if np.shape(v0) != np.shape(v1):
        raise ValueError(f"half tomograms differ in shape: {np.shape(v0)} vs {np.shape(v1)}")
    model = _as_model(model_or_state, device)
    stats = (refinement_statistics(v0, mask_angles, options, seed)
             if options.refine_statistics == "recompute" else None)
    r0 = refine_tomogram(model, v0, mask_angles, options, device, log, stats)
    r1 = refine_tomogram(model, v1, mask_angles, options, device, log, stats)
    return (0.5 * (r0.astype(np.float64) + r1)).astype(np.float32)
