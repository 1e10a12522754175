# Tilt series: simulated from a ground truth, or a user's measured stack and .tlt.


rule tiltseries:
    input:
        GT,
    output:
        mrc=TS,
        tlt=TLT,
    params:
        angles=angles,
        opts=lambda w: dict(config["tiltseries"]),
        seed=dataset_seed,
    log:
        LOGS + "/tiltseries.log",
    benchmark:
        BENCH + "/tiltseries.tsv"
    threads: stage_threads("tiltseries")
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    script:
        "../../scripts/tiltseries.py"


rule import_tiltseries:
    input:
        mrc=lambda w: config["datasets"][w.dataset]["params"]["stack"],
        tlt=lambda w: config["datasets"][w.dataset]["params"]["tlt"],
    output:
        mrc=RESULTS + "/{dataset}/{half}/tiltseries.mrc",
        tlt=RESULTS + "/{dataset}/{half}/tiltseries.tlt",
    params:
        subset=lambda w: {"measured": "all", "measured-even": "even",
                          "measured-odd": "odd"}[w.half],
        shape=lambda w: config["datasets"][w.dataset]["shape"],
    wildcard_constraints:
        half=r"measured(-even|-odd)?",
    log:
        RESULTS + "/logs/{dataset}/{half}/import_tiltseries.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../../scripts/import_tiltseries.py"


ruleorder: import_tiltseries > tiltseries
