"""Compute budgets of the learned methods: the ``budget`` setting and budget ladders.

``budget: b`` runs a learned method for ``b`` times its configured length, as a complete
run at that length (every schedule is defined relative to the length, so a longer run is
not a truncated one):

============  =================================  =========================================
kind          scaled settings                    what a longer run reuses of a shorter one
============  =================================  =========================================
cn            ``anchor_iterations``,             nothing: the learning-rate schedule (held
              ``iterations``                     for half the iterations, then decayed)
                                                 stretches with the length, so every fit
                                                 differs from the first step
isonet        ``iterations`` (refine             refine iterations 1…n: each iteration's
              iterations; ``per_dataset`` too)   training, noise level and seed depend on
                                                 its number only, so a run of 2n
                                                 iterations begins with the run of n
deepdewedge   ``epochs``                         fitting blocks with the same epoch range:
                                                 Adam without a schedule, wedge updates and
                                                 validation every fixed number of epochs
============  =================================  =========================================

A scaled count is ``max(1, floor(b · n + 1/2))`` (round half up).

**Budgets that grow with the data** (``scale_with_data`` of ``cn`` and ``isonet``): a
default is sized for a reference size of what the method fits (``reference_voxels``); on
larger data each scaled setting is multiplied by ``(size / reference)^exponent`` (never
below 1: smaller data keep the default). CN's size is the voxels of one slab (``nz ×
slab_size × nx``): ``iterations`` scales ``anchor_iterations`` and ``iterations``, ``width``
the network width (rounded to a multiple of 8); IsoNet's is the tomogram's voxels:
``n_subtomos`` and ``iterations``. DeepDeWedge needs no rule: an epoch visits every
sub-tomogram, so its optimisation steps already grow with the volume. The exponents are
chosen on validation seeds (``benchmarks/data_scaling.py``).

A *ladder* (config ``budgets:``) registers, for each named method, one variant per factor:
``cn_x0p25``, ``cn_x0p5``, ``cn_x2``, … (the factor with ``.`` written ``p``; factor 1 is
the method itself), each the method's spec with ``budget`` multiplied by the factor and
``budget_of`` naming the method (its *family* in tables and figures).
"""

from __future__ import annotations

import math

from wedgebench.io import InputError

#: Per learned kind, the settings that ``budget`` multiplies.
BUDGET_KEYS = {"cn": ("anchor_iterations", "iterations"), "isonet": ("iterations",),
               "deepdewedge": ("epochs",)}


def scaled_count(n: int, budget: float) -> int:
    """``max(1, floor(budget · n + 1/2))``."""
    return max(1, int(math.floor(float(budget) * int(n) + 0.5)))


def apply_budget(kind: str, settings: dict) -> dict:
    """A method's settings with its ``budget`` applied (a copy; kinds without a budget
    and ``budget: 1`` are returned unchanged).

    Parameters
    ----------
    kind : str
    settings : dict
        The method's settings for one dataset (``per_dataset`` already merged in).

    Raises
    ------
    InputError
        ``budget`` ≤ 0 or not a number (naming the key).
    """
    out = dict(settings)
    if kind not in BUDGET_KEYS or "budget" not in out:
        return out
    b = out["budget"]
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0:
        raise InputError(f"config key '{kind}.budget': value {b!r} is invalid: a budget is "
                         "a number > 0 (a multiple of the default length, e.g. 0.5 or 2)")
    for key in BUDGET_KEYS[kind]:
        if key in out:
            out[key] = scaled_count(out[key], b)
    return out


#: Per kind, the settings ``scale_with_data`` may scale (exponent keys) and what they scale.
SCALED = {"cn": {"iterations": ("anchor_iterations", "iterations"), "width": ("width",)},
          "isonet": {"n_subtomos": ("n_subtomos",), "iterations": ("iterations",)}}


def fitted_voxels(kind: str, settings: dict, shape) -> int:
    """The size a learned method fits: CN's slab (``nz × slab_size × nx``; 0 for
    ``slab_size: auto``, which is not scaled), IsoNet's whole tomogram."""
    nz, ny, nx = (int(n) for n in shape)
    if kind == "cn":
        j = settings.get("slab_size")
        return nz * int(j) * nx if isinstance(j, int) else 0
    return nz * ny * nx


def apply_data_scaling(kind: str, settings: dict, shape) -> dict:
    """A method's settings scaled by ``scale_with_data`` for data of ``shape`` (a copy;
    see the module docstring). Kinds without a rule are returned unchanged.

    Raises
    ------
    InputError
        A negative exponent or a reference size ≤ 0 (naming the key).
    """
    out = dict(settings)
    rule = out.get("scale_with_data") or {}
    if kind not in SCALED or not rule:
        return out
    ref = rule.get("reference_voxels", 0)
    if not (isinstance(ref, (int, float)) and ref > 0):
        raise InputError(f"config key '{kind}.scale_with_data.reference_voxels': value "
                         f"{ref!r} is invalid: a number of voxels > 0")
    size = fitted_voxels(kind, out, shape)
    for name, keys in SCALED[kind].items():
        a = rule.get(name, 0.0)
        if not (isinstance(a, (int, float)) and a >= 0):
            raise InputError(f"config key '{kind}.scale_with_data.{name}': value {a!r} is "
                             "invalid: an exponent >= 0")
        f = max(1.0, (size / ref) ** a) if size else 1.0
        for key in keys:
            if key == "width":
                out[key] = max(8, int(round(out[key] * f / 8.0)) * 8) if f > 1 else out[key]
            elif key in out:
                out[key] = scaled_count(out[key], f)
    return out


def factor_name(base: str, factor: float) -> str:
    """Registry name of a ladder rung: ``cn_x0p25`` (``.`` → ``p``, ``-`` never occurs)."""
    return f"{base}_x{float(factor):g}".replace(".", "p")


def ladder_methods(registry: dict, ladder: dict | None) -> dict:
    """The ladder's variants, to be added to the registry.

    Parameters
    ----------
    registry : dict
        ``{name: spec}`` (see :func:`wedgebench.methods.normalise_methods`); a kind with
        settings that is not registered may still be named (its default instance).
    ladder : dict or None
        The config's ``budgets`` section: ``methods`` (names) and ``factors`` (numbers >
        0; 1 is the method itself and adds nothing).

    Returns
    -------
    dict
        ``{rung name: spec}`` in method, then factor order; each spec is the method's with
        ``budget`` (its own budget, default 1, times the factor) and ``budget_of``.

    Raises
    ------
    InputError
        A method that is not a learned method, a factor ≤ 0, or a rung name that is
        already registered with another spec (naming the key).
    """
    if not ladder:
        return {}
    out = {}
    factors = list(ladder.get("factors") or [])
    for i, f in enumerate(factors):
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0:
            raise InputError(f"config key 'budgets.factors.{i}': value {f!r} is invalid: "
                             "a factor is a number > 0")
    for i, base in enumerate(ladder.get("methods") or []):
        spec = dict(registry.get(base) or {"kind": base})
        if spec.get("kind") not in BUDGET_KEYS:
            raise InputError(f"config key 'budgets.methods.{i}': {base!r} is not a learned "
                             f"method (a ladder needs a method of kind "
                             f"{sorted(BUDGET_KEYS)})")
        for f in factors:
            if float(f) == 1.0:
                continue
            name = factor_name(base, f)
            rung = {**spec, "budget": float(spec.get("budget", 1.0)) * float(f),
                    "budget_of": base}
            if name in registry and registry[name] != rung:
                raise InputError(f"config key 'methods.{name}': the name is taken by the "
                                 f"budget ladder of {base!r}; rename the method")
            out[name] = rung
    return out
