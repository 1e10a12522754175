# A tomogram reconstructed elsewhere (`kind: precomputed`, a path pattern with {dataset},
# {acq} and optionally {rep}, the replicate): checked like an external method's output, then scored like every other method.
# Its runtime is the spec's `runtime_s` (none if not given).


KIND_RUNTIME["precomputed"] = ["results/{dataset}/{acq}/{method}/runtime.json"]


rule precomputed:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tomogram=lambda w: method_spec(w.method)["path"].format(
            dataset=base_dataset(w.dataset), acq=w.acq, rep=replicate(w.dataset)
        ),
    output:
        mrc="results/{dataset}/{acq}/recon/{method}.mrc",
        runtime="results/{dataset}/{acq}/{method}/runtime.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/import.log",
    wildcard_constraints:
        method=kind_pattern("precomputed"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        method=lambda w: w.method,
        shape=dataset_shape,
        runtime_s=lambda w: method_spec(w.method).get("runtime_s"),
    script:
        "../../scripts/precomputed.py"
