"""The downstream table and figures: picking and averaging scores of every method, with
replicate intervals and the paired marks of Table 1, and whether the voxel metrics rank
the methods as the downstream scores do.

Input: the records of :func:`wedgebench.downstream.run.score_and_average` (one per dataset
replicate × acquisition × method, with ``dataset``, ``replicate``, ``acquisition``,
``method``) and, for the agreement, Table 1's per-replicate table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wedgebench.io import InputError
from wedgebench.stats import compare_methods, mean_ci

KEYS = ["dataset", "acquisition", "method", "replicate"]

#: Pooled downstream scores and whether higher is better.
POOLED = {"weighted_fbeta": True, "mean_ap": True, "mean_recall": True,
          "mean_precision": True, "orientation_median_deg": False,
          "res05_true_A": False, "res05_picks_A": False}

#: Per-class score prefixes and whether higher is better.
PER_CLASS = {"fbeta_": True, "ap_": True, "res05_true_": False, "res05_picks_": False}

TITLES = {"weighted_fbeta": "F-β (weighted)", "mean_ap": "AP (mean)",
          "mean_recall": "recall (mean)", "mean_precision": "precision (mean)",
          "orientation_median_deg": "orientation error (°, median)",
          "res05_true_A": "average, true poses: FSC 0.5 (Å)",
          "res05_picks_A": "average, picks: FSC 0.5 (Å)"}

#: Voxel metrics of Table 1 compared with the downstream ranking (higher is better).
VOXEL = {"PSNR": True, "SSIM": True, "VIF": True, "fsc_missing_auc": True}
#: Downstream scores the agreement uses.
AGREEMENT = {"weighted_fbeta": True, "mean_ap": True, "res05_true_A": False}


def downstream_table(records) -> pd.DataFrame:
    """One row per dataset × acquisition × method × replicate: every number of each
    record's ``summary``."""
    rows = []
    for rec in records:
        missing = [k for k in (*KEYS, "summary") if k not in rec]
        if missing:
            raise InputError(f"downstream record lacks {missing}")
        rows.append({**{k: rec[k] for k in KEYS},
                     **{k: (np.nan if v is None else float(v))
                        for k, v in rec["summary"].items()}})
    return pd.DataFrame(rows)


def score_metrics(table: pd.DataFrame) -> dict:
    """Every score column of :func:`downstream_table` with whether higher is better."""
    out = {m: hib for m, hib in POOLED.items() if m in table}
    for col in table.columns:
        for prefix, hib in PER_CLASS.items():
            if col.startswith(prefix) and col not in out:
                out[col] = hib
    return out


def summarise(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, interval and paired mark of every score per dataset × acquisition × method
    (:func:`wedgebench.stats.compare_methods`)."""
    metrics = {m: hib for m, hib in score_metrics(table).items() if table[m].notna().any()}
    return compare_methods(table, metrics, confidence)


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equal-length vectors (NaN pairs left out; NaN
    with fewer than 2 pairs or a constant vector)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def ranking_agreement(voxel: pd.DataFrame, down: pd.DataFrame, voxel_metrics=None,
                      down_metrics=None, confidence: float = 0.95) -> pd.DataFrame:
    """Whether the voxel metrics rank the methods as the downstream scores do.

    Per dataset × acquisition and replicate, Spearman's correlation over methods between
    each voxel metric and each downstream score, both oriented so that higher is better;
    then its mean over replicates with a 95 % Student-t interval. ``agree`` where the
    interval is above 0, ``disagree`` where below, ``undecided`` otherwise.
    """
    vm = dict(VOXEL if voxel_metrics is None else voxel_metrics)
    dm = dict(AGREEMENT if down_metrics is None else down_metrics)
    both = down.merge(voxel[KEYS + [m for m in vm if m in voxel]], on=KEYS, how="inner")
    rows = []
    for (ds, acq), g in both.groupby(["dataset", "acquisition"], sort=False):
        for v, v_hib in vm.items():
            for d, d_hib in dm.items():
                if v not in g or d not in g:
                    continue
                rhos = []
                for _, r in g.groupby("replicate"):
                    rhos.append(spearman(r[v] * (1 if v_hib else -1),
                                         r[d] * (1 if d_hib else -1)))
                mean, low, high = mean_ci(rhos, confidence)
                verdict = ("agree" if low > 0 else "disagree" if high < 0 else "undecided") \
                    if np.isfinite(low) else "no interval"
                rows.append({"dataset": ds, "acquisition": acq, "voxel_metric": v,
                             "downstream_score": d, "n": int(np.isfinite(rhos).sum()),
                             "spearman_mean": mean, "spearman_low": low,
                             "spearman_high": high, "verdict": verdict})
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, metrics=None, fmt: str = ".3g") -> str:
    """Markdown of :func:`summarise`: ``mean [95 % interval]``, **bold** the best where
    every paired interval against it excludes 0, ``(tie)`` where one includes 0."""
    from wedgebench.report.table import _interval_cell

    metrics = [m for m in (metrics or POOLED) if f"{m}_mean" in summary]
    head = ["dataset", "acquisition", "method", "n", *[TITLES.get(m, m) for m in metrics]]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join([":---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for _, r in summary.iterrows():
        lines.append("| " + " | ".join([str(r["dataset"]), str(r["acquisition"]),
                                        str(r["method"]), str(int(r["n"]))]
                                       + [_interval_cell(r, m, fmt) for m in metrics]) + " |")
    return "\n".join(lines) + "\n"


def fbeta_figure(summary: pd.DataFrame, out_png, title: str = "") -> None:
    """F-β per class and method (bars: means; whiskers: 95 % intervals) for one dataset ×
    acquisition."""
    from wedgebench.report.figures import _pyplot, _save

    classes = [c[len("fbeta_"):-len("_mean")] for c in summary.columns
               if c.startswith("fbeta_") and c.endswith("_mean")]
    methods = list(summary["method"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(classes) * max(1, len(methods)) / 4, 3.6))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(classes))
    for i, (_, r) in enumerate(summary.iterrows()):
        mean = np.array([r[f"fbeta_{c}_mean"] for c in classes], float)
        low = np.array([r[f"fbeta_{c}_low"] for c in classes], float)
        high = np.array([r[f"fbeta_{c}_high"] for c in classes], float)
        err = None
        if np.isfinite(low).all() and np.isfinite(high).all():
            err = [mean - low, high - mean]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, mean, width, yerr=err,
               capsize=2, label=r["method"])
    ax.set_xticks(x, classes)
    ax.set_ylabel("F-β (β = 4)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=min(4, len(methods)), loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, out_png)


def resolution_figure(records, out_png, title: str = "") -> None:
    """Resolution against the number of particles averaged at the true poses
    (Rosenthal–Henderson axes: 1/d² against ln N), one panel per class, one line per
    method (the mean over replicates of each subset size)."""
    from wedgebench.report.figures import _pyplot, _save

    rows = []
    for rec in records:
        for name, c in rec["classes"].items():
            sub = (c.get("true_poses") or {}).get("subsets") or {}
            for n, d in zip(sub.get("n_particles", []), sub.get("res05_A", [])):
                if d is not None and np.isfinite(d) and d > 0:
                    rows.append({"method": rec["method"], "class": name, "n": n,
                                 "inv_d2": 1.0 / d ** 2})
    plt = _pyplot()
    df = pd.DataFrame(rows, columns=["method", "class", "n", "inv_d2"])
    classes = list(dict.fromkeys(df["class"])) or ["(none)"]
    fig, axes = plt.subplots(1, len(classes), figsize=(3.6 * len(classes), 3.4),
                             squeeze=False)
    for ax, name in zip(axes[0], classes):
        for method, g in df[df["class"] == name].groupby("method", sort=False):
            m = g.groupby("n")["inv_d2"].mean()
            ax.plot(np.log(m.index.to_numpy(float)), m.to_numpy(), "o-", ms=3, label=method)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ln N (particles averaged)")
        ax.set_ylabel("1 / d² (Å⁻², FSC 0.5)")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def picks_orthoslice(volumes: dict, truth: pd.DataFrame, picks: dict, out_png,
                     radius_vox: dict, title: str = "") -> None:
    """The central xy slice of every method's reconstruction with the true particles
    near that slice (circles of the class radius, by class) and the true-positive and
    other picks (crosses)."""
    from wedgebench.downstream import CLASS, COORDS
    from wedgebench.report.figures import _pyplot, _save

    plt = _pyplot()
    names = list(volumes)
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.4 * nrow), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    classes = list(radius_vox)
    for ax, name in zip(axes.ravel(), names):
        vol = volumes[name]
        zc = vol.shape[0] // 2
        sl = vol[zc]
        lo, hi = np.percentile(sl, [1, 99])
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        for k, cls in enumerate(classes):
            col = colours[k % len(colours)]
            r = radius_vox[cls]
            t = truth[truth[CLASS].astype(str) == cls]
            near = np.abs(t[COORDS[2]].to_numpy(float) - zc) < r
            for x, y in t.loc[near, [COORDS[0], COORDS[1]]].to_numpy(float):
                ax.add_patch(plt.Circle((x, y), r, fill=False, color=col, lw=0.8))
            p = picks.get(name)
            if p is not None and len(p):
                p = p[p[CLASS].astype(str) == cls]
                nearp = np.abs(p[COORDS[2]].to_numpy(float) - zc) < r
                ax.plot(p.loc[nearp, COORDS[0]], p.loc[nearp, COORDS[1]], "x", color=col,
                        ms=4, mew=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[k % len(colours)], marker="o", ls="",
                          mfc="none", label=c) for k, c in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=len(classes), fontsize=7,
               frameon=False, title="circles: true particles; crosses: picks",
               title_fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    _save(fig, out_png)


def write_downstream_report(records: list, table1: pd.DataFrame, out_dir,
                            confidence: float = 0.95) -> list:
    """Every downstream table and figure of a run into ``out_dir``.

    Writes ``replicates.csv`` (:func:`downstream_table`), ``summary.csv``
    (:func:`summarise`), ``agreement.csv`` (:func:`ranking_agreement` with Table 1's
    per-replicate ``table1``), ``downstream.md`` (the pooled scores, then per class, then
    the agreement), and per dataset × acquisition ``fbeta_<dataset>_<acq>.png`` and
    ``resolution_<dataset>_<acq>.png``.

    Returns
    -------
    list of the written paths
    """
    from pathlib import Path

    from wedgebench.io import atomic_path
    from wedgebench.report.table import to_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = downstream_table(records)
    summary = summarise(table, confidence)
    agreement = ranking_agreement(table1, table, confidence=confidence)
    written = []
    for name, df in (("replicates", table), ("summary", summary), ("agreement", agreement)):
        with atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    per_class = [m for m in score_metrics(table) if m not in POOLED]
    text = ["## Picking and averaging (mean [95 % interval] over replicates)", "",
            summary_markdown(summary), "## Per class", "",
            summary_markdown(summary, per_class),
            "## Do the voxel metrics rank the methods as the downstream scores do?", "",
            "Spearman's correlation over methods per replicate (both oriented so that "
            "higher is better), mean [95 % interval] over replicates; `agree` where the "
            "interval is above 0.", "",
            to_markdown(agreement, ".2f") if not agreement.empty else "(none)\n"]
    with atomic_path(out / "downstream.md") as tmp:
        Path(tmp).write_text("\n".join(text))
    written.append(out / "downstream.md")
    for (ds, acq), g in summary.groupby(["dataset", "acquisition"], sort=False):
        png = out / f"fbeta_{ds}_{acq}.png"
        fbeta_figure(g, png, f"{ds}, {acq}")
        png2 = out / f"resolution_{ds}_{acq}.png"
        resolution_figure([r for r in records if r["dataset"] == ds
                           and r["acquisition"] == acq], png2, f"{ds}, {acq}")
        written += [png, png2]
    return written
