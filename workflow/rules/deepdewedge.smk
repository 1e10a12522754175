# DeepDeWedge: two half tomograms by our WBP (even/odd tilts, or even/odd frames of an
# acquisition with a dose model) -> sub-tomogram cubes of both (STAR + MRC stacks) -> the
# U-Net fitted in blocks of `block_epochs` epochs (one job each, reading the previous
# block's state, so raising `epochs` reuses the finished blocks and an interrupted run
# resumes at the last finished one) -> both halves refined and averaged -> runtime.json
# (the sum of all the DeepDeWedge jobs' benchmark seconds). Every method of kind
# `deepdewedge` runs these rules under its own name.
from wedgebench.recon.deepdewedge.options import FIT_KEYS, REFINE_KEYS

KIND_RUNTIME["deepdewedge"] = ["results/{dataset}/{acq}/{method}/runtime.json"]
DDW_PROBLEMS = ddw_problems()
if DDW_PROBLEMS:
    raise ConfigError("invalid configuration:\n  " + "\n  ".join(DDW_PROBLEMS))


rule ddw_halves:
    input:
        unpack(ddw_half_inputs),
    output:
        v0="results/{dataset}/{acq}/{method}/v0.mrc",
        v1="results/{dataset}/{acq}/{method}/v1.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/halves.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/halves.tsv"
    wildcard_constraints:
        method=kind_pattern("deepdewedge"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=30,
    params:
        split=ddw_split,
        thickness=thickness,
        wbp=wbp_settings,
    script:
        "../../scripts/ddw_halves.py"


rule ddw_extract:
    input:
        v0="results/{dataset}/{acq}/{method}/v0.mrc",
        v1="results/{dataset}/{acq}/{method}/v1.mrc",
    output:
        star="results/{dataset}/{acq}/{method}/subtomos.star",
        stack0="results/{dataset}/{acq}/{method}/subtomos_v0.mrc",
        stack1="results/{dataset}/{acq}/{method}/subtomos_v1.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/extract.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/extract.tsv"
    wildcard_constraints:
        method=kind_pattern("deepdewedge"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=30,
    params:
        opts=lambda w: method_options(
            w, ("cube_size", "levels", "stride", "val_fraction", "min_mask_fraction")
        ),
        mask=lambda w: settings(w)["mask"],
        seed=dataset_seed,
    script:
        "../../scripts/ddw_extract.py"


rule ddw_fit:
    input:
        star="results/{dataset}/{acq}/{method}/subtomos.star",
        stack0="results/{dataset}/{acq}/{method}/subtomos_v0.mrc",
        stack1="results/{dataset}/{acq}/{method}/subtomos_v1.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        prev=lambda w: previous_block(w, "epoch_{end}.pt"),
    output:
        state="results/{dataset}/{acq}/{method}/fit/epoch_{end}.pt",
        history="results/{dataset}/{acq}/{method}/fit/epoch_{end}.csv",
    log:
        "results/logs/{dataset}/{acq}/{method}/fit_epoch{end}.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/fit_epoch{end}.tsv"
    wildcard_constraints:
        method=kind_pattern("deepdewedge"),
        end=r"[1-9][0-9]*",
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        # only what this block's epochs depend on: raising `epochs` (or `budget`) changes no
        # finished block
        epochs=block_range,
        opts=lambda w: method_options(w, FIT_KEYS),
        seed=dataset_seed,
        device=config["device"],
    script:
        "../../scripts/ddw_fit.py"


rule ddw_refine:
    input:
        v0=lambda w: f"{work_dir(w)}/v0.mrc",
        v1=lambda w: f"{work_dir(w)}/v1.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        state=lambda w: last_block(w, "epoch_{end}.pt"),
    output:
        "results/{dataset}/{acq}/recon/{method}.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/refine.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/refine.tsv"
    wildcard_constraints:
        method=kind_pattern("deepdewedge"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        opts=lambda w: method_options(w, REFINE_KEYS),
        seed=dataset_seed,
        device=config["device"],
    script:
        "../../scripts/ddw_refine.py"


# A budget rung's runtime counts the work it shares with its ladder as its own: halves,
# cubes and fitting blocks from the shared working directory, its own refinement.
rule ddw_runtime:
    input:
        lambda w: f"{work_benchmarks(w)}/halves.tsv",
        lambda w: f"{work_benchmarks(w)}/extract.tsv",
        lambda w: per_block(
            w, "results/benchmarks/{dataset}/{acq}/{work}/fit_epoch{end}.tsv"
        ),
        "results/benchmarks/{dataset}/{acq}/{method}/refine.tsv",
    output:
        "results/{dataset}/{acq}/{method}/runtime.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/runtime.log",
    wildcard_constraints:
        method=kind_pattern("deepdewedge"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/ddw_runtime.py"
