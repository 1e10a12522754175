# Coordinate-network (CN) reconstruction, fitted per y-slab: one anchor job (the middle
# slab, random initialisation), then `cn.chunks` parallel chunk jobs warm-started from
# the anchor's weights, then a merge job that stitches the slabs into RECON (method cn)
# and sums the jobs' benchmark times into cn/runtime.json.

CN = RESULTS + "/{dataset}/{acq}/cn"


wildcard_constraints:
    chunk=r"\d+",


def cn_chunk_ids():
    return list(range(int(config["cn"]["chunks"])))


def cn_resources():
    """mem_mb / runtime (minutes) from the cn config; gpu = 1 when device is cuda (a SLURM
    profile may also set it for device: auto)."""
    cfg = config["cn"]
    return dict(mem_mb=int(cfg["mem_mb"]), runtime=int(cfg["runtime"]),
                gpu=1 if config["device"] == "cuda" else 0)


rule cn_anchor:
    input:
        mrc=TS,
        tlt=TLT,
    output:
        weights=CN + "/anchor/weights.pt",
        slabs=CN + "/anchor/slabs.npz",
        loss=CN + "/anchor/loss.csv",
    params:
        thickness=thickness,
        opts=lambda w: method_cfg("cn"),
        seed=dataset_seed,
        device=config["device"],
    log:
        LOGS + "/cn_anchor.log",
    benchmark:
        BENCH + "/cn_anchor.tsv"
    threads: stage_threads("cn")
    resources:
        **cn_resources(),
    conda:
        CONDA_ENV
    script:
        "../../scripts/cn_anchor.py"


rule cn_chunk:
    input:
        mrc=TS,
        tlt=TLT,
        weights=CN + "/anchor/weights.pt",
    output:
        weights=CN + "/chunk_{chunk}/weights.pt",
        slabs=CN + "/chunk_{chunk}/slabs.npz",
        loss=CN + "/chunk_{chunk}/loss.csv",
    params:
        thickness=thickness,
        opts=lambda w: method_cfg("cn"),
        seed=dataset_seed,
        device=config["device"],
    log:
        LOGS + "/cn_chunk_{chunk}.log",
    benchmark:
        BENCH + "/cn_chunk_{chunk}.tsv"
    threads: stage_threads("cn")
    resources:
        **cn_resources(),
    conda:
        CONDA_ENV
    script:
        "../../scripts/cn_chunk.py"


rule cn_merge:
    input:
        mrc=TS,
        anchor=CN + "/anchor/slabs.npz",
        chunks=expand(CN + "/chunk_{chunk}/slabs.npz", chunk=cn_chunk_ids(), allow_missing=True),
        anchor_bench=BENCH + "/cn_anchor.tsv",
        chunk_benches=expand(BENCH + "/cn_chunk_{chunk}.tsv", chunk=cn_chunk_ids(),
                             allow_missing=True),
    output:
        mrc=RESULTS + "/{dataset}/{acq}/recon/cn.mrc",
        runtime=CN + "/runtime.json",
    params:
        opts=lambda w: method_cfg("cn"),
    log:
        LOGS + "/cn_merge.log",
    threads: 1
    resources:
        mem_mb=int(config["cn"]["mem_mb"]),
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../../scripts/cn_merge.py"
