"""A user's own tilt series (dataset kind `tiltseries`) through the whole workflow."""
import json

import numpy as np

from measured_data import DOSE, DOSE_SYMMETRIC, mdoc_text, projections, write_series
from wedgebench.geometry import tilt_angles
from wedgebench.io import read_mrc, read_tlt, write_mrc, write_tlt
from wedgebench.measured import dose_weight
from wedgebench.phantoms import make_phantom
from wedgebench.tiltseries import simulate_tiltseries
from workflow_utils import planned_jobs, run_snakemake, tiny_config

SHAPE = [16, 16, 24]
HELDOUT_KEYS = ("heldout_tilt_error", "heldout_tilt_error_even_to_odd",
                "heldout_tilt_error_odd_to_even")


def measured_config(tmp_path, n_tlt=None, methods=None):
    vol, voxel = make_phantom("spheres", {"shape": SHAPE, "voxel_size": 8.0, "count": 2,
                                          "diameter": [6, 10]}, seed=5)
    angles = tilt_angles([-54, 60], 6)
    write_mrc(tmp_path / "data" / "ts.mrc", simulate_tiltseries(vol, angles), voxel)
    write_tlt(tmp_path / "data" / "ts.tlt", angles if n_tlt is None else angles[:n_tlt])
    cfg = tiny_config()
    cfg["datasets"] = {"mine": {"kind": "tiltseries", "shape": SHAPE, "params": {
        "stack": str(tmp_path / "data" / "ts.mrc"), "tlt": str(tmp_path / "data" / "ts.tlt")}}}
    if methods:
        cfg["methods"] = methods
    return cfg


def test_measured_tiltseries_end_to_end(tmp_path):
    cfg = measured_config(tmp_path)
    run_snakemake(tmp_path / "run", cfg)
    res = tmp_path / "run" / "results" / "mine"
    for method in cfg["methods"]:
        m = json.loads((res / "measured" / "metrics" / f"{method}.json").read_text())
        assert np.isfinite(m["reprojection_error"]) and 0 <= m["reprojection_error"] < 1
        assert len(m["even_odd_fsc"]["fsc"]) > 3 and np.isfinite(m["even_odd_fsc_auc"])
        for key in HELDOUT_KEYS:
            assert np.isfinite(m[key]) and 0 <= m[key] <= 1.5, (method, key, m[key])
        assert "psnr" not in m
    assert (res / "measured-even" / "tiltseries.tlt").read_text().count("\n") == 10
    assert (tmp_path / "run" / "results" / "report" / "table1.csv").is_file()


def test_stack_tlt_count_mismatch_names_both_files(tmp_path):
    cfg = measured_config(tmp_path, n_tlt=5, methods=["imod_wbp"])
    proc = run_snakemake(tmp_path / "run", cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ts.mrc has 20 tilt images" in out and "ts.tlt lists 5 angles" in out
    assert not (tmp_path / "run" / "results" / "mine" / "measured" / "tiltseries.mrc").exists()


def mdoc_config(tmp_path, **params):
    """A dose-symmetric series as SerialEM saves it (images in acquisition order) with its
    .mdoc and no .tlt, scored by WBP."""
    stack, mdoc, acq = write_series(tmp_path / "data")
    cfg = tiny_config(methods=["imod_wbp"])
    cfg["datasets"] = {"mine": {"kind": "tiltseries", "shape": SHAPE, "params": {
        "stack": str(stack), "mdoc": str(mdoc), **params}}}
    return cfg, acq


def test_mdoc_tiltseries_end_to_end_with_dose_weighting(tmp_path):
    cfg, acq = mdoc_config(tmp_path, dose_weighting=True)
    run_snakemake(tmp_path / "run", cfg)
    res = tmp_path / "run" / "results" / "mine"
    srt = np.argsort(acq)
    angles = read_tlt(res / "measured" / "tiltseries.tlt")
    assert np.allclose(angles, acq[srt], atol=2e-3)  # the mdoc's TiltAngle, sorted
    rec = json.loads((res / "measured" / "acquisition.json").read_text())
    assert rec["acquisition_index"] == [DOSE_SYMMETRIC.index(a) for a in acq[srt]]
    assert np.allclose(rec["prior_dose"], DOSE * np.asarray(rec["acquisition_index"]))
    assert rec["dose_weighted"] and rec["pixel_size_A"] == 8.0
    stack, pixel = read_mrc(res / "measured" / "tiltseries.mrc")
    want = dose_weight(projections(acq)[srt], rec["prior_dose"], pixel)
    assert pixel == 8.0 and np.allclose(stack, want, atol=1e-5)
    half = json.loads((res / "measured-even" / "acquisition.json").read_text())
    assert half["prior_dose"] == rec["prior_dose"][0::2]
    m = json.loads((res / "measured" / "metrics" / "imod_wbp.json").read_text())
    assert np.isfinite(m["reprojection_error"]) and 0 <= m["reprojection_error"] < 1
    assert len(m["even_odd_fsc"]["fsc"]) > 3 and np.isfinite(m["even_odd_fsc_auc"])
    for key in HELDOUT_KEYS:
        assert np.isfinite(m[key]) and 0 <= m[key] <= 1.5, (key, m[key])
    assert (tmp_path / "run" / "results" / "report" / "table1.csv").is_file()


def test_bad_mdoc_stops_before_any_job(tmp_path):
    cfg, acq = mdoc_config(tmp_path)
    mdoc = tmp_path / "data" / "ts.mrc.mdoc"
    mdoc.write_text(mdoc_text(acq[:-1]))  # one section short
    proc = run_snakemake(tmp_path / "run", cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not planned_jobs(proc)
    assert "config key 'datasets.mine.params'" in out
    assert "ts.mrc has 20 tilt images but" in out and "ts.mrc.mdoc has 19 [ZValue] sections" in out
