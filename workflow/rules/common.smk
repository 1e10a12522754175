# Path scheme, config checks and helpers shared by every rule file.
import os
import yaml
from snakemake.utils import validate

from wedgebench.config import check_config, dataset_acquisitions, acquisition_angles

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
with open(SCHEMA) as fh:
    check_config(config, yaml.safe_load(fh))
validate(config, SCHEMA)  # fills defaults from the schema

RESULTS = "results"
CONDA_ENV = "../../envs/wedgebench.yaml"  # for --sdm conda; relative to the rule files
GT = RESULTS + "/{dataset}/ground_truth.mrc"
TS = RESULTS + "/{dataset}/{acq}/tiltseries.mrc"
TLT = RESULTS + "/{dataset}/{acq}/tiltseries.tlt"
RECON = RESULTS + "/{dataset}/{acq}/recon/{method}.mrc"
METRICS = RESULTS + "/{dataset}/{acq}/metrics/{method}.json"
REPORT = RESULTS + "/report"
LOGS = RESULTS + "/logs/{dataset}/{acq}"
BENCH = RESULTS + "/benchmarks/{dataset}/{acq}"


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    acq=r"tilt[^/]+|measured(-even|-odd)?",
    method=r"imod_wbp|eman2_fourier|cn|isonet",


def dataset_cfg(wildcards):
    """The config block of ``wildcards.dataset`` (a plain dict, so it works as params)."""
    return dict(config["datasets"][wildcards.dataset])


def dataset_seed(wildcards):
    return int(config["datasets"][wildcards.dataset].get("seed", config["seed"]))


def thickness(wildcards):
    """z size of the reconstruction: the ground truth's (or the configured) thickness."""
    return int(config["datasets"][wildcards.dataset]["shape"][0])


def angles(wildcards):
    return [float(a) for a in acquisition_angles(config, wildcards.dataset, wildcards.acq)]


def has_ground_truth(dataset):
    return config["datasets"][dataset]["kind"] != "tiltseries"


def method_cfg(name):
    return dict(config.get(name) or {})


def stage_threads(name):
    return int(config["threads"].get(name, 1))


def selected_datasets():
    """Datasets this run builds: ``run_datasets`` if set, else every configured one.

    (Snakemake deep-merges ``--configfile`` dicts into ``config.yaml``, so a preset selects
    its datasets with this list instead of removing the others.)
    """
    return list(config.get("run_datasets") or config["datasets"])


def expand_runs(pattern, methods=None):
    """Every selected (dataset, acquisition[, method]) filled into ``pattern``."""
    out = []
    for ds in selected_datasets():
        for acq in dataset_acquisitions(config, ds):
            for m in (methods or [None]):
                out.append(pattern.format(dataset=ds, acq=acq, method=m))
    return out


def all_targets():
    """Table 1, every dataset's figures and, for sweeps, the Figure 5-style plots."""
    targets = [REPORT + "/table1.csv", REPORT + "/table1.md"]
    targets += expand_runs(REPORT + "/figures/{dataset}/{acq}/orthoslices.png")
    targets += [REPORT + f"/figures/{ds}/sweep" for ds in sweep_datasets()]
    return targets
