"""Quality against compute: budget ladders of the learned methods.

A *ladder* is one learned method run at several budgets (``budget: 0.25 … 8``, a multiple
of its default iterations or epochs), every rung a complete run. All functions here take
the per-replicate Table 1 (:func:`wedgebench.report.table.build_table1`) with the columns
``family`` (the method a rung belongs to; empty for methods without a ladder, such as the
classic baselines), ``budget`` (the rung's factor) and ``cpu_min`` (CPU minutes summed over
the rung's jobs, reused jobs counted as if run), and compare methods with the same paired
rule as Table 1 (:func:`wedgebench.stats.compare_methods`).

* :func:`convergence` — the first rung from which every further doubling changes no metric
  beyond its interval (paired over replicates);
* :func:`matched_compute` — every ladder at the rung nearest a common CPU budget, beside
  the baselines at their own cost, marked like Table 1;
* :func:`compute_to_reach` — the CPU time each ladder needs to reach a stated quality
  (interpolated between rungs on a log-CPU axis), with its interval over replicates;
* :func:`budget_figure` — every metric against CPU time, ladders as lines with replicate
  bands, baselines as points.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wedgebench.io import InputError
from wedgebench.stats import compare_methods, mean_ci, paired_difference

#: Metrics of the ladder tables and figures, and whether higher is better.
LADDER_METRICS = {"PSNR": True, "SSIM": True, "VIF": True, "fsc_missing_auc": True,
                  "fsc_present_auc": True}

_GROUP = ["dataset", "acquisition"]


def _check(table: pd.DataFrame, metrics) -> pd.DataFrame:
    need = [*_GROUP, "method", "replicate", "family", "budget", "cpu_min", *metrics]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError(f"budget tables need the columns {missing} (a run with a "
                         "budget ladder: `budgets:` in the config)")
    df = table.copy()
    df["family"] = df["family"].fillna("").astype(str)
    df["budget"] = pd.to_numeric(df["budget"], errors="coerce")
    return df


def _metrics(table: pd.DataFrame, metrics: dict | None) -> dict:
    metrics = dict(LADDER_METRICS if metrics is None else metrics)
    return {m: hib for m, hib in metrics.items() if m in table and table[m].notna().any()}


def convergence(table: pd.DataFrame, metrics: dict | None = None,
                confidence: float = 0.95) -> pd.DataFrame:
    """Where each ladder converges.

    A ladder is *converged at* rung ``b`` when, for every later step of the ladder
    (``b → 2b``, ``2b → 4b``, …; consecutive rungs in budget order), the paired difference
    over replicates of every metric has a 95 % interval that includes 0. A step whose
    interval cannot be formed (one replicate) counts as unresolved, so a ladder with one
    replicate is never marked converged.

    Returns
    -------
    DataFrame
        One row per dataset × acquisition × family: ``budgets`` (the rungs), ``converged_at``
        (a budget, or NaN: not converged within the ladder), ``steps`` (for every step
        ``"b→b'"`` the metrics that changed significantly, ``;``-separated, or ``"–"``).
    """
    metrics = _metrics(table, metrics)
    df = _check(table, metrics)
    rows = []
    for (ds, acq, fam), g in df[df["family"] != ""].groupby([*_GROUP, "family"], sort=False):
        budgets = sorted(g["budget"].dropna().unique())
        changed = []
        for lo, hi in zip(budgets[:-1], budgets[1:]):
            a = g[g["budget"] == hi].set_index("replicate")
            b = g[g["budget"] == lo].set_index("replicate")
            common = a.index.intersection(b.index)
            moved = []
            for m in metrics:
                _, low, high = paired_difference(a.loc[common, m], b.loc[common, m],
                                                 confidence)
                if not (np.isfinite(low) and np.isfinite(high)):
                    moved.append(f"{m} (no interval)")
                elif low > 0 or high < 0:
                    moved.append(m)
            changed.append((lo, hi, moved))
        converged = math.nan
        for i, b in enumerate(budgets):
            if all(not moved for _, _, moved in changed[i:]) and i < len(budgets) - 1:
                converged = b
                break
        rows.append({"dataset": ds, "acquisition": acq, "family": fam,
                     "budgets": ", ".join(f"{b:g}" for b in budgets),
                     "converged_at": converged,
                     "steps": "; ".join(f"×{lo:g}→×{hi:g}: " + (", ".join(moved) or "–")
                                        for lo, hi, moved in changed)})
    return pd.DataFrame(rows, columns=["dataset", "acquisition", "family", "budgets",
                                       "converged_at", "steps"])


def nearest_rung(group: pd.DataFrame, cpu_min: float) -> pd.DataFrame:
    """The rows of the rung of one ladder whose mean CPU time is nearest ``cpu_min`` on a
    log scale (ties: the cheaper rung)."""
    means = group.groupby("budget")["cpu_min"].mean()
    means = means[means > 0]
    if means.empty:
        raise InputError(f"ladder {group['family'].iloc[0]!r} has no positive CPU times")
    dist = (np.log(means) - math.log(cpu_min)).abs()
    best = dist[dist == dist.min()].index.min()
    return group[group["budget"] == best]


def matched_compute(table: pd.DataFrame, cpu_min: float, metrics: dict | None = None,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Every method at a common compute budget, compared like Table 1.

    Each ladder contributes the rung whose mean CPU time is nearest ``cpu_min`` (log
    scale); methods without a ladder (the classic baselines, other programs) enter at their
    own cost. The rows then go through :func:`wedgebench.stats.compare_methods`: the best
    mean of each metric is marked ``best`` only where every paired interval against it
    excludes 0.

    Returns
    -------
    DataFrame
        :func:`~wedgebench.stats.compare_methods`'s columns per dataset × acquisition ×
        method, plus ``family``, ``budget`` and ``cpu_min_mean`` (the rung's mean CPU
        minutes) and ``target_cpu_min``.
    """
    if not cpu_min > 0:
        raise InputError(f"budgets.report.cpu_minutes must be > 0, got {cpu_min}")
    metrics = _metrics(table, metrics)
    df = _check(table, metrics)
    parts = []
    for _, g in df.groupby(_GROUP, sort=False):
        parts.append(g[g["family"] == ""])
        for _, fam in g[g["family"] != ""].groupby("family", sort=False):
            parts.append(nearest_rung(fam, cpu_min))
    chosen = pd.concat(parts, ignore_index=True)
    out = compare_methods(chosen, metrics, confidence)
    info = chosen.groupby([*_GROUP, "method"], sort=False).agg(
        family=("family", "first"), budget=("budget", "first"),
        cpu_min_mean=("cpu_min", "mean")).reset_index()
    out = info.merge(out, on=[*_GROUP, "method"])
    out.insert(3, "target_cpu_min", float(cpu_min))
    return out


def _crossing(cpu: np.ndarray, value: np.ndarray, target: float, higher: bool) -> float:
    """CPU time at which ``value`` (ordered by rung) first reaches ``target``, interpolated
    linearly in log CPU time between the two rungs around the crossing; the first rung's
    time when it already reaches it; NaN when no rung does."""
    ok = value >= target if higher else value <= target
    ok &= np.isfinite(value) & (cpu > 0)
    if not ok.any():
        return math.nan
    i = int(np.argmax(ok))
    if i == 0 or not np.isfinite(value[i - 1]) or value[i] == value[i - 1]:
        return float(cpu[i])
    t = (target - value[i - 1]) / (value[i] - value[i - 1])
    return float(np.exp(np.log(cpu[i - 1]) + t * (np.log(cpu[i]) - np.log(cpu[i - 1]))))


def compute_to_reach(table: pd.DataFrame, targets: dict, confidence: float = 0.95
                     ) -> pd.DataFrame:
    """The CPU time each ladder needs to reach a stated quality.

    Parameters
    ----------
    table : DataFrame
        Per-replicate Table 1 with ladders.
    targets : dict
        Metric → target, each either ``{"value": v}`` (an absolute level, e.g. a
        missing-wedge FSC area of 0.3) or ``{"above": d, "reference": method}`` (the
        reference method's value in the same replicate plus ``d``, e.g. WBP + 3 dB PSNR;
        ``below`` for lower-is-better metrics). Whether higher is better comes from
        :data:`LADDER_METRICS` (default higher).
    confidence : float

    Returns
    -------
    DataFrame
        One row per dataset × acquisition × family × target: ``target`` (its text),
        ``reached`` (replicates that reach it / replicates), ``cpu_min_mean``, ``_low``,
        ``_high`` (interval over the replicates that reach it; NaN when fewer than two).
    """
    rows = []
    metrics = {m: LADDER_METRICS.get(m, True) for m in targets}
    df = _check(table, metrics)
    for (ds, acq), g in df.groupby(_GROUP, sort=False):
        for metric, spec in targets.items():
            spec = dict(spec)
            higher = metrics[metric]
            if "value" in spec:
                label = f"{metric} {'≥' if higher else '≤'} {spec['value']:g}"
                level = {r: float(spec["value"]) for r in g["replicate"].unique()}
            else:
                ref = spec.get("reference")
                delta = float(spec.get("above", spec.get("below", 0.0)))
                refrows = g[g["method"] == ref].set_index("replicate")[metric]
                if refrows.empty:
                    raise InputError(f"budgets.report.targets.{metric}: reference method "
                                     f"{ref!r} is not in the run")
                sign = 1.0 if higher else -1.0
                label = f"{metric} {ref} {'+' if sign > 0 else '−'} {delta:g}"
                level = {r: float(v) + sign * delta for r, v in refrows.items()}
            for fam, f in g[g["family"] != ""].groupby("family", sort=False):
                times = []
                for rep, r in f.groupby("replicate"):
                    if rep not in level:
                        continue
                    r = r.sort_values("budget")
                    times.append(_crossing(r["cpu_min"].to_numpy(float),
                                           r[metric].to_numpy(float), level[rep], higher))
                times = np.asarray(times, float)
                mean, low, high = mean_ci(times[np.isfinite(times)], confidence)
                rows.append({"dataset": ds, "acquisition": acq, "family": fam,
                             "target": label,
                             "reached": f"{int(np.isfinite(times).sum())}/{times.size}",
                             "cpu_min_mean": mean, "cpu_min_low": low, "cpu_min_high": high})
    return pd.DataFrame(rows, columns=["dataset", "acquisition", "family", "target",
                                       "reached", "cpu_min_mean", "cpu_min_low",
                                       "cpu_min_high"])


def ladder_summary(table: pd.DataFrame, metrics: dict | None = None,
                   confidence: float = 0.95) -> pd.DataFrame:
    """Mean and interval of every metric and of the CPU and wall time per rung (and per
    baseline): the data of :func:`budget_figure`, one row per dataset × acquisition ×
    method."""
    metrics = _metrics(table, metrics)
    df = _check(table, metrics)
    cols = [*metrics, "cpu_min"] + (["runtime_min"] if "runtime_min" in df else [])
    rows = []
    for (ds, acq, method), g in df.groupby([*_GROUP, "method"], sort=False):
        row = {"dataset": ds, "acquisition": acq, "method": method,
               "family": g["family"].iloc[0], "budget": g["budget"].iloc[0],
               "n": int(g["replicate"].nunique())}
        for c in cols:
            row[f"{c}_mean"], row[f"{c}_low"], row[f"{c}_high"] = mean_ci(g[c], confidence)
        rows.append(row)
    return pd.DataFrame(rows)


def budget_figure(table: pd.DataFrame, out_png, title: str = "",
                  metrics: dict | None = None) -> None:
    """Every metric against CPU time (log axis) for one dataset × acquisition: each ladder
    a line through its rungs' means with the replicate interval as a band, each baseline a
    point with its interval."""
    from wedgebench.report.figures import METRIC_LABELS, _pyplot, _save

    summ = ladder_summary(table, metrics)
    if summ[["dataset", "acquisition"]].drop_duplicates().shape[0] != 1:
        raise InputError("budget_figure takes one dataset × acquisition")
    metrics = [m for m in _metrics(table, metrics)]
    plt = _pyplot()
    ncol = min(3, len(metrics))
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys([*summ.loc[summ["family"] != "", "family"],
                                *summ.loc[summ["family"] == "", "method"]]))
    colour = {n: colours[i % len(colours)] for i, n in enumerate(names)}
    for ax, m in zip(axes.ravel(), metrics):
        for fam, f in summ[summ["family"] != ""].groupby("family", sort=False):
            f = f.sort_values("budget")
            x = f["cpu_min_mean"].to_numpy(float)
            ax.plot(x, f[f"{m}_mean"], "o-", color=colour[fam], label=fam, ms=4)
            low, high = f[f"{m}_low"].to_numpy(float), f[f"{m}_high"].to_numpy(float)
            if np.isfinite(low).all() and np.isfinite(high).all():
                ax.fill_between(x, low, high, color=colour[fam], alpha=0.2, lw=0)
            for xi, yi, b in zip(x, f[f"{m}_mean"], f["budget"]):
                ax.annotate(f"×{b:g}", (xi, yi), fontsize=6, xytext=(2, 2),
                            textcoords="offset points")
        for _, r in summ[summ["family"] == ""].iterrows():
            yerr = None
            if np.isfinite(r[f"{m}_low"]):
                yerr = [[r[f"{m}_mean"] - r[f"{m}_low"]], [r[f"{m}_high"] - r[f"{m}_mean"]]]
            ax.errorbar([r["cpu_min_mean"]], [r[f"{m}_mean"]], yerr=yerr, fmt="s",
                        color=colour[r["method"]], label=r["method"], ms=5, capsize=2)
        ax.set_xscale("log")
        ax.set_xlabel("CPU time (min, log)")
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    _save(fig, out_png)


def _markdown(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    from wedgebench.report.table import to_markdown

    return to_markdown(df, floatfmt) if not df.empty else "(none)\n"


def write_budget_report(table: pd.DataFrame, out_dir, cpu_minutes: float, targets: dict,
                        metrics: dict | None = None, confidence: float = 0.95) -> list:
    """Every budget table and figure of a run with ladders, into ``out_dir``.

    Writes ``ladder.csv`` (:func:`ladder_summary`), ``convergence.csv``, ``matched.csv``
    (:func:`matched_compute` at ``cpu_minutes``), ``reach.csv`` (:func:`compute_to_reach`
    of ``targets``), ``budget.md`` (all four as Markdown) and one figure per dataset ×
    acquisition, ``<dataset>_<acquisition>.png`` (:func:`budget_figure`).

    Returns
    -------
    list of the written paths
    """
    from pathlib import Path

    from wedgebench.io import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = {"ladder": ladder_summary(table, metrics, confidence),
             "convergence": convergence(table, metrics, confidence),
             "matched": matched_compute(table, cpu_minutes, metrics, confidence),
             "reach": compute_to_reach(table, targets, confidence)}
    written = []
    for name, df in parts.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    titles = {"ladder": "Every rung and baseline: mean [95 % interval] over replicates",
              "convergence": "Where each ladder converges (every later doubling changes no "
                             "metric beyond its paired interval)",
              "matched": f"Every method at the rung nearest {cpu_minutes:g} CPU minutes "
                         "(paired marks as in Table 1)",
              "reach": "CPU minutes each ladder needs to reach a quality (log-CPU "
                       "interpolation between rungs)"}
    text = "\n".join(f"## {titles[k]}\n\n{_markdown(v)}" for k, v in parts.items())
    with atomic_path(out / "budget.md") as tmp:
        Path(tmp).write_text(text)
    written.append(out / "budget.md")
    for (ds, acq), g in table.groupby(["dataset", "acquisition"], sort=False):
        png = out / f"{ds}_{acq}.png"
        budget_figure(g, png, f"{ds}, {acq}", metrics)
        written.append(png)
    return written
