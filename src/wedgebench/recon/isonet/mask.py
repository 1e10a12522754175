"""IsoNet's extraction mask: where subtomograms may be centred.

Two statistical masks, intersected (IsoNet's "Generate mask" step):

* **density mask** — the tomogram (density bright) is smoothed with a Gaussian, then a
  sliding-window maximum filter is applied; the ``density_percentage`` % of voxels
  with the highest values are kept.
* **standard-deviation mask** — the standard deviation in a cubic window around
  each voxel; the ``std_percentage`` % of voxels with the highest values are kept.

``z_crop`` additionally excludes that fraction of the thickness at the top and at
the bottom (the usually empty regions above and below the specimen).
"""

from __future__ import annotations

import numpy as np


def _keep_top(values: np.ndarray, percentage: float) -> np.ndarray:
    """Boolean mask of the ``percentage`` % largest values (all when 100)."""
    if percentage >= 100:
        return np.ones(values.shape, bool)
    return values >= np.percentile(values, 100.0 - percentage)


def density_mask(tomo: np.ndarray, percentage: float = 50.0, patch_size: int = 4,
                 sigma: float = 1.0) -> np.ndarray:
    """Regions of high density: Gaussian smoothing, then a ``(2·patch_size+1)³`` maximum filter.

    Parameters
    ----------
    tomo : ndarray ``[z, y, x]``, density bright
    percentage : float
        Percent of voxels kept (0 < p ≤ 100).
    patch_size : int
        Half-width of the maximum-filter window, in voxels.
    sigma : float
        Gaussian smoothing (voxels) applied first, to suppress noise.
    """
    from scipy import ndimage  # here, not at the top: refine jobs import this module

    smooth = ndimage.gaussian_filter(np.asarray(tomo, np.float32), sigma, mode="reflect")
    filtered = ndimage.maximum_filter(smooth, size=2 * int(patch_size) + 1, mode="reflect")
    return _keep_top(filtered, percentage)


def std_mask(tomo: np.ndarray, percentage: float = 50.0, patch_size: int = 4) -> np.ndarray:
    """Regions of high local standard deviation in a ``(2·patch_size+1)³`` window."""
    from scipy import ndimage

    t = np.asarray(tomo, np.float64)
    size = 2 * int(patch_size) + 1
    mean = ndimage.uniform_filter(t, size=size, mode="reflect")
    mean_sq = ndimage.uniform_filter(t * t, size=size, mode="reflect")
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return _keep_top(std, percentage)


def z_crop_mask(shape, z_crop: float) -> np.ndarray:
    """Excludes ``z_crop`` (a fraction, 0 ≤ z_crop < 0.5) of the z range at each end."""
    nz = shape[0]
    cut = int(round(float(z_crop) * nz))
    m = np.zeros(shape, bool)
    m[cut:nz - cut] = True
    return m


def make_mask(tomo: np.ndarray, density_percentage: float = 50.0,
              std_percentage: float = 50.0, patch_size: int = 4,
              z_crop: float = 0.0) -> np.ndarray:
    """IsoNet's mask: density ∩ standard deviation ∩ z crop.

    Parameters
    ----------
    tomo : ndarray ``[z, y, x]``, density bright (after any contrast inversion)
    density_percentage, std_percentage : float
        Percent of voxels each mask keeps (100 disables it).
    patch_size : int
        Half-width of the filter windows.
    z_crop : float
        Fraction of the thickness excluded at the top and at the bottom.

    Returns
    -------
    ndarray of bool, ``tomo.shape``
    """
    if not 0 <= z_crop < 0.5:
        raise ValueError(f"isonet.mask.z_crop must be in [0, 0.5), got {z_crop}")
    m = z_crop_mask(tomo.shape, z_crop)
    if density_percentage < 100:
        m &= density_mask(tomo, density_percentage, patch_size)
    if std_percentage < 100:
        m &= std_mask(tomo, std_percentage, patch_size)
    return m
