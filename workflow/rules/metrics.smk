# Metrics of every reconstruction: against the ground truth, or (measured data) against the tilts.


def runtime_inputs(wildcards):
    """Files that hold the runtime of one method's reconstruction."""
    base = f"{RESULTS}/{wildcards.dataset}/{wildcards.acq}"
    if wildcards.method in ("cn", "isonet"):
        return [f"{base}/{wildcards.method}/runtime.json"]
    return [f"{RESULTS}/benchmarks/{wildcards.dataset}/{wildcards.acq}/{wildcards.method}.tsv"]


rule metrics:
    input:
        gt=lambda w: GT.format(dataset=w.dataset) if has_ground_truth(w.dataset) else [],
        rec=RECON,
        mrc=TS,
        tlt=TLT,
        runtime=runtime_inputs,
        halves=lambda w: ([] if has_ground_truth(w.dataset) else
                          expand(RECON, dataset=w.dataset, acq=["measured-even", "measured-odd"],
                                 method=w.method)),
    output:
        METRICS,
    params:
        opts=lambda w: method_cfg("metrics"),
        sphere_ratio=lambda w: config["datasets"][w.dataset]["kind"] == "spheres",
    log:
        LOGS + "/metrics_{method}.log",
    threads: stage_threads("metrics")
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        CONDA_ENV
    script:
        "../../scripts/metrics.py"
