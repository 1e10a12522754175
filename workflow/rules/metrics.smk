# Metrics of every reconstruction: against the ground truth, or (measured data) against the
# tilts. The same code for every method; its runtime file comes from its kind's rule file.


rule metrics:
    input:
        gt=ground_truth,
        rec="results/{dataset}/{acq}/recon/{method}.mrc",
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        runtime=runtime_inputs,
        halves=half_reconstructions,
        half_tilts=half_tiltseries,
    output:
        "results/{dataset}/{acq}/metrics/{method}.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/metrics.log",
    conda:
        CONDA_ENV
    threads: stage_threads("metrics")
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        opts=lambda w: section("metrics"),
        sphere_ratio=lambda w: dataset_config(w)["kind"] == "spheres",
        info=run_info,
    script:
        "../../scripts/metrics.py"
