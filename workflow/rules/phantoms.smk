# Ground-truth volumes: procedural phantoms, maps from atomic models, or a user's volume.


rule phantom:
    output:
        GT,
    params:
        kind=lambda w: config["datasets"][w.dataset]["kind"],
        shape=lambda w: config["datasets"][w.dataset]["shape"],
        voxel_size=lambda w: config["datasets"][w.dataset].get("voxel_size"),
        extra=lambda w: dict(config["datasets"][w.dataset].get("params") or {}),
        seed=dataset_seed,
    log:
        RESULTS + "/logs/{dataset}/phantom.log",
    benchmark:
        RESULTS + "/benchmarks/{dataset}/phantom.tsv"
    threads: stage_threads("phantom")
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    script:
        "../../scripts/phantom.py"
