"""DeepDeWedge through the real workflow: halves, cubes, fitting blocks, refinement, metrics.

Settings that cannot work stop the run before any job (dry runs).

One tiny run with two acquisitions of the same phantom: noise-free (halves from the
even/odd tilts) and with a dose model (halves from the even/odd half-dose frames). Then
`epochs` is raised from 2 to 4 (blocks of 1 epoch): only blocks 3 and 4, the refinement,
the runtime and the metrics run again; blocks 1 and 2 are reused untouched.
"""
import json

import numpy as np
import pytest

from wedgebench.geometry import acquisition_label
from wedgebench.io import read_mrc, read_tlt
from wedgebench.recon.deepdewedge.fit import load_state
from wedgebench.recon.deepdewedge.subtomos import read_subtomos
from workflow_utils import planned_jobs, run_snakemake, tiny_config

# the dosed acquisition has optics: its prepared series is linear in the frames (the ideal
# contrast without optics is -ln I, whose frame average differs from the series by Jensen)
ACQS = [{"range": [-60, 60], "step": 6},
        {"range": [-60, 60], "step": 6, "dose": {"total": 50}, "optics": {"defocus_um": 2.0}}]
TILTS, FRAMES = (acquisition_label(a) for a in ACQS)
SHAPE = (16, 24, 32)
DDW = {"cube_size": 8, "levels": 2, "base_channels": 4, "batch_size": 8, "epochs": 2,
       "block_epochs": 1, "update_every": 1, "val_every": 1, "stride": 4}


def ddw_config(**ddw):
    return tiny_config(
        methods={"deepdewedge": {"kind": "deepdewedge"}},
        acquisitions=ACQS,
        datasets={"spheres": {"kind": "spheres", "shape": list(SHAPE), "voxel_size": 10.0,
                              "params": {"count": 3, "diameter": [8, 12]}}},
        deepdewedge=dict(DDW, **ddw))


def targets(acqs=(TILTS, FRAMES)):
    return [f"results/spheres/{a}/metrics/deepdewedge.json" for a in acqs]


@pytest.fixture(scope="module")
def ddw_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("ddw")
    first = run_snakemake(work, ddw_config(), *targets())
    return work, first


@pytest.mark.slow
def test_reconstruction_metrics_and_files(ddw_run):
    work, first = ddw_run
    counts = planned_jobs(first)
    assert counts["ddw_fit"] == 4 and counts["ddw_refine"] == 2
    assert counts["tiltseries_frames"] == 1  # only the acquisition with a dose model
    for acq in (TILTS, FRAMES):
        base = work / "results" / "spheres" / acq
        rec, _ = read_mrc(base / "recon" / "deepdewedge.mrc")
        assert rec.shape == SHAPE and np.isfinite(rec).all() and rec.std() > 0
        rec_json = json.loads((base / "metrics" / "deepdewedge.json").read_text())
        assert rec_json["method"] == "deepdewedge" and rec_json["kind"] == "deepdewedge"
        assert rec_json["runtime_s"] > 0
        runtime = json.loads((base / "deepdewedge" / "runtime.json").read_text())
        assert runtime["runtime_s"] > 0
        sub = read_subtomos(base / "deepdewedge" / "subtomos.star")
        assert sub["cubes0"].shape[1:] == (12, 12, 12)  # ceil_to_even(sqrt(2) * 8)
        state = load_state(base / "deepdewedge" / "fit" / "epoch_2.pt")
        assert state["epoch"] == 2
        history = (base / "deepdewedge" / "fit" / "epoch_2.csv").read_text().splitlines()
        assert history[0].split(",")[:2] == ["epoch", "train_loss"] and len(history) == 3
        assert "seconds" in history[0]


@pytest.mark.slow
def test_halves_from_tilts_or_frames(ddw_run):
    work, _ = ddw_run
    logs = work / "results" / "logs" / "spheres"
    assert "even/odd tilts" in (logs / TILTS / "deepdewedge" / "halves.log").read_text()
    assert "even/odd frames" in (logs / FRAMES / "deepdewedge" / "halves.log").read_text()
    base = work / "results" / "spheres" / FRAMES
    even, _ = read_mrc(base / "tiltseries_frames_even.mrc")
    odd, _ = read_mrc(base / "tiltseries_frames_odd.mrc")
    main, _ = read_mrc(base / "tiltseries.mrc")
    assert even.shape == odd.shape == main.shape == (len(read_tlt(base / "tiltseries.tlt")),
                                                     SHAPE[1], SHAPE[2])
    # independent half-dose noise, and the main series' scale: their mean is the main series
    assert not np.allclose(even, odd)
    np.testing.assert_allclose(0.5 * (even + odd), main, atol=1e-4)
    assert not (work / "results" / "spheres" / TILTS / "tiltseries_frames_even.mrc").exists()


@pytest.mark.slow
def test_raising_epochs_reuses_finished_blocks(ddw_run):
    work, _ = ddw_run
    fits = {acq: work / "results" / "spheres" / acq / "deepdewedge" / "fit" for acq in
            (TILTS, FRAMES)}
    before = {(a, k): (f / f"epoch_{k}.pt").stat().st_mtime_ns for a, f in fits.items()
              for k in (1, 2)}
    second = run_snakemake(work, ddw_config(epochs=4), *targets())
    counts = planned_jobs(second)
    assert counts == {"ddw_fit": 4, "ddw_refine": 2, "ddw_runtime": 2, "metrics": 2}, counts
    for (acq, k), mtime in before.items():
        assert (fits[acq] / f"epoch_{k}.pt").stat().st_mtime_ns == mtime
    for acq, f in fits.items():
        assert load_state(f / "epoch_4.pt")["epoch"] == 4
        assert len((f / "epoch_4.csv").read_text().splitlines()) == 5
        assert "after 4 epochs" in (work / "results" / "logs" / "spheres" / acq /
                                    "deepdewedge" / "refine.log").read_text()
    third = run_snakemake(work, ddw_config(epochs=4), *targets())
    assert planned_jobs(third) == {}


@pytest.mark.parametrize("ddw,message", [
    ({"cube_size": 16}, "deepdewedge.cube_size 16 needs cubes of 24 voxels"),
    ({"cube_size": 12, "levels": 3}, "must be divisible by 2**deepdewedge.levels = 8"),
])
def test_sizes_that_do_not_fit_stop_before_any_job(tmp_path, ddw, message):
    proc = run_snakemake(tmp_path, ddw_config(**ddw), "-n", *targets(), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out and "methods.deepdewedge" in out, out[-2000:]
    assert not (tmp_path / "results").exists()


def test_frame_halves_need_a_dose_model(tmp_path):
    cfg = ddw_config(split="frames")
    cfg["acquisitions"] = ACQS[:1]
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "split: frames needs every acquisition" in out, out[-2000:]
