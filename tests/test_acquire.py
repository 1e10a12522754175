"""The acquisition model in the pipeline: simulate_acquisition / prepare_for_methods, the
acquisition labels, the config checks and a real Snakemake run with a realistic model."""
import json

import numpy as np
import pytest
import yaml

from wedgebench import acquisition as phys
from wedgebench.config import ConfigError, check_config
from wedgebench.geometry import acquisition_label
from wedgebench.io import read_mrc
from wedgebench.tiltseries import (has_model, make_projector, potential_scale,
                                   prepare_for_methods, simulate_acquisition)
from workflow_utils import REPO, run_snakemake, tiny_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
ANGLES = np.arange(-60.0, 61.0, 6.0)


def _blob(shape=(16, 32, 32)):
    z, y, x = np.indices(shape, dtype=float)
    c = [(n - 1) / 2 for n in shape]
    r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2] - 3) ** 2
    return np.exp(-r2 / (2 * 3.0**2)).astype(np.float32)


def _project(vol):
    return make_projector(vol, {"projector": "ray", "oversampling": 2, "ray_step": 0.5})


def test_noise_free_ideal_acquisition_gives_back_the_line_integrals():
    vol = _blob()
    acq = {"range": [-60, 60], "step": 6, "specimen_potential_v": 7.0}
    out = simulate_acquisition(_project(vol), vol, 10.0, ANGLES, acq, seed=1)
    assert out["frames"].shape == (2, ANGLES.size, 32, 32)
    back = prepare_for_methods(out["acquired"], ANGLES, 10.0, acq,
                               potential_scale(vol, 10.0, acq), normalise_to_unit=False)
    np.testing.assert_allclose(back, _project(vol)(ANGLES), atol=1e-4)


def test_counts_are_poisson_with_the_dose_per_pixel():
    vol = np.zeros((8, 64, 64), np.float32)  # empty specimen: I = 1 everywhere
    acq = {"range": [-60, 60], "step": 6, "dose": {"total": 42.0, "order": "sequential"}}
    out = simulate_acquisition(_project(vol), vol, 2.0, ANGLES, acq, seed=3)
    per_tilt = 42.0 / ANGLES.size
    counts = out["acquired"] * per_tilt * 2.0**2  # flat field undone: electrons per pixel
    expected = per_tilt * 4.0
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / counts.size)
    assert counts.var() == pytest.approx(expected, rel=0.05)  # Poisson: variance = mean
    even, odd = out["frames"]
    assert abs(np.corrcoef(even.ravel(), odd.ravel())[0, 1]) < 0.02  # independent frames


def test_misalignment_shifts_are_recovered_by_cross_correlation():
    vol = _blob()
    acq = {"range": [-60, 60], "step": 6, "misalignment": {"shift_px": 2.0}}
    out = simulate_acquisition(_project(vol), vol, 10.0, ANGLES, acq, seed=5)
    clean = simulate_acquisition(_project(vol), vol, 10.0, ANGLES,
                                 {"range": [-60, 60], "step": 6}, seed=5)["acquired"]
    for i in (0, 7, 20):
        a, b = 1 - out["acquired"][i], 1 - clean[i]
        xc = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
        peak = np.array(np.unravel_index(np.argmax(xc), xc.shape), float)
        # parabolic sub-pixel refinement around the peak
        for ax in (0, 1):
            idx = [int(peak[0]), int(peak[1])]
            vals = []
            for d in (-1, 0, 1):
                j = list(idx)
                j[ax] = (j[ax] + d) % xc.shape[ax]
                vals.append(xc[tuple(j)])
            peak[ax] += 0.5 * (vals[0] - vals[2]) / (vals[0] - 2 * vals[1] + vals[2])
        peak = (peak + 16) % 32 - 16
        np.testing.assert_allclose(peak, out["shifts"][i], atol=0.15)


def test_phase_flipping_restores_the_sign_of_every_fourier_coefficient():
    vol = _blob()
    optics = {"defocus_um": 5.0, "defocus_gradient": False}
    acq = {"range": [-60, 60], "step": 6, "optics": optics, "ctf_correction": "phase_flip"}
    out = simulate_acquisition(_project(vol), vol, 4.0, ANGLES, acq, seed=1)
    scale = potential_scale(vol, 4.0, acq)
    flipped = prepare_for_methods(out["acquired"], ANGLES, 4.0, acq, scale,
                                  normalise_to_unit=False)
    raw = prepare_for_methods(out["acquired"], ANGLES, 4.0, {**acq, "ctf_correction": "none"},
                              scale, normalise_to_unit=False)
    truth = np.fft.fft2(_project(vol)(ANGLES))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(32, 4.0), np.fft.fftfreq(32, 4.0)))
    transfer = np.abs(phys.ctf(k, 5.0))
    strong = (np.abs(truth) > 1e-3 * np.abs(truth).max()) & (transfer > 0.05)
    ratio_flipped = np.fft.fft2(flipped)[strong] / truth[strong]
    ratio_raw = np.fft.fft2(raw)[strong] / truth[strong]
    assert np.all(ratio_flipped.real > 0)
    assert np.allclose(ratio_flipped.imag, 0, atol=1e-3 * np.abs(ratio_flipped).max())
    assert np.any(ratio_raw.real < 0)  # without correction, the CTF's sign changes


def test_labels_and_has_model():
    plain = {"range": [-60, 60], "step": 2}
    assert acquisition_label(plain) == "tilt-60_60_step2" and not has_model(plain)
    dosed = {**plain, "dose": {"total": 40}}
    assert has_model(dosed)
    assert acquisition_label(dosed).startswith("tilt-60_60_step2_dose40_m")
    assert acquisition_label(dosed) != acquisition_label({**plain, "dose": {"total": 80}})
    full = {**dosed, "optics": {"defocus_um": 3}, "ctf_correction": "phase_flip",
            "ice": {"thickness_nm": 150}, "misalignment": {"shift_px": 0.5}}
    assert "_dose40_ctf3pf_ice150_mis0.5-0_m" in acquisition_label(full)


@pytest.mark.parametrize("acq, key", [
    ({"dose": {"total": -5}}, "dose.total"),
    ({"optics": {"defocus_um": -2.0}}, "optics.defocus_um"),
    ({"dose": {"total": 50, "order": "random"}}, "dose.order"),
    ({"ice": {"thickness_nm": 10}}, "ice.thickness_nm"),
    ({"ctf_correction": "phase_flip"}, "ctf_correction"),
    ({"damage": True}, "damage"),
])
def test_bad_acquisition_values_name_the_key(acq, key):
    cfg = tiny_config(acquisitions=[{"range": [-60, 60], "step": 6, **acq}])
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA)
    assert key.split(".")[-1] in str(err.value)


def test_analytic_projector_only_for_object_phantoms():
    cfg = tiny_config(tiltseries={"projector": "analytic"})
    with pytest.raises(ConfigError, match="tiltseries.projector"):
        check_config(cfg, SCHEMA)
    check_config(dict(cfg, run_datasets=["spheres"]), SCHEMA)


def test_workflow_realistic_acquisition_and_dose_sweep(tmp_path):
    """A real run: a dose sweep with a realistic model on the analytic spheres; methods see
    the corrected series, metrics the noise-free ground truth, and a dose figure is drawn."""
    model = {"optics": {"defocus_um": 3.0}, "ctf_correction": "phase_flip",
             "ice": {"thickness_nm": 200}, "misalignment": {"shift_px": 0.5, "angle_deg": 0.2},
             "damage": True}
    acqs = [{"range": [-60, 60], "step": 6}] + [
        {"range": [-60, 60], "step": 6, "dose": {"total": d}, **model} for d in (30, 120)]
    cfg = tiny_config(run_datasets=["spheres"], run_methods=["imod_wbp", "eman2_fourier"],
                      acquisitions=acqs, tiltseries={"projector": "analytic", "oversampling": 2})
    run_snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "spheres"
    labels = sorted(p.name for p in res.iterdir() if p.name.startswith("tilt"))
    assert len(labels) == 3
    noisy = [lab for lab in labels if "dose" in lab]
    for lab in noisy:
        meta = json.loads((res / lab / "acquisition.json").read_text())
        assert sum(meta["dose"]) == pytest.approx(float(lab.split("dose")[1].split("_")[0]))
        assert meta["true_angles"] != meta["nominal_angles"]
        even, _ = read_mrc(res / lab / "frames_even.mrc")
        odd, _ = read_mrc(res / lab / "frames_odd.mrc")
        assert not np.allclose(even, odd)
        rec = json.loads((res / lab / "metrics" / "imod_wbp.json").read_text())
        assert rec["dose_total"] in (30.0, 120.0) and rec["ctf_correction"] == "phase_flip"
    clean, _ = read_mrc(res / "tilt-60_60_step6" / "tiltseries.mrc")
    for lab in noisy:
        assert not np.allclose(read_mrc(res / lab / "tiltseries.mrc")[0], clean, atol=1e-3)
    # more dose, better reconstruction (a mechanism: less counting noise), for both methods
    low, high = sorted(noisy, key=lambda lab: "dose120" in lab)
    for m in ("imod_wbp", "eman2_fourier"):
        psnr = [json.loads((res / lab / "metrics" / f"{m}.json").read_text())["psnr"]
                for lab in (low, high)]
        assert psnr[1] > psnr[0]
    assert (tmp_path / "results" / "report" / "figures" / "spheres" / "sweep"
            / "vs_dose_total.png").stat().st_size > 10_000
