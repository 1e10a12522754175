"""Methods as plug-ins: the registry, variants, your own method (`external`) and tomograms
made elsewhere (`precomputed`)."""
import json
import subprocess
import sys
import textwrap

import mrcfile
import numpy as np
import pandas as pd
import pytest
import yaml

from wedgebench.config import ConfigError, check_config, duplicate_key_problems
from wedgebench.methods import method_settings, normalise_methods, template_fields
from wedgebench.recon.external import MethodError, format_command, load_checked
from workflow_utils import REPO, run_snakemake, tiny_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

# A small SIRT, written as a user would: numpy and mrcfile only, its own projector (linear
# splatting of every (x, z) voxel onto the detector, and its transpose).
SIRT = textwrap.dedent('''
    import sys
    import mrcfile
    import numpy as np

    stack_path, tlt_path, thickness, out_path = sys.argv[1:5]
    with mrcfile.open(stack_path) as m:
        stack = m.data.astype(np.float64)
        voxel = float(m.voxel_size.x)
    angles = np.radians(np.loadtxt(tlt_path, ndmin=1))
    nz, (nt, ny, nx) = int(thickness), stack.shape
    x = np.arange(nx) - (nx - 1) / 2
    z = np.arange(nz) - (nz - 1) / 2
    X, Z = np.meshgrid(x, z)

    def weights(theta):
        u = X * np.cos(theta) - Z * np.sin(theta) + (nx - 1) / 2
        i0 = np.floor(u).astype(int)
        f = u - i0
        return i0, f

    def forward(vol):  # vol [z, y, x] -> [tilt, y, x]
        out = np.zeros((nt, ny, nx))
        for t, theta in enumerate(angles):
            i0, f = weights(theta)
            for i, w in ((i0, 1 - f), (i0 + 1, f)):
                ok = (i >= 0) & (i < nx)
                for y in range(ny):
                    np.add.at(out[t, y], i[ok], (w * vol[:, y, :])[ok])
        return out

    def back(proj):
        vol = np.zeros((nz, ny, nx))
        for t, theta in enumerate(angles):
            i0, f = weights(theta)
            for i, w in ((i0, 1 - f), (i0 + 1, f)):
                ok = (i >= 0) & (i < nx)
                vol[:, :, :] += np.where(ok[:, None, :], w[:, None, :] *
                                         proj[t][:, np.clip(i, 0, nx - 1)].transpose(1, 0, 2), 0)
        return vol

    row = forward(np.ones((nz, ny, nx)))
    col = back(np.ones((nt, ny, nx)))
    vol = np.zeros((nz, ny, nx))
    for _ in range(15):
        vol += back((stack - forward(vol)) / np.maximum(row, 1e-6)) / np.maximum(col, 1e-6)
    with mrcfile.new(out_path, overwrite=True) as m:
        m.set_data(vol.astype(np.float32))
        m.voxel_size = voxel
''')

# The same SIRT idea as a Python file run like the workflow's scripts (a `snakemake` object):
# one back-projection, scaled (crude, but a real reconstruction from the data).
BACKPROJECT_SCRIPT = textwrap.dedent('''
    import mrcfile
    import numpy as np

    sm = snakemake  # noqa: F821
    with mrcfile.open(sm.input.tiltseries) as m:
        stack = m.data.astype(np.float32)
    vol = np.repeat(stack.mean(axis=0)[None], sm.params.thickness, axis=0)
    with mrcfile.new(sm.output[0], overwrite=True) as m:
        m.set_data(vol / sm.params.thickness)
        m.voxel_size = sm.params.voxel_size
''')


def small_config(methods, datasets=("spheres",)):
    cfg = tiny_config(methods=methods)
    cfg["datasets"] = {d: cfg["datasets"][d] for d in datasets}
    return cfg


# --- the registry -------------------------------------------------------------------------

def test_a_list_of_kinds_is_a_registry_of_their_own_names():
    assert normalise_methods(["imod_wbp", "cn"]) == {"imod_wbp": {"kind": "imod_wbp"},
                                                    "cn": {"kind": "cn"}}


def test_variant_settings_are_deep_merged_over_the_kind_section():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = method_settings(cfg, "cn_paper", "spheres")
    ours = method_settings(cfg, "cn", "spheres")
    changed = {k for k in ours if ours[k] != paper[k]}
    assert changed == {"positivity", "coordinates", "output_scale", "lr", "lr_end"}
    assert (paper["positivity"], paper["coordinates"], paper["output_scale"]) == \
        ("none", "unit", 1.0)
    assert (paper["lr"], paper["lr_end"]) == (1e-4, 1e-5)
    # per-dataset overrides of the kind's section reach every method of that kind
    cfg["methods"]["isonet_b"] = {"kind": "isonet", "unet": {"dropout": 0.3}}
    b = method_settings(cfg, "isonet_b", "p22")
    assert b["iterations"] == 20 and b["unet"]["dropout"] == 0.3
    assert b["unet"]["filters"] == cfg["isonet"]["unet"]["filters"]


def test_command_templates_are_quoted_and_checked():
    assert template_fields("{python} x.py {tiltseries} {{literal}} {output}") == \
        ["python", "tiltseries", "output"]
    cmd = format_command("prog {tiltseries} {output}",
                         {"tiltseries": "a b.mrc", "output": "o;rm -rf x.mrc"})
    assert cmd == "prog 'a b.mrc' 'o;rm -rf x.mrc'"


BAD_SPECS = [
    ({"m": {"kind": "sirt"}}, "methods.m.kind"),
    ({"m": {"kind": "external"}}, "methods.m"),  # neither command nor script
    ({"m": {"kind": "external", "command": "prog {tiltseries} {out}"}}, "methods.m.command"),
    ({"m": {"kind": "external", "command": "prog {tiltseries}"}}, "methods.m.command"),
    ({"m": {"kind": "external", "command": "prog {} {output}"}}, "methods.m.command"),
    ({"m": {"kind": "external", "command": "p {output}", "from": "nope"}}, "methods.m.from"),
    ({"m": {"kind": "external", "command": "p {tomogram} {output}"}}, "methods.m.command"),
    ({"m": {"kind": "external", "script": "/nonexistent/x.py"}}, "methods.m.script"),
    ({"m": {"kind": "precomputed"}}, "methods.m"),
    ({"m": {"kind": "precomputed", "path": "/d/{dataset}/{method}.mrc"}}, "methods.m.path"),
    ({"a/b": {"kind": "imod_wbp"}}, "methods.a/b"),
    ({"..": {"kind": "imod_wbp"}}, "methods..."),
    ({"recon": {"kind": "imod_wbp"}}, "methods.recon"),
    ({"cn": {"kind": "isonet"}}, "methods.cn.kind"),
    ({"Cn2": {"kind": "cn"}, "cn2": {"kind": "cn"}}, "methods.Cn2"),
    ({"c": {"kind": "cn", "width": -3}}, "methods.c.width"),
    ({"c": {"kind": "isonet", "keep_filled": False}}, "methods.c.keep_filled"),
    ({"i": {"kind": "isonet", "per_dataset": {"p22": {"iterations": 0}}}},
     "methods.i.per_dataset.p22.iterations"),
    ({"i": {"kind": "isonet", "per_dataset": {"p22": {"keep_filled": False}}}},
     "methods.i.per_dataset.p22.keep_filled"),
    (["imod_wbp", "imod_wbp"], "methods"),
    (["external"], "methods"),
]


@pytest.mark.parametrize("methods,key", BAD_SPECS, ids=[k for _, k in BAD_SPECS])
def test_bad_method_specs_name_the_key(methods, key):
    with pytest.raises(ConfigError) as err:
        check_config(tiny_config(methods=methods), SCHEMA)
    assert f"config key '{key}" in str(err.value)


def test_run_methods_must_name_registered_methods():
    with pytest.raises(ConfigError, match="config key 'run_methods'"):
        check_config(tiny_config(run_methods=["nope"]), SCHEMA)


def test_duplicate_names_in_a_config_file_are_found(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("methods:\n  mine: {kind: cn}\n  mine: {kind: isonet}\n")
    (problem,) = duplicate_key_problems(path)
    assert "line 3" in problem and "'mine'" in problem and str(path) in problem


def test_duplicate_method_name_stops_snakemake_before_any_job(tmp_path):
    cfg_path = tmp_path / "dup.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config()) +
                        "methods:\n  wbp2: {kind: imod_wbp}\n  wbp2: {kind: eman2_fourier}\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                           "-d", str(tmp_path), "--configfile", str(cfg_path), "--cores", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "key 'wbp2' is given twice" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


# --- checking what another program wrote --------------------------------------------------

def write(path, data, voxel=10.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel


@pytest.mark.parametrize("case,message", [
    ("missing", "was not written"),
    ("junk", "not a readable MRC"),
    ("shape", "has shape (4, 6, 8)"),
    ("nan", "NaN/Inf"),
    ("int", "data type int16"),
])
def test_bad_outputs_are_refused_naming_method_and_file(tmp_path, case, message):
    path = tmp_path / "out.mrc"
    good = np.zeros((4, 6, 7), np.float32)
    if case == "junk":
        path.write_bytes(b"not an mrc" * 200)
    elif case == "shape":
        write(path, np.zeros((4, 6, 8), np.float32))
    elif case == "nan":
        good[1, 2, 3] = np.nan
        write(path, good)
    elif case == "int":
        write(path, np.zeros((4, 6, 7), np.int16))
    with pytest.raises(MethodError) as err:
        load_checked("mine", path, (4, 6, 7))
    assert "method 'mine'" in str(err.value) and str(path) in str(err.value)
    assert message in str(err.value)


def test_good_output_is_returned_as_float32(tmp_path):
    write(tmp_path / "out.mrc", np.arange(24, dtype=np.float32).reshape(2, 3, 4), 7.5)
    vol, voxel = load_checked("mine", tmp_path / "out.mrc", (2, 3, 4))
    assert vol.dtype == np.float32 and voxel == pytest.approx(7.5) and vol[1, 2, 3] == 23


# --- end to end ---------------------------------------------------------------------------

@pytest.mark.slow
def test_external_and_precomputed_methods_end_to_end(tmp_path):
    """A SIRT written in the test's directory (command), a script, and a tomogram made
    elsewhere are scored beside a built-in method: metrics, Table 1, figures, report."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "sirt.py").write_text(SIRT)
    (tools / "bp.py").write_text(BACKPROJECT_SCRIPT)
    shape = tiny_config()["datasets"]["spheres"]["shape"]
    elsewhere = tmp_path / "elsewhere" / "spheres" / "tilt-60_60_step6"
    elsewhere.mkdir(parents=True)
    write(elsewhere / "tomo.mrc", np.random.default_rng(0).random(shape, np.float32))
    methods = {
        "imod_wbp": {"kind": "imod_wbp"},
        "sirt": {"kind": "external",
                 "command": f"cd {{workdir}} && {{python}} {tools / 'sirt.py'} {{tiltseries}} "
                            "{tlt} {thickness} {output}"},
        "bp": {"kind": "external", "script": str(tools / "bp.py"), "threads": 1},
        "given": {"kind": "precomputed", "runtime_s": 42.0,
                  "path": str(tmp_path / "elsewhere" / "{dataset}" / "{acq}" / "tomo.mrc")},
    }
    work = tmp_path / "run"
    run_snakemake(work, small_config(methods))
    res = work / "results"
    run_dir = res / "spheres" / "tilt-60_60_step6"
    metrics = {m: json.loads((run_dir / "metrics" / f"{m}.json").read_text()) for m in methods}
    assert metrics["sirt"]["kind"] == "external" and metrics["given"]["kind"] == "precomputed"
    # SIRT is a real reconstruction: it correlates with the truth far better than noise
    assert metrics["sirt"]["psnr"] > metrics["given"]["psnr"] + 3
    assert metrics["sirt"]["fsc_present_auc"] > 0.5 > metrics["given"]["fsc_present_auc"]
    assert metrics["sirt"]["runtime_s"] > 0 and metrics["given"]["runtime_s"] == 42.0
    table = pd.read_csv(res / "report" / "table1.csv")
    assert list(table["method"]) == list(methods)
    assert list(table["kind"]) == ["imod_wbp", "external", "external", "precomputed"]
    assert table["variant_of"].isna().all()
    assert (res / "report" / "figures" / "spheres" / "tilt-60_60_step6" /
            "orthoslices.png").stat().st_size > 10_000
    assert "cd " in (res / "logs" / "spheres" / "tilt-60_60_step6" / "sirt" /
                     "reconstruct.log").read_text()
    run_snakemake(work, small_config(methods), "--report", "report.html")
    html = (work / "report.html").read_text(errors="replace")
    assert "sirt" in html and "precomputed" in html


@pytest.mark.slow
def test_bad_external_output_stops_that_job_and_writes_nothing(tmp_path):
    methods = {"broken": {"kind": "external", "command": "printf junk > {output}"}}
    work = tmp_path / "run"
    target = "results/spheres/tilt-60_60_step6/recon/broken.mrc"
    proc = run_snakemake(work, small_config(methods), target, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "method 'broken'" in out and "not a readable MRC" in out
    assert not (work / target).exists()
    assert not list((work / "results" / "spheres" / "tilt-60_60_step6" / "recon").glob("*"))
