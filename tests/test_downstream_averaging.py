"""Subtomogram averaging: extraction in the reference frame, rotated wedges, weighted
averages, FSC crossings and the Rosenthal–Henderson fit, against known answers."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from wedgebench import euler, geometry, io
from wedgebench.downstream import ANGLES, COORDS, TOMO
from wedgebench.downstream import averaging as av
from wedgebench.downstream.boxes import sphere_mask

BOX = 32
STEP = 36  # particle spacing in the synthetic tomograms


def class_map(seed: int = 0, symmetry: str | None = None) -> np.ndarray:
    """Random Gaussian blobs (σ = 1 voxel, so there is power up to Nyquist) in a soft
    sphere of radius 12 voxels; optionally symmetrised with our operators."""
    rng = np.random.default_rng(seed)
    vol = np.zeros((BOX,) * 3, np.float32)
    for p in rng.integers(8, 24, (30, 3)):
        vol[tuple(p)] += rng.uniform(0.5, 1.5)
    vol = gaussian_filter(vol, 1.0) * sphere_mask(vol.shape, 12, 3)
    if symmetry:
        vol = np.mean([euler.rotate_volume(vol, s, order=3)
                       for s in euler.symmetry_operators(symmetry)], axis=0)
    return vol.astype(np.float32)


def tomogram(vmap, n_y, n_x, seed=1, wedge=None):
    """Particles of ``vmap`` at random poses on an ``n_y × n_x`` grid (z = 20), placed
    with our rotation; optionally limited to the Fourier wedge ``(min, max)``."""
    rng = np.random.default_rng(seed)
    shape = (40, STEP * n_y + 4, STEP * n_x + 4)
    vol = np.zeros(shape, np.float32)
    centres = [(20, 20 + STEP * j, 20 + STEP * i) for j in range(n_y) for i in range(n_x)]
    angles = euler.random_eulers(rng, len(centres))
    h = BOX // 2
    for (z, y, x), a in zip(centres, angles):
        vol[z - h:z + h, y - h:y + h, x - h:x + h] += euler.rotate_volume(
            vmap, euler.particle_matrix(*a), order=3)
    if wedge is not None:
        w = geometry.wedge_mask(shape, *wedge)
        vol = np.fft.ifftn(np.fft.fftn(vol) * w).real.astype(np.float32)
    particles = pd.DataFrame({**{c: [p[2 - i] for p in centres] for i, c in enumerate(COORDS)},
                              **{c: angles[:, i] for i, c in enumerate(ANGLES)}})
    return vol, particles


def average(vol, particles, weighting, tilt_range=(-89.9, 89.9), symmetry="C1"):
    num, den, counts = av.tomogram_contributions(vol, particles, BOX, symmetry=symmetry,
                                                 tilt_range=tilt_range, weighting=weighting)
    return av.combine(num, den, weighting, 0.01), counts


def fsc_vs(avg, vmap):
    curve, cross = av.compare_to_map(avg, vmap, 1.0)
    return curve, cross


def test_true_poses_on_noise_free_data_reach_the_maps_own_resolution():
    """With true poses and no noise the only losses are the two cubic-spline
    interpolations (placing, extracting), which attenuate only near Nyquist: the FSC
    with the map stays ≥ 0.9 up to 0.8 × Nyquist — with full data, and with a ±60° wedge
    when 12 random orientations together cover Fourier space (wedge-weighted)."""
    vmap = class_map()
    for wedge, weighting in ((None, "none"), (None, "wedge"), ((-60, 60), "wedge")):
        vol, parts = tomogram(vmap, 3, 4, wedge=wedge)
        avg, counts = average(vol, parts, weighting, wedge or (-89.9, 89.9))
        assert counts == {"n_input": 12, "n_used": 12, "n_edge": 0}
        curve, cross = fsc_vs(avg, vmap)
        upto = curve["shell"] <= 0.8 * curve["shell"].max()
        assert curve.loc[upto, "fsc"].min() >= 0.9, (wedge, curve["fsc"].round(3).tolist())
        assert cross["fsc0.5"]["status"] == "beyond_nyquist"
        assert cross["fsc0.5"]["resolution"] == 2.0  # the Nyquist bound, in Å at 1 Å/voxel


def test_wedge_weighting_beats_the_plain_mean_with_few_particles():
    """Three particles of a ±60° tomogram: the plain mean divides every Fourier voxel by 3
    although some were measured by only one or two particles; the weighted average
    divides by the number that measured it. Mechanism check, not a method ranking."""
    vmap = class_map(3)
    vol, parts = tomogram(vmap, 1, 3, seed=4, wedge=(-60, 60))
    auc = {}
    for weighting in ("wedge", "none"):
        avg, _ = average(vol, parts, weighting, (-60, 60))
        auc[weighting] = fsc_vs(avg, vmap)[0]["fsc"].mean()
    assert auc["wedge"] > auc["none"] + 0.02, auc  # measured 0.941 vs 0.906


def test_symmetrising_fills_the_wedge_of_a_symmetric_class():
    vmap = class_map(5, symmetry="D2")
    vol, parts = tomogram(vmap, 1, 2, seed=6, wedge=(-50, 50))
    auc = {sym: fsc_vs(average(vol, parts, "wedge", (-50, 50), sym)[0], vmap)[0]["fsc"].mean()
           for sym in ("C1", "D2")}
    assert auc["D2"] > auc["C1"] + 0.03, auc  # measured 0.971 vs 0.884


def test_inverted_contrast_is_averaged_back_to_the_maps_sign():
    vmap = class_map(12)
    vol, parts = tomogram(vmap, 1, 2, seed=13, wedge=(-60, 60))
    kw = dict(radius=60.0, settings={"subset_repeats": 1})
    plain = av.average_particles({"t": vol}, parts, vmap, 5.0, {"t": (-60, 60)}, **kw)
    kw["settings"]["invert_contrast"] = True
    inverted = av.average_particles({"t": -vol}, parts, vmap, 5.0, {"t": (-60, 60)}, **kw)
    np.testing.assert_allclose(inverted["average"], plain["average"], atol=1e-5)
    assert plain["fsc"]["fsc"].iloc[:5].min() > 0.9


def test_rotated_wedge_is_our_wedge_turned_with_the_particle():
    b = 24
    np.testing.assert_array_equal(av.rotated_wedge(b, -50, 60),
                                  geometry.wedge_mask((b, b, b), -50, 60)[..., : b // 2 + 1])
    # turning the particle by +20° about y moves the measured tilts by -20°
    r = euler.axis_rotation([0, 1, 0], 20)
    np.testing.assert_array_equal(av.rotated_wedge(b, -60, 60, r), av.rotated_wedge(b, -80, 40))
    w = av.rotated_wedge(b, -60, 60, euler.particle_matrix(30, 50, 70))
    assert 0.5 < w.mean() < 0.8 and w[0, 0, 0] == 1


def test_extracted_subtomogram_lives_in_its_rotated_wedge():
    """Extraction (rotation by Rᵀ) and the wedge mask W(R k) agree: a particle of a
    wedge-limited tomogram, extracted into the reference frame, has almost no power
    outside its rotated wedge (and much outside the unrotated one)."""
    vmap = class_map(7)
    vol, parts = tomogram(vmap, 1, 1, seed=8, wedge=(-45, 45))
    r = av.particle_matrices(parts)[0]
    sub = av.extract(vol, (20, 20, 20), BOX, r, order=3, fill=0.0)
    power = np.abs(np.fft.rfftn(sub)) ** 2
    shell = np.sqrt(sum(f ** 2 for f in np.meshgrid(np.fft.fftfreq(BOX), np.fft.fftfreq(BOX),
                                                     np.fft.rfftfreq(BOX), indexing="ij")))
    low = (shell > 0.05) & (shell < 0.3)  # away from the origin, where the signal is
    def leak(w):
        return power[low & (w == 0)].sum() / power[low].sum()

    # the right mask leaves only the leakage of cutting the box (a wedge-limited
    # particle's streaks reach beyond it): measured 0.067 here; the unrotated wedge and
    # the inverse rotation's leave 0.61 and more
    assert leak(av.rotated_wedge(BOX, -45, 45, r)) < 0.1
    assert leak(av.rotated_wedge(BOX, -45, 45)) > 0.4
    assert leak(av.rotated_wedge(BOX, -45, 45, r.T)) > 0.4


def test_extract_identity_and_edges():
    rng = np.random.default_rng(9)
    vol = rng.normal(size=(30, 40, 50)).astype(np.float32)
    sub = av.extract(vol, (15, 20, 25), 10, np.eye(3), order=3)
    np.testing.assert_allclose(sub, vol[10:20, 15:25, 20:30], atol=1e-5)
    parts = pd.DataFrame({"rlnCoordinateX": [25.0, 3.0], "rlnCoordinateY": [20.0, 20.0],
                          "rlnCoordinateZ": [15.0, 15.0], "rlnAngleRot": [0.0, 0.0],
                          "rlnAngleTilt": [0.0, 0.0], "rlnAnglePsi": [0.0, 0.0]})
    num, den, counts = av.tomogram_contributions(vol, parts, 10, weighting="none")
    assert counts == {"n_input": 2, "n_used": 1, "n_edge": 1} and num.shape[0] == 1
    num, den, counts = av.tomogram_contributions(vol, parts, 10, weighting="none",
                                                 edge="pad")
    assert counts == {"n_input": 2, "n_used": 2, "n_edge": 1}
    padded = np.fft.irfftn(num[1], s=(10, 10, 10), axes=(0, 1, 2))
    np.testing.assert_allclose(padded[:, :, :2], vol.mean(), atol=1e-4)  # x < 0: the mean
    np.testing.assert_allclose(padded[:, :, 2:], vol[10:20, 15:25, 0:8], atol=1e-4)


def curve(values, n=50, voxel=2.0):
    s = np.arange(1, n + 1)
    return pd.DataFrame({"shell": s, "frequency": s / (2 * n * voxel),
                         "fsc": np.asarray(values, float), "n_voxels": 1000})


def test_fsc_crossings_on_analytic_curves():
    n, voxel = 50, 2.0
    f = np.arange(1, n + 1) / (2 * n * voxel)
    lin = curve(1 - f / f[-1] * 0.8)  # 0.2 at Nyquist; 0.5 at f = 0.625 f_N
    cross = av.fsc_crossing(lin, 0.5)
    assert cross["status"] == "crossed"
    assert cross["resolution"] == pytest.approx(1 / (0.625 * f[-1]))
    assert av.fsc_crossing(lin, 0.143) == {"resolution": 2 * voxel,
                                           "status": "beyond_nyquist"}
    gauss = curve(np.exp(-(f / 0.05) ** 2))  # 0.5 at f = 0.05 √ln2, between shells
    assert av.fsc_crossing(gauss, 0.5)["resolution"] == pytest.approx(
        1 / (0.05 * np.sqrt(np.log(2))), rel=0.01)
    assert av.fsc_crossing(curve(np.full(n, 0.1)), 0.143) == {"resolution": pytest.approx(
        float("nan"), nan_ok=True), "status": "not_reached"}
    sparse = curve(np.full(n, 0.9)).assign(n_voxels=10)
    assert av.fsc_crossing(sparse, 0.5)["status"] == "no_shells"


def test_rosenthal_henderson_recovers_a_known_b_factor():
    b_true, c = 120.0, 1e-3
    n = np.repeat([2, 4, 8, 16, 32], 3)
    d = 1 / np.sqrt(2 / b_true * np.log(n) + c)
    fit = av.rosenthal_henderson(n, d)
    assert fit["B"] == pytest.approx(b_true) and fit["reason"] == ""
    assert fit["B_se"] == pytest.approx(0, abs=1e-6) and fit["n_points"] == 15
    noisy = d * (1 + np.random.default_rng(0).normal(0, 0.01, d.size))
    fit = av.rosenthal_henderson(n, noisy)
    assert abs(fit["B"] - b_true) < 3 * fit["B_se"] and fit["B_se"] > 0
    few = av.rosenthal_henderson([2, 2, 4, 4], [10.0, 10.5, 8.0, 8.2])
    assert np.isnan(few["B"]) and "fewer than 3" in few["reason"]
    flat = av.rosenthal_henderson([2, 4, 8, 16], [8.0, 8.5, 9.0, 9.5])
    assert np.isnan(flat["B"]) and "slope" in flat["reason"]
    assert av.subset_sizes(20) == [2, 4, 8, 16] and av.subset_sizes(1) == []


def test_average_files_end_to_end(tmp_path):
    vmap = class_map(10)
    vol, parts = tomogram(vmap, 2, 2, seed=11, wedge=(-60, 60))
    io.write_mrc(tmp_path / "tomo.mrc", vol, 5.0)
    io.write_mrc(tmp_path / "map.mrc", vmap, 5.0)
    io.write_tlt(tmp_path / "a.tlt", np.arange(-60, 61, 3.0))
    io.write_star(tmp_path / "parts.star", parts.assign(**{TOMO: "tomo"}))
    res = av.average_files({"tomo": tmp_path / "tomo.mrc"}, [tmp_path / "parts.star"],
                           tmp_path / "map.mrc", tmp_path / "a.tlt", tmp_path / "avg.mrc",
                           tmp_path / "fsc.csv", tmp_path / "avg.json", radius=60.0,
                           out_subsets=tmp_path / "subsets.csv",
                           settings={"subset_repeats": 2, "seed": 3})
    avg, voxel = io.read_mrc(tmp_path / "avg.mrc")
    assert avg.shape == (BOX,) * 3 and voxel == pytest.approx(5.0)
    assert len(pd.read_csv(tmp_path / "fsc.csv")) == BOX // 2
    subsets = pd.read_csv(tmp_path / "subsets.csv")
    assert subsets["n_particles"].tolist() == [2, 2, 4]
    js = json.loads((tmp_path / "avg.json").read_text())
    assert js["counts"]["n_used"] == 4 and js["settings"]["subset_repeats"] == 2
    assert "fewer than 3" in js["rosenthal_henderson"]["fsc0.5"]["reason"]
    assert res["crossings"]["fsc0.5"]["status"] in ("crossed", "beyond_nyquist")
    with pytest.raises(io.InputError, match="not given"):
        av.average_files({"other": tmp_path / "tomo.mrc"}, [tmp_path / "parts.star"],
                         tmp_path / "map.mrc", tmp_path / "a.tlt", tmp_path / "x.mrc",
                         tmp_path / "x.csv", tmp_path / "x.json", radius=60.0)
    assert not (tmp_path / "x.mrc").exists()
