# Table 1, figures and the Snakemake HTML report.


rule table1:
    input:
        all_metrics,
    output:
        csv=report(
            "results/report/table1.csv",
            category="Table 1",
            caption="../report/table1.rst",
        ),
        md="results/report/table1.md",
        replicates="results/report/table1_replicates.csv",
    log:
        "results/logs/report/table1.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=lambda w: method_table_info(),
    script:
        "../../scripts/table.py"


rule figures:
    input:
        gt=ground_truth,
        recs=run_recons,
        metrics=run_metrics,
    output:
        ortho=report(
            "results/report/figures/{dataset}/{acq}/orthoslices.png",
            category="Orthoslices",
            subcategory="{dataset}",
            caption="../report/orthoslices.rst",
        ),
        fsc=report(
            "results/report/figures/{dataset}/{acq}/fsc.png",
            category="FSC",
            subcategory="{dataset}",
            caption="../report/fsc.rst",
        ),
    log:
        "results/logs/{dataset}/{acq}/figures.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/figures.py"


rule sweep_figures:
    input:
        sweep_metrics,
    output:
        report(
            directory("results/report/figures/{dataset}/sweep"),
            patterns=["{name}.png"],
            category="Sweeps",
            subcategory="{dataset}",
            caption="../report/sweep.rst",
        ),
    log:
        "results/logs/{dataset}/sweep_figures.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/sweep_figures.py"


rule budget_report:
    input:
        "results/report/table1_replicates.csv",
    output:
        report(
            directory("results/report/budget"),
            patterns=["{name}.png"],
            category="Budgets",
            caption="../report/budget.rst",
        ),
    log:
        "results/logs/report/budget.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cpu_minutes=lambda w: config["budgets"]["cpu_minutes"],
        targets=lambda w: config["budgets"]["targets"],
    script:
        "../../scripts/budget_report.py"
