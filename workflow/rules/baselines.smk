# Classic baselines: IMOD-style weighted back-projection, EMAN2-style Fourier inversion.
# One job per tilt series; its benchmark file is the method's runtime.


KIND_RUNTIME["imod_wbp"] = [
    "results/benchmarks/{dataset}/{acq}/{method}/reconstruct.tsv"
]
KIND_RUNTIME["eman2_fourier"] = KIND_RUNTIME["imod_wbp"]


rule imod_wbp:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
    output:
        "results/{dataset}/{acq}/recon/{method}.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/reconstruct.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/reconstruct.tsv"
    wildcard_constraints:
        method=kind_pattern("imod_wbp"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        thickness=thickness,
        opts=settings,
    script:
        "../../scripts/wbp.py"


rule eman2_fourier:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
    output:
        "results/{dataset}/{acq}/recon/{method}.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/reconstruct.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/reconstruct.tsv"
    wildcard_constraints:
        method=kind_pattern("eman2_fourier"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        thickness=thickness,
        opts=settings,
    script:
        "../../scripts/fourier.py"
