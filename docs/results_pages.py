"""Results pages of the documentation site, rendered from committed data.

Every results table and figure of the site comes from a folder ``docs/results/<name>/``:
the run's own report files (``table1.csv`` in the format of
:func:`wedgebench.report.table.summarise`, optionally ``table1_replicates.csv``,
``figures/**.png``), or a benchmark script's tables as CSV (``collect-blocks``), or raw JSON
(``gpu``), plus a ``meta.yaml`` saying when, where, with which command and at which commit
they were made. A page asks for a view of a folder with a block::

    <!-- results verdict headline -->
    anything here (e.g. a link to the CSV for readers of the Markdown source) is replaced
    <!-- /results -->

and the site build (``mkdocs build``; this file is a MkDocs hook, see ``mkdocs.yml``) fills
in the view and the folder's meta as a caption. Nothing rendered is committed; the data and
the README's headline figure (``python docs/results_pages.py figure``) are.

Views: ``headline`` (benchmarks/headline.py's compact Table 1), ``findings``
(benchmarks/findings.py), ``by-dataset`` and ``by-acquisition`` (one cell of
``metrics=`` per method), ``paper-compare`` (paper-convention rows beside the paper's),
``gpu``, ``blocks`` (a benchmark script's tables), ``figures`` and ``index``.

Commands::

    python docs/results_pages.py collect <name> <results dir> --command "<snakemake ...>"
    python docs/results_pages.py collect-blocks <name> benchmarks/README.md --marker tune \\
        --command "python benchmarks/tune.py --workdir /tmp/tune"
    python docs/results_pages.py figure            # docs/results/verdict/headline.png
    python docs/results_pages.py render docs/results/verdict.md   # a page, filled in
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
RESULTS = DOCS / "results"
sys.path.insert(0, str(REPO / "benchmarks"))

import findings as findings_script  # noqa: E402  (benchmarks/findings.py)
import headline as headline_script  # noqa: E402  (benchmarks/headline.py)

#: A block of a page that a view fills: ``<!-- results NAME VIEW key=value ... -->`` ...
#: ``<!-- /results -->``.
BLOCK = re.compile(r"^<!-- results (?P<args>[^>\n]*?) -->$.*?^<!-- /results -->$", re.S | re.M)

#: Readable method names for the wide tables (other names are shown as they are).
LABELS = {"imod_wbp": "IMOD WBP", "eman2_fourier": "EMAN2 Fourier", "isonet": "IsoNet",
          "isonet_v1": "IsoNet, v1's choices", "cn": "CN", "cn_paper": "CN, paper's choices",
          "cn_denoise": "CN, held-out rays", "deepdewedge": "DeepDeWedge"}

#: Metric columns of the wide tables: benchmarks/headline.py's titles and formats, plus
#: the paper convention's.
FORMATS = {m: fmt for m, (_, fmt) in headline_script.COLUMNS.items()}
FORMATS.update({"paper_conv_PSNR": ".2f", "paper_conv_SSIM": ".3f", "paper_conv_VIF": ".3f",
                "sphere_zx_ratio": ".2f"})
TITLES = {m: title for m, (title, _) in headline_script.COLUMNS.items()}
TITLES.update({"PSNR": "PSNR", "fsc_missing_auc": "missing-wedge FSC area",
               "fsc_present_auc": "present-region FSC area", "sphere_zx_ratio": "sphere z/x"})

ACQ = re.compile(r"tilt(?P<lo>-?[\d.]+)_(?P<hi>-?[\d.]+)_step(?P<step>[\d.]+)")


class ResultsError(Exception):
    """A page asks for data that do not exist or cannot be shown."""


# --------------------------------------------------------------------------- data


def folders() -> list[Path]:
    """Every results folder (one with a ``meta.yaml``), sorted by name."""
    return sorted(p.parent for p in RESULTS.glob("*/meta.yaml"))


def meta(name: str) -> dict:
    path = RESULTS / name / "meta.yaml"
    if not path.is_file():
        raise ResultsError(f"no results folder docs/results/{name}/ (with a meta.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def table(name: str, file: str = "table1.csv") -> pd.DataFrame:
    path = RESULTS / name / file
    if not path.is_file():
        raise ResultsError(f"docs/results/{name}/{file} does not exist")
    return pd.read_csv(path)


def lost(value) -> bool:
    """``lost_measured`` of a table1.csv row (bool, "True" or empty)."""
    return value is True or value == "True" or (isinstance(value, np.bool_) and bool(value))


def acquisition_key(label: str) -> tuple:
    """Sort key of an acquisition label: by total dose (noise-free last), range, step."""
    m = ACQ.match(str(label))
    dose = re.search(r"_dose([\d.]+)", str(label))
    if not m:
        return (math.inf, math.inf, math.inf, str(label))
    return (float(dose.group(1)) if dose else math.inf,
            float(m["hi"]) - float(m["lo"]), float(m["step"]), str(label))


def acquisition_text(label: str, axis: str) -> str:
    """An acquisition label as a table shows it: the tilt range and step, or the dose."""
    m = ACQ.match(str(label))
    if not m:
        return str(label)
    if axis == "dose":
        dose = re.search(r"_dose([\d.]+)", str(label))
        return dose.group(1) if dose else "noise-free"
    lo, hi = float(m["lo"]), float(m["hi"])
    rng = f"±{hi:g}°" if lo == -hi else f"{lo:g}…{hi:g}°"
    return f"{rng} / {float(m['step']):g}°"


def number(x, fmt: str) -> str:
    return "–" if x is None or not np.isfinite(float(x)) else format(float(x), fmt)


# --------------------------------------------------------------------------- views


def caption(name: str, rel: str) -> str:
    """The folder's meta as an italic paragraph, with links to its files."""
    m = meta(name)
    folder = RESULTS / name
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".csv", ".json"))
    links = ", ".join(f"[{p.name}]({rel}/{name}/{p.name})" for p in files)
    parts = [f"Data: `docs/results/{name}/`" + (f" ({links}, " if links else " (")
             + f"[meta.yaml]({rel}/{name}/meta.yaml))"]
    for key in ("date", "machine", "wall"):
        if m.get(key):
            parts.append(("wall time " if key == "wall" else "") + str(m[key]).strip())
    if m.get("command"):
        parts.append("command: `" + " ".join(str(m["command"]).split()) + "`")
    if m.get("commit"):
        parts.append(f"commit {m['commit']}")
    text = "; ".join(parts) + "."
    if m.get("source"):
        text += f" Source: {str(m['source']).strip()}"
        text += "" if text.endswith(".") else "."
    return "*" + text.replace("*", "\\*") + "*"


def view_headline(name: str, opts: dict) -> str:
    df = table(name)
    if opts.get("acquisition"):
        df = df[df["acquisition"] == opts["acquisition"]]
    else:  # each dataset's first acquisition, as benchmarks/headline.py does
        first = df.groupby("dataset", sort=False)["acquisition"].transform("first")
        df = df[df["acquisition"] == first]
    return headline_script.headline(df)


def view_findings(name: str, opts: dict) -> str:
    conventions = opts.get("conventions", ",".join(findings_script.CONVENTIONS)).split(",")
    reps = RESULTS / name / "table1_replicates.csv"
    out = []
    for conv in conventions:
        if reps.is_file():
            tab = findings_script.findings(pd.read_csv(reps), convention=conv)
        else:  # findings.py's own table, transcribed
            tab = table(name, f"findings_{conv}.csv")
        out += [f"**{conv} convention**", ""]
        out += [findings_script.markdown(tab) if len(tab) else
                "No finding applies: the run has none of the paper's datasets with two of its "
                "methods at its acquisition (±60° every 2°).", ""]
    return "\n".join(out).rstrip()


def _wide(df: pd.DataFrame, rows: str, metrics: list[str], row_text) -> list[str]:
    """Rows × methods, each cell ``metric / metric / ...`` with ⚠ where lost."""
    methods = list(dict.fromkeys(df["method"]))
    lines = [f"| {rows[0]} | " + " | ".join(LABELS.get(m, m) for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for key, group in df.groupby(rows[1], sort=False):
        by = {r["method"]: r for _, r in group.iterrows()}
        cells = []
        for m in methods:
            if m not in by:
                cells.append("–")
                continue
            r = by[m]
            cell = " / ".join(number(r.get(f"{x}_mean"), FORMATS[x]) for x in metrics)
            cells.append(cell + (" ⚠" if lost(r.get("lost_measured")) else ""))
        lines.append(f"| {row_text(key)} | " + " | ".join(cells) + " |")
    return lines


def view_by_dataset(name: str, opts: dict) -> str:
    metrics = opts.get("metrics", "PSNR,SSIM,VIF,fsc_missing_auc").split(",")
    return "\n".join(_wide(table(name), ("dataset", "dataset"), metrics, str))


def view_by_acquisition(name: str, opts: dict) -> str:
    """One row per acquisition (sorted by dose, range, step), a runtime range row."""
    metrics = opts.get("metrics", "PSNR,SSIM,VIF,fsc_missing_auc").split(",")
    axis = opts.get("axis", "tilt")
    df = table(name)
    if opts.get("dataset"):
        df = df[df["dataset"] == opts["dataset"]]
    order = sorted(dict.fromkeys(df["acquisition"]), key=acquisition_key)
    df = df.set_index("acquisition").loc[order].reset_index()
    title = {"dose": "total dose (e⁻/Å²)", "tilt": "tilt range / step"}[axis]
    lines = _wide(df, (title, "acquisition"), metrics, lambda a: acquisition_text(a, axis))
    if opts.get("runtime") == "range":
        methods = list(dict.fromkeys(df["method"]))
        spans = {}
        if "runtime_min_mean" in df and df["runtime_min_mean"].notna().all():
            for m, g in df.groupby("method", sort=False):
                spans[m] = (g["runtime_min_mean"].min(), g["runtime_min_mean"].max())
        else:  # transcribed: only the range over acquisitions is known
            for _, r in table(name, "runtime_range.csv").iterrows():
                spans[r["method"]] = (r["runtime_min_low"], r["runtime_min_high"])
        cells = []
        for m in methods:
            lo, hi = spans.get(m, (np.nan, np.nan))
            lo_s, hi_s = number(lo, ".2g"), number(hi, ".2g")
            cells.append(lo_s if lo_s == hi_s else f"{lo_s}–{hi_s}")
        lines.append("| runtime (min) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def view_paper_compare(name: str, opts: dict) -> str:
    """Ours in the paper's metric convention beside the paper's Table 1, then ours (fair)."""
    df = table(name)
    extra = [m for m in opts.get("extra", "").split(",") if m]
    head = ("| dataset [z, y, x] | method | ours, `paper` convention: PSNR / SSIM / VIF | "
            "paper's Table 1 (its data) | ours, `fair`: PSNR / SSIM / VIF"
            + "".join(f" | {TITLES.get(m, m)}" for m in extra) + " |")
    lines = [head, "|---|---|---|---|---|" + "---|" * len(extra)]
    for _, r in df.iterrows():
        ours = " / ".join(number(r.get(f"paper_conv_{k}_mean"), FORMATS[f"paper_conv_{k}"])
                          for k in ("PSNR", "SSIM", "VIF"))
        paper = " / ".join(number(r.get(f"paper_{k}"), f) for k, f in
                           (("PSNR", ".1f"), ("SSIM", ".2f"), ("VIF", ".2f")))
        fair = " / ".join(number(r.get(f"{k}_mean"), FORMATS[k]) for k in ("PSNR", "SSIM", "VIF"))
        shape = r.get("data_shape")
        ds = r["dataset"] + (f" {shape}" if isinstance(shape, str) else "")
        cells = [number(r.get(f"{m}_mean"), FORMATS.get(m, ".3g")) for m in extra]
        lines.append(f"| {ds} | {LABELS.get(r['method'], r['method'])} | {ours} | {paper} | "
                     f"{fair}" + "".join(f" | {c}" for c in cells) + " |")
    return "\n".join(lines)


def view_gpu(name: str, opts: dict) -> str:
    """benchmarks/gpu_check.sh's JSON records as one table per measured method."""
    from wedgebench.report.table import PAPER_TABLE1

    def load(f):
        return json.loads((RESULTS / name / f).read_text())

    p22, spheres, learned, ddw = (load(f) for f in ("p22.json", "spheres.json",
                                                    "learned.json", "ddw.json"))
    iso, dw = learned["isonet"], ddw["ddw"]
    noisy = iso["noisy_iterations"]
    rows = [
        (f"CN, SIREN {p22['depth']} × {p22['width']}, j = {p22['slab_size']}, "
         f"{p22['anchor_iterations']} / {p22['iterations']} its, fp16",
         f"anchor {p22['anchor_s']:.1f} s; {p22['slabs']} chunk slabs "
         f"{p22['sequential_s_per_slab']:.2f} s each one by one (warm-started), "
         f"{p22['ensemble_s_per_slab']:.2f} s each as one ensemble",
         f"**{p22['whole_sequential_min']:.1f} min** one by one (anchor + "
         f"{p22['slabs_whole_volume'] - 1} slabs), {p22['whole_ensemble_min']:.1f} min as "
         "ensembles", f"{PAPER_TABLE1[('p22', 'CN')][3]:g} min"),
        (f"IsoNet v1 defaults ({iso['n_subtomos']} × {iso['crop']}³, 64/128/256, "
         f"{iso['iterations']} its × {iso['epochs']} epochs × {iso['steps_per_epoch']} "
         "steps, fp16)",
         f"extract {iso['extract_s']:.1f} s; one full epoch ({iso['steps_per_epoch']} steps "
         f"of {iso['batch_size']}) {iso['epoch_s']:.1f} s; rest of an iteration (set-up, "
         f"validation, fill of {iso['n_subtomos']} crops) {iso['fixed_s']:.1f} s; noise pool "
         f"{iso['noise_pool_s']:.1f} s; predict of {learned['shape'][0]}³ "
         f"{iso['predict_s']:.1f} s; peak {iso['peak_gb_iteration']:.1f} GB",
         f"**{iso['whole_min']:.0f} min** ({iso['iterations']} × ({iso['fixed_s']:.1f} + "
         f"{iso['epochs']} × {iso['epoch_s']:.1f} s) + {noisy} noisy × "
         f"{iso['noise_pool_s']:.1f} s + extract + predict)",
         f"{PAPER_TABLE1[('p22', 'IsoNet')][3]:g} min"),
        (f"DeepDeWedge published ({dw['cube']}³ cubes from {dw['extract_size']}³, "
         f"{dw['base_channels']} base channels, batch {dw['batch_size']}, {dw['epochs']} "
         "epochs)",
         f"even/odd-tilt halves {dw['halves_s']:.1f} s; {dw['cubes']} cubes "
         f"({dw['cubes_val']} held out); {dw['epoch_s']:.1f} s per epoch; validation "
         f"{dw['validation_s']:.1f} s; wedge update {dw['update_s']:.1f} s; refinement of "
         f"both halves {dw['refine_s']:.1f} s; peak {dw['peak_gb_fit']:.1f} GB",
         f"**{dw['whole_min']:.0f} min** ({dw['epochs']} × {dw['epoch_s']:.1f} s + "
         f"{dw['epochs'] // dw['val_every']} × ({dw['validation_s']:.1f} + "
         f"{dw['update_s']:.1f}) s + halves, cubes, refine)",
         "— (its paper: ~14.5 h for the tutorial on one L40)"),
    ]
    lines = [f"| method (paper settings) | measured on the {p22['gpu'].replace('NVIDIA ', '')} "
             "| whole run, extrapolated | paper (Quadro RTX 8000) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    ens = {e["setting"]: e for e in load("ensemble.json")}
    sph_shape = "×".join(str(n) for n in spheres["shape"]).replace("×", " × ")
    lines += ["", f"Spheres {sph_shape} (CN only): anchor {spheres['anchor_s']:.1f} s, "
              f"{spheres['sequential_s_per_slab']:.2f} s per slab one by one, "
              f"{spheres['ensemble_s_per_slab']:.2f} s as an {spheres['slabs']}-slab ensemble, "
              f"so **{spheres['whole_sequential_min']:.0f} min** for its "
              f"{spheres['slabs_whole_volume']} slabs ({spheres['whole_ensemble_min']:.1f} min "
              f"as ensembles; the paper: {PAPER_TABLE1[('spheres', 'CN')][3]:g} min). "
              f"Batched ensemble at the default sizes (`ensemble.json`, "
              f"{ens['default']['slabs']} slabs × {ens['default']['iterations']} iterations): "
              f"{ens['default']['sequential_s']:.2f} s one by one, "
              f"{ens['default']['ensemble_s']:.2f} s as an ensemble "
              f"({ens['default']['speedup']:.1f}×); paper settings there "
              f"{ens['paper']['speedup']:.1f}×."]
    return "\n".join(lines)


def view_blocks(name: str, opts: dict) -> str:
    """A benchmark script's output (text, tables, folded parts) as collected."""
    layout = meta(name).get("layout")
    if not layout:
        raise ResultsError(f"docs/results/{name}/meta.yaml has no layout")
    only = set(filter(None, opts.get("tables", "").split(",")))
    out, fold = [], None  # fold: the lines of an open <details> part, shown folded
    for item in layout:
        if only:
            if "table" in item and Path(item["table"]).stem in only:
                out += [markdown_table(name, item), ""]
            continue
        dest = out if fold is None else fold
        if "text" in item:
            dest += [item["text"], ""]
        elif "table" in item:
            dest += [markdown_table(name, item), ""]
        elif "details" in item:
            fold = []
            out += [f'??? info "{item["details"]}"', ""]
        elif item.get("end") == "details" and fold is not None:
            out += ["    " + line if line else ""
                    for chunk in fold for line in chunk.split("\n")]
            fold = None
    return "\n".join(out).rstrip()


def markdown_table(name: str, item: dict) -> str:
    with open(RESULTS / name / item["table"], newline="") as fh:
        rows = list(csv.reader(fh))
    align = item.get("align") or "-" * len(rows[0])
    marks = {"l": ":---", "r": "---:", "c": ":---:", "-": "---"}
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def view_figures(name: str, opts: dict, rel: str) -> str:
    pattern = opts.get("files", "**/*.png")
    pngs = sorted((RESULTS / name).glob(pattern))
    if not pngs:
        raise ResultsError(f"no figures {pattern} in docs/results/{name}/")
    out = []
    for p in pngs:
        path = p.relative_to(RESULTS).as_posix()
        alt = p.relative_to(RESULTS / name).with_suffix("").as_posix().replace("/", " ")
        out += [f"![{name}: {alt}]({rel}/{path})", ""]
    return "\n".join(out).rstrip()


def view_index(rel: str) -> str:
    lines = ["| data | what | date | source |", "|---|---|---|---|"]
    for folder in folders():
        m = meta(folder.name)
        src = str(m.get("source") or f"collected from a run at commit {m.get('commit', '?')}")
        lines.append(f"| [`{folder.name}/`]({rel}/{folder.name}/meta.yaml) | "
                     f"{m.get('title', '')} | {m.get('date', '')} | "
                     f"{' '.join(src.split())} |")
    return "\n".join(lines)


def view_downstream(name: str, opts: dict) -> str:
    """The downstream tables of a collected run (``downstream/summary.csv``,
    ``agreement.csv``), rendered by the package's own Markdown of them."""
    from wedgebench.report.downstream import POOLED, score_metrics, summary_markdown

    folder = RESULTS / name / "downstream"
    summary = pd.read_csv(folder / "summary.csv")
    per_class = [m for m in score_metrics(pd.read_csv(folder / "replicates.csv"))
                 if m not in POOLED]
    agreement = pd.read_csv(folder / "agreement.csv")
    agreement = agreement[agreement["downstream_score"].isin(
        opts.get("scores", "weighted_fbeta,mean_ap,res05_true_A").split(","))]
    agreement = agreement.assign(**{"Spearman [95 % interval]": [
        f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else f"{m:+.2f}"
        for m, lo, hi in zip(agreement["spearman_mean"], agreement["spearman_low"],
                             agreement["spearman_high"])]})
    cols = ["dataset", "acquisition", "voxel_metric", "downstream_score", "n",
            "Spearman [95 % interval]", "verdict"]
    return "\n".join([summary_markdown(summary), "", '??? info "per class"', "",
                      *["    " + line for line in summary_markdown(summary, per_class)
                        .splitlines()], "", agreement[cols].to_markdown(index=False)])


def view_budget(name: str, opts: dict) -> str:
    """The budget tables of a collected run (``budget/*.csv``): convergence, the matched-
    compute comparison and the compute needed to reach each quality."""
    from wedgebench.report.table import _interval_cell

    folder = RESULTS / name / "budget"
    conv = pd.read_csv(folder / "convergence.csv")
    matched = pd.read_csv(folder / "matched.csv")
    reach = pd.read_csv(folder / "reach.csv")
    metrics = [m for m in ("PSNR", "SSIM", "VIF", "fsc_missing_auc", "fsc_present_auc")
               if f"{m}_mean" in matched]
    rows = []
    for _, r in matched.iterrows():
        rows.append({"dataset": r["dataset"], "method": r["method"],
                     "rung": "–" if pd.isna(r["budget"]) else f"×{r['budget']:g}",
                     "CPU (min)": f"{r['cpu_min_mean']:.2f}",
                     **{m: _interval_cell(r, m, ".3g") for m in metrics}})
    conv = conv.assign(converged_at=[("×" + format(v, "g")) if np.isfinite(v) else
                                     "not within the ladder" for v in conv["converged_at"]])
    reach = reach.assign(**{"CPU (min) [95 % interval]": [
        "–" if not np.isfinite(m) else f"{m:.2f}" + (
            f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "")
        for m, lo, hi in zip(reach["cpu_min_mean"], reach["cpu_min_low"],
                             reach["cpu_min_high"])]})
    target = matched["target_cpu_min"].iloc[0] if len(matched) else float("nan")
    return "\n".join([
        f"**Every method at the rung nearest {target:g} CPU minutes** (bold: best, every "
        "paired interval against it excluding 0; (tie): one includes 0):", "",
        pd.DataFrame(rows).to_markdown(index=False), "",
        "**Where each ladder converges** (the first rung after which no doubling changes "
        "any metric beyond its paired interval; the steps list the metrics that did "
        "change):", "",
        conv[["dataset", "family", "budgets", "converged_at", "steps"]].to_markdown(
            index=False), "",
        "**CPU time to reach a quality** (per replicate, interpolated on a log-CPU axis "
        "between rungs; mean over the replicates that reach it):", "",
        reach[["dataset", "family", "target", "reached", "CPU (min) [95 % interval]"]]
        .to_markdown(index=False)])


VIEWS = {"headline": view_headline, "downstream": view_downstream, "budget": view_budget, "findings": view_findings, "by-dataset": view_by_dataset,
         "by-acquisition": view_by_acquisition, "paper-compare": view_paper_compare,
         "gpu": view_gpu, "blocks": view_blocks}


def render_block(args: str, rel: str) -> str:
    """Markdown of one ``<!-- results NAME VIEW key=value ... -->`` block."""
    words = args.split()
    if words == ["index"]:
        return view_index(rel)
    if len(words) < 2:
        raise ResultsError(f"results block needs a folder and a view: {args!r}")
    name, view, *rest = words
    opts = dict(w.split("=", 1) for w in rest)
    if view == "figures":
        body = view_figures(name, opts, rel)
    elif view in VIEWS:
        body = VIEWS[view](name, opts)
    else:
        raise ResultsError(f"unknown view {view!r} (known: {', '.join([*VIEWS, 'figures'])})")
    return body if opts.get("caption") == "no" else f"{body}\n\n{caption(name, rel)}"


def fill(markdown: str, page_dir: str) -> str:
    """``markdown`` with every results block rendered (links relative to ``page_dir``)."""
    rel = os.path.relpath("results", page_dir or ".").replace(os.sep, "/")
    return BLOCK.sub(lambda m: "\n" + render_block(m["args"], rel) + "\n", markdown)


def on_page_markdown(markdown, page, config, files, **kwargs):  # MkDocs hook
    try:
        return fill(markdown, str(Path(page.file.src_uri).parent))
    except ResultsError as exc:
        raise SystemExit(f"{page.file.src_uri}: {exc}") from exc


# --------------------------------------------------------------------------- figure


def headline_figure(name: str = "verdict", out: Path | None = None,
                    metrics=("PSNR", "SSIM", "fsc_missing_auc")) -> Path:
    """Each method's mean and 95 % interval per dataset, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = table(name)
    first = df.groupby("dataset", sort=False)["acquisition"].transform("first")
    df = df[df["acquisition"] == first]
    datasets = list(dict.fromkeys(df["dataset"]))
    methods = sorted(dict.fromkeys(df["method"]),
                     key=lambda m: list(LABELS).index(m) if m in LABELS else len(LABELS))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8),
                             constrained_layout=True)
    width = 0.8 / len(methods)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for j, method in enumerate(methods):
            sub = df[df["method"] == method].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) - 0.4 + (j + 0.5) * width
            mean = sub[f"{metric}_mean"].to_numpy(float)
            err = np.vstack([mean - sub[f"{metric}_low"].to_numpy(float),
                             sub[f"{metric}_high"].to_numpy(float) - mean])
            hollow = [lost(v) for v in sub["lost_measured"]]
            ax.errorbar(x, mean, yerr=err, fmt="none", ecolor=colours(j), lw=1.2, capsize=2)
            ax.scatter(x, mean, s=22, color=colours(j), zorder=3,
                       facecolors=["white" if h else colours(j) for h in hollow],
                       label=method if metric == metrics[0] else None)
        ax.set_xticks(np.arange(len(datasets)), datasets)
        ax.set_title(TITLES.get(metric, metric) if metric != "PSNR" else "PSNR (dB)")
        ax.grid(axis="y", alpha=0.3)
    n = int(df["n"].max())
    fig.suptitle(f"Table 1 of the verdict preset: mean and 95 % interval over {n} seeds "
                 "(hollow: lost measured information)", fontsize=10)
    fig.legend(loc="outside lower center", ncol=min(len(methods), 8), fontsize=8,
               frameon=False)
    out = out or RESULTS / name / "headline.png"
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- collect


def machine() -> str:
    """uname, CPU count and memory of this machine, in words."""
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, TypeError):
        pass
    u = platform.uname()
    return f"{u.system} {u.release} {u.machine}, {os.cpu_count()} CPUs{mem}"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                         text=True)
    sha = out.stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    return sha + (" (with uncommitted changes)" if dirty else "")


def write_meta(name: str, command: str, keep: dict, **extra) -> Path:
    """``meta.yaml`` of a freshly collected folder: now, this machine, the command, HEAD;
    ``title`` and ``headline_figure`` kept from the folder's previous meta."""
    m = {k: keep[k] for k in ("title", "headline_figure") if k in keep}
    m.update(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
             machine=machine(), command=command, commit=commit(), **extra)
    path = RESULTS / name / "meta.yaml"
    path.write_text(yaml.safe_dump(m, sort_keys=False, allow_unicode=True, width=100))
    return path


def fresh_folder(name: str) -> dict:
    """Empty ``docs/results/<name>/`` (created if new); returns its previous meta."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise SystemExit(f"results name {name!r}: letters, digits, - and _ only")
    folder = RESULTS / name
    old = yaml.safe_load((folder / "meta.yaml").read_text()) or {} \
        if (folder / "meta.yaml").is_file() else {}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return old


def collect(name: str, results: Path, command: str, figures: str = "**/*.png") -> Path:
    """Copy a finished run's report (table1.csv, table1_replicates.csv, figures) into
    ``docs/results/<name>/`` and write its meta.yaml."""
    report = results / "report" if (results / "report").is_dir() else results / "results" / "report"
    if not (report / "table1.csv").is_file():
        raise SystemExit(f"{results}: no report/table1.csv (run the workflow to the end first)")
    old = fresh_folder(name)
    folder = RESULTS / name
    for f in ("table1.csv", "table1_replicates.csv"):
        if (report / f).is_file():
            shutil.copy2(report / f, folder / f)
    if figures:
        for png in sorted((report / "figures").glob(figures)):
            dest = folder / "figures" / png.relative_to(report / "figures")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(png, dest)
    for part in ("budget", "downstream"):  # the presets' own report folders
        if (report / part).is_dir():
            (folder / part).mkdir()
            for f in sorted((report / part).glob("*")):
                if f.suffix in (".csv", ".png"):
                    shutil.copy2(f, folder / part / f.name)
    write_meta(name, command, old)
    if old.get("headline_figure"):
        headline_figure(name)
    return folder


def parse_blocks(text: str) -> list[dict]:
    """A script's Markdown output as a layout: text paragraphs, pipe tables (``rows``,
    ``align``) and ``<details>`` folds, in order."""
    items, para, tab = [], [], []

    def flush():
        if para:
            items.append({"text": " ".join(para)})
            para.clear()
        if tab:
            cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
                     for line in tab]
            spec = cells[1]
            align = "".join("c" if s.startswith(":") and s.endswith(":") else "r"
                            if s.endswith(":") else "l" if s.startswith(":") else "-"
                            for s in spec)
            items.append({"rows": [cells[0], *cells[2:]], "align": align})
            tab.clear()

    for line in text.splitlines():
        s = line.strip()
        details = re.fullmatch(r"<details><summary>(.*)</summary>", s)
        if s.startswith("|"):
            if para:
                flush()
            tab.append(s)
        elif details or s == "</details>" or not s:
            flush()
            if details:
                items.append({"details": details[1]})
            elif s:
                items.append({"end": "details"})
        else:
            if tab:
                flush()
            para.append(s)
    flush()
    return items


def slug(text: str) -> str:
    """File-name form of a heading: lower case, words joined by ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("³", "3")).strip("-")[:60] or "table"


def save_blocks(name: str, items: list[dict]) -> list[dict]:
    """Write the tables of a parsed layout as CSV files; returns the layout for meta.yaml."""
    layout, used, title, fold = [], set(), "table", ""
    for item in items:
        if "text" in item:
            bold = re.search(r"\*\*(.+?)\*\*", item["text"])
            title = slug(bold[1]) if bold else title
        elif "details" in item:
            fold = slug(" ".join(item["details"].split()[:2]))
        elif item.get("end") == "details":
            fold = ""
        if "rows" in item:
            base = f"{title}-{fold}" if fold else title
            file, k = f"{base}.csv", 1
            while file in used:
                k += 1
                file = f"{base}-{k}.csv"
            used.add(file)
            with open(RESULTS / name / file, "w", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerows(
                    [[c.replace("\\|", "|") for c in r] for r in item["rows"]])
            layout.append({"table": file, "align": item["align"]})
        else:
            layout.append(item)
    return layout


def collect_blocks(name: str, path: Path, marker: str | None, command: str,
                   clear: bool = True) -> Path:
    """Move a benchmark script's tables (the block between its markers in ``path``, or the
    whole file) into ``docs/results/<name>/`` as CSV plus a layout in meta.yaml."""
    doc = path.read_text()
    if marker:
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        if begin not in doc or end not in doc:
            raise SystemExit(f"{path}: markers {begin} / {end} not found")
        head, rest = doc.split(begin, 1)
        text, tail = rest.split(end, 1)
    else:
        text = doc
    if not text.strip():
        raise SystemExit(f"{path}: nothing to collect between the {marker} markers")
    old = fresh_folder(name)
    layout = save_blocks(name, parse_blocks(text))
    write_meta(name, command, old, layout=layout)
    if marker and clear:
        path.write_text(f"{head}{begin}\n{end}{tail}")
    return RESULTS / name


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="copy a finished run's report into docs/results/<name>/")
    c.add_argument("name")
    c.add_argument("results", type=Path, help="the run's results/ (or the folder holding it)")
    c.add_argument("--command", required=True, help="the command that made the run")
    c.add_argument("--figures", default="**/*.png",
                   help="glob of figures under results/report/figures ('' for none)")
    b = sub.add_parser("collect-blocks", help="a benchmark script's tables as CSV")
    b.add_argument("name")
    b.add_argument("file", type=Path, help="Markdown the script wrote (e.g. benchmarks/README.md)")
    b.add_argument("--marker", help="the script's marker (tune, sweep-sizing, ...)")
    b.add_argument("--command", required=True)
    b.add_argument("--keep", action="store_true", help="leave the block in the file")
    f = sub.add_parser("figure", help="the README's headline figure from docs/results/verdict")
    f.add_argument("--name", default="verdict")
    r = sub.add_parser("render", help="print a page with its results blocks filled in")
    r.add_argument("page", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        print(collect(args.name, args.results, args.command, args.figures))
    elif args.cmd == "collect-blocks":
        print(collect_blocks(args.name, args.file, args.marker, args.command, not args.keep))
    elif args.cmd == "figure":
        print(headline_figure(args.name))
    else:
        page = args.page.resolve()
        print(fill(page.read_text(), page.parent.relative_to(DOCS).as_posix()))


if __name__ == "__main__":
    main()
