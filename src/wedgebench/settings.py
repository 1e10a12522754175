"""Nested settings: deep merging and per-dataset overrides.

A foundation module (it imports nothing from the package), shared by the configuration
checks (:mod:`wedgebench.config`) and the method registry (:mod:`wedgebench.methods`),
so that neither needs to import the other to merge settings.
"""

from __future__ import annotations


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``; nested dicts are merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dataset_settings(section: dict, dataset: str) -> dict:
    """A method's settings for one dataset: its ``per_dataset`` entry merged over the
    common settings (``per_dataset`` itself removed)."""
    base = {k: v for k, v in section.items() if k != "per_dataset"}
    return deep_merge(base, (section.get("per_dataset") or {}).get(dataset) or {})
