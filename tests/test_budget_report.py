"""Budget ladders: convergence marks, the matched-compute table and the compute needed to
reach a quality, on hand-made per-replicate tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from wedgebench.io import InputError
from wedgebench.report import budget


def _rows(method, family, b, cpu, psnr, ssim, reps=(1, 2, 3, 4)):
    """One row per replicate; ``psnr``/``ssim`` are per-replicate lists."""
    return [{"dataset": "d", "acquisition": "a", "method": method, "replicate": r,
             "family": family, "budget": b, "cpu_min": cpu * (1 + 0.01 * r),
             "PSNR": p, "SSIM": s, "VIF": 0.1, "fsc_missing_auc": 0.1, "fsc_present_auc": 0.8}
            for r, p, s in zip(reps, psnr, ssim)]


NOISE = np.array([0.0, 0.3, -0.2, 0.1])


def _table():
    rows = []
    # CN ladder: gains 2 dB per doubling up to x2, then flat (noise only, pairs cancel
    # exactly except for a tiny jitter, so the flat steps' intervals include 0)
    levels = {0.5: 20.0, 1: 22.0, 2: 24.0, 4: 24.0, 8: 24.0}
    jitter = {4: np.array([0.01, -0.02, 0.015, -0.005]),
              8: np.array([-0.01, 0.02, 0.0, -0.01])}
    for b, lvl in levels.items():
        psnr = lvl + NOISE + jitter.get(b, 0.0)
        rows += _rows(f"cn_x{b:g}", "cn", b, 2.0 * b, psnr, [0.5 + 0.01 * lvl] * 4)
    # IsoNet ladder: still gaining at the top rung
    for b, lvl in {1: 18.0, 2: 19.0, 4: 20.0}.items():
        rows += _rows(f"isonet_x{b:g}", "isonet", b, 1.5 * b, lvl + NOISE, [0.4] * 4)
    rows += _rows("imod_wbp", "", math.nan, 0.05, 17.0 + NOISE, [0.3] * 4)
    return pd.DataFrame(rows)


def test_converged_at_the_first_rung_after_which_doubling_changes_nothing():
    conv = budget.convergence(_table(), {"PSNR": True, "SSIM": True}).set_index("family")
    assert conv.loc["cn", "converged_at"] == 2
    assert conv.loc["cn", "budgets"] == "0.5, 1, 2, 4, 8"
    assert "×0.5→×1: PSNR, SSIM" in conv.loc["cn", "steps"]
    assert "×2→×4: –" in conv.loc["cn", "steps"]
    assert math.isnan(conv.loc["isonet", "converged_at"])  # +1 dB at every doubling


def test_one_replicate_is_never_converged():
    t = _table()
    conv = budget.convergence(t[t["replicate"] == 1], {"PSNR": True}).set_index("family")
    assert math.isnan(conv.loc["cn", "converged_at"])
    assert "no interval" in conv.loc["cn", "steps"]


def test_matched_compute_takes_the_rung_nearest_the_budget_on_a_log_scale():
    # cn rungs cost ~1, 2, 4, 8, 16 min; isonet ~1.5, 3, 6; target 3.5 min:
    # log-nearest cn rung is 4 min (x2), isonet 3 min (x2)
    out = budget.matched_compute(_table(), 3.5, {"PSNR": True}).set_index("method")
    assert set(out.index) == {"cn_x2", "isonet_x2", "imod_wbp"}
    assert out.loc["cn_x2", "budget"] == 2 and out.loc["isonet_x2", "budget"] == 2
    assert out.loc["cn_x2", "PSNR_mark"] == "best"  # 24 vs 19 vs 17, every pair decisive
    assert out.loc["isonet_x2", "PSNR_diff"] == pytest.approx(-5.0)
    assert out.loc["cn_x2", "target_cpu_min"] == 3.5
    with pytest.raises(InputError, match="cpu_minutes"):
        budget.matched_compute(_table(), 0, {"PSNR": True})


def test_compute_to_reach_interpolates_on_log_cpu():
    t = _table()
    out = budget.compute_to_reach(t, {"PSNR": {"above": 4.0, "reference": "imod_wbp"}})
    out = out.set_index("family")
    # per replicate r: WBP 17 + noise, target 21 + noise; cn has 20 + noise at x0.5 and
    # 22 + noise at x1, so the crossing is half way in log CPU between 1.0(1+.01r) and
    # 2.0(1+.01r): sqrt(2) * (1 + .01r)
    expected = [math.sqrt(2) * (1 + 0.01 * r) for r in (1, 2, 3, 4)]
    assert out.loc["cn", "cpu_min_mean"] == pytest.approx(np.mean(expected))
    assert out.loc["cn", "reached"] == "4/4"
    assert out.loc["cn", "target"] == "PSNR imod_wbp + 4"
    # IsoNet tops out at 20 + noise < 21 + noise: never reached
    assert out.loc["isonet", "reached"] == "0/4" and math.isnan(out.loc["isonet", "cpu_min_mean"])
    val = budget.compute_to_reach(t, {"PSNR": {"value": 19.0}}).set_index("family")
    # cn's first rung (20 + noise) already reaches 19: its CPU time
    assert val.loc["cn", "cpu_min_mean"] == pytest.approx(np.mean([1.0 * (1 + .01 * r)
                                                                   for r in (1, 2, 3, 4)]))


def test_missing_columns_and_reference_are_named():
    with pytest.raises(InputError, match="family"):
        budget.convergence(_table().drop(columns="family"))
    with pytest.raises(InputError, match="'nope'"):
        budget.compute_to_reach(_table(), {"PSNR": {"above": 1, "reference": "nope"}})


def test_budget_figure_writes_a_png(tmp_path):
    out = tmp_path / "budget.png"
    budget.budget_figure(_table(), out, "d a", {"PSNR": True, "SSIM": True})
    assert out.stat().st_size > 10_000
    from PIL import Image

    assert Image.open(out).size[0] > 400
