"""Replicate statistics: confidence intervals and paired comparisons of methods.

A benchmark run with several seeds (replicates) gives, for every dataset, acquisition
and method, one value of each metric per replicate. A verdict such as "method A is
best" needs an interval, and because every method sees the same phantom and tilt
series of a replicate, methods are compared by *paired* differences over replicates,
which cancels the variation between replicates that all methods share.

All intervals are two-sided Student-t intervals ``mean ± t_{(1+c)/2, n−1} · s / √n``
(``s`` the sample standard deviation, ddof = 1), with the t quantile from
:mod:`scipy.stats`. NaN values (undefined metrics) are left out; fewer than two values
give a NaN interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st

from wedgebench.io import InputError

#: Identifying columns of a long table of per-replicate metric values.
KEYS = ("dataset", "acquisition", "method")
REPLICATE = "replicate"

#: Marks of :func:`compare_methods`.
BEST, TIE, WORSE, NO_INTERVAL = "best", "tie", "worse", "n=1: no interval"


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of replicate values.

    Parameters
    ----------
    values : array_like of float
        One value per replicate; NaNs are ignored.
    confidence : float
        Two-sided coverage, in (0, 1).

    Returns
    -------
    (mean, low, high) : float
        ``low``/``high`` are NaN when fewer than two finite values remain; all three
        are NaN when none remains.
    """
    confidence = _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_difference(a, b, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences ``a − b`` with its Student-t confidence interval.

    Parameters
    ----------
    a, b : array_like of float, same length
        Values of two methods, element ``i`` of both from replicate (seed) ``i``.
        Pairs with a NaN on either side are left out.
    confidence : float

    Returns
    -------
    (mean_diff, low, high) : float
        See :func:`mean_ci`.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return mean_ci(a - b, confidence)


def _excludes_zero(low: float, high: float) -> bool:
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))


def _metric_verdict(group: pd.DataFrame, metric: str, higher_is_better: bool,
                    confidence: float) -> pd.DataFrame:
    """Mean/CI of ``metric`` per method of one dataset × acquisition, and the verdict.

    ``group`` is indexed by (method, replicate). Returns one row per method with
    columns ``{metric}_mean, _low, _high, _best, _diff, _diff_low, _diff_high, _mark``.
    """
    table = group[metric].unstack("method")  # replicate × method
    methods = list(dict.fromkeys(group.index.get_level_values("method")))
    ci = {m: mean_ci(table[m], confidence) for m in methods}
    means = pd.Series({m: ci[m][0] for m in methods}, dtype=float)
    rows = {m: {f"{metric}_mean": ci[m][0], f"{metric}_low": ci[m][1],
                f"{metric}_high": ci[m][2], f"{metric}_best": None,
                f"{metric}_diff": np.nan, f"{metric}_diff_low": np.nan,
                f"{metric}_diff_high": np.nan, f"{metric}_mark": ""} for m in methods}
    if means.notna().any():
        best = (means.idxmax() if higher_is_better else means.idxmin())
        decisive = True
        for m in methods:
            rows[m][f"{metric}_best"] = best
            if m == best:
                continue
            d, lo, hi = paired_difference(table[m], table[best], confidence)
            rows[m].update({f"{metric}_diff": d, f"{metric}_diff_low": lo,
                            f"{metric}_diff_high": hi})
            if not (np.isfinite(lo) and np.isfinite(hi)):
                rows[m][f"{metric}_mark"] = NO_INTERVAL
                decisive = False
            elif _excludes_zero(lo, hi):
                rows[m][f"{metric}_mark"] = WORSE
            else:
                rows[m][f"{metric}_mark"] = TIE
                decisive = False
        single = np.isnan(ci[best][1]) or any(r[f"{metric}_mark"] == NO_INTERVAL
                                              for r in rows.values())
        rows[best][f"{metric}_mark"] = (NO_INTERVAL if single else BEST if decisive else TIE)
    return pd.DataFrame.from_dict(rows, orient="index")


def compare_methods(df: pd.DataFrame, metrics: dict, confidence: float = 0.95
                    ) -> pd.DataFrame:
    """Per dataset × acquisition × method: mean and CI of every metric, and the verdict.

    Parameters
    ----------
    df : DataFrame
        Long table, one row per replicate: columns ``dataset``, ``acquisition``,
        ``method``, ``replicate`` and one column per metric.
    metrics : dict of str -> bool
        The metric columns to summarise, each with whether higher is better (e.g.
        ``{"psnr": True, "fsc_missing_auc": True, "reprojection_error": False}``).
    confidence : float
        Coverage of every interval.

    Returns
    -------
    DataFrame
        One row per dataset × acquisition × method (in order of first appearance) with
        ``n`` (replicates) and, for every metric ``m``: ``m_mean``, ``m_low``,
        ``m_high`` (the t interval of the mean); ``m_best`` (the method with the best
        mean in that dataset × acquisition); ``m_diff``, ``m_diff_low``,
        ``m_diff_high`` (paired difference *this method − best* over replicates, with
        its interval; NaN for the best itself); and ``m_mark``:

        * ``"best"`` — the best method, only when every other method's paired interval
          excludes 0;
        * ``"tie"`` — a method whose paired interval includes 0, and the best method
          when any other method ties with it;
        * ``"worse"`` — a method whose paired interval excludes 0;
        * ``"n=1: no interval"`` — no interval can be formed (a single replicate, or a
          single common replicate of a pair); no winner is marked then.

    Raises
    ------
    InputError
        Missing columns, an unknown metric, or two rows for the same dataset,
        acquisition, method and replicate.
    """
    confidence = _check_confidence(confidence)
    need = [*KEYS, REPLICATE, *metrics]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"replicate table lacks columns {missing}")
    data = df[need].copy()
    dup = data.duplicated(subset=[*KEYS, REPLICATE], keep=False)
    if dup.any():
        raise InputError("duplicate replicate rows: "
                         f"{data.loc[dup, [*KEYS, REPLICATE]].values.tolist()}")
    for m in metrics:
        data[m] = pd.to_numeric(data[m], errors="coerce").astype(float)
    out = []
    for (dataset, acq), group in data.groupby(["dataset", "acquisition"], sort=False,
                                              dropna=False):
        g = group.set_index(["method", REPLICATE])
        n = group.groupby("method", sort=False)[REPLICATE].nunique()
        parts = [_metric_verdict(g, m, bool(hib), confidence) for m, hib in metrics.items()]
        block = pd.concat([n.rename("n"), *parts], axis=1)
        block.insert(0, "method", block.index)
        block.insert(0, "acquisition", acq)
        block.insert(0, "dataset", dataset)
        out.append(block.reset_index(drop=True))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["n"])
