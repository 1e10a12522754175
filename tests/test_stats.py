"""Tests of wedgebench.stats: t intervals, paired differences, method verdicts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from wedgebench.io import InputError
from wedgebench.stats import compare_methods, mean_ci, paired_difference


def hand_interval(x, confidence=0.95):
    """mean ± t_{(1+c)/2, n−1} · s / √n, from the formula."""
    x = np.asarray(x, float)
    n = x.size
    s = np.sqrt(np.sum((x - x.mean()) ** 2) / (n - 1))
    half = st.t.ppf((1 + confidence) / 2, n - 1) * s / np.sqrt(n)
    return x.mean(), x.mean() - half, x.mean() + half


def test_mean_ci_matches_formula_and_nan_for_one_value():
    x = [30.1, 31.4, 29.8, 30.9]
    assert mean_ci(x) == pytest.approx(hand_interval(x))
    assert mean_ci(x, 0.9) == pytest.approx(hand_interval(x, 0.9))
    assert mean_ci([1.0, np.nan, 3.0]) == pytest.approx(hand_interval([1.0, 3.0]))
    m, lo, hi = mean_ci([2.5])
    assert m == 2.5 and np.isnan(lo) and np.isnan(hi)
    assert all(np.isnan(mean_ci([])))
    with pytest.raises(InputError):
        mean_ci(x, 1.5)


def test_paired_difference_matches_formula():
    a = np.array([31.0, 32.5, 30.2, 31.8, 33.0])
    b = np.array([30.0, 31.0, 29.9, 30.1, 31.5])
    d = a - b  # 1.0, 1.5, 0.3, 1.7, 1.5
    mean, lo, hi = paired_difference(a, b)
    want = hand_interval(d)
    assert (mean, lo, hi) == pytest.approx(want)
    # by hand: mean 1.2, s = sqrt(1.28 / 4) = 0.5657, t(0.975, 4) = 2.7764 -> half 0.7024
    assert mean == pytest.approx(1.2) and hi - mean == pytest.approx(0.70239, abs=1e-4)
    # pairing matters: the unpaired interval of a - b would include 0
    assert lo > 0
    with pytest.raises(InputError):
        paired_difference(a, b[:-1])


def long_table(values: dict, dataset="spheres", acq="tilt-60_60_step2"):
    """{method: [psnr per replicate]} -> long DataFrame with a 'lower is better' column."""
    rows = [{"dataset": dataset, "acquisition": acq, "method": m, "replicate": r,
             "psnr": v, "error": -v}
            for m, vals in values.items() for r, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_compare_methods_best_worse_and_intervals():
    df = long_table({"wbp": [20.0, 21.0, 20.5], "cn": [25.0, 26.5, 25.2],
                     "isonet": [22.0, 23.0, 22.1]})
    out = compare_methods(df, {"psnr": True, "error": False}).set_index("method")
    assert list(out.index) == ["wbp", "cn", "isonet"] and (out["n"] == 3).all()
    assert out.loc["cn", "psnr_best"] == "cn" and out.loc["cn", "psnr_mark"] == "best"
    assert out.loc["wbp", "psnr_mark"] == "worse" and out.loc["isonet", "psnr_mark"] == "worse"
    assert (out.loc["wbp", "psnr_mean"], out.loc["wbp", "psnr_low"],
            out.loc["wbp", "psnr_high"]) == pytest.approx(hand_interval([20.0, 21.0, 20.5]))
    d = np.array([20.0, 21.0, 20.5]) - np.array([25.0, 26.5, 25.2])
    assert (out.loc["wbp", "psnr_diff"], out.loc["wbp", "psnr_diff_low"],
            out.loc["wbp", "psnr_diff_high"]) == pytest.approx(hand_interval(d))
    assert np.isnan(out.loc["cn", "psnr_diff"])
    # lower is better for 'error' (= -psnr): the same verdict
    assert out.loc["cn", "error_best"] == "cn" and out.loc["cn", "error_mark"] == "best"


def test_identical_methods_tie():
    df = long_table({"a": [20.0, 21.0, 22.5], "b": [20.0, 21.0, 22.5], "c": [10.0, 11.0, 10.5]})
    out = compare_methods(df, {"psnr": True}).set_index("method")
    assert out.loc["a", "psnr_best"] == "a"
    assert out.loc["b", "psnr_mark"] == "tie" and out.loc["a", "psnr_mark"] == "tie"
    assert out.loc["b", "psnr_diff"] == 0 and out.loc["c", "psnr_mark"] == "worse"


def test_overlapping_noise_is_a_tie():
    df = long_table({"a": [20.0, 23.0, 21.0], "b": [21.0, 21.5, 22.0]})
    out = compare_methods(df, {"psnr": True}).set_index("method")
    assert set(out["psnr_mark"]) == {"tie"}


def test_single_replicate_has_no_interval_and_no_winner():
    df = long_table({"wbp": [20.0], "cn": [25.0]})
    out = compare_methods(df, {"psnr": True}).set_index("method")
    assert (out["n"] == 1).all()
    assert out.loc["cn", "psnr_best"] == "cn"
    assert set(out["psnr_mark"]) == {"n=1: no interval"}
    assert out[["psnr_low", "psnr_high", "psnr_diff_low"]].isna().all().all()


def test_groups_are_separate_and_input_is_checked():
    df = pd.concat([long_table({"a": [1.0, 2.0], "b": [3.0, 4.5]}),
                    long_table({"a": [5.0, 6.0], "b": [1.0, 1.5]}, dataset="p22")])
    out = compare_methods(df, {"psnr": True})
    best = out.groupby("dataset")["psnr_best"].first().to_dict()
    assert best == {"spheres": "b", "p22": "a"}
    with pytest.raises(InputError):
        compare_methods(df.drop(columns="replicate"), {"psnr": True})
    with pytest.raises(InputError):
        compare_methods(pd.concat([df, df.iloc[:1]]), {"psnr": True})
