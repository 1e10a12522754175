"""DeepDeWedge's two half tomograms ``v0`` and ``v1``, by our weighted back-projection.

Two ways to split one acquisition into halves with independent noise:

* **tilts** — every other tilt in order of angle (:func:`split_tilts`, by
  :func:`wedgebench.geometry.even_odd_indices`, the convention of measured data's
  halves): ``v0`` from the even tilts, ``v1`` from the odd ones. Each half has half the
  dose and twice the angular step.
* **frames** — when the acquisition supplies even/odd movie frames (two stacks of *all*
  tilts, summed from the even and the odd frames of every tilt's movie), each half is the
  reconstruction of one frame stack at all angles (:func:`frame_half_tomograms`). The paper
  recommends it: both halves keep the full angular sampling.

Reconstructions are :func:`wedgebench.recon.wbp.reconstruct` with the given options (the
config's ``imod_wbp`` settings). The paper's FBP is CTF-corrected; here the tilt series are
whatever the caller gives (the simulated series of this benchmark have no CTF).
"""

from __future__ import annotations

import numpy as np

from wedgebench.io import InputError
from wedgebench.geometry import even_odd_indices


def split_tilts(stack: np.ndarray, angles, which: str):
    """Every other tilt of a series, in order of angle.

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
    angles : array of float, one per tilt (any order)
    which : {"even", "odd"}
        The 1st, 3rd, ... (``even``) or 2nd, 4th, ... (``odd``) tilt of the angles sorted
        ascending; the subset keeps the acquisition order.

    Returns
    -------
    stack (``[k, y, x]``), angles (``[k]``, float64)
    """
    stack = np.asarray(stack)
    angles = np.asarray(angles, np.float64).ravel()
    if stack.ndim != 3 or stack.shape[0] != angles.size:
        raise InputError(f"deepdewedge: a tilt series [tilt, y, x] with one angle per tilt "
                         f"is needed, got shape {stack.shape} and {angles.size} angles")
    keep = even_odd_indices(angles, which)
    if keep.size < 2:
        raise InputError(f"deepdewedge: {angles.size} tilts are too few to split into "
                         "even/odd halves")
    return stack[keep], angles[keep]


def half_tomograms(stack_even, angles_even, stack_odd, angles_odd, thickness: int,
                   wbp_options: dict | None = None):
    """``(v0, v1)``: the weighted back-projections of the two halves.

    Parameters
    ----------
    stack_even, stack_odd : ndarray ``[tilt, y, x]``
        The halves' tilt series (e.g. from :func:`split_tilts`).
    angles_even, angles_odd : array of float
    thickness : int
        z size of the tomograms.
    wbp_options : dict, optional
        Keyword arguments of :func:`wedgebench.recon.wbp.reconstruct` (``filter``,
        ``cutoff``, ``falloff``, ``pad_factor``, ``fake_sirt_iterations``).

    Returns
    -------
    v0, v1 : ndarray float32 ``[thickness, y, x]``
    """
    from wedgebench.recon import wbp

    opts = dict(wbp_options or {})
    if np.shape(stack_even)[1:] != np.shape(stack_odd)[1:]:
        raise InputError(f"deepdewedge: the halves' images differ in size: "
                         f"{np.shape(stack_even)[1:]} vs {np.shape(stack_odd)[1:]}")
    v0 = wbp.reconstruct(stack_even, angles_even, thickness, **opts)
    v1 = wbp.reconstruct(stack_odd, angles_odd, thickness, **opts)
    return v0, v1


def tilt_half_tomograms(stack, angles, thickness: int, wbp_options: dict | None = None):
    """``(v0, v1)`` from the even and the odd tilts of one series (see :func:`split_tilts`)."""
    s0, a0 = split_tilts(stack, angles, "even")
    s1, a1 = split_tilts(stack, angles, "odd")
    return half_tomograms(s0, a0, s1, a1, thickness, wbp_options)


def frame_half_tomograms(stack_even_frames, stack_odd_frames, angles, thickness: int,
                         wbp_options: dict | None = None):
    """``(v0, v1)`` from even-frame and odd-frame stacks of all tilts.

    Parameters
    ----------
    stack_even_frames, stack_odd_frames : ndarray ``[tilt, y, x]``
        Each tilt's image summed from its even (odd) movie frames; same shape.
    angles : array of float, one per tilt
    thickness : int
    wbp_options : dict, optional

    Returns
    -------
    v0, v1 : ndarray float32 ``[thickness, y, x]``
    """
    if np.shape(stack_even_frames) != np.shape(stack_odd_frames):
        raise InputError(f"deepdewedge: even/odd frame stacks differ in shape: "
                         f"{np.shape(stack_even_frames)} vs {np.shape(stack_odd_frames)}")
    return half_tomograms(stack_even_frames, angles, stack_odd_frames, angles, thickness,
                          wbp_options)
