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
        kind=lambda w: dataset_config(w)["kind"],
        shape=dataset_shape,
        voxel_size=lambda w: dataset_config(w).get("voxel_size"),
        extra=lambda w: dict(dataset_config(w).get("params") or {}),
        seed=dataset_seed,
    script:
        "../../scripts/phantom.py"
