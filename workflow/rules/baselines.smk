# Classic baselines: IMOD-style weighted back-projection, EMAN2-style Fourier inversion.


rule imod_wbp:
    input:
        mrc=TS,
        tlt=TLT,
    output:
        RESULTS + "/{dataset}/{acq}/recon/imod_wbp.mrc",
    params:
        thickness=thickness,
        opts=lambda w: method_cfg("imod_wbp"),
    log:
        LOGS + "/imod_wbp.log",
    benchmark:
        BENCH + "/imod_wbp.tsv"
    threads: stage_threads("recon")
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    script:
        "../../scripts/wbp.py"


rule eman2_fourier:
    input:
        mrc=TS,
        tlt=TLT,
    output:
        RESULTS + "/{dataset}/{acq}/recon/eman2_fourier.mrc",
    params:
        thickness=thickness,
        opts=lambda w: method_cfg("eman2_fourier"),
    log:
        LOGS + "/eman2_fourier.log",
    benchmark:
        BENCH + "/eman2_fourier.tsv"
    threads: stage_threads("recon")
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    script:
        "../../scripts/fourier.py"
