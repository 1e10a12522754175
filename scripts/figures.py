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
records = [read_json(p) for p in sm.input.metrics]
if sm.input.gt:
    fsc_figure({m["method"]: m["fsc"] for m in records}, sm.output.fsc, title)
else:  # measured data: FSC between the even- and odd-tilt reconstructions
    curves = {m["method"]: {"frequency": m["even_odd_fsc"]["frequency"],
                            "full": m["even_odd_fsc"]["fsc"]} for m in records}
    fsc_figure(curves, sm.output.fsc, title, threshold=0.143,
               panels=[("full", "even- vs odd-tilt reconstructions")],
               ylabel="FSC between half-data reconstructions")
