# Ground-truth volumes: procedural phantoms, maps from atomic models, or a user's volume.


rule phantom:
    output:
        "results/{dataset}/ground_truth.mrc",
    log:
        "results/logs/{dataset}/phantom.log",
    benchmark:
        "results/benchmarks/{dataset}/phantom.tsv"
    conda:
        CONDA_ENV
    threads: stage_threads("phantom")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        kind=lambda w: config["datasets"][w.dataset]["kind"],
        shape=lambda w: config["datasets"][w.dataset]["shape"],
        voxel_size=lambda w: config["datasets"][w.dataset].get("voxel_size"),
        extra=lambda w: dict(config["datasets"][w.dataset].get("params") or {}),
        seed=dataset_seed,
    script:
        "../../scripts/phantom.py"
