# IsoNet on the IMOD-style WBP tomogram: extract -> refine iteration 1..N (one job each,
# every iteration's model and filled subtomograms kept as files, so raising `iterations`
# reuses the finished ones and an interrupted run resumes) -> predict -> runtime.json (sum
# of all the IsoNet jobs' benchmark seconds). Every method of kind `isonet` (e.g. `isonet`
# and `isonet_v1`) runs these rules under its own name.
from wedgebench.recon.isonet.refine import noise_level, train_options

KIND_RUNTIME["isonet"] = ["results/{dataset}/{acq}/{method}/runtime.json"]


rule isonet_extract:
    input:
        tomo="results/{dataset}/{acq}/recon/imod_wbp.mrc",
    output:
        star="results/{dataset}/{acq}/{method}/subtomos.star",
        stack="results/{dataset}/{acq}/{method}/subtomos.mrc",
        mask="results/{dataset}/{acq}/{method}/mask.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/extract.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/extract.tsv"
    wildcard_constraints:
        method=kind_pattern("isonet"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=30,
    params:
        n_subtomos=lambda w: settings(w)["n_subtomos"],
        cube_size=lambda w: settings(w)["cube_size"],
        crop_size=lambda w: settings(w)["crop_size"],
        percentiles=lambda w: settings(w)["percentiles"],
        normalisation=lambda w: settings(w)["normalisation"],
        mask=lambda w: dict(settings(w)["mask"]),
        invert=lambda w: invert_contrast(settings(w)["invert_contrast"], w.dataset),
        seed=dataset_seed,
    script:
        "../../scripts/isonet_extract.py"


rule isonet_refine:
    input:
        star="results/{dataset}/{acq}/{method}/subtomos.star",
        stack="results/{dataset}/{acq}/{method}/subtomos.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        prev_model=lambda w: previous_iteration(w, "model.pt"),
        prev_filled=lambda w: previous_iteration(w, "subtomos.mrc"),
    output:
        model="results/{dataset}/{acq}/{method}/iter_{iter}/model.pt",
        filled=maybe_temp(
            "results/{dataset}/{acq}/{method}/iter_{iter}/subtomos.mrc",
            config["isonet"]["keep_filled"],
        ),
        loss="results/{dataset}/{acq}/{method}/iter_{iter}/loss.csv",
    log:
        "results/logs/{dataset}/{acq}/{method}/refine_{iter}.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/refine_{iter}.tsv"
    wildcard_constraints:
        method=kind_pattern("isonet"),
        iter=r"[1-9][0-9]*",
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        iteration=lambda w: int(w.iter),
        # the noise level of THIS iteration (the schedule itself is not a param)
        noise_level=lambda w: noise_level(
            int(w.iter),
            **{k: settings(w)["noise"][k] for k in ("start_iter", "every", "levels")},
        ),
        opts=lambda w: train_options(settings(w)),
        seed=dataset_seed,
        device=config["device"],
    script:
        "../../scripts/isonet_refine.py"


rule isonet_predict:
    input:
        tomo="results/{dataset}/{acq}/recon/imod_wbp.mrc",
        model=lambda w: last_iteration(w, "model.pt"),
    output:
        "results/{dataset}/{acq}/recon/{method}.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/predict.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/predict.tsv"
    wildcard_constraints:
        method=kind_pattern("isonet"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        opts=lambda w: train_options(settings(w)),
        invert=lambda w: invert_contrast(settings(w)["invert_contrast"], w.dataset),
        tile=lambda w: settings(w)["predict"]["tile"],
        overlap=lambda w: settings(w)["predict"]["overlap"],
        batch_size=lambda w: settings(w)["predict"]["batch_size"],
        device=config["device"],
    script:
        "../../scripts/isonet_predict.py"


# A budget rung's runtime counts the iterations it shares with its ladder as its own:
# extraction and refine iterations from the shared working directory, its own predict.
rule isonet_runtime:
    input:
        lambda w: f"{work_benchmarks(w)}/extract.tsv",
        lambda w: per_iteration(
            w, "results/benchmarks/{dataset}/{acq}/{work}/refine_{iter}.tsv"
        ),
        "results/benchmarks/{dataset}/{acq}/{method}/predict.tsv",
    output:
        "results/{dataset}/{acq}/{method}/runtime.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/runtime.log",
    wildcard_constraints:
        method=kind_pattern("isonet"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/isonet_runtime.py"
