"""Snakemake entry point: orthoslice and FSC figures of one dataset and acquisition."""
from wedgebench import runlog
from wedgebench.io import read_json, read_mrc
from wedgebench.report.figures import fsc_figure, orthoslices

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
methods = [read_json(p)["method"] for p in sm.input.metrics]
volumes = {"ground truth": read_mrc(sm.input.gt)[0]} if sm.input.gt else {}
volumes.update({m: read_mrc(p)[0] for m, p in zip(methods, sm.input.recs)})
title = f"{sm.wildcards.dataset}, {sm.wildcards.acq}"
orthoslices(volumes, sm.output.ortho, title)
curves = {}
for path in sm.input.metrics:
    m = read_json(path)
    if "fsc" in m:
        curves[m["method"]] = m["fsc"]
fsc_figure(curves, sm.output.fsc, title)
