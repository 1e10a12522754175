"""IsoNet's Predict step: the trained network applied to a whole tomogram in blended tiles.

The tomogram is contrast-inverted when requested and percentile-normalised as a
whole (as IsoNet does), padded by reflection (``overlap // 2`` voxels of context
on every side, more where an axis is shorter than a tile), cut into overlapping
tiles of ``tile`` voxels (or the padded axis length rounded up to the network's
size multiple, when shorter), and the network's outputs are averaged with
weights that ramp linearly over ``overlap`` voxels at every tile edge. The
weights are strictly positive and the result is divided by their sum, so an
identity network returns its input exactly and no seams can appear. The result
is brought back to the input's intensity scale and contrast (undoing the
normalisation and inversion), on the input's ``[z, y, x]`` grid.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import torch

from wedgebench.io import InputError, read_mrc, write_mrc
from wedgebench.recon.isonet.refine import TrainOptions, build_model, load_state, read_model


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with ≥ ``overlap``."""
    if tile >= length:
        return [0]
    step = tile - overlap
    if step < 1:
        raise InputError(f"isonet.predict.overlap ({overlap}) must be smaller than the tile "
                         f"({tile})")
    k = math.ceil((length - tile) / step) + 1
    return sorted({int(round(s)) for s in np.linspace(0, length - tile, k)})


def ramp_weight(tile: int, overlap: int) -> np.ndarray:
    """1-D blending weight: linear ramps over ``overlap`` voxels at both ends, 1 inside,
    strictly positive everywhere."""
    i = np.arange(tile, dtype=np.float64)
    if overlap < 1:
        return np.ones(tile)
    r = float(min(overlap, tile / 2))
    return np.minimum(1.0, np.minimum((i + 0.5) / r, (tile - i - 0.5) / r))


def predict_volume(vol: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], tile: int,
                   overlap: int, multiple: int = 1, batch_size: int = 4,
                   device="cpu") -> np.ndarray:
    """Apply ``fn`` (``[B, 1, t, t, t] → same``) to ``vol[z, y, x]`` in blended tiles.

    Parameters
    ----------
    vol : ndarray ``[z, y, x]``
    fn : callable on tensors ``[B, 1, tz, ty, tx]`` (on ``device``)
    tile : int
        Tile edge (a multiple of ``multiple``).
    overlap : int
        Minimum overlap of neighbouring tiles and length of the blending ramps;
        ``overlap // 2`` voxels of reflected context pad the volume.
    multiple : int
        Tile sizes are multiples of this (the network's ``2**depth``).
    batch_size : int
    device : str or torch.device

    Returns
    -------
    ndarray float32, ``vol.shape``
    """
    if tile < multiple or tile % multiple:
        raise InputError(f"isonet.predict.tile ({tile}) must be a multiple of "
                         f"2**len(isonet.unet.filters) = {multiple}")
    if overlap < 0 or overlap >= tile:
        raise InputError(f"isonet.predict.overlap ({overlap}) must be in [0, tile={tile})")
    vol = np.asarray(vol, np.float32)
    margin = overlap // 2
    sizes, pads = [], []
    for n in vol.shape:
        m = n + 2 * margin
        t = min(tile, -(-m // multiple) * multiple)
        sizes.append(t)
        pads.append((margin, margin + max(0, t - m)))
    padded = np.pad(vol, pads, mode="reflect" if min(vol.shape) > 1 else "edge")
    starts = [tile_starts(p, t, overlap) for p, t in zip(padded.shape, sizes)]
    w1 = [ramp_weight(t, overlap) for t in sizes]
    weight = w1[0][:, None, None] * w1[1][None, :, None] * w1[2][None, None, :]
    acc = np.zeros(padded.shape, np.float64)
    wsum = np.zeros(padded.shape, np.float64)
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    tz, ty, tx = sizes
    for b in range(0, len(corners), batch_size):
        group = corners[b:b + batch_size]
        tiles = np.stack([padded[z:z + tz, y:y + ty, x:x + tx] for z, y, x in group])
        with torch.no_grad():
            out = fn(torch.from_numpy(tiles[:, None]).to(device))
        out = out[:, 0].float().cpu().numpy().astype(np.float64)
        for (z, y, x), o in zip(group, out):
            acc[z:z + tz, y:y + ty, x:x + tx] += weight * o
            wsum[z:z + tz, y:y + ty, x:x + tx] += weight
    res = acc / wsum
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, vol.shape))
    return res[crop].astype(np.float32)


def predict_tomogram(tomo: np.ndarray, state: dict, opts: TrainOptions, invert: bool,
                     tile: int = 96, overlap: int = 32, batch_size: int = 4, device="cpu",
                     log: logging.Logger | None = None) -> np.ndarray:
    """IsoNet's Predict: the model of ``state`` applied to a whole tomogram.

    Parameters
    ----------
    tomo : ndarray ``[z, y, x]``
        The input tomogram (e.g. the WBP reconstruction), any intensity scale.
    state : dict
        The final model's state dict.
    opts : TrainOptions
        Network architecture, percentiles and mixed precision.
    invert : bool
        Contrast inversion used at extraction (undone on output).
    tile, overlap, batch_size : int
        Tiling (see :func:`predict_volume`).

    Returns
    -------
    ndarray float32 ``tomo.shape``, on the input's intensity scale and contrast.
    """
    log = log or logging.getLogger("wedgebench")
    dev = torch.device(device)
    t = -np.asarray(tomo, np.float64) if invert else np.asarray(tomo, np.float64)
    lo, hi = np.percentile(t, opts.percentiles)
    if not hi > lo:
        hi = lo + 1.0
    norm = ((t - lo) / (hi - lo)).astype(np.float32)
    model = build_model(opts).to(dev)
    load_state(model, state)
    model.eval()
    amp = opts.mixed_precision and dev.type == "cuda"

    def fn(x):
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
            return model(x).float()

    out = predict_volume(norm, fn, tile, overlap, model.multiple, batch_size, dev)
    log.info("predicted %s in tiles of %d (overlap %d)", tomo.shape, tile, overlap)
    res = out.astype(np.float64) * (hi - lo) + lo
    return (-res if invert else res).astype(np.float32)


def predict_files(tomo_path, model_path, out_path, opts: dict, invert: bool, tile: int,
                  overlap: int, batch_size: int, device="cpu",
                  log: logging.Logger | None = None) -> np.ndarray:
    """:func:`predict_tomogram` from and to MRC files (the workflow's predict step)."""
    tomo, voxel = read_mrc(tomo_path)
    out = predict_tomogram(tomo, read_model(model_path), TrainOptions(**opts), invert, tile,
                           overlap, batch_size, device, log)
    write_mrc(out_path, out, voxel)
    return out
