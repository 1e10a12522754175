# Tilt series: simulated from a ground truth, or a user's measured stack and .tlt.


rule tiltseries:
    input:
        "results/{dataset}/ground_truth.mrc",
    output:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
    log:
        "results/logs/{dataset}/{acq}/tiltseries.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/tiltseries.tsv"
    conda:
        CONDA_ENV
    threads: stage_threads("tiltseries")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        angles=angles,
        opts=lambda w: dict(config["tiltseries"]),
        seed=dataset_seed,
    script:
        "../../scripts/tiltseries.py"


rule import_tiltseries:
    input:
        mrc=lambda w: dataset_config(w)["params"]["stack"],
        tlt=lambda w: dataset_config(w)["params"]["tlt"],
    output:
        mrc="results/{dataset}/{half}/tiltseries.mrc",
        tlt="results/{dataset}/{half}/tiltseries.tlt",
    log:
        "results/logs/{dataset}/{half}/import_tiltseries.log",
    wildcard_constraints:
        half=r"measured(-even|-odd)?",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subset=lambda w: {
            "measured": "all",
            "measured-even": "even",
            "measured-odd": "odd",
        }[w.half],
        shape=dataset_shape,
    script:
        "../../scripts/import_tiltseries.py"


ruleorder: import_tiltseries > tiltseries
