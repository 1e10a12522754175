"""The downstream table and the ranking agreement on hand-made records (known answers)."""

import numpy as np
import pandas as pd
import pytest

from wedgebench.report import downstream as rd


def _records():
    recs = []
    for rep, shift in ((1, 0.0), (2, 0.01), (3, -0.02)):
        for method, f in (("a", 0.9), ("b", 0.6), ("c", 0.3)):
            recs.append({"dataset": "cell", "acquisition": "acq", "method": method,
                         "replicate": rep,
                         "summary": {"weighted_fbeta": f + shift, "mean_ap": f,
                                     "res05_true_A": 40 + 10 * (1 - f) + shift,
                                     "fbeta_x": f, "ap_x": None}})
    return recs


def _table1(order):
    """Voxel metrics ranking the methods in ``order`` (best first) in every replicate."""
    rows = []
    for rep in (1, 2, 3):
        for rank, method in enumerate(order):
            rows.append({"dataset": "cell", "acquisition": "acq", "method": method,
                         "replicate": rep, "PSNR": 30.0 - rank + 0.1 * rep,
                         "SSIM": 0.9 - 0.1 * rank, "VIF": 0.5, "fsc_missing_auc": np.nan})
    return pd.DataFrame(rows)


def test_table_and_summary_marks():
    table = rd.downstream_table(_records())
    assert len(table) == 9 and np.isnan(table["ap_x"]).all()
    summary = rd.summarise(table).set_index("method")
    assert summary.loc["a", "weighted_fbeta_mark"] == "best"
    assert summary.loc["a", "res05_true_A_mark"] == "best"  # lower is better
    assert summary.loc["b", "weighted_fbeta_diff"] == pytest.approx(-0.3)
    md = rd.summary_markdown(summary.reset_index())
    assert "**0.897 [" in md and "F-β (weighted)" in md


def test_agreement_is_plus_one_minus_one_or_undecided():
    down = rd.downstream_table(_records())
    same = rd.ranking_agreement(_table1(["a", "b", "c"]), down).set_index(
        ["voxel_metric", "downstream_score"])
    assert same.loc[("PSNR", "weighted_fbeta"), "spearman_mean"] == pytest.approx(1.0)
    assert same.loc[("PSNR", "res05_true_A"), "verdict"] == "agree"  # oriented: lower Å
    assert same.loc[("PSNR", "weighted_fbeta"), "n"] == 3
    rev = rd.ranking_agreement(_table1(["c", "b", "a"]), down).set_index(
        ["voxel_metric", "downstream_score"])
    assert rev.loc[("SSIM", "mean_ap"), "spearman_mean"] == pytest.approx(-1.0)
    assert rev.loc[("SSIM", "mean_ap"), "verdict"] == "disagree"
    # a constant voxel metric (VIF) and an all-NaN one give no interval
    assert same.loc[("VIF", "mean_ap"), "verdict"] == "no interval"
    assert same.loc[("fsc_missing_auc", "mean_ap"), "verdict"] == "no interval"


def test_figures(tmp_path):
    table = rd.downstream_table(_records())
    summary = rd.summarise(table)
    rd.fbeta_figure(summary, tmp_path / "f.png", "cell")
    recs = [dict(r, classes={"x": {"true_poses": {"subsets": {
        "n_particles": [2, 4, 8], "res05_A": [60.0, 50.0, 45.0]}}}}) for r in _records()]
    rd.resolution_figure(recs, tmp_path / "r.png", "cell")
    assert (tmp_path / "f.png").stat().st_size > 5000 and (tmp_path / "r.png").stat().st_size > 5000
