"""Real Snakemake runs of the tiny config: files, table, figures, report, reruns."""
import json
import re
import shutil
import subprocess

import mrcfile
import numpy as np
import pandas as pd
import pytest

from workflow_utils import run_snakemake, tiny_config

METHODS = ["imod_wbp", "eman2_fourier", "cn", "isonet"]


def assert_plausible(rec, dataset):
    """Ranges any sound reconstruction of the tiny data falls in, and what WBP must show
    by construction (it keeps the measured data and elongates spheres along z)."""
    assert 5 < rec["psnr"] < 80 and 0 <= rec["ssim"] <= 1, rec["method"]
    assert -0.3 < rec["fsc_missing_auc"] <= 1 and -0.3 < rec["fsc_present_auc"] <= 1
    assert 0 <= rec["reprojection_error"] < 1.5
    assert set(rec["conventions"]) == {"fair", "paper"}
    if rec["method"] == "imod_wbp":
        assert rec["fsc_present_auc"] > 0.6 and rec["reprojection_error"] < 0.5
        if dataset == "spheres":
            assert rec["sphere_zx_ratio"] > 1.1  # the missing wedge's elongation


def test_every_output_file_is_written(tiny_run):
    workdir, cfg = tiny_run
    res = workdir / "results"
    for ds, dcfg in cfg["datasets"].items():
        gt = res / ds / "ground_truth.mrc"
        with mrcfile.open(gt) as m:
            assert m.data.shape == tuple(dcfg["shape"])
            assert m.voxel_size.x == pytest.approx(dcfg["voxel_size"])
        acq = res / ds / "tilt-60_60_step6"
        angles = np.loadtxt(acq / "tiltseries.tlt")
        assert angles.size == 21 and angles[0] == -60 and angles[-1] == 60
        with mrcfile.open(acq / "tiltseries.mrc") as m:
            assert m.data.shape == (21, dcfg["shape"][1], dcfg["shape"][2])
            # default normalisation 'range': divided by max - min, zero kept
            span = float(m.data.max() - m.data.min())
            assert m.data.min() >= 0 and span == pytest.approx(1)
        for method in METHODS:
            with mrcfile.open(acq / "recon" / f"{method}.mrc") as m:
                assert m.data.shape == tuple(dcfg["shape"])
                assert np.isfinite(m.data).all()
            rec = json.loads((acq / "metrics" / f"{method}.json").read_text())
            assert rec["method"] == method and np.isfinite(rec["psnr"])
            assert rec["runtime_s"] > 0
            assert_plausible(rec, ds)
            assert (res / "benchmarks" / ds / "tilt-60_60_step6").is_dir()
        for fig in ("orthoslices.png", "fsc.png"):
            png = res / "report" / "figures" / ds / "tilt-60_60_step6" / fig
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    for log in (res / "logs").rglob("*.log"):
        assert log.stat().st_size > 0, log


def test_table1_has_every_dataset_and_method(tiny_run):
    workdir, cfg = tiny_run
    report = workdir / "results" / "report"
    per_rep = pd.read_csv(report / "table1_replicates.csv")
    pairs = set(zip(per_rep["dataset"], per_rep["method"]))
    assert pairs == {(d, m) for d in cfg["datasets"] for m in METHODS}
    assert (per_rep["replicate"] == 1).all()
    assert {"PSNR", "SSIM", "VIF", "runtime_min", "fsc_missing_auc", "paper_PSNR"} <= set(per_rep)
    table = pd.read_csv(report / "table1.csv")
    assert len(table) == len(per_rep) and (table["n"] == 1).all()
    assert {"PSNR_mean", "PSNR_low", "PSNR_mark", "VIF_mean", "runtime_min_mean"} <= set(table)
    # one replicate: no interval, no winner
    assert table["PSNR_low"].isna().all()
    assert set(table["PSNR_mark"].dropna()) <= {"n=1: no interval"}
    md = (report / "table1.md").read_text()
    assert md.count("\n") >= 2 + len(table) and "no interval exists" in md and "**" not in md


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, cfg = tiny_run
    proc = run_snakemake(workdir, cfg, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_dataset_reruns_only_that_dataset(tiny_run):
    workdir, cfg = tiny_run
    cfg = json.loads(json.dumps(cfg))
    cfg["datasets"]["spheres"]["params"]["count"] += 1
    proc = run_snakemake(workdir, cfg, "-n")
    out = proc.stdout + proc.stderr
    datasets = set(re.findall(r"dataset=([A-Za-z0-9_.-]+)", out))
    assert datasets == {"spheres"}
    assert "rule phantom" in out and "rule table1" in out


def test_report_builds_and_renders_the_table(tiny_run):
    workdir, cfg = tiny_run
    run_snakemake(workdir, cfg, "--report", "report.html")
    html = workdir / "report.html"
    assert html.stat().st_size > 100_000
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it as root)")
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={workdir / 'chromium-profile'}",
         "--virtual-time-budget=15000", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=180)
    dom = proc.stdout
    assert "Table 1" in dom and "table1.csv" in dom  # the category and its table entry


def test_replicates_use_their_own_seeds_and_give_intervals(tmp_path):
    cfg = tiny_config(methods=["imod_wbp", "eman2_fourier"], replicates=2)
    cfg["datasets"] = {"spheres": cfg["datasets"]["spheres"]}
    run_snakemake(tmp_path, cfg)
    res = tmp_path / "results"
    gts = [mrcfile.read(res / p / "ground_truth.mrc") for p in ("spheres", "spheres/rep2")]
    assert not np.array_equal(*gts)  # another phantom seed
    rec = json.loads((res / "spheres" / "rep2" / "tilt-60_60_step6" / "metrics" /
                      "imod_wbp.json").read_text())
    assert (rec["dataset"], rec["replicate"], rec["seed"]) == ("spheres", 2, cfg["seed"] + 1)
    table = pd.read_csv(res / "report" / "table1.csv")
    assert (table["n"] == 2).all() and np.isfinite(table["PSNR_low"]).all()
    assert set(table["PSNR_mark"]) <= {"best", "tie", "worse"}
    assert len(pd.read_csv(res / "report" / "table1_replicates.csv")) == 4
