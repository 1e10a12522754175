# Table 1, figures and the Snakemake HTML report.


def all_metrics(wildcards=None):
    return expand_runs(METRICS, config["methods"])


def sweep_datasets():
    """Datasets with more than one simulated acquisition (a Figure 5 sweep)."""
    return [ds for ds in selected_datasets()
            if has_ground_truth(ds) and len(dataset_acquisitions(config, ds)) > 1]


rule table1:
    input:
        all_metrics,
    output:
        csv=report(REPORT + "/table1.csv", category="Table 1", caption="../report/table1.rst"),
        md=REPORT + "/table1.md",
    log:
        RESULTS + "/logs/report/table1.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../../scripts/table.py"


rule figures:
    input:
        gt=lambda w: GT.format(dataset=w.dataset) if has_ground_truth(w.dataset) else [],
        recs=lambda w: expand(RECON, dataset=w.dataset, acq=w.acq, method=config["methods"]),
        metrics=lambda w: expand(METRICS, dataset=w.dataset, acq=w.acq,
                                 method=config["methods"]),
    output:
        ortho=report(REPORT + "/figures/{dataset}/{acq}/orthoslices.png",
                     category="Orthoslices", subcategory="{dataset}",
                     caption="../report/orthoslices.rst"),
        fsc=report(REPORT + "/figures/{dataset}/{acq}/fsc.png", category="FSC",
                   subcategory="{dataset}", caption="../report/fsc.rst"),
    log:
        LOGS + "/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../../scripts/figures.py"


rule sweep_figures:
    input:
        lambda w: [METRICS.format(dataset=w.dataset, acq=a, method=m)
                   for a in dataset_acquisitions(config, w.dataset) for m in config["methods"]],
    output:
        report(directory(REPORT + "/figures/{dataset}/sweep"), patterns=["{name}.png"],
               category="Sweeps", subcategory="{dataset}", caption="../report/sweep.rst"),
    log:
        RESULTS + "/logs/{dataset}/sweep_figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../../scripts/sweep_figures.py"
