"""Settings of the downstream tasks (config section ``downstream``), defaults and checks.

Every error names the key as ``downstream.<key>``, the value and what is allowed. The
defaults below are starting points for the workflow, not values chosen on benchmark data.

Picking (template matching with pytme)
    ``angular_step``       degrees between tested orientations, 0 < x < 180
    ``peak_min_distance``  least distance between picks, in class radii, > 0
    ``num_peaks``          at most this many picks per tomogram and class, ≥ 1
    ``score_threshold``    keep picks scoring at least this (null: no threshold)
    ``threads``            processes pytme uses (``-n``), ≥ 1
    ``template_wedge``     ``"range"`` (a continuous wedge over the acquisition's
                           min…max tilt), ``"tilts"`` (pytme's wedge of the individual
                           tilt angles) or ``"none"``
    ``filter_target``      let pytme apply the same wedge to the tomogram as well
    ``invert_contrast``    the tomogram shows particles dark where the class maps are
                           bright: match with ``--invert-target-contrast`` and average
                           the negated subtomograms
    ``template_box``       template edge in voxels, odd, ≥ 5 (null: the class map's box,
                           made odd)
Scoring (CZII rules)
    ``beta``               F-β's β, > 0 (CZII: 4)
    ``match_radius``       a pick finds a particle within this fraction of the class
                           radius, > 0 (CZII: 0.5)
    ``class_weights``      class name → weight ≥ 0 for the weighted mean (unlisted: 1)
    ``orientation_threshold``  degrees, > 0: report the fraction of true-positive picks
                           whose orientation error is within it
Averaging
    ``box``                subtomogram edge in voxels, ≥ 8 (null: the class map's box)
    ``edge``               ``"skip"`` particles whose box leaves the tomogram, or
                           ``"pad"`` them with the tomogram's mean
    ``weighting``          ``"wedge"`` (missing-wedge-weighted Fourier average) or
                           ``"none"`` (plain mean)
    ``weight_epsilon``     ε as a fraction of the largest summed weight, 0 ≤ x < 1
    ``symmetrise``         expand each particle by its class's point group
    ``interpolation_order``  spline order of the rotations, 1 or 3
    ``mask_radius``        FSC against the true map inside a soft sphere of this many
                           class radii, > 0 (null: no mask)
    ``subset_repeats``     random subsets per size for resolution against N, ≥ 1
    ``seed``               seed of those subsets, integer ≥ 0
"""

from __future__ import annotations

import copy
import numbers

from wedgebench.io import InputError

DEFAULTS = {
    # picking
    "angular_step": 10.0,
    "peak_min_distance": 1.5,
    "num_peaks": 100,
    "score_threshold": None,
    "threads": 2,
    "template_wedge": "range",
    "filter_target": False,
    "invert_contrast": False,
    "template_box": None,
    # scoring
    "beta": 4.0,
    "match_radius": 0.5,
    "class_weights": {},
    "orientation_threshold": 15.0,
    # averaging
    "box": None,
    "edge": "skip",
    "weighting": "wedge",
    "weight_epsilon": 0.01,
    "symmetrise": True,
    "interpolation_order": 3,
    "mask_radius": 1.5,
    "subset_repeats": 3,
    "seed": 0,
}

_CHOICES = {"template_wedge": ("range", "tilts", "none"), "edge": ("skip", "pad"),
            "weighting": ("wedge", "none"), "interpolation_order": (1, 3)}


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check(key: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise InputError(f"downstream.{key}: value {value!r} is invalid; allowed: {allowed}")


def check_settings(settings: dict | None = None) -> dict:
    """The ``downstream`` settings merged over :data:`DEFAULTS` and checked.

    Parameters
    ----------
    settings : dict or None
        Any subset of the keys of :data:`DEFAULTS` (see the module docstring).

    Returns
    -------
    dict
        A new dict with every key.

    Raises
    ------
    InputError
        An unknown key or a bad value, naming ``downstream.<key>``.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise InputError(f"downstream.{unknown[0]}: unknown key; allowed keys: "
                         f"{', '.join(sorted(DEFAULTS))}")
    s = copy.deepcopy(DEFAULTS)
    s.update(settings)
    pos = "a number > 0"
    _check("angular_step", s["angular_step"],
           _number(s["angular_step"]) and 0 < s["angular_step"] < 180,
           "a number of degrees, 0 < x < 180")
    for key in ("peak_min_distance", "beta", "match_radius", "orientation_threshold"):
        _check(key, s[key], _number(s[key]) and s[key] > 0, pos)
    for key in ("num_peaks", "threads", "subset_repeats"):
        _check(key, s[key], _integer(s[key]) and s[key] >= 1, "an integer >= 1")
    _check("seed", s["seed"], _integer(s["seed"]) and s["seed"] >= 0, "an integer >= 0")
    _check("score_threshold", s["score_threshold"],
           s["score_threshold"] is None or _number(s["score_threshold"]), "null or a number")
    for key in ("filter_target", "invert_contrast", "symmetrise"):
        _check(key, s[key], isinstance(s[key], bool), "true or false")
    for key, choices in _CHOICES.items():
        _check(key, s[key], s[key] in choices and type(s[key]) is type(choices[0]),
               " or ".join(map(repr, choices)))
    tb = s["template_box"]
    _check("template_box", tb, tb is None or (_integer(tb) and tb >= 5 and tb % 2 == 1),
           "null or an odd integer >= 5 (pytme rotates about (n - 1) / 2, which is the "
           "centre voxel n // 2 only for odd n)")
    _check("box", s["box"], s["box"] is None or (_integer(s["box"]) and s["box"] >= 8),
           "null or an integer >= 8")
    _check("weight_epsilon", s["weight_epsilon"],
           _number(s["weight_epsilon"]) and 0 <= s["weight_epsilon"] < 1, "0 <= x < 1")
    _check("mask_radius", s["mask_radius"],
           s["mask_radius"] is None or (_number(s["mask_radius"]) and s["mask_radius"] > 0),
           "null or a number > 0")
    cw = s["class_weights"]
    _check("class_weights", cw, isinstance(cw, dict)
           and all(isinstance(k, str) and _number(v) and v >= 0 for k, v in cw.items()),
           "a mapping of class name to a weight >= 0")
    return s
