# Downstream tasks on crowded datasets (docs: Downstream tasks): the specimen's ground
# truth (true particles, class maps), picking by template matching (pytme, called as a
# program) and scoring + subtomogram averaging of every method's reconstruction, then
# the downstream table and figures over replicates.
from wedgebench.downstream.settings import check_settings
from wedgebench.phantoms.crowded import check_params as crowded_problems

DOWNSTREAM_PROBLEMS = downstream_problems(check_settings, crowded_problems)
if DOWNSTREAM_PROBLEMS:
    raise ConfigError("invalid configuration:\n  " + "\n  ".join(DOWNSTREAM_PROBLEMS))


rule crowded_truth:
    output:
        star="results/{dataset}/truth/particles.star",
        catalogue="results/{dataset}/truth/catalogue.json",
        classes=directory("results/{dataset}/truth/classes"),
    log:
        "results/logs/{dataset}/truth.log",
    benchmark:
        "results/benchmarks/{dataset}/truth.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        shape=dataset_shape,
        voxel_size=lambda w: dataset_config(w).get("voxel_size"),
        extra=lambda w: dict(dataset_config(w).get("params") or {}),
        seed=dataset_seed,
    script:
        "../../scripts/crowded_truth.py"


rule pick:
    input:
        tomo="results/{dataset}/{acq}/recon/{method}.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        catalogue="results/{dataset}/truth/catalogue.json",
        classes="results/{dataset}/truth/classes",
    output:
        "results/{dataset}/{acq}/downstream/{method}/picks.star",
    log:
        "results/logs/{dataset}/{acq}/{method}/pick.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/pick.tsv"
    conda:
        CONDA_ENV
    threads: lambda w: int(config["downstream"]["threads"])
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=lambda w: downstream_settings(PICK_KEYS),
    script:
        "../../scripts/pick.py"


rule downstream_score:
    input:
        tomo="results/{dataset}/{acq}/recon/{method}.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        picks="results/{dataset}/{acq}/downstream/{method}/picks.star",
        star="results/{dataset}/truth/particles.star",
        catalogue="results/{dataset}/truth/catalogue.json",
        classes="results/{dataset}/truth/classes",
    output:
        "results/{dataset}/{acq}/downstream/{method}/scores.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/downstream_score.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/downstream_score.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=lambda w: downstream_settings(),
        info=run_info,
    script:
        "../../scripts/downstream_score.py"


rule picks_figure:
    input:
        recs=lambda w: run_recons(w),
        picks=lambda w: [
            f"results/{w.dataset}/{w.acq}/downstream/{m}/picks.star"
            for m in run_methods()
        ],
        star="results/{dataset}/truth/particles.star",
        catalogue="results/{dataset}/truth/catalogue.json",
    output:
        report(
            "results/report/figures/{dataset}/{acq}/picks.png",
            category="Downstream",
            subcategory="{dataset}",
            caption="../report/picks.rst",
        ),
    log:
        "results/logs/{dataset}/{acq}/picks_figure.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=lambda w: run_methods(),
    script:
        "../../scripts/picks_figure.py"


rule downstream_report:
    input:
        scores=all_downstream_scores,
        table1="results/report/table1_replicates.csv",
    output:
        report(
            directory("results/report/downstream"),
            patterns=["{name}.png"],
            category="Downstream",
            caption="../report/downstream.rst",
        ),
    log:
        "results/logs/report/downstream.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/downstream_report.py"
