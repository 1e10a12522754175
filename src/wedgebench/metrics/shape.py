"""Shape fidelity: how much a reconstruction stretches objects along z.

The missing wedge elongates objects along the beam (z). For phantoms made of
spheres the ratio of an object's extent along z to its extent along x measures
that directly: 1 for a faithful reconstruction, > 1 for elongation.

The objects are found in the ground truth, so no phantom metadata is needed:

1. the ground truth is binarised at half its maximum and its connected components
   (26-connectivity) are labelled; components with fewer than ``min_voxels`` voxels,
   or whose bounding box touches the volume's border in z or x (truncated objects),
   are skipped;
2. each component's bounding box is padded by ``margin`` × its size on every side
   (clipped at the volume's border) and, inside it, only voxels closer to this
   component than to any other are kept (so neighbours do not leak in);
3. inside that region the reconstruction, smoothed by an isotropic Gaussian of
   σ = 1 voxel (which adds the same 1 voxel² to both moments, negligible against
   an object's R²/3), is reduced to its mass above a noise floor,
   ``w = max(rec − (m + 2·s), 0)`` with ``m`` the median and ``s`` the robust
   standard deviation (1.4826 × median absolute deviation) of the reconstruction over
   the region's non-object voxels; ``w`` is weighted linearly, and its second-moment
   widths about the weighted centroid are ``σ_z = sqrt(Σ w (z − z̄)² / Σ w)`` and
   likewise ``σ_x``;
4. the object's ratio is ``σ_z / σ_x``.

Linear weights are used instead of a half-maximum threshold because a blur keeps mass:
a Gaussian blur of widths (s_z, s_x) adds exactly s_z² and s_x² to the second moments,
whereas thresholding a blurred *hollow* sphere removes its flattened caps first and
would report a smaller z extent. For a thin spherical shell of radius R both moments
are R²/3, so the ratio is 1 up to voxelisation. The noise floor keeps the positive
half of background noise from adding a box-shaped mass, which would pull the ratio
towards the region's own aspect ratio (and the region is often cut short in z by a
thin volume). Objects near the top or bottom of a thin volume have their region
clipped in z, which underestimates the z extent of an elongated reconstruction:
the ratio is then a conservative (low) estimate.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wedgebench.metrics.normalise import check_pair

#: Mass counts only above background + NOISE_CUT robust standard deviations of it.
NOISE_CUT = 2.0
#: Isotropic Gaussian smoothing (voxels) applied to the reconstruction before the floor.
SMOOTH = 1.0


def object_zx_ratios(gt, rec, margin: float = 0.5, min_voxels: int = 27) -> np.ndarray:
    """Extent ratio z/x of the reconstruction for every object of the ground truth.

    Parameters
    ----------
    gt, rec : ndarray, 3-D ``[z, y, x]``, same shape
        ``rec`` should be normalised to the ground truth (see
        :func:`wedgebench.metrics.normalise.normalise_pair`); the sign matters
        because only mass above background counts.
    margin : float
        Padding of each object's bounding box, as a fraction of its size per axis.
    min_voxels : int
        Smaller components are ignored.

    Returns
    -------
    ndarray of float64
        One ratio per retained object (label order); empty if none.
    """
    gt, rec = check_pair(gt, rec, ndim=3, dtype=None)  # float32 stays float32
    labels, _ = ndimage.label(gt > 0.5 * gt.max(), structure=np.ones((3, 3, 3)))
    ratios = []
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        obj = labels[box] == lab
        if obj.sum() < min_voxels or _touches_border(box, gt.shape):
            continue
        region = _padded_box(box, gt.shape, margin)
        ratio = _zx_ratio(np.asarray(rec[region], np.float64), labels[region], lab)
        if np.isfinite(ratio):
            ratios.append(ratio)
    return np.asarray(ratios, dtype=np.float64)


def sphere_zx_ratio(gt, rec, margin: float = 0.5, min_voxels: int = 27) -> float:
    """Mean z/x extent ratio over the ground truth's objects (NaN if none).

    See :func:`object_zx_ratios` and the module docstring.
    """
    ratios = object_zx_ratios(gt, rec, margin, min_voxels)
    return float(ratios.mean()) if ratios.size else float("nan")


def _touches_border(box, shape) -> bool:
    """True when a bounding box reaches the first or last plane along z or x."""
    return any(box[ax].start == 0 or box[ax].stop == shape[ax] for ax in (0, 2))


def _padded_box(box, shape, margin: float) -> tuple:
    """The bounding box grown by ``margin`` × its size on each side, clipped to ``shape``."""
    out = []
    for sl, n in zip(box, shape):
        pad = int(np.ceil(margin * (sl.stop - sl.start)))
        out.append(slice(max(0, sl.start - pad), min(n, sl.stop + pad)))
    return tuple(out)


def _zx_ratio(rec: np.ndarray, labels: np.ndarray, lab: int) -> float:
    """σ_z / σ_x of the smoothed mass above the noise floor in object ``lab``'s cell."""
    if np.any(labels != 0):
        nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False,
                                                 return_indices=True)
        cell = labels[tuple(nearest)] == lab
    else:
        cell = np.ones(labels.shape, dtype=bool)
    rec = ndimage.gaussian_filter(rec, SMOOTH, mode="nearest")
    outside = rec[cell & (labels == 0)]
    floor = 0.0
    if outside.size:
        background = np.median(outside)
        floor = background + NOISE_CUT * 1.4826 * np.median(np.abs(outside - background))
    w = np.where(cell, np.maximum(rec - floor, 0.0), 0.0)
    total = w.sum()
    if not total > 0:
        return float("nan")
    widths = []
    for ax in (0, 2):
        profile = w.sum(axis=tuple(a for a in range(3) if a != ax))
        pos = np.arange(profile.size)
        mean = np.dot(profile, pos) / total
        widths.append(np.sqrt(np.dot(profile, (pos - mean) ** 2) / total))
    return float(widths[0] / widths[1]) if widths[1] > 0 else float("nan")
