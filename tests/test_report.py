"""Tests of wedgebench.report: Table 1, markdown, benchmark run times, figures."""

import math

import numpy as np
import pandas as pd
import pytest

from wedgebench.io import InputError
from wedgebench.report.figures import fsc_figure, orthoslices, sweep_figure, sweep_figures
from wedgebench.io import read_benchmark_seconds as runtime_from_benchmarks
from wedgebench.report.table import build_table1, to_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_metrics(seed):
    rng = np.random.default_rng(seed)
    freq = np.linspace(0.01, 0.1, 10).tolist()
    return {"psnr": 20 + seed, "ssim": 0.5, "vif": 0.3, "fsc_full_auc": 0.6,
            "fsc_present_auc": 0.7, "fsc_missing_auc": 0.4, "fsc_full_res_A": 12.0,
            "fsc": {"frequency": freq, "full": rng.random(10).tolist(),
                    "present": rng.random(10).tolist(),
                    "missing": [None] + rng.random(9).tolist()}}


def records():
    out = []
    for d in ("spheres", "p22", "mine"):
        for i, meth in enumerate(("cn", "imod_wbp", "isonet", "eman2_fourier")):
            out.append({"dataset": d, "acquisition": "tilt-60_60_step2", "method": meth,
                        "metrics": fake_metrics(i), "runtime_s": 60.0 * (i + 1),
                        "wall_s": None})
    return out


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes


def test_table1_layout():
    order = ["eman2_fourier", "imod_wbp", "isonet", "cn"]
    df = build_table1(records(), order=order)
    assert len(df) == 12
    assert df.groupby(["dataset", "method"]).size().eq(1).all()
    for col in ("PSNR", "SSIM", "VIF", "runtime_min", "fsc_missing_auc", "fsc_present_auc",
                "sphere_zx_ratio", "paper_PSNR", "paper_SSIM", "paper_VIF",
                "paper_runtime_min"):
        assert col in df.columns
    # the registry's order of methods within a dataset, datasets in order of appearance
    assert df["method"].tolist()[:4] == order
    assert df["kind"].tolist()[:4] == order and (df["variant_of"] == "").all()
    assert df["dataset"].unique().tolist() == ["spheres", "p22", "mine"]
    row = df[(df.dataset == "p22") & (df.method == "cn")].iloc[0]
    assert (row.paper_PSNR, row.paper_SSIM, row.paper_VIF, row.paper_runtime_min) == \
        (36.1, 0.99, 0.88, 19.6)
    assert row.runtime_min == pytest.approx(1.0)
    assert math.isnan(row.wall_min) and math.isnan(row.sphere_zx_ratio)
    assert df[df.dataset == "mine"]["paper_PSNR"].isna().all()


def test_table1_other_acquisition_and_errors():
    recs = [dict(r, acquisition={"range": [-60, 60], "step": 4}) for r in records()[:2]]
    df = build_table1(recs)
    assert df["acquisition"].tolist() == ["tilt-60_60_step4"] * 2
    assert df["paper_PSNR"].isna().all()
    with pytest.raises(InputError):
        build_table1(records()[:1] * 2)
    with pytest.raises(InputError):
        build_table1([{"dataset": "x"}])


def test_to_markdown():
    df = build_table1(records()[:4])
    md = to_markdown(df)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 4
    assert lines[0].startswith("| dataset | acquisition | method | replicate | kind | variant_of | family | budget | PSNR")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "–" in md  # NaN cells


def test_runtime_from_benchmarks(tmp_path):
    header = "s\th:m:s\tmax_rss\n"
    (tmp_path / "a.tsv").write_text(header + "10.5\t0:00:10\t100\n")
    (tmp_path / "b.tsv").write_text(header + "2.0\t0:00:02\t1\n4.0\t0:00:04\t1\n")
    assert runtime_from_benchmarks([tmp_path / "a.tsv", tmp_path / "b.tsv"]) == 13.5
    assert runtime_from_benchmarks(str(tmp_path / "a.tsv")) == 10.5
    with pytest.raises(InputError):
        runtime_from_benchmarks([tmp_path / "missing.tsv"])
    (tmp_path / "c.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(InputError):
        runtime_from_benchmarks([tmp_path / "c.tsv"])


def test_orthoslices_png(tmp_path):
    z, y, x = np.indices((8, 16, 20))
    gt = ((z - 4) ** 2 + (y - 8) ** 2 + (x - 10) ** 2 < 9).astype(np.float32)
    out = tmp_path / "fig" / "ortho.png"
    orthoslices({"ground truth": gt, "wbp": 3 * gt + 1, "cn": gt[::-1].copy()}, out,
                "tiny test")
    assert_png(out)
    with pytest.raises(InputError):
        orthoslices({"gt": gt, "bad": gt[:4]}, tmp_path / "x.png")


def test_fsc_figure_png(tmp_path):
    out = tmp_path / "fsc.png"
    fsc_figure({m: fake_metrics(i)["fsc"] for i, m in enumerate(("wbp", "cn"))}, out,
               "tiny test")
    assert_png(out)


def test_sweep_figure_png(tmp_path):
    df = pd.DataFrame([{"method": m, "tilt_step": s, "PSNR": 20 + k * s, "SSIM": 0.5}
                       for k, m in enumerate(("wbp", "cn")) for s in (1, 2, 4, 8)])
    out = tmp_path / "sweep.png"
    sweep_figure(df, "tilt_step", "PSNR", out, "tiny test")
    assert_png(out)
    sweep_figure(df, "tilt_step", ["PSNR", "SSIM"], tmp_path / "sweep2.png")
    assert_png(tmp_path / "sweep2.png")
    # six metrics read as a 2 x 3 grid, not one 3,400-px row
    from PIL import Image

    df6 = df.assign(**{f"m{i}": df["PSNR"] + i for i in range(4)})
    sweep_figure(df6, "tilt_step", ["PSNR", "SSIM", "m0", "m1", "m2", "m3"], tmp_path / "six.png")
    width, height = Image.open(tmp_path / "six.png").size
    assert width < 1700 and height > 700
    with pytest.raises(InputError):
        sweep_figure(df, "tilt_range", "PSNR", tmp_path / "bad.png")


def test_sweep_figures_from_records(tmp_path):
    acqs = [(-60, 60, 2), (-50, 50, 2), (-40, 40, 2), (-60, 60, 4), (-60, 60, 8)]
    rows = [{"method": m, "tilt_min": lo, "tilt_max": hi, "tilt_step": st,
             "psnr": 20 + hi / 10 - st + k, "ssim": 0.5, "vif": None,
             "fsc_missing_auc": 0.3 + 0.1 * k, "reprojection_error": 0.2}
            for k, m in enumerate(("wbp", "cn")) for lo, hi, st in acqs]
    written = sweep_figures(pd.DataFrame(rows), tmp_path / "sweep", "p22")
    assert sorted(p.name for p in written) == ["vs_tilt_range.png", "vs_tilt_step.png"]
    for p in written:
        assert_png(p)
    assert sweep_figures(pd.DataFrame(rows[:1]), tmp_path / "none") == []


def test_paper_values_stand_only_beside_a_kinds_own_instance():
    base = {"dataset": "p22", "acquisition": "tilt-60_60_step2", "metrics": fake_metrics(0),
            "runtime_s": 1.0, "wall_s": None}
    df = build_table1([dict(base, method="cn"),
                       dict(base, method="cn_paper", kind="cn", variant_of="cn"),
                       dict(base, method="imod", kind="precomputed")])
    assert df["paper_PSNR"].tolist()[0] == 36.1 and df["paper_PSNR"][1:].isna().all()
    assert df["variant_of"].tolist() == ["", "cn", ""]
    assert df["kind"].tolist() == ["cn", "cn", "precomputed"]


def test_summary_over_replicates_marks_only_decisive_winners():
    from scipy import stats

    from wedgebench.report.table import summarise, summary_markdown

    recs = []
    psnr = {"a": [30.0, 31.0, 32.0], "b": [20.0, 22.0, 21.0], "c": [29.0, 31.5, 32.2]}
    for m, values in psnr.items():
        for r, v in enumerate(values, start=1):
            met = dict(fake_metrics(0), psnr=v)
            recs.append({"dataset": "spheres", "acquisition": "tilt-60_60_step2", "method": m,
                         "replicate": r, "metrics": met, "runtime_s": 60.0, "wall_s": None})
    summary = summarise(build_table1(recs, order=["a", "b", "c"]))
    row = summary.set_index("method")
    assert row.loc["a", "n"] == 3 and row.loc["a", "PSNR_mean"] == pytest.approx(31.0)
    half = stats.t.ppf(0.975, 2) * np.std(psnr["a"], ddof=1) / np.sqrt(3)
    assert (row.loc["a", "PSNR_low"], row.loc["a", "PSNR_high"]) == \
        pytest.approx((31.0 - half, 31.0 + half))
    # c ties with a (paired differences -1, +0.5, +0.2 straddle 0): nobody is "best"
    assert row.loc["c", "PSNR_best"] == "a" and row.loc["c", "PSNR_mark"] == "tie"
    assert row.loc["a", "PSNR_mark"] == "tie" and row.loc["b", "PSNR_mark"] == "worse"
    d = np.subtract(psnr["b"], psnr["a"])
    dh = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert (row.loc["b", "PSNR_diff_low"], row.loc["b", "PSNR_diff_high"]) == \
        pytest.approx((d.mean() - dh, d.mean() + dh))
    md = summary_markdown(summary)
    assert "(tie)" in md and "**" not in md and "no interval exists" not in md
    # without c, a is decisively best in PSNR
    best = summarise(build_table1([r for r in recs if r["method"] != "c"]))
    assert best.set_index("method").loc["a", "PSNR_mark"] == "best"
    assert "**31 [" in summary_markdown(best)


def test_summary_with_one_replicate_has_no_interval_and_no_winner():
    from wedgebench.report.table import summarise, summary_markdown

    summary = summarise(build_table1(records()))
    assert (summary["n"] == 1).all() and summary["PSNR_low"].isna().all()
    assert set(summary["PSNR_mark"]) == {"n=1: no interval"}
    md = summary_markdown(summary)
    assert "no interval exists" in md and "**" not in md


def test_a_method_that_loses_measured_data_is_flagged():
    from wedgebench.report.table import summarise, summary_markdown

    base = {"dataset": "p22", "acquisition": "tilt-40_40_step2", "runtime_s": 1.0,
            "wall_s": None}
    present = {"imod_wbp": 0.90, "isonet": 0.27, "cn": 0.70}
    recs = [dict(base, method=m, metrics=dict(fake_metrics(0), fsc_present_auc=v))
            for m, v in present.items()]
    summary = summarise(build_table1(recs)).set_index("method")
    assert summary.loc["isonet", "lost_measured"] is True
    assert summary.loc["cn", "lost_measured"] is False
    assert summary.loc["imod_wbp", "lost_measured"] is False
    assert "isonet ⚠" in summary_markdown(summary.reset_index())
    # without a WBP row there is nothing to compare with
    alone = summarise(build_table1(recs[1:]))
    assert alone["lost_measured"].isna().all()
