"""Choose the learned methods' defaults on *validation* seeds, and measure their budget.

Table 1 reports seeds 1..N; every default of a learned method must be chosen on other
seeds of the same datasets. This script runs the real workflow (``snakemake``) on the
validation seeds of ``benchmarks/tune.yaml`` (1001.. by default) with every candidate
setting registered as a method variant, reads the per-replicate table and applies one
fixed rule per candidate family:

    the default changes to the candidate with the highest mean PSNR (over datasets and
    validation seeds) only if its paired PSNR difference to the current default
    (dataset x seed pairs, 95 % Student-t interval) excludes 0 *and* its paired SSIM
    difference is not significantly negative; otherwise the current default stays.

It also runs every learned method at 0.5x and 2x its default iterations (budget
sensitivity), so a reader sees whether a method is starved at the CPU default. The
tables are printed and written between the ``tune`` markers of ``benchmarks/README.md``
(another tuning file names its own ``marker``, may layer presets on config.yaml with
``configfiles``, restrict the run to ``datasets`` and register extra ``methods`` for
``compare`` tables that choose nothing; ``benchmarks/tune_realistic.yaml``,
``benchmarks/tune_cn_orchestration.yaml``).

    python benchmarks/tune.py --workdir /tmp/tune          # runs, then writes the tables
    python benchmarks/tune.py --workdir /tmp/tune --no-run  # tables from a finished run
    python benchmarks/tune.py --workdir /tmp/tune --no-budget  # the candidate families only
    python benchmarks/tune.py --tune benchmarks/tune_realistic.yaml --workdir /tmp/tune_r
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from wedgebench.stats import mean_ci, paired_difference

REPO = Path(__file__).resolve().parents[1]
METRICS = {"PSNR": True, "SSIM": True, "VIF": True, "fsc_missing_auc": True,
           "runtime_min": False}


def scaled(section: dict, keys, factor: float) -> dict:
    """Overrides multiplying ``keys`` of a method section (and its per_dataset) by ``factor``."""
    over = {k: max(1, int(round(section[k] * factor))) for k in keys if k in section}
    per = {}
    for ds, entry in (section.get("per_dataset") or {}).items():
        sub = {k: max(1, int(round(entry[k] * factor))) for k in keys if k in entry}
        if sub:
            per[ds] = sub
    if per:
        over["per_dataset"] = per
    return over


def budget_name(kind: str, factor: float) -> str:
    """Identifier of a budget variant: ``cn_iter_x0p5``."""
    return f"{kind}_iter_x{factor:g}".replace(".", "p")


def base_config(tune: dict) -> dict:
    """config.yaml with the tuning file's ``configfiles`` layered on top, every default of
    the schema filled in (as the workflow fills them), so that budgets scale real values."""
    from snakemake.utils import validate

    from wedgebench.config import deep_merge

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    for rel in tune.get("configfiles", []):
        base = deep_merge(base, yaml.safe_load((REPO / rel).read_text()))
    validate(base, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return base


def wbp_options(base: dict) -> dict:
    """The ``imod_wbp`` section of ``base`` as keyword arguments of ``wbp.reconstruct``
    (without the workflow-only keys)."""
    return {k: v for k, v in base["imod_wbp"].items()
            if k not in ("per_dataset", "mem_mb", "runtime")}


def tuning_config(base: dict, tune: dict) -> tuple[dict, dict]:
    """The workflow config of the tuning run and the families {kind: {family: [names]}}.
    The tuning file's ``methods`` (specs, as in the config) are registered beside the
    candidates, for its ``compare`` tables."""
    methods, families = dict(tune.get("methods") or {}), {}
    for kind, fams in (tune.get("candidates") or {}).items():
        methods[kind] = {"kind": kind}
        for family, cands in fams.items():
            families.setdefault(kind, {})[family] = [kind, *cands]
            for name, over in cands.items():
                methods[name] = {"kind": kind, **over}
    for kind, keys in ((tune.get("budget") or {}).get("keys") or {}).items():
        methods.setdefault(kind, {"kind": kind})
        names = []
        for f in tune["budget"]["factors"]:
            name = budget_name(kind, f)
            methods[name] = {"kind": kind, **scaled(base[kind], keys, f)}
            names.append(name)
        families.setdefault(kind, {})["budget"] = [kind, *names]
    run = ["imod_wbp", *methods]
    run += [n for names in (tune.get("compare") or {}).values() for n in names if n not in run]
    cfg = {"seed": int(tune["seed"]), "replicates": int(tune["replicates"]),
           "methods": methods, "run_methods": run}
    if tune.get("datasets"):
        cfg["run_datasets"] = list(tune["datasets"])
    return cfg, families


def run_workflow(workdir: Path, cfg: dict, cores: int, configfiles=()) -> float:
    """Run the real workflow to the per-replicate table; returns the wall seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "tune_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), "results/report/table1_replicates.csv",
           "--configfile", str(REPO / "config.yaml"), *(str(REPO / c) for c in configfiles),
           str(path)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def paired_rows(df: pd.DataFrame, names: list[str]) -> list[dict]:
    """Per candidate: mean [CI] of every metric (pooled over datasets and seeds) and the
    paired difference to ``names[0]`` (``_PSNR``, ``_SSIM``, ``_fsc_missing_auc``: mean,
    low, high)."""
    rows, key = [], ["dataset", "acquisition", "replicate"]
    ref = df[df.method == names[0]].set_index(key)
    for name in names:
        cur = df[df.method == name].set_index(key).reindex(ref.index)
        row = {"candidate": name, "n": int(cur["PSNR"].notna().sum())}
        for m in METRICS:
            mean, lo, hi = mean_ci(cur[m])
            row[m] = f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
        for m in ("PSNR", "SSIM", "fsc_missing_auc"):
            d, lo, hi = paired_difference(cur[m], ref[m]) if name != names[0] else (0, 0, 0)
            row[f"Δ{m} vs default"] = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            row[f"_{m}"] = (d, lo, hi)
        row["_mean_psnr"] = float(cur["PSNR"].mean())
        rows.append(row)
    return rows


def visible(rows: list[dict]) -> pd.DataFrame:
    """The rows without their ``_`` fields."""
    return pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])


def family_table(df: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, str]:
    """Mean [CI] of every metric per candidate (pooled over datasets and seeds), the paired
    difference of each candidate to the default (``names[0]``) and the rule's choice."""
    rows = paired_rows(df, names)
    best = max(rows[1:], key=lambda r: r["_mean_psnr"], default=None)
    choice = names[0]
    if best is not None and best["_PSNR"][1] > 0 and not best["_SSIM"][2] < 0:
        choice = best["candidate"]
    return visible(rows), choice


def per_dataset_table(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Mean PSNR / SSIM / missing FSC per dataset and candidate (over validation seeds)."""
    sub = df[df.method.isin(names)]
    out = sub.groupby(["dataset", "method"], sort=False)[["PSNR", "SSIM", "fsc_missing_auc"]]
    return out.mean().round(3).reset_index()


def markdown_block(df: pd.DataFrame, names: list[str], table: pd.DataFrame,
                   heading: str) -> list[str]:
    """Lines of one table: heading, pooled table, per-dataset means folded away."""
    return [heading, "", table.to_markdown(index=False), "",
            "<details><summary>per dataset (means over seeds)</summary>", "",
            per_dataset_table(df, names).to_markdown(index=False), "", "</details>", ""]


def report(df: pd.DataFrame, families: dict, tune: dict, wall: float | None) -> str:
    """Markdown of every family's table, per-dataset means and the choices."""
    seeds = f"{tune['seed']}..{tune['seed'] + tune['replicates'] - 1}"
    lines = [f"Validation seeds {seeds}, datasets {', '.join(sorted(df.dataset.unique()))}, "
             f"acquisition(s) {', '.join(sorted(df.acquisition.unique()))}; pooled over "
             "dataset × seed pairs (n per row). Intervals: 95 % Student-t; Δ: paired "
             "difference to the current default (first row)."
             + (f" Wall time of the tuning run: {wall / 60:.0f} min (2 cores)." if wall else ""),
             ""]
    for kind, fams in families.items():
        for family, names in fams.items():
            table, choice = family_table(df, names)
            if family == "budget":
                verdict = ("budget sensitivity, no rule: the iteration default is held by the "
                           "whole-run budget; a Δ interval above 0 at 2x means it is starved")
            else:
                verdict = "rule: " + ("keep the current default" if choice == names[0]
                                      else f"change the default to `{choice}`")
            lines += markdown_block(df, names, table, f"**{kind}: {family}** ({verdict})")
    for title, names in (tune.get("compare") or {}).items():
        table, _ = family_table(df, names)
        lines += markdown_block(df, names, table, f"**{title}** (paired differences to "
                                f"`{names[0]}`; no default is chosen)")
    return "\n".join(lines)


def pipeline_runs(workdir: Path, cfg: dict, tune: dict):
    """``(family, setting, methods, workdir, config)`` of every non-reference setting of the
    tuning file's ``pipeline`` families (settings of the pipeline, not of one method, e.g.
    the tilt-series normalisation; the reference setting is the main run itself)."""
    from wedgebench.config import deep_merge

    for family, spec in (tune.get("pipeline") or {}).items():
        for setting, over in spec["settings"].items():
            if setting == spec["reference"]:
                continue
            run = deep_merge(cfg, over)
            run["run_methods"] = list(spec["methods"])
            yield family, setting, spec["methods"], workdir.with_name(
                f"{workdir.name}-{setting}"), run


def pipeline_report(df: pd.DataFrame, workdir: Path, cfg: dict, tune: dict) -> list[str]:
    """Per pipeline family and method: the setting against the reference setting, paired
    over dataset × seed; the family's rule: switch only if some method's PSNR interval is
    above 0 and no method's PSNR or SSIM interval is below 0."""
    lines = []
    for family, setting, methods, wdir, _ in pipeline_runs(workdir, cfg, tune):
        ref_name = tune["pipeline"][family]["reference"]
        other = pd.read_csv(wdir / "results" / "report" / "table1_replicates.csv")
        both = pd.concat([df.assign(method=df.method + "@" + ref_name),
                          other.assign(method=other.method + "@" + setting)])
        rows = [r for m in methods for r in paired_rows(both, [f"{m}@{ref_name}", f"{m}@{setting}"])]
        cand = rows[1::2]
        gain = any(r["_PSNR"][1] > 0 for r in cand)
        loss = any(r["_PSNR"][2] < 0 or r["_SSIM"][2] < 0 for r in cand)
        verdict = f"switch to `{setting}`" if gain and not loss else f"keep `{ref_name}`"
        lines += markdown_block(both, [r["candidate"] for r in rows], visible(rows),
                                f"**pipeline: {family}**, `{setting}` against `{ref_name}` "
                                f"(rule: {verdict})")
    return lines


def write_between_markers(path: Path, text: str, marker: str = "tune") -> None:
    """Replace the block between the ``<!-- {marker}:begin/end -->`` lines of ``path``."""
    BEGIN, END = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: markers {BEGIN} / {END} not found")
    head, rest = doc.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("tune_run"))
    ap.add_argument("--tune", type=Path, default=REPO / "benchmarks" / "tune.yaml")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--no-run", action="store_true", help="only tabulate a finished run")
    ap.add_argument("--replicates", type=int,
                    help="validation seeds to use (default: the tuning file's); a later run "
                         "with more reuses the finished seeds' jobs")
    ap.add_argument("--no-budget", action="store_true",
                    help="leave out the tuning file's budget-sensitivity variants (a later run "
                         "without this flag reuses every job of this one)")
    ap.add_argument("--readme", type=Path, default=REPO / "benchmarks" / "README.md")
    args = ap.parse_args()
    tune = yaml.safe_load(args.tune.read_text())
    if args.replicates:
        tune["replicates"] = args.replicates
    if args.no_budget:
        tune.pop("budget", None)
    cfg, families = tuning_config(base_config(tune), tune)
    files = tune.get("configfiles", [])
    wall = None if args.no_run else run_workflow(args.workdir, cfg, args.cores, files)
    for *_, wdir, run in ([] if args.no_run else pipeline_runs(args.workdir, cfg, tune)):
        wall += run_workflow(wdir, run, args.cores, files)
    df = pd.read_csv(args.workdir / "results" / "report" / "table1_replicates.csv")
    text = "\n".join([report(df, families, tune, wall),
                      *pipeline_report(df, args.workdir, cfg, tune)])
    print(text)
    write_between_markers(args.readme, text, tune.get("marker", "tune"))


if __name__ == "__main__":
    main()
