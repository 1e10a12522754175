"""The method registry: which reconstruction methods a run compares, under which names.

The config's ``methods`` is either a list of kind names (``[imod_wbp, cn]``) or a mapping
from a *name* (used in paths, tables, figures and the report) to a *spec*::

    methods:
      cn: {kind: cn}                               # the kind's own settings (config `cn:`)
      cn_paper: {kind: cn, positivity: none}       # overrides deep-merged over `cn:`
      mine: {kind: external, command: "..."}       # your own program
      imod_real: {kind: precomputed, path: "..."}  # a tomogram made elsewhere

A *kind* is a reconstruction algorithm with one rule file and one package module; its
settings live in the config section of the same name (if it has one). The kinds
themselves are listed in the config schema (``definitions.method_kind``), not here.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from .budgets import BUDGET_KEYS, ladder_methods
from .io import InputError
from .settings import dataset_settings, deep_merge

#: A method name: a Python-style identifier (it names directories and table rows).
METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: Names that would collide with the path scheme (``results/{dataset}/{acq}/{name}/``
#: holds a method's working files next to ``recon/`` and ``metrics/``).
RESERVED_NAMES = frozenset({"recon", "metrics", "figures", "report", "logs", "benchmarks",
                            "runtime", "work", "all", "ground_truth", "tiltseries", "measured"})

#: Placeholders of an external method's ``command`` template.
COMMAND_FIELDS = frozenset({"tiltseries", "tlt", "thickness", "voxel_size", "output",
                            "threads", "workdir", "tomogram", "python"})

#: Placeholders of a precomputed method's ``path`` pattern.
PATH_FIELDS = frozenset({"dataset", "acq", "rep"})

#: ``from: wbp`` names the IMOD-style WBP tomogram (method name ``imod_wbp``).
FROM_ALIASES = {"wbp": "imod_wbp"}

#: Spec keys that are not settings of the kind (never merged into its section).
SPEC_KEYS = ("kind", "description", "threads", "gpu", "from", "budget_of")


def normalise_methods(methods) -> dict[str, dict]:
    """The registry as ``{name: spec}`` in config order (a list of kinds -> name = kind)."""
    if isinstance(methods, dict):
        return {str(k): dict(v or {}) for k, v in methods.items()}
    return {str(k): {"kind": str(k)} for k in (methods or [])}


def full_registry(config: dict) -> dict[str, dict]:
    """The registry with the budget ladder's rungs (config ``budgets``) added after the
    configured methods (:func:`wedgebench.budgets.ladder_methods`).

    Raises
    ------
    InputError
        A bad ladder (naming the key).
    """
    registry = normalise_methods(config.get("methods"))
    return {**registry, **ladder_methods(registry, config.get("budgets"))}


def run_order(config: dict, registry: dict | None = None) -> list[str]:
    """The methods a run scores, in order: ``run_methods`` (else every configured method),
    each followed by its ladder's rungs (methods whose ``budget_of`` names it)."""
    registry = full_registry(config) if registry is None else registry
    base = list(config.get("run_methods") or normalise_methods(config.get("methods")))
    out = []
    for name in base:
        out.append(name)
        out += [n for n, spec in registry.items()
                if spec.get("budget_of") == name and n not in base]
    return out


def budget_family(name: str, spec: dict) -> str:
    """The ladder a method belongs to in tables and figures: its ``budget_of``, else its
    own name for a learned kind, else ``""`` (no ladder: the baselines, other programs)."""
    if spec.get("budget_of"):
        return str(spec["budget_of"])
    return name if spec.get("kind") in BUDGET_KEYS else ""


def template_fields(template: str) -> list[str]:
    """The ``{placeholder}`` names of a ``str.format`` template (``{{``/``}}`` are literal).

    Raises
    ------
    ValueError
        The template is malformed (an unmatched brace, a positional ``{}``).
    """
    fields = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base:
            raise ValueError("positional placeholder '{}' (name it, e.g. {output})")
        fields.append(base)
    return fields


def from_method(spec: dict) -> str | None:
    """The method whose tomogram a spec's ``from:`` names (``wbp`` -> ``imod_wbp``)."""
    src = spec.get("from")
    return None if src is None else FROM_ALIASES.get(src, src)


def variant_of(name: str, spec: dict, kinds_with_settings) -> str:
    """The kind a method is a variant of (``cn_paper`` -> ``cn``), else ``""``."""
    kind = spec["kind"]
    return kind if name != kind and kind in kinds_with_settings else ""


def method_settings(config: dict, name: str, dataset: str | None = None) -> dict:
    """A method's settings: its spec's overrides deep-merged over its kind's config section,
    then (with ``dataset``) that section's ``per_dataset.<dataset>`` entry, if any.

    Parameters
    ----------
    config : dict
        The merged config.
    name : str
        A method name of the registry, or a kind with settings (its default instance).
    dataset : str, optional
        Apply ``per_dataset`` overrides of this dataset.

    Returns
    -------
    dict
        The settings (without ``per_dataset`` and without the registry's own keys).
    """
    merged = _spec_over_section(config, name)
    if dataset is None:
        return {k: v for k, v in merged.items() if k != "per_dataset"}
    return dataset_settings(merged, dataset)


def _spec_over_section(config: dict, name: str) -> dict:
    """A method's spec overrides deep-merged over its kind's section (``per_dataset``
    kept); a kind's own name is its default instance, also when the registry omits it."""
    spec = normalise_methods(config.get("methods")).get(name, {"kind": name})
    return deep_merge(dict(config.get(spec["kind"]) or {}),
                      {k: v for k, v in spec.items() if k not in SPEC_KEYS})


def method_problems(config: dict, schema: dict) -> list[str]:
    """Every problem of the ``methods`` registry, each naming its config key.

    Checks names (identifier, not reserved, a kind's name used only for that kind,
    ``run_methods`` entries), specs (list entries that need a spec, ``from``, command
    templates, precomputed path patterns) and, for kinds with a settings section, that the
    overrides merged over the section (and each ``per_dataset`` entry) satisfy that
    section's schema.
    """
    import jsonschema

    kinds = schema["definitions"]["method_kind"]["enum"]
    with_settings = [k for k in kinds if k in schema["properties"]]
    raw = config.get("methods")
    out = []
    try:
        registry = full_registry(config)
    except InputError as exc:
        registry = normalise_methods(raw)
        out.append(str(exc))
    config = {**config, "methods": registry}  # the ladder's rungs are methods like any
    if isinstance(raw, list):
        for name in raw:
            if name not in with_settings:
                out.append(f"config key 'methods': value {name!r} needs a spec (kind "
                           f"{name!r} has no settings of its own): write it as a mapping, "
                           f"e.g. methods: {{my_{name}: {{kind: {name}, ...}}}}")
    for name, spec in registry.items():
        key = f"methods.{name}"
        kind = spec.get("kind")
        if not METHOD_NAME.match(name):
            out.append(f"config key '{key}': method name {name!r} is not allowed: use a "
                       "letter then letters, digits or '_' (it names files and directories)")
        elif name in RESERVED_NAMES:
            out.append(f"config key '{key}': method name {name!r} is reserved by the path "
                       f"scheme (reserved: {sorted(RESERVED_NAMES)})")
        if name in kinds and kind != name:
            out.append(f"config key '{key}.kind': a method named after the kind {name!r} "
                       f"must have that kind (got {kind!r}); choose another name")
        if kind == "external" and bool(spec.get("command")) == bool(spec.get("script")):
            out.append(f"config key '{key}': an external method needs exactly one of "
                       "`command` (a shell template) or `script` (a Python file)")
        if spec.get("script") and not Path(spec["script"]).is_file():
            out.append(f"config key '{key}.script': file {spec['script']!r} does not exist")
        src = from_method(spec)
        if src is not None and src not in registry and src not in with_settings:
            out.append(f"config key '{key}.from': value {spec['from']!r} is not a method "
                       f"(allowed: 'wbp' or one of {sorted(registry)})")
        if src == name:
            out.append(f"config key '{key}.from': a method cannot start from itself")
        out += _template_problems(spec.get("command"), COMMAND_FIELDS, f"{key}.command")
        out += _template_problems(spec.get("path"), PATH_FIELDS, f"{key}.path")
        if spec.get("command") and "{output}" not in spec["command"].replace("{{", ""):
            out.append(f"config key '{key}.command': the template must contain {{output}} "
                       "(where the method writes its MRC)")
        if "{tomogram}" in str(spec.get("command")) and src is None:
            out.append(f"config key '{key}.command': {{tomogram}} needs `from:` (e.g. from: wbp)")
        out += _budget_of_problems(config, registry, name, spec, key)
        if kind in with_settings:
            out += _settings_problems(config, schema, name, kind, key, jsonschema)
    lower = [n.lower() for n in registry]
    for name in registry:
        if lower.count(name.lower()) > 1:
            out.append(f"config key 'methods.{name}': names that differ only in case collide "
                       "on case-insensitive file systems")
    for name in config.get("run_methods") or []:
        if name not in registry:
            out.append(f"config key 'run_methods': value {name!r} is not a configured method "
                       f"(allowed: {sorted(registry)})")
    return out


def _budget_of_problems(config, registry, name, spec, key) -> list[str]:
    """``budget_of`` must name a registered method of the same learned kind whose settings
    differ from this one's in ``budget`` alone (rungs share work: docs, Budgets)."""
    base = spec.get("budget_of")
    if base is None:
        return []
    if base not in registry and base != spec.get("kind"):
        return [f"config key '{key}.budget_of': value {base!r} is not a method (allowed: "
                f"{sorted(registry)})"]
    if spec.get("kind") not in BUDGET_KEYS:
        return [f"config key '{key}.budget_of': only learned methods have budgets (kinds "
                f"{sorted(BUDGET_KEYS)})"]
    other = {k: v for k, v in _spec_over_section(config, base).items() if k != "budget"}
    mine = {k: v for k, v in _spec_over_section(config, name).items() if k != "budget"}
    if registry.get(base, {"kind": base}).get("kind") != spec.get("kind") or other != mine:
        return [f"config key '{key}.budget_of': {name!r} and {base!r} differ in more than "
                "`budget`, so they cannot share work as one budget ladder"]
    return []


def _template_problems(template, allowed, key) -> list[str]:
    if template is None:
        return []
    try:
        fields = template_fields(template)
    except ValueError as exc:
        return [f"config key '{key}': template {template!r} is malformed: {exc}"]
    return [f"config key '{key}': unknown placeholder {{{f}}} in {template!r} "
            f"(allowed: {', '.join('{%s}' % a for a in sorted(allowed))})"
            for f in dict.fromkeys(fields) if f not in allowed]


def _settings_problems(config, schema, name, kind, key, jsonschema) -> list[str]:
    section = schema["properties"][kind]
    validator = jsonschema.Draft202012Validator(section)
    spec = normalise_methods(config.get("methods"))[name]
    merged = _spec_over_section(config, name)
    fixed = [k for k, v in section.get("properties", {}).items() if v.get("x-global")]
    out = [f"config key '{key}.{k}': a setting of the whole run, set it in `{kind}:` only"
           for k in fixed if k in spec and name != kind]
    checks = [(key, merged)]
    for ds, over in (merged.get("per_dataset") or {}).items():
        base = {k: v for k, v in merged.items() if k != "per_dataset"}
        out += [f"config key '{key}.per_dataset.{ds}.{k}': not a per-dataset setting"
                for k in ("per_dataset", *fixed) if k in (over or {})]
        checks.append((f"{key}.per_dataset.{ds}", deep_merge(base, over or {})))
    for where, values in checks:
        for err in validator.iter_errors(values):
            path = ".".join(str(p) for p in err.absolute_path)
            out.append(f"config key '{where}{'.' + path if path else ''}': {err.message}")
    return out
