"""The presets plan the expected DAG (dry runs, configs merged as from the repository root)."""
import subprocess
import sys

import pytest
import yaml

from wedgebench.methods import method_settings, normalise_methods
from workflow_utils import REPO, planned_jobs


def dry_run(workdir, *configfiles):
    """``snakemake -n`` as from the repository root (config.yaml first, then the presets),
    but in an empty working directory so that no existing result changes the plan."""
    files = [str(REPO / "config.yaml")] + [str(REPO / f) for f in configfiles]
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "-s", str(REPO / "Snakefile"),
           "-d", str(workdir), "--configfile", *files]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return planned_jobs(proc)


def merged(*names):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in names:
        _deep_update(cfg, yaml.safe_load((REPO / name).read_text()))
    return cfg


def _deep_update(base, new):
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v


def expected_jobs(cfg, datasets, n_acq, n_model=None):
    """Job counts per rule for the datasets x n_acq simulated acquisitions (x replicates),
    from the registry (every method of a kind runs that kind's rules under its own name)."""
    n_acq *= cfg.get("replicates", 1)
    runs = len(datasets) * n_acq
    names = list(cfg.get("run_methods") or normalise_methods(cfg["methods"]))
    counts = {"phantom": len(datasets) * cfg.get("replicates", 1), "tiltseries": runs,
              "metrics": len(names) * runs, "figures": runs, "table1": 1}
    modelled = runs if n_model is None else len(datasets) * n_model * cfg.get("replicates", 1)
    if modelled and (n_model is not None or (cfg.get("tiltseries") or {}).get("model")):
        counts["acquire"] = modelled  # acquisitions with a model are simulated by `acquire`

    def add(rule, n):
        if n:
            counts[rule] = counts.get(rule, 0) + n

    for name in names:
        kind = normalise_methods(cfg["methods"])[name]["kind"]
        if kind in ("imod_wbp", "eman2_fourier"):
            add(kind, runs)
        elif kind == "cn":
            chunks = method_settings(cfg, name)["chunks"]
            for rule, n in (("cn_anchor", 1), ("cn_chunk", chunks), ("cn_merge", 1)):
                add(rule, runs * n)
        elif kind == "isonet":
            its = sum(method_settings(cfg, name, d)["iterations"] for d in datasets) * n_acq
            for rule, n in (("isonet_extract", runs), ("isonet_refine", its),
                            ("isonet_predict", runs), ("isonet_runtime", runs)):
                add(rule, n)
        elif kind == "deepdewedge":
            defaults = {k: v["default"] for k, v in SCHEMA["properties"][kind]["properties"]
                        .items() if "default" in v}  # config.yaml has no deepdewedge section
            ddw = [dict(defaults, **method_settings(cfg, name, d)) for d in datasets]
            blocks = sum(-(-s["epochs"] // s["block_epochs"]) for s in ddw) * n_acq
            for rule, n in (("ddw_halves", runs), ("ddw_extract", runs), ("ddw_fit", blocks),
                            ("ddw_refine", runs), ("ddw_runtime", runs)):
                add(rule, n)
            dose = ((cfg.get("tiltseries") or {}).get("model") or {}).get("dose")
            if ddw[0]["split"] != "tilts" and dose:
                counts["tiltseries_frames"] = runs  # once per acquisition: the frame halves
    if "imod_wbp" not in names and any(
            normalise_methods(cfg["methods"])[n]["kind"] == "isonet" for n in names):
        add("imod_wbp", runs)  # IsoNet's input
    return counts


ALL = ("spheres", "shapes", "p22", "ubiquitin")
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.mark.parametrize("files,datasets,n_acq,sweep,n_model", [
    ((), ALL, 1, False, None),
    (("configs/verdict.yaml",), ALL, 1, False, None),
    (("configs/paper.yaml",), ALL, 1, False, None),
    (("configs/sweep.yaml",), ("p22",), 9, True, None),
    (("configs/paper.yaml", "configs/sweep.yaml"), ("p22",), 9, True, None),
    (("configs/sweep.yaml", "configs/sweep_cpu.yaml"), ("p22",), 9, True, None),
    (("configs/dose.yaml",), ("spheres",), 5, True, 4),
    (("configs/realistic.yaml",), ALL, 1, False, None),
])
def test_preset_plans_expected_jobs(tmp_path, files, datasets, n_acq, sweep, n_model):
    counts = dry_run(tmp_path, *files)
    want = expected_jobs(merged(*files), datasets, n_acq, n_model)
    if sweep:
        want["sweep_figures"] = 1
    want["all"] = 1
    assert counts == want


def test_paper_preset_runs_isonet_paper_iterations_on_every_dataset(tmp_path):
    """config.yaml's P22 override must not leak into the paper preset (deep-merged config)."""
    counts = dry_run(tmp_path, "configs/paper.yaml")
    assert counts["isonet_refine"] == 30 * len(ALL)
    default = dry_run(tmp_path / "default")
    assert default["isonet_refine"] == 10 * 3 + 20


def test_default_run_has_cn_and_cn_paper(tmp_path):
    """The default Table 1 shows the paper's CN choices beside our CPU defaults."""
    counts = dry_run(tmp_path)
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    chunks = default["cn"]["chunks"]
    assert counts["cn_anchor"] == 2 * len(ALL) and counts["cn_chunk"] == 2 * chunks * len(ALL)
    assert counts["metrics"] == len(default["methods"]) * len(ALL)
    assert counts["ddw_refine"] == len(ALL)  # DeepDeWedge in the default run (2026-12-03)


def test_sweep_trains_isonet_on_each_acquisitions_own_wedge():
    for files in (("configs/sweep.yaml",), ("configs/paper.yaml", "configs/sweep.yaml"),
                  ("configs/sweep.yaml", "configs/sweep_cpu.yaml")):
        assert merged(*files)["isonet"]["wedge"] == "from_angles", files
