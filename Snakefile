# wedgebench: missing-wedge completion benchmark (see README.md).
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# `--resources gpu=1` serialises GPU jobs on one workstation without throttling a cluster.
resource_scopes:
    gpu="local",


include: "workflow/rules/common.smk"
include: "workflow/rules/phantoms.smk"
include: "workflow/rules/tiltseries.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/cn.smk"
include: "workflow/rules/isonet.smk"
include: "workflow/rules/deepdewedge.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/precomputed.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/downstream.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
