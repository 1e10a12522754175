# Tilt series: simulated from a ground truth (noise-free, or through an acquisition model:
# `acquire` simulates the detector images, `tiltseries` corrects them for the methods), or
# a user's measured stack and .tlt.


rule acquire:
    input:
        "results/{dataset}/ground_truth.mrc",
    output:
        acquired="results/{dataset}/{acq}/acquired.mrc",
        even="results/{dataset}/{acq}/frames_even.mrc",
        odd="results/{dataset}/{acq}/frames_odd.mrc",
        meta="results/{dataset}/{acq}/acquisition.json",
    log:
        "results/logs/{dataset}/{acq}/acquire.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/acquire.tsv"
    conda:
        CONDA_ENV
    threads: stage_threads("tiltseries")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        angles=angles,
        acq=acquisition,
        opts=lambda w: dict(config["tiltseries"]),
        phantom=phantom_spec,
        seed=dataset_seed,
    script:
        "../../scripts/acquire.py"


rule tiltseries:
    input:
        unpack(tiltseries_inputs),
    output:
        mrc="results/{dataset}/{acq}/tiltseries.mrc",
        tlt="results/{dataset}/{acq}/tiltseries.tlt",
    log:
        "results/logs/{dataset}/{acq}/tiltseries.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/tiltseries.tsv"
    conda:
        CONDA_ENV
    threads: stage_threads("tiltseries")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        angles=angles,
        opts=lambda w: dict(config["tiltseries"]),
        acq=acquisition,
        phantom=phantom_spec,
        seed=dataset_seed,
    script:
        "../../scripts/tiltseries.py"


# The even/odd half-dose frame stacks prepared like `tiltseries.mrc` (CTF correction,
# contrast, one normalisation: the main series' own min-max map, so their mean is the
# main series); DeepDeWedge's `frames` halves.
rule tiltseries_frames:
    input:
        acquired="results/{dataset}/{acq}/acquired.mrc",
        even="results/{dataset}/{acq}/frames_even.mrc",
        odd="results/{dataset}/{acq}/frames_odd.mrc",
        meta="results/{dataset}/{acq}/acquisition.json",
    output:
        even="results/{dataset}/{acq}/tiltseries_frames_even.mrc",
        odd="results/{dataset}/{acq}/tiltseries_frames_odd.mrc",
    log:
        "results/logs/{dataset}/{acq}/tiltseries_frames.log",
    benchmark:
        "results/benchmarks/{dataset}/{acq}/tiltseries_frames.tsv"
    conda:
        CONDA_ENV
    threads: stage_threads("tiltseries")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        angles=angles,
        normalise=lambda w: config["tiltseries"]["normalise"],
        acq=acquisition,
    script:
        "../../scripts/tiltseries_frames.py"


rule import_tiltseries:
    input:
        mrc=lambda w: dataset_config(w)["params"]["stack"],
        tlt=lambda w: dataset_config(w)["params"]["tlt"],
    output:
        mrc="results/{dataset}/{half}/tiltseries.mrc",
        tlt="results/{dataset}/{half}/tiltseries.tlt",
    log:
        "results/logs/{dataset}/{half}/import_tiltseries.log",
    wildcard_constraints:
        half=r"measured(-even|-odd)?",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subset=lambda w: {
            "measured": "all",
            "measured-even": "even",
            "measured-odd": "odd",
        }[w.half],
        shape=dataset_shape,
    script:
        "../../scripts/import_tiltseries.py"


ruleorder: import_tiltseries > tiltseries
