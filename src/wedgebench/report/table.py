"""Table 1 of the paper, rebuilt from our metric records, with the paper's values alongside.

A *record* describes one reconstruction::

    {"dataset": "spheres", "acquisition": "tilt-60_60_step2", "method": "cn_paper",
     "kind": "cn", "variant_of": "cn",
     "metrics": <dict from wedgebench.metrics.compute_metrics>,
     "runtime_s": 123.4, "wall_s": 130.0 or None, "cpu_s": 200.1 or None,
     "family": "cn", "budget": 1.0}

``method`` is the name of the method in the run's registry; ``kind`` its algorithm
(defaults to ``method``) and ``variant_of`` the kind whose settings it overrides
(empty for a kind's own default instance and for other programs' methods). ``family``
names the budget ladder a learned method belongs to and ``budget`` its rung
(:mod:`wedgebench.budgets`; both empty for methods without a budget).

``acquisition`` may also be an acquisition dict (see
:func:`wedgebench.geometry.acquisition_label`) or missing. An optional
``paper_dataset`` key names the paper's dataset when ours is called differently.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from wedgebench.io import InputError

#: Table 1 of the paper: (PSNR, SSIM, VIF, runtime in minutes), −60…+60° every 2°.
PAPER_TABLE1 = {
    ("spheres", "EMAN2"): (26.3, 0.94, 0.64, 2.68),
    ("spheres", "IMOD"): (27.3, 0.93, 0.78, 0.15),
    ("spheres", "IsoNet"): (30.2, 0.96, 0.93, 476.0),
    ("spheres", "CN"): (31.4, 0.97, 0.86, 168.0),
    ("shapes", "EMAN2"): (25.0, 0.73, 0.76, 2.71),
    ("shapes", "IMOD"): (25.8, 0.69, 0.74, 0.15),
    ("shapes", "IsoNet"): (27.4, 0.69, 0.84, 473.0),
    ("shapes", "CN"): (31.5, 0.94, 0.85, 172.0),
    ("p22", "EMAN2"): (30.9, 0.98, 0.76, 3.18),
    ("p22", "IMOD"): (28.7, 0.92, 0.70, 0.17),
    ("p22", "IsoNet"): (34.2, 0.95, 0.90, 503.0),
    ("p22", "CN"): (36.1, 0.99, 0.88, 19.6),
}

#: Our method kinds -> the paper's column names (the paper's values are shown only beside
#: a kind's own instance, not beside its variants or other programs).
PAPER_METHODS = {"eman2_fourier": "EMAN2", "imod_wbp": "IMOD", "isonet": "IsoNet", "cn": "CN"}

#: The acquisition of the paper's Table 1.
PAPER_ACQUISITION = "tilt-60_60_step2"

#: The paper's data sizes [z, y, x] (Table 1 of the paper), shown beside ours.
PAPER_SHAPES = {"spheres": "256×1024×1024", "shapes": "256×1024×1024", "p22": "360×360×360"}

COLUMNS = ["dataset", "acquisition", "method", "replicate", "kind", "variant_of", "family",
           "budget", "PSNR", "SSIM", "VIF", "runtime_min", "wall_min", "cpu_min", "fsc_full_auc", "fsc_present_auc", "fsc_missing_auc",
           "fsc_full_res_A", "sphere_zx_ratio", "reprojection_error",
           "heldout_tilt_error", "even_odd_fsc_res_A", "paper_conv_PSNR", "paper_conv_SSIM",
           "paper_conv_VIF", "data_shape", "paper_shape", "paper_PSNR", "paper_SSIM", "paper_VIF",
           "paper_runtime_min"]


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def _acq_label(acq) -> str | None:
    if acq is None or isinstance(acq, str):
        return acq
    from wedgebench.geometry import acquisition_label

    return acquisition_label(acq)


def paper_values(dataset: str, kind: str, acquisition: str | None = None) -> tuple:
    """The paper's (PSNR, SSIM, VIF, runtime_min) for a dataset and method kind, else NaNs.

    Values apply only to the paper's acquisition (−60…+60° every 2°): for any other
    acquisition label the result is NaN. ``acquisition=None`` means unknown and
    matches.
    """
    nan = (float("nan"),) * 4
    if acquisition is not None and acquisition != PAPER_ACQUISITION:
        return nan
    paper_method = PAPER_METHODS.get(str(kind).lower())
    return PAPER_TABLE1.get((str(dataset).lower(), paper_method), nan)


def _row(rec: dict) -> dict:
    for key in ("dataset", "method", "metrics"):
        if key not in rec:
            raise InputError(f"metric record lacks {key!r}: {sorted(rec)}")
    m = rec["metrics"] or {}
    acq = _acq_label(rec.get("acquisition"))
    kind = rec.get("kind") or rec["method"]
    variant = rec.get("variant_of") or ""
    own = rec["method"] == kind and not variant
    paper = paper_values(rec.get("paper_dataset", rec["dataset"]), kind if own else "", acq)
    wall = rec.get("wall_s")
    pc = (m.get("conventions") or {}).get("paper") or {}
    return {
        "dataset": rec["dataset"], "acquisition": acq, "method": rec["method"],
        "replicate": int(rec.get("replicate", 1)), "kind": kind, "variant_of": variant,
        "family": rec.get("family") or "", "budget": _num(rec.get("budget")),
        "PSNR": _num(m.get("psnr")), "SSIM": _num(m.get("ssim")), "VIF": _num(m.get("vif")),
        "runtime_min": _num(rec.get("runtime_s")) / 60.0,
        "wall_min": _num(wall) / 60.0,
        "cpu_min": _num(rec.get("cpu_s")) / 60.0,
        "fsc_full_auc": _num(m.get("fsc_full_auc")),
        "fsc_present_auc": _num(m.get("fsc_present_auc")),
        "fsc_missing_auc": _num(m.get("fsc_missing_auc")),
        "fsc_full_res_A": _num(m.get("fsc_full_res_A")),
        "sphere_zx_ratio": _num(m.get("sphere_zx_ratio")),
        "reprojection_error": _num(m.get("reprojection_error")),
        "heldout_tilt_error": _num(m.get("heldout_tilt_error")),
        "even_odd_fsc_res_A": _num(m.get("even_odd_fsc_res_A")),
        "paper_conv_PSNR": _num(pc.get("psnr")), "paper_conv_SSIM": _num(pc.get("ssim")),
        "paper_conv_VIF": _num(pc.get("vif")),
        "data_shape": "×".join(str(n) for n in rec.get("shape") or m.get("shape") or []) or None,
        "paper_shape": PAPER_SHAPES.get(str(rec.get("paper_dataset", rec["dataset"])).lower())
        if own and not all(math.isnan(v) for v in paper) else None,
        "paper_PSNR": paper[0], "paper_SSIM": paper[1], "paper_VIF": paper[2],
        "paper_runtime_min": paper[3],
    }


def build_table1(records: Iterable[dict], order=None) -> pd.DataFrame:
    """Table 1 per replicate: one row per dataset × acquisition × method × replicate.

    Parameters
    ----------
    records : iterable of dict
        See the module docstring.
    order : sequence of str, optional
        Method names in the order of the rows (the run's registry order); methods not in
        it follow in order of first appearance.

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`: ours (PSNR in dB, SSIM, VIF, runtime and wall time
        in minutes, FSC areas and 0.5-resolution in Å, sphere z/x ratio) and the
        paper's (``paper_*``, NaN where the paper has no such entry). Rows sorted by
        dataset (first appearance), acquisition, then method in ``order``.

    Raises
    ------
    InputError
        A record lacks a required key, or two records share dataset, acquisition,
        method and replicate.
    """
    rows = [_row(r) for r in records]
    df = pd.DataFrame(rows, columns=COLUMNS)
    keys = ["dataset", "acquisition", "method", "replicate"]
    dup = df.duplicated(subset=keys, keep=False)
    if dup.any():
        raise InputError(f"duplicate records for {df.loc[dup, keys].values.tolist()}")
    dataset_rank = {d: i for i, d in enumerate(dict.fromkeys(df["dataset"]))}
    method_rank = {m: i for i, m in enumerate(dict.fromkeys([*(order or []), *df["method"]]))}
    rows = sorted(range(len(df)), key=lambda i: (dataset_rank[df.at[i, "dataset"]],
                                                 str(df.at[i, "acquisition"]),
                                                 method_rank[df.at[i, "method"]],
                                                 df.at[i, "replicate"]))
    return df.iloc[rows].reset_index(drop=True)


def _cell(x, floatfmt: str) -> str:
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "–"
        return format(float(x), floatfmt)
    return "" if x is None else str(x).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured markdown table of ``df`` (NaN shown as "–").

    Numbers are right-aligned and formatted with ``floatfmt``; text is left-aligned.
    """
    cols = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(x, floatfmt) for x in row) + " |")
    return "\n".join(lines) + "\n"


#: Table 1's metrics and whether higher is better (``sphere_zx_dev`` = |z/x ratio − 1|).
VERDICT_METRICS = {"PSNR": True, "SSIM": True, "VIF": True, "paper_conv_PSNR": True,
                   "paper_conv_SSIM": True, "paper_conv_VIF": True, "fsc_full_auc": True,
                   "fsc_present_auc": True, "fsc_missing_auc": True, "fsc_full_res_A": False,
                   "sphere_zx_dev": False, "reprojection_error": False,
                   "heldout_tilt_error": False,
                   "even_odd_fsc_res_A": False, "runtime_min": False, "cpu_min": False}

#: Column titles of the Markdown summary.
SUMMARY_TITLES = {"PSNR": "PSNR (dB)", "SSIM": "SSIM", "VIF": "VIF",
                  "paper_conv_PSNR": "paper conv. PSNR", "paper_conv_SSIM": "paper conv. SSIM",
                  "paper_conv_VIF": "paper conv. VIF",
                  "fsc_full_auc": "FSC area all", "fsc_present_auc": "FSC area present",
                  "fsc_missing_auc": "FSC area missing", "fsc_full_res_A": "FSC 0.5 (Å)",
                  "sphere_zx_dev": "|z/x − 1|", "reprojection_error": "reproj. error",
                  "heldout_tilt_error": "held-out-tilt error",
                  "even_odd_fsc_res_A": "even/odd FSC 0.143 (Å)", "runtime_min": "runtime (min)",
                  "cpu_min": "CPU (min)"}


def summarise(table: pd.DataFrame, metrics: dict | None = None,
              confidence: float = 0.95, reference_kind: str = "imod_wbp") -> pd.DataFrame:
    """Table 1 over replicates: per dataset × acquisition × method, every metric's mean,
    its confidence interval and the paired verdict against the best method.

    Parameters
    ----------
    table : DataFrame
        :func:`build_table1`'s per-replicate table.
    metrics : dict of str -> bool, optional
        Metric columns and whether higher is better (default :data:`VERDICT_METRICS`,
        restricted to the columns that have a value somewhere).
    confidence : float
    reference_kind : str
        The method kind whose own instance keeps the measured data by construction (see
        :func:`lost_measured_information`).

    Returns
    -------
    DataFrame
        ``dataset, acquisition, method, kind, variant_of, n, lost_measured``, then per
        metric the columns
        of :func:`wedgebench.stats.compare_methods` (``_mean, _low, _high, _best, _diff,
        _diff_low, _diff_high, _mark``), then the paper's values; rows in ``table``'s order.
    """
    from wedgebench.stats import compare_methods

    df = table.copy()
    df["sphere_zx_dev"] = (df["sphere_zx_ratio"] - 1.0).abs()
    metrics = dict(VERDICT_METRICS if metrics is None else metrics)
    metrics = {m: hib for m, hib in metrics.items() if df[m].notna().any()}
    verdict = compare_methods(df, metrics, confidence)
    keys = ["dataset", "acquisition", "method"]
    info = df.groupby(keys, sort=False, dropna=False).first().reset_index()
    paper = ["data_shape", "paper_shape", "paper_PSNR", "paper_SSIM", "paper_VIF",
             "paper_runtime_min"]
    info = info[keys + ["kind", "variant_of", "family", "budget"] + paper]
    out = info.merge(verdict, on=keys, how="left")
    out["lost_measured"] = lost_measured_information(out, reference_kind)
    front = keys + ["kind", "variant_of", "family", "budget", "n", "lost_measured"]
    return out[front + [c for c in out.columns if c not in front + paper] + paper]


#: How much worse than the reference (WBP) a method may be on the *measured* data before
#: it is flagged: present-region FSC area lower by more than this, or (no ground truth)
#: held-out-tilt error higher by more than this. Large enough that a deliberate low-pass
#: (EMAN2-style inversion's 4-voxel Gaussian: 0.11 below WBP on the default P22) is not
#: "lost", small enough for a reconstruction that discards the measured data (IsoNet at
#: ±40° on P22: 0.63 below, the failure that motivated the flag).
LOST_MARGIN = 0.25


def lost_measured_information(summary: pd.DataFrame, reference_kind: str = "imod_wbp",
                              margin: float = LOST_MARGIN) -> pd.Series:
    """Flag reconstructions that lost information the tilts measured.

    A method keeps what was measured if its present-region FSC area (or, for data without
    a ground truth, its held-out-tilt error) is not much worse than that of the reference
    method on the same data: the reference kind's own instance (default the IMOD-style
    WBP, which keeps the measured data by construction). Flagged: present-region area
    below the reference's by more than ``margin``, or held-out-tilt error above it by
    more than ``margin``. NaN where the data set has no reference row.
    """
    out = pd.Series(np.nan, index=summary.index, dtype=object)
    for _, group in summary.groupby(["dataset", "acquisition"], sort=False, dropna=False):
        ref = group[(group["kind"] == reference_kind) & (group["variant_of"].fillna("") == "")
                    & (group["method"] == reference_kind)]
        if ref.empty:
            continue
        for col, sign in (("fsc_present_auc_mean", -1.0), ("heldout_tilt_error_mean", 1.0)):
            if col in group and np.isfinite(float(ref[col].iloc[0])):
                worse = sign * (group[col] - float(ref[col].iloc[0])) > margin
                out[group.index] = worse.where(group[col].notna(), np.nan)
                break
    return out


def _interval_cell(row, metric: str, fmt: str) -> str:
    mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
    if not np.isfinite(mean):
        return "–"
    text = format(mean, fmt)
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{format(low, fmt)}, {format(high, fmt)}]"
    mark = row[f"{metric}_mark"]
    if mark == "best":
        text = f"**{text}**"
    elif mark == "tie":
        text += " (tie)"
    return text


def summary_markdown(summary: pd.DataFrame, fmt: str = ".3g") -> str:
    """Markdown of :func:`summarise`: ``mean [95 % interval]`` per metric; the best method
    in **bold** only where every paired interval against it excludes 0, ``(tie)`` where
    one includes 0; a note when there is a single replicate (no interval, no winner)."""
    metrics = [m for m in SUMMARY_TITLES if f"{m}_mean" in summary.columns]
    text = ["dataset", "acquisition", "method", "kind"]
    cols = text + ["n"] + metrics
    # the paper's values stand right after our numbers in the paper's own convention
    at = cols.index("paper_conv_VIF") + 1 if "paper_conv_VIF" in cols else len(cols)
    cols[at:at] = ["data_shape", "paper"]
    titles = {**SUMMARY_TITLES, "data_shape": "our data [z, y, x]",
              "paper": "paper's Table 1: PSNR / SSIM / VIF (its data)"}
    lines = ["| " + " | ".join(titles.get(c, c) for c in cols) + " |",
             "|" + "|".join(":---" if c in (*text, "data_shape", "paper") else "---:"
                            for c in cols) + "|"]
    for _, row in summary.iterrows():
        cells = []
        for c in cols:
            if c == "method" and row.get("lost_measured") is True:
                cells.append(f"{row[c]} ⚠")
            elif c in text or c == "data_shape":
                cells.append("–" if pd.isna(row.get(c)) else str(row[c]))
            elif c == "n":
                cells.append(str(int(row["n"])) if pd.notna(row["n"]) else "–")
            elif c == "paper":
                vals = [row.get(f"paper_{k}") for k in ("PSNR", "SSIM", "VIF")]
                cells.append("–" if all(pd.isna(v) for v in vals) else
                             " / ".join(format(v, "g") for v in vals) +
                             f" ({row.get('paper_shape')})")
            else:
                cells.append(_interval_cell(row, c, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if (summary["n"].fillna(0) < 2).any():
        notes.append("A single replicate: no interval exists and no winner is marked (set "
                     "`replicates` ≥ 2, e.g. configs/verdict.yaml).")
    if (summary.get("lost_measured") == True).any():  # noqa: E712 (object column)
        notes.append(f"⚠ lost measured information: present-region FSC area more than "
                     f"{LOST_MARGIN:g} below the WBP reconstruction's of the same data (or, "
                     f"without a ground truth, held-out-tilt error more than {LOST_MARGIN:g} "
                     "above it).")
    notes.append("Intervals: 95 % Student t of the mean over replicates. Bold: best mean, "
                 "with the paired (same seed) difference to every other method excluding 0; "
                 "(tie): the paired interval includes 0.")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"
