# Tilt series: simulated from a ground truth (noise-free, or through an acquisition model:
# `acquire` simulates the detector images, `tiltseries` corrects them for the methods), or
# a user's measured stack with its .tlt/.rawtlt, SerialEM .mdoc and IMOD .xf
# (`import_tiltseries`; the metadata are checked here, before any job).
from wedgebench.measured import dataset_files, measured_problems

MEASURED_PROBLEMS = [
    p
    for ds in selected_datasets()
    if not has_ground_truth(ds)
    for p in measured_problems(
        config["datasets"][ds]["params"],
        config["datasets"][ds]["shape"],
        f"datasets.{ds}",
    )
]
if MEASURED_PROBLEMS:
    raise ConfigError("invalid measured data:\n  " + "\n  ".join(MEASURED_PROBLEMS))


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


# A measured stack, aligned (.xf), sorted by tilt angle, dose-weighted if asked (prior dose
# in the mdoc's acquisition order), all tilts or every other one, with its acquisition
# record (angles, acquisition order, dose and prior dose per tilt).
rule import_tiltseries:
    input:
        # the user's files: stack, .tlt, .rawtlt, .mdoc, .xf
        unpack(lambda w: dataset_files(dataset_config(w)["params"])),
    output:
        mrc="results/{dataset}/{half}/tiltseries.mrc",
        tlt="results/{dataset}/{half}/tiltseries.tlt",
        meta="results/{dataset}/{half}/acquisition.json",
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
        measured=lambda w: dict(dataset_config(w)["params"]),
    script:
        "../../scripts/import_tiltseries.py"


ruleorder: import_tiltseries > tiltseries
ruleorder: import_tiltseries > acquire
