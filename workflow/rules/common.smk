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
from wedgebench.budgets import apply_budget, apply_data_scaling
from wedgebench.methods import (
    budget_family,
    from_method,
    full_registry,
    method_settings,
    run_order,
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
# the registry with the budget ladder's rungs (`budgets:`); config["methods"] becomes the
# expanded mapping so that every helper sees the rungs as methods
METHODS = full_registry(config)
RUN_ORDER = run_order(config, METHODS)
config["methods"] = METHODS
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
    """The settings of ``wildcards.method`` for ``wildcards.dataset`` (a plain dict), scaled
    with the dataset's size (``scale_with_data``), then its ``budget`` applied."""
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
    """Methods this run scores: ``run_methods`` if set, else every registered one, each
    followed by the rungs of its budget ladder."""
    return list(RUN_ORDER)


def method_table_info():
    """Per scored method: kind, the kind it is a variant of, its budget ladder and rung
    (for Table 1 and the budget report)."""
    info = {}
    for n in run_methods():
        spec = method_spec(n)
        family = budget_family(n, spec)
        budget = method_settings(config, n).get("budget") if family else None
        info[n] = {
            "kind": method_kind(n),
            "variant_of": variant_of(n, spec, KINDS_WITH_SETTINGS),
            "family": family,
            "budget": budget,
        }
    return info


def work_method(name):
    """The method whose working directory holds a method's iterative work: for an IsoNet
    or DeepDeWedge rung of a budget ladder, the ladder's base (refine iterations and
    epoch blocks are prefixes of longer runs, so every rung shares them); else itself.
    """
    spec = method_spec(name)
    base = spec.get("budget_of")
    return base if base and spec["kind"] in ("isonet", "deepdewedge") else name


def work_dir(wildcards):
    """``results/{dataset}/{acq}/{work_method}``: where a method's shared work lives."""
    return (
        f"results/{wildcards.dataset}/{wildcards.acq}/{work_method(wildcards.method)}"
    )


def work_benchmarks(wildcards):
    """The benchmark folder of a method's shared work (see ``work_method``)."""
    return f"results/benchmarks/{wildcards.dataset}/{wildcards.acq}/{work_method(wildcards.method)}"


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
    if config["budgets"].get("methods"):
        targets.append("results/report/budget")
    if downstream_datasets():
        targets.append("results/report/downstream")
        targets += [
            t
            for t in expand_runs("results/report/figures/{dataset}/{acq}/picks.png")
            if base_dataset(t.split("/")[3]) in downstream_datasets()
        ]
    return targets


# --- downstream tasks (crowded datasets) ---------------------------------------------
#: The downstream settings a pick job depends on (others do not rerun picking).
PICK_KEYS = (
    "angular_step",
    "peak_min_distance",
    "num_peaks",
    "score_threshold",
    "threads",
    "template_wedge",
    "filter_target",
    "invert_contrast",
    "template_box",
)


def downstream_datasets():
    """Selected datasets with a ground truth of particles (kind ``crowded``)."""
    return [
        ds for ds in selected_datasets() if config["datasets"][ds]["kind"] == "crowded"
    ]


def downstream_settings(keys=None):
    """The ``downstream`` section (restricted to ``keys``)."""
    s = dict(config["downstream"])
    return s if keys is None else {k: s[k] for k in keys}


def all_downstream_scores(wildcards=None):
    """Every scored method's downstream record of every crowded dataset replicate."""
    return [
        p
        for p in expand_runs(
            "results/{dataset}/{acq}/downstream/{method}/scores.json", run_methods()
        )
        if base_dataset(p.split("/")[1]) in downstream_datasets()
    ]


def downstream_problems(check_settings, crowded_problems):
    """Problems of the downstream settings and of every selected crowded dataset's
    parameters (each naming its key), found before any job runs; pytme must be
    installed when a run has downstream stages."""
    out = []
    if not downstream_datasets():
        return out
    try:
        check_settings(config["downstream"])
    except ValueError as exc:
        out.append(str(exc))
    for ds in downstream_datasets():
        d = config["datasets"][ds]
        for p in crowded_problems(
            d["shape"], d.get("voxel_size", 10.0), **dict(d.get("params") or {})
        ):
            out.append(f"datasets.{ds}.params: {p}")
    import shutil

    if shutil.which("pytme") is None:
        out.append(
            "datasets of kind crowded are scored by template matching with pytme, which "
            "is not installed: pip install -e '.[downstream]' (GPL-2.0; called as a "
            "program, never imported)"
        )
    return out


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
    """``pattern`` for iterations 1..N of an iterative method (its `iterations` setting);
    ``{work}`` in the pattern is the method's shared working name (``work_method``)."""
    n = int(settings(wildcards)["iterations"])
    work = work_method(wildcards.method)
    return [pattern.format(iter=i, work=work, **wildcards) for i in range(1, n + 1)]


def maybe_temp(path, keep):
    """``path``, or ``temp(path)`` when ``keep`` is false."""
    return path if keep else temp(path)


def last_iteration(wildcards, name):
    """File ``name`` of the last iteration of an iterative method (in its shared working
    directory, ``work_dir``)."""
    n = int(settings(wildcards)["iterations"])
    return f"{work_dir(wildcards)}/iter_{n}/{name}"


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


def block_ends(wildcards):
    """The epochs at which a method fitted in blocks of `block_epochs` saves its state:
    `block_epochs`, 2 `block_epochs`, ... and `epochs` (the last block may be shorter).
    A state is named by its epoch, so runs of different lengths share their blocks."""
    s = settings(wildcards)
    size, epochs = int(s["block_epochs"]), int(s["epochs"])
    return list(range(size, epochs, size)) + [epochs]


def block_start(wildcards):
    """The first epoch of the fitting block that ends at epoch ``wildcards.end``."""
    size = int(settings(wildcards)["block_epochs"])
    return (int(wildcards.end) - 1) // size * size


def block_range(wildcards):
    """Epochs [from, to) of the fitting block ending at ``wildcards.end``."""
    return [block_start(wildcards), int(wildcards.end)]


def previous_block(wildcards, name):
    """File ``name`` (``{end}`` filled in) of the block before the one ending at
    ``wildcards.end`` (nothing for the first block)."""
    start = block_start(wildcards)
    if start == 0:
        return []
    path = f"results/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}/fit/{name}"
    return path.format(end=start)


def last_block(wildcards, name):
    """File ``name`` (``{end}`` filled in) of a method's last fitting block, in its shared
    working directory (``work_dir``)."""
    return f"{work_dir(wildcards)}/fit/{name}".format(end=block_ends(wildcards)[-1])


def per_block(wildcards, pattern):
    """``pattern`` for every fitting block of a method (``{end}``: the block's last epoch;
    ``{work}``: its shared working name)."""
    work = work_method(wildcards.method)
    return [
        pattern.format(end=e, work=work, **wildcards) for e in block_ends(wildcards)
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
