"""Benchmark scripts: tune.py's configuration and fixed decision rule, and headline.py's
compact table (known answers on synthetic tables)."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tune():
    return _load("tune")


def _table(offsets: dict, ssim_offsets: dict | None = None, n=6, seed=0):
    """Per-replicate rows: a shared per-pair level plus a per-method offset and small noise."""
    rng = np.random.default_rng(seed)
    level = rng.normal(20, 3, n)
    rows = []
    for name, off in offsets.items():
        noise = rng.normal(0, 0.01, n)
        for i in range(n):
            rows.append({"dataset": f"d{i % 2}", "acquisition": "a", "replicate": i // 2 + 1,
                         "method": name, "PSNR": level[i] + off + noise[i],
                         "SSIM": 0.5 + (ssim_offsets or {}).get(name, 0.0) + noise[i],
                         "VIF": 0.3, "fsc_missing_auc": 0.1, "runtime_min": 1.0})
    return pd.DataFrame(rows)


def test_rule_changes_default_only_on_a_significant_gain(tune):
    names = ["cn", "cn_a", "cn_b"]
    _, choice = tune.family_table(_table({"cn": 0.0, "cn_a": 0.5, "cn_b": 1.0}), names)
    assert choice == "cn_b"
    # no significant difference: the default stays
    _, choice = tune.family_table(_table({"cn": 0.0, "cn_a": 0.0, "cn_b": 0.0}), names)
    assert choice == "cn"


def test_rule_keeps_default_when_ssim_is_significantly_worse(tune):
    df = _table({"cn": 0.0, "cn_a": 1.0}, ssim_offsets={"cn_a": -0.05})
    _, choice = tune.family_table(df, ["cn", "cn_a"])
    assert choice == "cn"


def test_tuning_configs_scale_real_defaults(tune):
    """Budgets scale the values the workflow would use, schema defaults included."""
    t = yaml.safe_load((REPO / "benchmarks" / "tune.yaml").read_text())
    assert t["seed"] > 1000  # validation seeds, never Table 1's
    base = tune.base_config(t)
    cfg, fam = tune.tuning_config(base, t)
    assert cfg["methods"]["cn_iter_x2"]["iterations"] == 2 * base["cn"]["iterations"]
    assert fam["isonet"]["budget"][0] == "isonet"
    r = yaml.safe_load((REPO / "benchmarks" / "tune_realistic.yaml").read_text())
    base = tune.base_config(r)
    assert base["tiltseries"]["model"]["dose"]["total"] > 0  # the preset is layered
    cfg, _ = tune.tuning_config(base, r)
    assert cfg["methods"]["deepdewedge_iter_x0p5"]["epochs"] == base["deepdewedge"]["epochs"] // 2
    assert cfg["run_datasets"] == r["datasets"] and "deepdewedge" in cfg["run_methods"]


def test_markers_replace_only_their_block(tune, tmp_path):
    doc = tmp_path / "R.md"
    doc.write_text("a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb\n")
    tune.write_between_markers(doc, "new", "x")
    assert doc.read_text() == "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb\n"
    with pytest.raises(SystemExit, match="markers"):
        tune.write_between_markers(doc, "new", "y")


def test_headline_marks_and_intervals():
    headline = _load("headline")
    rows = pd.DataFrame([
        {"dataset": "d", "method": "a", "n": 5, "lost_measured": False, "PSNR_mean": 20.0,
         "PSNR_low": 19.0, "PSNR_high": 21.0, "PSNR_mark": "best"},
        {"dataset": "d", "method": "b", "n": 5, "lost_measured": True, "PSNR_mean": 19.5,
         "PSNR_low": 18.0, "PSNR_high": 21.0, "PSNR_mark": "tie"},
        {"dataset": "d", "method": "c", "n": 1, "lost_measured": False, "PSNR_mean": 18.0,
         "PSNR_low": np.nan, "PSNR_high": np.nan, "PSNR_mark": "n=1: no interval"}])
    lines = headline.headline(rows).splitlines()
    assert lines[0].startswith("| dataset | method | n | PSNR (dB) |")
    assert lines[2] == "| d | a | 5 | **20.00 ± 1.00** |"
    assert lines[3] == "| d | b ⚠ | 5 | = 19.50 ± 1.50 |"
    assert lines[4] == "| d | c | 1 | 18.00 |"


def test_pipeline_setting_rule(tune, tmp_path):
    """A pipeline setting is adopted only when some method gains significantly and none
    loses significantly; the comparison pairs the two work directories' rows."""
    t = {"pipeline": {"norm": {"reference": "a", "settings": {"a": {}, "b": {"x": 1}},
                               "methods": ["m1", "m2"]}}}
    ref = _table({"m1": 0.0, "m2": 0.0}, seed=1)
    for offsets, expected in (({"m1": 1.0, "m2": 0.0}, "switch to `b`"),
                              ({"m1": 1.0, "m2": -1.0}, "keep `a`")):
        other = ref.copy()
        other["PSNR"] += other.method.map(offsets)
        out = tmp_path / "w-b" / "results" / "report"
        out.mkdir(parents=True, exist_ok=True)
        other.to_csv(out / "table1_replicates.csv", index=False)
        lines = tune.pipeline_report(ref, tmp_path / "w", {}, t)
        assert expected in lines[0]
        assert "m1@a" in "\n".join(lines) and "m2@b" in "\n".join(lines)


def test_findings_against_known_paired_intervals():
    """findings.py: holds / reversed / tie from paired intervals with known answers."""
    findings = _load("findings")
    # P22 in the paper: CN − IsoNet = +1.9 dB, +0.04 SSIM, −0.02 VIF
    d = np.array([1.0, 1.2, 0.8, 1.1, 0.9])          # PSNR: mean 1, sd 0.158
    base = np.array([20.0, 25.0, 22.0, 21.0, 24.0])   # shared per-seed level
    rows = []
    for r in range(5):
        for method, psnr, ssim, vif in (
                ("cn", base[r] + d[r], 0.5 + (0.01 if r % 2 else -0.01), 0.3 - d[r] / 10),
                ("isonet", base[r], 0.5, 0.3)):
            rows.append({"dataset": "p22", "acquisition": "tilt-60_60_step2",
                         "method": method, "replicate": r + 1, "paper_conv_PSNR": psnr,
                         "paper_conv_SSIM": ssim, "paper_conv_VIF": vif})
    table = findings.findings(pd.DataFrame(rows), pairs=[("cn", "isonet")])
    got = table.set_index("metric")
    half = 2.7764451051977987 * d.std(ddof=1) / np.sqrt(5)   # t_{0.975, 4}
    assert got.loc["PSNR", "diff"] == pytest.approx(1.0)
    assert got.loc["PSNR", "high"] - got.loc["PSNR", "low"] == pytest.approx(2 * half)
    assert got.loc["PSNR", "paper_diff"] == pytest.approx(36.1 - 34.2)
    assert got.loc["PSNR", "verdict"] == "holds"
    assert got.loc["SSIM", "verdict"] == "tie"              # ±0.01 alternating: CI spans 0
    assert got.loc["VIF", "verdict"] == "holds"             # paper −0.02, ours −0.1
    # the same pair with the signs of the paper flipped
    rows_flipped = [dict(r, method={"cn": "isonet", "isonet": "cn"}[r["method"]]) for r in rows]
    flipped = findings.findings(pd.DataFrame(rows_flipped), pairs=[("cn", "isonet")])
    assert list(flipped["verdict"]) == ["reversed", "tie", "reversed"]
    # one replicate: no interval, no verdict
    one = findings.findings(pd.DataFrame([r for r in rows if r["replicate"] == 1]),
                            pairs=[("cn", "isonet")])
    assert set(one["verdict"]) == {"–"}
    assert "holds: 2, tie: 1, reversed: 0 of 3" in findings.markdown(table)


def test_gpu_bench_runs_on_cpu_at_a_small_size(tmp_path):
    """bench_cn_gpu.py (prepared for a lent GPU) end to end on the CPU: K slabs timed each
    way, the extrapolation's arithmetic, the whole reconstruction and its metrics."""
    import json
    import subprocess
    import sys

    out = tmp_path / "p22.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_cn_gpu.py"),
                    "--dataset", "p22", "--device", "cpu", "--shape", "12", "36", "20",
                    "--slabs", "3", "--group", "2", "--iterations", "3",
                    "--anchor-iterations", "4", "--threads", "1", "--full",
                    "--out", str(out)], check=True, capture_output=True, timeout=300)
    rec = json.loads(out.read_text())
    assert rec["slabs"] == 3 and rec["slab_size"] == 2 and rec["shape"] == [12, 36, 20]
    assert rec["slabs_whole_volume"] == 18  # 36 rows in 2-row slabs
    assert rec["rows_timed"] == 2 * (3 + 2) * 2 + 1
    for way in ("sequential", "ensemble"):
        assert rec[f"{way}_s_per_slab"] == pytest.approx(rec[f"{way}_s"] / 3)
        assert rec[f"whole_{way}_min"] == pytest.approx(
            (rec["anchor_s"] + 17 * rec[f"{way}_s_per_slab"]) / 60)
    assert "full_s" in rec and not any(k.endswith("_error") for k in rec)
    assert set(rec["metrics"]["paper"]) == {"psnr", "ssim", "vif"}
    assert np.isfinite(rec["metrics"]["fair"]["psnr"])


def test_cn_capacity_refuses_table1_seeds(monkeypatch):
    """cn_capacity.py runs on validation seeds only (never Table 1's 1..N)."""
    cap = _load("cn_capacity")
    monkeypatch.setattr("sys.argv", ["cn_capacity.py", "--seeds", "1", "1001"])
    with pytest.raises(SystemExit, match="validation seeds"):
        cap.main()


def test_learned_gpu_bench_runs_on_cpu_at_a_small_size(tmp_path):
    """bench_learned_gpu.py (IsoNet and DeepDeWedge at the paper preset's settings, prepared
    for a lent GPU) end to end on the CPU at a reduced size: every stage timed, and each
    whole-run extrapolation equal to its formula."""
    import json
    import math
    import subprocess
    import sys

    out = tmp_path / "learned.json"
    sets = ["isonet.cube_size=16", "isonet.crop_size=24", "isonet.n_subtomos=4",
            "isonet.unet={filters: [8, 16, 32], convs_per_block: 1, dropout: 0.0, "
            "identity_init: false, bn_recalibration: 0}",
            "isonet.noise={start_iter: 2, every: 1, levels: [0.1], filter: none, pool: 4}",
            "isonet.predict={tile: 32, overlap: 8, batch_size: 2}",
            "deepdewedge.cube_size=16", "deepdewedge.base_channels=4", "deepdewedge.levels=2"]
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_learned_gpu.py"), "--device", "cpu",
           "--shape", "32", "64", "64", "--isonet-steps", "1", "--ddw-epochs", "1",
           "--threads", "1", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    rec = json.loads(out.read_text())
    iso, ddw = rec["isonet"], rec["ddw"]
    assert not any(k.endswith("_error") for r in (rec, iso, ddw) for k in r)
    assert (iso["cube"], iso["crop"], iso["n_subtomos"], iso["steps_timed"]) == (16, 24, 4, 1)
    assert iso["noisy_iterations"] == 29  # iterations 2..30 with start_iter 2, every 1
    assert iso["whole_refine_min"] == pytest.approx(
        (30 * (iso["fixed_s"] + 10 * iso["epoch_s"]) + 29 * iso["noise_pool_s"]) / 60)
    assert ddw["cubes"] == 9 and ddw["epochs"] == 1000 and ddw["extract_size"] == 24
    assert ddw["whole_fit_min"] == pytest.approx(
        (1000 * ddw["epoch_s"] + 100 * ddw["validation_s"] + 100 * ddw["update_s"]) / 60)
    assert math.isfinite(ddw["whole_min"]) and ddw["whole_min"] > ddw["whole_fit_min"]


def test_data_scaling_rule_takes_the_cheapest_candidate_within_the_margin():
    ds = _load("data_scaling")
    rows = []
    for seed, jitter in ((1001, 0.0), (1002, 0.01), (1003, -0.01)):
        rows.append(dict(seed=seed, candidate="WBP (reference)", **{"FSC present": 0.9}))
        for cand, present, cpu in (("a", 0.5, 10), ("b", 0.75 + jitter, 40), ("c", 0.8, 90)):
            rows.append(dict(seed=seed, candidate=cand, width=64, anchor_iterations=300,
                             PSNR=20, SSIM=0.5, VIF=0.3, **{"FSC present": present,
                                                            "FSC missing": 0.3},
                             cpu_s=cpu + seed % 10))
    choice, table = ds.choose(pd.DataFrame(rows))
    # a: gap 0.4 (flagged); b: gap 0.15 +- 0.02 (within 0.25); c within too but dearer
    assert choice == "b" and list(table["candidate"]) == ["a", "b", "c"]


def test_data_scaling_isonet_candidates_scale_the_p22_default_and_the_table_shows_them():
    from wedgebench.budgets import apply_data_scaling

    ds = _load("data_scaling")
    spec = ds.METHODS["isonet"]
    first = spec["candidates"][0]
    assert set(first.values()) == {0.0} and ds.label(first) == "n_subtomos^0, iterations^0"
    base = ds.settings("isonet", ds.base_config({}))
    assert base["iterations"] == 20  # config.yaml's per_dataset P22 entry is merged
    rule = {"reference_voxels": spec["reference"], **spec["candidates"][1]}
    big = apply_data_scaling("isonet", dict(base, scale_with_data=rule), (96, 96, 96))
    assert (big["n_subtomos"], big["iterations"]) == (64, 68)  # 20 x 3.375, rounded
    rows = []
    for seed in (1001, 1002, 1003):
        rows.append(dict(seed=seed, candidate="WBP (reference)", **{"FSC present": 0.9}))
        for cand, present, cpu in (("d", 0.8, 100), ("e", 0.85, 300)):
            rows.append(dict(seed=seed, candidate=cand, n_subtomos=64, iterations=20,
                             PSNR=20, SSIM=0.5, VIF=0.3, cpu_s=cpu + seed % 10,
                             **{"FSC present": present + 0.01 * (seed % 2),
                                "FSC missing": 0.3}))
    choice, table = ds.choose(pd.DataFrame(rows), spec["shown"])
    assert choice == "d" and list(table.columns[:3]) == ["candidate", "n subtomos", "iterations"]


def test_downstream_defaults_rules():
    dd = _load("downstream_defaults")
    rows = []
    for rep in (1, 2, 3):
        for cls in ("x", "y"):
            for step, ap in ((30.0, 0.5), (20.0, 0.8), (15.0, 0.81), (10.0, 0.8)):
                noise = 0.01 * rep if cls == "x" else -0.005 * rep
                rows.append(dict(replicate=rep, acquisition="a", method="m", cls=cls,
                                 step=step, ap=ap + noise, fbeta=ap + noise, match_s=step))
    step, table = dd.choose_step(pd.DataFrame(rows))
    assert step == 20.0  # 30 is significantly below 10; 20 is not
    peaks = []
    for rep in (1, 2, 3):
        for cls in ("x", "y"):
            # (1.5, 50) has the highest F-beta but loses AP in every replicate
            for (dist, n), f, ap in (((1.0, 500), 0.5, 0.8), ((0.5, 100), 0.7, 0.8),
                                     ((1.5, 50), 0.75, 0.79), ((1.5, 200), 0.55, 0.8)):
                peaks.append(dict(replicate=rep, acquisition="a", method="m", cls=cls,
                                  step=10.0, peak_min_distance=dist, num_peaks=n,
                                  ap=ap - 0.001 * rep * (n == 50),
                                  fbeta=f + 0.01 * rep * (cls == "x"), match_s=1))
    choice, first_rule, _ = dd.choose_peaks(pd.DataFrame(peaks))
    assert choice == (0.5, 100) and first_rule == (1.0, 500)
    # without the AP-losing candidate both rules agree
    kept = pd.DataFrame([r for r in peaks if r["num_peaks"] != 50])
    assert dd.choose_peaks(kept)[:2] == ((0.5, 100), (0.5, 100))


def test_cn_orchestration_comparison_differs_from_cn_paper_only_in_chain_start():
    tune = _load("tune")
    spec = yaml.safe_load((REPO / "benchmarks" / "tune_cn_orchestration.yaml").read_text())
    cfg, families = tune.tuning_config(tune.base_config(spec), spec)
    paper = yaml.safe_load((REPO / "config.yaml").read_text())["methods"]["cn_paper"]
    assert paper["chain_start"] == "authors"
    assert cfg["methods"]["cn_paper_anchor"] == {**paper, "chain_start": "anchor"}
    assert families == {} and {"cn_paper", "cn_paper_anchor"} <= set(cfg["run_methods"])
