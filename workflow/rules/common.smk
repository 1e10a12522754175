# Config checks, the method registry and the helpers shared by every rule file.
#
# Path scheme (written out literally in the rules, as the Snakemake catalog asks):
#   results/{dataset}/ground_truth.mrc
#   results/{dataset}/{acq}/tiltseries.mrc, .tlt
#   results/{dataset}/{acq}/recon/{method}.mrc         every method's reconstruction
#   results/{dataset}/{acq}/{method}/...               a method's own working files
#   results/{dataset}/{acq}/metrics/{method}.json
#   results/logs/{dataset}/{acq}/{method}/{step}.log, results/benchmarks/.../{step}.tsv
#   results/report/...
import os

import yaml
from snakemake.utils import validate

from wedgebench.config import (
    ConfigError,
    acquisition_angles,
    check_config,
    dataset_acquisitions,
    duplicate_key_problems,
)
from wedgebench.tiltseries import acquisition_summary, has_model
from wedgebench.recon.deepdewedge.options import (
    DDWOptions,
    extraction_size,
    options_from_config,
)
from wedgebench.budgets import apply_budget
from wedgebench.methods import (
    from_method,
    method_settings,
    normalise_methods,
    variant_of,
)

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
with open(SCHEMA) as fh:
    SCHEMA_DICT = yaml.safe_load(fh)
_duplicates = [p for f in workflow.configfiles for p in duplicate_key_problems(f)]
if _duplicates:
    raise ConfigError("invalid configuration:\n  " + "\n  ".join(_duplicates))
check_config(config, SCHEMA_DICT)
validate(config, SCHEMA)  # fills defaults from the schema

CONDA_ENV = "../../envs/wedgebench.yaml"  # for --sdm conda; relative to the rule files
METHODS = normalise_methods(config["methods"])
KINDS_WITH_SETTINGS = [
    k
    for k in SCHEMA_DICT["definitions"]["method_kind"]["enum"]
    if k in SCHEMA_DICT["properties"]
]
# Per kind, the file pattern(s) holding a reconstruction's runtime; each kind's rule file
# adds its own entry (benchmark TSVs are summed, runtime.json files read).
KIND_RUNTIME = {}


def _alternatives(names):
    """A regex matching exactly ``names`` (one that never matches when there are none)."""
    names = sorted(set(names), key=len, reverse=True)
    return "|".join(names) if names else "(?!x)x"


def method_names(kind=None):
    """Registry names (of one kind), plus the kind's own default instance: `imod_wbp` is
    always buildable because IsoNet and `from: wbp` start from it."""
    names = [n for n, s in METHODS.items() if kind is None or s["kind"] == kind]
    kinds = KINDS_WITH_SETTINGS if kind is None else [kind]
    return names + [k for k in kinds if k in KINDS_WITH_SETTINGS]


def kind_pattern(kind):
    """Wildcard constraint of the rules of one kind."""
    return _alternatives(method_names(kind))


def method_spec(name):
    return METHODS.get(name, {"kind": name})


def method_kind(name):
    return method_spec(name)["kind"]


def settings(wildcards):
    """The settings of ``wildcards.method`` for ``wildcards.dataset`` (a plain dict), its
    ``budget`` applied (iterations or epochs scaled)."""
    name = wildcards.method
    return apply_budget(
        method_kind(name),
        method_settings(config, name, base_dataset(wildcards.dataset)),
    )


def method_threads(wildcards):
    spec = method_spec(wildcards.method)
    default = config["threads"].get(spec["kind"], config["threads"].get("recon", 1))
    return int(spec.get("threads", default))


def method_gpu(wildcards):
    """GPUs of a GPU-capable method's jobs: the spec's `gpu`, else 1 when device is cuda."""
    return int(method_spec(wildcards.method).get("gpu", config["device"] == "cuda"))


def method_source(wildcards):
    """The reconstruction a method starts from (`from:`), or nothing."""
    src = from_method(method_spec(wildcards.method))
    if src is None:
        return []
    return f"results/{wildcards.dataset}/{wildcards.acq}/recon/{src}.mrc"


def run_methods():
    """Methods this run scores: ``run_methods`` if set, else every registered one."""
    return list(config.get("run_methods") or METHODS)


def method_table_info():
    """Per scored method: kind and the kind it is a variant of (for Table 1)."""
    return {
        n: {
            "kind": method_kind(n),
            "variant_of": variant_of(n, method_spec(n), KINDS_WITH_SETTINGS),
        }
        for n in run_methods()
    }


def runtime_inputs(wildcards):
    """Files that hold the runtime of one method's reconstruction."""
    patterns = KIND_RUNTIME[method_kind(wildcards.method)]
    return [p.format(**wildcards) for p in patterns]


def base_dataset(path):
    """The configured dataset of a dataset path (``spheres`` or ``spheres/rep2``)."""
    return path.split("/", 1)[0]


def replicate(path):
    """The replicate of a dataset path: 1 for ``spheres``, r for ``spheres/rep{r}``."""
    parts = path.split("/")
    return int(parts[1].removeprefix("rep")) if len(parts) > 1 else 1


def dataset_path(dataset, rep):
    """Replicate ``rep`` of ``dataset`` in the path scheme (replicate 1 has no suffix)."""
    return dataset if rep == 1 else f"{dataset}/rep{rep}"


def dataset_config(wildcards):
    """The config block of the dataset of ``wildcards.dataset`` (a plain dict)."""
    return dict(config["datasets"][base_dataset(wildcards.dataset)])


def dataset_seed(wildcards):
    """Seed of a dataset replicate: the dataset's (or the base) seed + replicate - 1, so
    replicates 1..N of `seed: 1` use seeds 1..N (phantom, noise, initialisation,
    extraction)."""
    base = int(dataset_config(wildcards).get("seed", config["seed"]))
    return base + replicate(wildcards.dataset) - 1


def dataset_shape(wildcards):
    """[z, y, x] of the reconstruction of a dataset."""
    return [int(n) for n in dataset_config(wildcards)["shape"]]


def thickness(wildcards):
    """z size of the reconstruction: the ground truth's (or the configured) thickness."""
    return dataset_shape(wildcards)[0]


def angles(wildcards):
    ds = base_dataset(wildcards.dataset)
    return [float(a) for a in acquisition_angles(config, ds, wildcards.acq)]


def acquisition(wildcards):
    """The acquisition dict of a simulated acquisition (its model merged in)."""
    if not has_ground_truth(wildcards.dataset):
        return {}
    return dataset_acquisitions(config, base_dataset(wildcards.dataset))[wildcards.acq]


def phantom_spec(wildcards):
    """What the analytic projector needs to rebuild a phantom's continuous objects."""
    ds = dataset_config(wildcards)
    params = dict(ds.get("params") or {}, shape=dataset_shape(wildcards))
    if ds.get("voxel_size") is not None:
        params["voxel_size"] = ds["voxel_size"]
    return {"kind": ds["kind"], "params": params, "shape": dataset_shape(wildcards)}


def tiltseries_inputs(wildcards):
    """The ground truth (noise-free acquisitions) or the simulated acquisition (a model)."""
    if has_model(acquisition(wildcards)):
        return {
            "acquired": f"results/{wildcards.dataset}/{wildcards.acq}/acquired.mrc",
            "meta": f"results/{wildcards.dataset}/{wildcards.acq}/acquisition.json",
        }
    return {"gt": f"results/{wildcards.dataset}/ground_truth.mrc"}


def has_ground_truth(dataset):
    return config["datasets"][base_dataset(dataset)]["kind"] != "tiltseries"


def ground_truth(wildcards):
    if not has_ground_truth(wildcards.dataset):
        return []
    return f"results/{wildcards.dataset}/ground_truth.mrc"


def measured_halves(wildcards, *patterns):
    """Measured data: ``patterns`` filled in for the even, then the odd tilts ({half});
    nothing for simulated data."""
    if has_ground_truth(wildcards.dataset):
        return []
    return [
        pattern.format(half=half, **wildcards)
        for half in ("measured-even", "measured-odd")
        for pattern in patterns
    ]


def half_reconstructions(wildcards):
    """Measured data: the method's reconstructions from the even and the odd tilts."""
    return measured_halves(wildcards, "results/{dataset}/{half}/recon/{method}.mrc")


def half_tiltseries(wildcards):
    """Measured data: the even and the odd tilts (.mrc, .tlt of each, in that order)."""
    return measured_halves(
        wildcards,
        "results/{dataset}/{half}/tiltseries.mrc",
        "results/{dataset}/{half}/tiltseries.tlt",
    )


def run_info(wildcards):
    """What a metrics record says about its run besides the numbers."""
    m = wildcards.method
    return {
        "dataset": base_dataset(wildcards.dataset),
        "replicate": replicate(wildcards.dataset),
        "seed": dataset_seed(wildcards),
        "acquisition": wildcards.acq,
        "shape": dataset_shape(wildcards),
        "method": m,
        "kind": method_kind(m),
        "variant_of": variant_of(m, method_spec(m), KINDS_WITH_SETTINGS),
        **acquisition_summary(acquisition(wildcards)),
    }


def section(name):
    return dict(config.get(name) or {})


def stage_threads(name):
    return int(config["threads"].get(name, 1))


def selected_datasets():
    """Datasets this run builds: ``run_datasets`` if set, else every configured one.

    (Snakemake deep-merges ``--configfile`` dicts into ``config.yaml``, so a preset selects
    its datasets with this list instead of removing the others.)
    """
    return list(config.get("run_datasets") or config["datasets"])


def replicates():
    return range(1, int(config["replicates"]) + 1)


def expand_runs(pattern, methods=None):
    """Every selected (dataset replicate, acquisition[, method]) filled into ``pattern``."""
    out = []
    for ds in selected_datasets():
        for rep in replicates():
            for acq in dataset_acquisitions(config, ds):
                for m in methods or [None]:
                    path = dataset_path(ds, rep)
                    out.append(pattern.format(dataset=path, acq=acq, method=m))
    return out


def sweep_datasets():
    """Datasets with more than one simulated acquisition (a Figure 5 sweep)."""
    return [
        ds
        for ds in selected_datasets()
        if has_ground_truth(ds) and len(dataset_acquisitions(config, ds)) > 1
    ]


def all_metrics(wildcards=None):
    return expand_runs("results/{dataset}/{acq}/metrics/{method}.json", run_methods())


def run_metrics(wildcards):
    """The metrics of every scored method for one dataset and acquisition."""
    return [
        f"results/{wildcards.dataset}/{wildcards.acq}/metrics/{m}.json"
        for m in run_methods()
    ]


def run_recons(wildcards):
    return [
        f"results/{wildcards.dataset}/{wildcards.acq}/recon/{m}.mrc"
        for m in run_methods()
    ]


def sweep_metrics(wildcards):
    """Every replicate's metrics of every acquisition of a (configured) dataset."""
    return [
        f"results/{dataset_path(wildcards.dataset, rep)}/{acq}/metrics/{m}.json"
        for rep in replicates()
        for acq in dataset_acquisitions(config, wildcards.dataset)
        for m in run_methods()
    ]


def all_targets():
    """Table 1, every dataset's figures and, for sweeps, the Figure 5-style plots."""
    targets = ["results/report/table1.csv", "results/report/table1.md"]
    targets += expand_runs("results/report/figures/{dataset}/{acq}/orthoslices.png")
    targets += [f"results/report/figures/{ds}/sweep" for ds in sweep_datasets()]
    return targets


wildcard_constraints:
    # a configured dataset, or replicate r >= 2 of it as `<dataset>/rep<r>`
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*(/rep([2-9]|[1-9][0-9]+))?",
    acq=r"tilt[^/]+|measured(-even|-odd)?",
    method=_alternatives(method_names()),


def per_chunk(wildcards, pattern):
    """``pattern`` for every chunk of a chunked method (its `chunks` setting)."""
    n = int(settings(wildcards)["chunks"])
    return [pattern.format(chunk=c, **wildcards) for c in range(n)]


def previous_iteration(wildcards, name):
    """File ``name`` of iteration N-1 of an iterative method (nothing for iteration 1)."""
    it = int(wildcards.iter)
    if it == 1:
        return []
    return f"results/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}/iter_{it - 1}/{name}"


def per_iteration(wildcards, pattern):
    """``pattern`` for iterations 1..N of an iterative method (its `iterations` setting)."""
    n = int(settings(wildcards)["iterations"])
    return [pattern.format(iter=i, **wildcards) for i in range(1, n + 1)]


def maybe_temp(path, keep):
    """``path``, or ``temp(path)`` when ``keep`` is false."""
    return path if keep else temp(path)


def last_iteration(wildcards, name):
    """File ``name`` of the last iteration of an iterative method."""
    n = int(settings(wildcards)["iterations"])
    return f"results/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}/iter_{n}/{name}"


def invert_contrast(value, dataset):
    """Contrast inversion: `auto` inverts measured EM data (dark density), not simulated
    tilt series (line integrals of a positive density: already bright)."""
    if value == "auto":
        return not has_ground_truth(dataset)
    return bool(value)


def ddw_split(wildcards):
    """DeepDeWedge's halves of an acquisition: `tilts` or `frames` (`auto`: frames when the
    acquisition has a dose model, whose `acquire` job writes even/odd half-dose frames).
    """
    split = settings(wildcards)["split"]
    has_dose = bool(acquisition(wildcards).get("dose"))
    if split == "frames" and not has_dose:
        raise ConfigError(
            f"method {wildcards.method!r}: split: frames needs an acquisition with a dose "
            f"model (acquisition {wildcards.acq!r} of {wildcards.dataset!r} has none); "
            "use split: tilts or auto"
        )
    if split == "auto":
        return "frames" if has_dose else "tilts"
    return split


def ddw_half_inputs(wildcards):
    """The tilt series DeepDeWedge's half tomograms come from (see ``ddw_split``)."""
    base = f"results/{wildcards.dataset}/{wildcards.acq}"
    if ddw_split(wildcards) == "frames":
        return {
            "even": f"{base}/tiltseries_frames_even.mrc",
            "odd": f"{base}/tiltseries_frames_odd.mrc",
            "tlt": f"{base}/tiltseries.tlt",
        }
    return {"mrc": f"{base}/tiltseries.mrc", "tlt": f"{base}/tiltseries.tlt"}


def wbp_settings(wildcards):
    """The `imod_wbp` settings (for the dataset): how other kinds back-project."""
    return method_settings(config, "imod_wbp", base_dataset(wildcards.dataset))


def method_options(wildcards, keys):
    """The settings of ``wildcards.method`` restricted to ``keys`` (job params that must not
    change when an unrelated setting does, e.g. a fitting block's when `epochs` rises).
    """
    s = settings(wildcards)
    return {k: s[k] for k in keys if k in s}


def n_blocks(wildcards):
    """Fitting jobs of a method fitted in blocks: ceil(`epochs` / `block_epochs`)."""
    s = settings(wildcards)
    return -(-int(s["epochs"]) // int(s["block_epochs"]))


def block_range(wildcards):
    """Epochs [from, to) of fitting block ``wildcards.block`` (1-based)."""
    s = settings(wildcards)
    k, size = int(wildcards.block), int(s["block_epochs"])
    return [(k - 1) * size, min(k * size, int(s["epochs"]))]


def previous_block(wildcards, name):
    """File ``name`` (``{block}`` filled in) of block k-1 of a method (nothing for block 1)."""
    k = int(wildcards.block)
    if k == 1:
        return []
    path = f"results/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}/fit/{name}"
    return path.format(block=k - 1)


def last_block(wildcards, name):
    """File ``name`` (``{block}`` filled in) of the last fitting block of a method."""
    path = f"results/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}/fit/{name}"
    return path.format(block=n_blocks(wildcards))


def per_block(wildcards, pattern):
    """``pattern`` for fitting blocks 1..N of a method."""
    return [
        pattern.format(block=k, **wildcards) for k in range(1, n_blocks(wildcards) + 1)
    ]


def ddw_problems():
    """Problems of every DeepDeWedge method's settings on every selected dataset (each
    naming its config key), found before any job runs."""
    keys = DDWOptions.__dataclass_fields__
    out = []
    for name in run_methods():
        if method_kind(name) != "deepdewedge":
            continue
        for ds in selected_datasets():
            s = method_settings(config, name, ds)
            where = f"methods.{name} (dataset {ds})"
            try:
                options_from_config({k: s[k] for k in keys if k in s})
            except ValueError as exc:
                out.append(f"{where}: {exc}")
                continue
            m = extraction_size(s["cube_size"])
            shape = [int(n) for n in config["datasets"][ds]["shape"]]
            if m > min(shape):
                out.append(
                    f"{where}: deepdewedge.cube_size {s['cube_size']} needs cubes of "
                    f"{m} voxels (ceil_to_even(sqrt(2) N)), more than the tomogram's "
                    f"shape {shape} allows; lower cube_size (per_dataset.{ds})"
                )
            acqs = dataset_acquisitions(config, ds) if has_ground_truth(ds) else {}
            if s["split"] == "frames" and not (
                acqs and all(a.get("dose") for a in acqs.values())
            ):
                out.append(
                    f"{where}: deepdewedge.split: frames needs every acquisition to have "
                    "a dose model (tiltseries.model.dose or the acquisition's dose); use "
                    "split: auto or tilts"
                )
    return out
