# Coordinate-network (CN) reconstruction, fitted per y-slab: one anchor job (the middle
# slab, random initialisation), then `chunks` parallel chunk jobs warm-started from the
# anchor's weights, then a merge job that stitches the slabs into the reconstruction and
# sums the jobs' benchmark times into {method}/runtime.json. Every method of kind `cn`
# (e.g. `cn` and `cn_paper`) runs these rules under its own name.


KIND_RUNTIME["cn"] = ["results/{dataset}/{acq}/{method}/runtime.json"]


rule cn_anchor:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
    output:
        weights="results/{dataset}/{acq}/{method}/anchor/weights.pt",
        slabs="results/{dataset}/{acq}/{method}/anchor/slabs.npz",
        loss="results/{dataset}/{acq}/{method}/anchor/loss.csv",
    log:
        "results/logs/{dataset}/{acq}/{method}/anchor.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/anchor.tsv"
    wildcard_constraints:
        method=kind_pattern("cn"),
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        thickness=thickness,
        opts=settings,
        seed=dataset_seed,
        device=config["device"],
    script:
        "../../scripts/cn_anchor.py"


rule cn_chunk:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
        weights="results/{dataset}/{acq}/{method}/anchor/weights.pt",
    output:
        weights="results/{dataset}/{acq}/{method}/chunk_{chunk}/weights.pt",
        slabs="results/{dataset}/{acq}/{method}/chunk_{chunk}/slabs.npz",
        loss="results/{dataset}/{acq}/{method}/chunk_{chunk}/loss.csv",
    log:
        "results/logs/{dataset}/{acq}/{method}/chunk_{chunk}.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/{method}/chunk_{chunk}.tsv"
    wildcard_constraints:
        method=kind_pattern("cn"),
        chunk=r"\d+",
    conda:
        CONDA_ENV
    threads: method_threads
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=lambda w: settings(w)["runtime"],
        gpu=method_gpu,
    params:
        thickness=thickness,
        opts=settings,
        seed=dataset_seed,
        device=config["device"],
    script:
        "../../scripts/cn_chunk.py"


rule cn_merge:
    input:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        anchor="results/{dataset}/{acq}/{method}/anchor/slabs.npz",
        chunks=lambda w: per_chunk(
            w, "results/{dataset}/{acq}/{method}/chunk_{chunk}/slabs.npz"
        ),
        anchor_bench="results/benchmarks/{dataset}/{acq}/{method}/anchor.tsv",
        chunk_benches=lambda w: per_chunk(
            w, "results/benchmarks/{dataset}/{acq}/{method}/chunk_{chunk}.tsv"
        ),
    output:
        mrc="results/{dataset}/{acq}/recon/{method}.mrc",
        runtime="results/{dataset}/{acq}/{method}/runtime.json",
    log:
        "results/logs/{dataset}/{acq}/{method}/merge.log",
    wildcard_constraints:
        method=kind_pattern("cn"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=lambda w: settings(w)["mem_mb"],
        runtime=10,
    params:
        opts=settings,
    script:
        "../../scripts/cn_merge.py"
