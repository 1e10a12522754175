# IsoNet on the IMOD-style WBP tomogram: extract -> refine iteration 1..N (one job each,
# every iteration's model and filled subtomograms kept as files, so raising
# `isonet.iterations` reuses the finished ones and an interrupted run resumes) -> predict
# -> runtime.json (sum of all the IsoNet jobs' benchmark seconds).
from wedgebench.config import deep_merge, isonet_settings
from wedgebench.recon.isonet.refine import noise_level as isonet_noise_level
from wedgebench.recon.isonet.refine import train_options as isonet_train_options

ISONET = RESULTS + "/{dataset}/{acq}/isonet"
ISONET_ITER = ISONET + "/iter_{iter}"


wildcard_constraints:
    iter=r"[1-9][0-9]*",


def _isonet_check_overrides():
    """Each `isonet.per_dataset.<dataset>` merged over `isonet` must satisfy the isonet
    schema (datasets that are not configured are allowed, so that presets can carry
    overrides for optional datasets)."""
    import jsonschema

    with open(SCHEMA) as fh:
        schema = yaml.safe_load(fh)["properties"]["isonet"]
    base = {k: v for k, v in config["isonet"].items() if k != "per_dataset"}
    problems = []
    for ds, over in (config["isonet"].get("per_dataset") or {}).items():
        key = f"isonet.per_dataset.{ds}"
        for k in ("per_dataset", "keep_filled"):
            if k in (over or {}):
                problems.append(f"config key '{key}.{k}': not a per-dataset setting")
        merged = deep_merge(base, over or {})
        for err in jsonschema.Draft202012Validator(schema).iter_errors(merged):
            path = ".".join(str(p) for p in err.absolute_path)
            problems.append(f"config key '{key}{'.' + path if path else ''}': {err.message}")
    if problems:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(problems))


_isonet_check_overrides()


def isonet_cfg(wildcards):
    """The isonet section with the dataset's `per_dataset` overrides applied."""
    return isonet_settings(method_cfg("isonet"), wildcards.dataset)


def isonet_invert(wildcards):
    """Contrast inversion: `auto` inverts measured EM data (dark density), not the
    simulated tilt series (line integrals of a positive density: already bright)."""
    v = isonet_cfg(wildcards)["invert_contrast"]
    if v == "auto":
        return config["datasets"][wildcards.dataset]["kind"] == "tiltseries"
    return bool(v)


def isonet_previous(name):
    """Input function: iteration N-1's file `name` (nothing for iteration 1)."""

    def inner(wildcards):
        it = int(wildcards.iter)
        if it == 1:
            return []
        return ISONET_ITER.format(dataset=wildcards.dataset, acq=wildcards.acq,
                                  iter=it - 1) + "/" + name

    return inner


def isonet_level(wildcards):
    """The noise level of THIS iteration (the schedule itself is not a param)."""
    n = isonet_cfg(wildcards)["noise"]
    return isonet_noise_level(int(wildcards.iter), n["start_iter"], n["every"], n["levels"])


def isonet_filled(path):
    return path if config["isonet"]["keep_filled"] else temp(path)


def isonet_resources():
    """mem_mb / runtime (minutes) per job from the (per-dataset) isonet config; gpu = 1 when
    device is cuda (a cluster profile may also set it for device: auto)."""
    return dict(mem_mb=lambda w: int(isonet_cfg(w)["mem_mb"]),
                runtime=lambda w: int(isonet_cfg(w)["runtime"]),
                gpu=1 if config["device"] == "cuda" else 0)


rule isonet_extract:
    input:
        tomo=RESULTS + "/{dataset}/{acq}/recon/imod_wbp.mrc",
    output:
        star=ISONET + "/subtomos.star",
        stack=ISONET + "/subtomos.mrc",
        mask=ISONET + "/mask.mrc",
    params:
        n_subtomos=lambda w: isonet_cfg(w)["n_subtomos"],
        cube_size=lambda w: isonet_cfg(w)["cube_size"],
        crop_size=lambda w: isonet_cfg(w)["crop_size"],
        percentiles=lambda w: isonet_cfg(w)["percentiles"],
        normalisation=lambda w: isonet_cfg(w)["normalisation"],
        mask=lambda w: dict(isonet_cfg(w)["mask"]),
        invert=isonet_invert,
        seed=dataset_seed,
    log:
        LOGS + "/isonet_extract.log",
    benchmark:
        BENCH + "/isonet_extract.tsv"
    threads: stage_threads("isonet")
    resources:
        mem_mb=lambda w: int(isonet_cfg(w)["mem_mb"]),
        runtime=30,
    conda:
        CONDA_ENV
    script:
        "../../scripts/isonet_extract.py"


rule isonet_refine:
    input:
        star=ISONET + "/subtomos.star",
        stack=ISONET + "/subtomos.mrc",
        tlt=TLT,
        prev_model=isonet_previous("model.pt"),
        prev_filled=isonet_previous("subtomos.mrc"),
    output:
        model=ISONET_ITER + "/model.pt",
        filled=isonet_filled(ISONET_ITER + "/subtomos.mrc"),
        loss=ISONET_ITER + "/loss.csv",
    params:
        iteration=lambda w: int(w.iter),
        noise_level=isonet_level,
        opts=lambda w: isonet_train_options(isonet_cfg(w)),
        seed=dataset_seed,
        device=config["device"],
    log:
        LOGS + "/isonet_refine_{iter}.log",
    benchmark:
        BENCH + "/isonet_refine_{iter}.tsv"
    threads: stage_threads("isonet")
    resources:
        **isonet_resources(),
    conda:
        CONDA_ENV
    script:
        "../../scripts/isonet_refine.py"


rule isonet_predict:
    input:
        tomo=RESULTS + "/{dataset}/{acq}/recon/imod_wbp.mrc",
        model=lambda w: ISONET_ITER.format(dataset=w.dataset, acq=w.acq,
                                           iter=isonet_cfg(w)["iterations"]) + "/model.pt",
    output:
        RESULTS + "/{dataset}/{acq}/recon/isonet.mrc",
    params:
        opts=lambda w: isonet_train_options(isonet_cfg(w)),
        invert=isonet_invert,
        tile=lambda w: isonet_cfg(w)["predict"]["tile"],
        overlap=lambda w: isonet_cfg(w)["predict"]["overlap"],
        batch_size=lambda w: isonet_cfg(w)["predict"]["batch_size"],
        device=config["device"],
    log:
        LOGS + "/isonet_predict.log",
    benchmark:
        BENCH + "/isonet_predict.tsv"
    threads: stage_threads("isonet")
    resources:
        **isonet_resources(),
    conda:
        CONDA_ENV
    script:
        "../../scripts/isonet_predict.py"


rule isonet_runtime:
    input:
        BENCH + "/isonet_extract.tsv",
        lambda w: expand(BENCH + "/isonet_refine_{iter}.tsv", dataset=w.dataset, acq=w.acq,
                         iter=range(1, int(isonet_cfg(w)["iterations"]) + 1)),
        BENCH + "/isonet_predict.tsv",
    output:
        ISONET + "/runtime.json",
    log:
        LOGS + "/isonet_runtime.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        CONDA_ENV
    script:
        "../../scripts/isonet_runtime.py"
