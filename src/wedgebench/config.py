"""Configuration checks and derived values shared by the workflow.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types and ranges;
:func:`check_config` formats its errors so that each names the key, the value
and what is allowed, and adds the checks a schema cannot express (range
min ≤ max, files that must exist, dataset names that must stay inside
``results/``).

Import order: :mod:`.settings` (merging) ← :mod:`.methods` (the registry and its checks)
← this module; ``deep_merge`` and ``dataset_settings`` are re-exported from
:mod:`.settings` for the workflow and the benchmarks.
"""

from __future__ import annotations

import re
from pathlib import Path

from .geometry import acquisition_label, tilt_angles
from .io import InputError, read_mrc_header
from .methods import method_problems
from .settings import dataset_settings, deep_merge

__all__ = ["ConfigError", "SAFE_NAME", "acquisition_angles", "check_config",
           "dataset_acquisitions", "dataset_settings", "deep_merge", "duplicate_key_problems",
           "isonet_settings"]

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def check_config(config: dict, schema: dict) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config``.

    Parameters
    ----------
    config : dict
        The merged Snakemake config.
    schema : dict
        The loaded JSON schema.
    """
    import jsonschema

    problems = []
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        allowed = ""
        if err.validator in ("enum", "const", "minimum", "maximum", "exclusiveMinimum",
                             "exclusiveMaximum", "type", "pattern", "minItems", "maxItems"):
            allowed = f" (allowed: {err.validator} {err.validator_value!r})"
        problems.append(f"config key '{_key(err.absolute_path)}': value {err.instance!r} "
                        f"is invalid: {err.message}{allowed}")
    if not problems:
        problems = _semantic_problems(config) + method_problems(config, schema)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _acquisition_problems(acqs, key):
    out = []
    for i, acq in enumerate(acqs or []):
        k = f"{key}.{i}"
        try:
            tilt_angles(acq.get("range"), acq.get("step"), acq.get("angles"))
        except (ValueError, TypeError) as exc:
            out.append(f"config key '{k}': value {acq!r} is invalid: {exc}")
    return out


def _model_problems(config: dict, name: str, ds: dict) -> list[str]:
    """Checks of a simulated dataset's acquisition models that need the dataset."""
    out = []
    projector = (config.get("tiltseries") or {}).get("projector", "ray")
    running = not config.get("run_datasets") or name in config["run_datasets"]
    if projector == "analytic" and running and ds.get("kind") not in ("spheres", "shapes"):
        out.append(f"config key 'tiltseries.projector': value 'analytic' is not available for "
                   f"dataset {name!r} of kind {ds.get('kind')!r} (allowed: spheres, shapes; "
                   "use 'ray' or restrict run_datasets)")
    thickness_nm = ds["shape"][0] * float(ds.get("voxel_size", 1.0)) / 10.0
    for label, acq in dataset_acquisitions(config, name).items():
        key = f"datasets.{name} acquisition {label}"
        ice = acq.get("ice") or {}
        if ice and ice["thickness_nm"] < thickness_nm:
            out.append(f"config key '{key}: ice.thickness_nm': value {ice['thickness_nm']} is "
                       f"thinner than the specimen ({ds['shape'][0]} voxels x "
                       f"{ds.get('voxel_size', 1.0)} A = {thickness_nm:g} nm)")
        if acq.get("ctf_correction") == "phase_flip" and not acq.get("optics"):
            out.append(f"config key '{key}: ctf_correction': value 'phase_flip' needs "
                       "'optics' (there is no CTF to correct)")
        if acq.get("damage") and not acq.get("dose"):
            out.append(f"config key '{key}: damage': value True needs 'dose' (damage "
                       "depends on the dose received)")
        if ice and float(ice.get("potential_v", 4.5)) >= float(
                acq.get("specimen_potential_v", 7.0)):
            out.append(f"config key '{key}: ice.potential_v': value "
                       f"{ice.get('potential_v', 4.5)} must be below specimen_potential_v "
                       f"({acq.get('specimen_potential_v', 7.0)})")
    return out


#: The MRC input of each dataset kind that reads one: (params key, volume or stack).
INPUT_MRC = {"custom": ("path", "volume"), "tiltseries": ("stack", "stack")}


def _input_file_problems(key: str, ds: dict) -> list[str]:
    """The MRC file of a ``custom`` (``params.path``, a volume of exactly ``shape``) or
    ``tiltseries`` dataset (``params.stack``, a stack whose (y, x) match ``shape``'s),
    checked from its header (:func:`wedgebench.io.read_mrc_header`): not an MRC,
    truncated, not 3-D, a complex or unknown mode, a bad voxel size, a shape mismatch.
    A missing file is reported by the existence check."""
    if ds.get("kind") not in INPUT_MRC:
        return []
    fkey, kind = INPUT_MRC[ds["kind"]]
    src = (ds.get("params") or {}).get(fkey)
    if not src or not Path(src).is_file():
        return []
    where = f"config key '{key}.params.{fkey}'"
    try:
        header = read_mrc_header(src, kind)
    except InputError as exc:
        return [f"{where}: {exc}"]
    shape = tuple(int(n) for n in ds.get("shape") or ())
    if kind == "volume" and shape and header.shape != shape:
        return [f"{where}: {src}: shape mismatch: the volume is {list(header.shape)} "
                f"[z, y, x] but '{key}.shape' is {list(shape)}"]
    if kind == "stack" and len(shape) == 3 and header.shape[1:] != shape[1:]:
        return [f"{where}: {src}: shape mismatch: the stack's images are (y, x) = "
                f"{header.shape[1:]} but '{key}.shape' gives (ny, nx) = {shape[1:]}"]
    return []


def _semantic_problems(config: dict) -> list[str]:
    out = _acquisition_problems(config.get("acquisitions"), "acquisitions")
    for name in config.get("run_datasets") or []:
        if name not in (config.get("datasets") or {}):
            out.append(f"config key 'run_datasets': value {name!r} is not a configured "
                       f"dataset (allowed: {sorted(config.get('datasets') or {})})")
    for name, ds in (config.get("datasets") or {}).items():
        key = f"datasets.{name}"
        if not SAFE_NAME.match(str(name)) or ".." in str(name):
            out.append(f"config key '{key}': dataset name {name!r} is not allowed: use "
                       "letters, digits, '_', '-', '.', no path separators or '..'")
        out += _acquisition_problems(ds.get("acquisitions"), f"{key}.acquisitions")
        if ds.get("kind") != "tiltseries" and not _acquisition_problems(
                ds.get("acquisitions") or config.get("acquisitions"), key):
            out += _model_problems(config, name, ds)
        params = ds.get("params") or {}
        out += _input_file_problems(key, ds)
        for fkey in ("path", "source", "stack", "tlt", "rawtlt", "mdoc", "xf"):
            src = params.get(fkey)
            if src and not Path(src).is_file():
                out.append(f"config key '{key}.params.{fkey}': file {src!r} does not exist")
        if ds.get("kind") == "custom" and not params.get("path"):
            out.append(f"config key '{key}.params.path': required for kind 'custom'")
        if ds.get("kind") == "tiltseries":
            if not params.get("stack"):
                out.append(f"config key '{key}.params.stack': required for kind 'tiltseries'")
            if not any(params.get(k) for k in ("tlt", "rawtlt", "mdoc")):
                out.append(f"config key '{key}.params': kind 'tiltseries' needs the tilt "
                           "angles: 'tlt', 'rawtlt' or 'mdoc'")
            for fkey in ("dose_weighting", "dose_per_tilt"):
                if params.get(fkey) and not params.get("mdoc"):
                    out.append(f"config key '{key}.params.{fkey}': needs 'mdoc' (the "
                               "acquisition order the dose accumulates in)")
    return out


def dataset_acquisitions(config: dict, dataset: str) -> dict[str, dict]:
    """Acquisitions of one dataset, keyed by their path label.

    A ``tiltseries`` dataset (measured data) has the single label ``"measured"``.
    """
    ds = config["datasets"][dataset]
    if ds.get("kind") == "tiltseries":
        return {"measured": {}}
    acqs = ds.get("acquisitions") or config["acquisitions"]
    model = (config.get("tiltseries") or {}).get("model") or {}
    merged = [deep_merge(model, a) for a in acqs]
    return {acquisition_label(a): a for a in merged}


def acquisition_angles(config: dict, dataset: str, label: str):
    """Tilt angles (degrees) of a simulated acquisition."""
    acq = dataset_acquisitions(config, dataset)[label]
    return tilt_angles(acq.get("range"), acq.get("step"), acq.get("angles"))


#: The ``isonet`` section for one dataset (the IsoNet benchmarks' name for it).
isonet_settings = dataset_settings


def duplicate_key_problems(path) -> list[str]:
    """Keys given twice in one mapping of a YAML config file (YAML loaders silently keep
    the last one, so a second method or dataset of the same name would vanish).

    Returns
    -------
    list of str
        One message per duplicate, naming the file, the line and the key path.
    """
    import yaml

    problems = []

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                problems.append(f"config file {path}, line {key_node.start_mark.line + 1}: "
                                f"key {key!r} is given twice in the same mapping (names of "
                                "methods and datasets must be unique)")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    with open(path) as fh:
        yaml.load(fh, Loader=Loader)
    return problems
