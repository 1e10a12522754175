# Your own method (`kind: external`): a shell command template or a Python script, run once
# per tilt series. Its output is checked (MRC, shape, float, finite) before it is written
# to recon/, so nothing unchecked reaches the metrics. Its benchmark file is its runtime.


KIND_RUNTIME["external"] = [
    "results/benchmarks/{dataset}/{acq}/{method}/reconstruct.tsv"
]


rule external:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        tomogram=method_source,
        script=lambda w: method_spec(w.method).get("script") or [],
    output:
        "results/{dataset}/{acq}/recon/{method}.mrc",
    log:
        "results/logs/{dataset}/{acq}/{method}/reconstruct.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/reconstruct.tsv"
    wildcard_constraints:
        method=kind_pattern("external"),
    conda:
        lambda w: method_spec(w.method).get("conda") or CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: method_spec(w.method).get("mem_mb", 4000),
        runtime=lambda w: method_spec(w.method).get("runtime", 60),
        gpu=lambda w: method_spec(w.method).get("gpu", 0),
    params:
        method=lambda w: w.method,
        command=lambda w: method_spec(w.method).get("command"),
        script=lambda w: method_spec(w.method).get("script"),
        thickness=thickness,
        shape=dataset_shape,
        workdir="results/{dataset}/{acq}/{method}/work",
    script:
        "../../scripts/external.py"
