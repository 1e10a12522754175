"""Budget ladders in the workflow: what the rungs plan, reuse and recompute, how their CPU
time is accounted, and bad budgets stopping before any job."""

import json

import numpy as np
import pandas as pd
import pytest

from wedgebench.io import read_benchmark_seconds
from workflow_utils import planned_jobs, run_snakemake, tiny_config

DDW = {"cube_size": 8, "levels": 2, "base_channels": 4, "batch_size": 8, "epochs": 4,
       "block_epochs": 2, "update_every": 1, "val_every": 1, "stride": 4}


def ladder_config(methods, factors, **over):
    spheres = tiny_config()["datasets"]["spheres"]
    return tiny_config(methods={"imod_wbp": {"kind": "imod_wbp"},
                                **{m: {"kind": m} for m in methods}},
                       budgets={"methods": list(methods), "factors": list(factors)},
                       deepdewedge=DDW, datasets={"spheres": spheres}, **over)


def test_rungs_share_iterations_and_epoch_blocks_but_not_cn_fits(tmp_path):
    cfg = ladder_config(["cn", "isonet", "deepdewedge"], [0.5, 1, 2])
    counts = planned_jobs(run_snakemake(tmp_path, cfg, "-n"))
    # CN: every rung its own fits (the schedule stretches with the length)
    assert counts["cn_anchor"] == 3 and counts["cn_chunk"] == 6 and counts["cn_merge"] == 3
    # IsoNet: 1, 2 and 4 iterations share iterations 1..4 and one extraction
    assert counts["isonet_refine"] == 4 and counts["isonet_extract"] == 1
    assert counts["isonet_predict"] == 3
    # DeepDeWedge: 2, 4 and 8 epochs in blocks of 2 share the states at epochs 2, 4, 6, 8
    assert counts["ddw_fit"] == 4 and counts["ddw_halves"] == 1 and counts["ddw_extract"] == 1
    assert counts["ddw_refine"] == 3
    assert counts["metrics"] == 1 + 3 * 3 and counts["budget_report"] == 1


@pytest.mark.parametrize("over, key", [
    ({"budgets": {"methods": ["isonet"], "factors": [0, 2]}}, "budgets.factors.0"),
    ({"budgets": {"methods": ["isonet"], "factors": ["2"]}}, "budgets.factors.0"),
    ({"budgets": {"methods": ["imod_wbp"], "factors": [2]}}, "budgets.methods.0"),
    ({"isonet": {"budget": -1}}, "isonet.budget"),
    ({"isonet": {"budget": "x"}}, "isonet.budget"),
])
def test_a_bad_budget_stops_before_any_job(tmp_path, over, key):
    cfg = ladder_config(["isonet"], [1])
    for k, v in over.items():
        cfg[k] = dict(cfg.get(k) or {}, **v) if k == "isonet" else v
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"'{key}" in out, out[-2000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_longer_isonet_rung_reuses_the_shorter_runs_iterations(tmp_path):
    first = ladder_config(["isonet"], [1])
    run_snakemake(tmp_path, first)
    base = tmp_path / "results" / "spheres" / "tilt-60_60_step6"
    iters = {i: (base / "isonet" / f"iter_{i}" / "model.pt").stat().st_mtime_ns for i in (1, 2)}
    second = ladder_config(["isonet"], [1, 2])
    counts = planned_jobs(run_snakemake(tmp_path, second))
    # only iterations 3 and 4, the rung's predict, runtime, metrics, figures and reports
    assert counts == {"isonet_refine": 2, "isonet_predict": 1, "isonet_runtime": 1,
                      "metrics": 1, "table1": 1, "figures": 1, "budget_report": 1,
                      "all": 1}, counts
    for i, mtime in iters.items():
        assert (base / "isonet" / f"iter_{i}" / "model.pt").stat().st_mtime_ns == mtime
    # the rung's CPU time counts the shared jobs as its own
    bench = tmp_path / "results" / "benchmarks" / "spheres" / "tilt-60_60_step6"
    files = ([bench / "isonet" / "extract.tsv"]
             + [bench / "isonet" / f"refine_{i}.tsv" for i in range(1, 5)]
             + [bench / "isonet_x2" / "predict.tsv"])
    rec = json.loads((base / "metrics" / "isonet_x2.json").read_text())
    assert rec["cpu_s"] == pytest.approx(read_benchmark_seconds(files, "cpu_time"))
    assert rec["runtime_s"] == pytest.approx(read_benchmark_seconds(files))
    table = pd.read_csv(tmp_path / "results" / "report" / "table1_replicates.csv")
    row = table.set_index("method").loc["isonet_x2"]
    assert row["family"] == "isonet" and row["budget"] == 2.0
    assert row["cpu_min"] == pytest.approx(rec["cpu_s"] / 60)
    assert np.isnan(table.set_index("method").loc["imod_wbp", "budget"])
    out = tmp_path / "results" / "report" / "budget"
    for name in ("ladder.csv", "convergence.csv", "matched.csv", "reach.csv", "budget.md",
                 "spheres_tilt-60_60_step6.png"):
        assert (out / name).stat().st_size > 0, name
    matched = pd.read_csv(out / "matched.csv")
    assert set(matched["method"]) & {"isonet", "isonet_x2"} and "imod_wbp" in set(matched["method"])
