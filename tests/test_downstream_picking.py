"""Template matching with pytme (run as a program, never imported): our angle and axis
conventions against pytme's, peak selection, templates and settings.

The pytme tests need the ``pytme`` command (``pip install -e '.[test]'`` installs it)."""

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from wedgebench import euler, geometry, io
from wedgebench.downstream import ANGLES, CLASS, COORDS, SCORE, TOMO
from wedgebench.downstream import picking
from wedgebench.downstream.boxes import centre_box, sphere_mask
from wedgebench.downstream.settings import check_settings

needs_pytme = pytest.mark.skipif(shutil.which("pytme") is None,
                                 reason="pytme not installed (pip install -e '.[test]')")

VOXEL = 10.0


def blob_map(seed: int, box: int = 21, n: int = 10, radius: float = 7.0) -> np.ndarray:
    """An asymmetric map: Gaussian blobs at random points within ``radius`` of the centre."""
    rng = np.random.default_rng(seed)
    vol = np.zeros((box,) * 3, np.float32)
    c = box // 2
    while n:
        p = rng.integers(c - int(radius), c + int(radius) + 1, 3)
        if np.linalg.norm(p - c) <= radius:
            vol[tuple(p)] += rng.uniform(1, 3)
            n -= 1
    return gaussian_filter(vol, 1.0).astype(np.float32)


def place(shape, maps_at, noise: float = 1e-4, seed: int = 0) -> np.ndarray:
    """A volume with each map's box centre ``n // 2`` on voxel ``(z, y, x)``."""
    vol = np.zeros(shape, np.float32)
    for m, (z, y, x) in maps_at:
        h = m.shape[0] // 2
        vol[z - h:z - h + m.shape[0], y - h:y - h + m.shape[1], x - h:x - h + m.shape[2]] += m
    return vol + np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def run_pick(tmp_path, tag, target, class_map, settings, symmetry="C1", radius=8 * VOXEL,
             tilt_file=None):
    io.write_mrc(tmp_path / f"{tag}.mrc", target, VOXEL)
    io.write_mrc(tmp_path / "class.mrc", class_map, VOXEL)
    out = tmp_path / f"{tag}.star"
    picking.pick(tmp_path / f"{tag}.mrc", tmp_path / "class.mrc", out, class_name="blob",
                 radius=radius, symmetry=symmetry, tilt_file=tilt_file, settings=settings,
                 workdir=tmp_path / f"work_{tag}", log=tmp_path / "pytme.log")
    return io.read_star(out)


@needs_pytme
def test_pytme_angles_read_back_rotate_the_map_onto_the_particle(tmp_path):
    """The conversion pin: a particle made with OUR rotation of the map, matched by pytme,
    read back from OUR pick list and rotated with OUR code, is the particle.

    Stage 1 finds the orientation of pytme's 30° set nearest to arbitrary angles; stage 2
    places the particle exactly at that orientation (as our code reads it) so that an
    exact match exists. A wrong reading (e.g. the inverse rotation) puts the stage-2
    particle at an orientation pytme reads back differently, and the check fails.
    """
    vmap = blob_map(1)
    settings = {"angular_step": 30.0, "template_wedge": "none", "num_peaks": 1,
                "threads": 2}
    centre = (18, 20, 23)  # z, y, x
    truth0 = (40.0, 70.0, -110.0)
    p0 = euler.rotate_volume(vmap, euler.particle_matrix(*truth0), order=3)
    picks1 = run_pick(tmp_path, "stage1", place((40, 40, 44), [(p0, centre)]), vmap, settings)
    a1 = picks1.loc[0, list(ANGLES)].to_numpy(float)
    assert euler.angular_distance(euler.particle_matrix(*a1), euler.particle_matrix(*truth0)) < 30

    p1 = euler.rotate_volume(vmap, euler.particle_matrix(*a1), order=3)
    picks2 = run_pick(tmp_path, "stage2", place((40, 40, 44), [(p1, centre)]), vmap, settings)
    row = picks2.iloc[0]
    a2 = row[list(ANGLES)].to_numpy(float)
    back = euler.rotate_volume(vmap, euler.particle_matrix(*a2), order=3)
    assert corr(back, p1) >= 0.99
    assert row[SCORE] > 0.99
    xyz = row[list(COORDS)].to_numpy(float)
    assert np.linalg.norm(xyz - np.array(centre[::-1])) <= 1.0
    assert row[CLASS] == "blob" and row[TOMO] == "stage2"
    # the inverse reading would not rotate the map onto the particle
    wrong = euler.rotate_volume(vmap, euler.particle_matrix(*a2).T, order=3)
    assert corr(wrong, p1) < 0.8


def test_pytme_to_relion_is_the_transpose_of_scipys_intrinsic_zyz():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    a = rng.uniform([-180, 0, -180], [180, 180, 180], (50, 3))
    ours = picking.pytme_to_relion(a)
    m = Rotation.from_euler("ZYZ", a, degrees=True).as_matrix()
    np.testing.assert_allclose(euler.particle_matrix(*ours.T), np.swapaxes(m, 1, 2),
                               atol=1e-9)
    # numerically RELION's angles unchanged (tilt in [0, 180])
    np.testing.assert_allclose(euler.particle_matrix(*ours.T), euler.particle_matrix(*a.T),
                               atol=1e-9)
    assert picking.pytme_to_relion(np.zeros((0, 3))).shape == (0, 3)


@needs_pytme
def test_pytme_wedge_axes_and_tilt_sign_match_our_geometry(tmp_path):
    """A tomogram whose Fourier transform is limited by OUR −30°…+60° wedge (tilt axis y,
    beam z) is matched best by a template given pytme's wedge with ``--wedge-axes 2,0``
    and the range ``30,60``; other axis pairs and the mirrored range score less."""
    vmap = blob_map(5, n=14)
    io.write_mrc(tmp_path / "t.mrc", vmap, VOXEL)
    io.write_mrc(tmp_path / "m.mrc", sphere_mask(vmap.shape, 10), VOXEL)
    target = place((40, 40, 40), [(vmap, (20, 22, 18))], noise=0)
    w = geometry.wedge_mask(target.shape, -30, 60)
    target = np.fft.ifftn(np.fft.fftn(target) * w).real.astype(np.float32)
    io.write_mrc(tmp_path / "target.mrc", target, VOXEL)

    def score(axes, angles):
        cmd = picking.match_command(tmp_path / "target.mrc", tmp_path / "t.mrc",
                                    tmp_path / "m.mrc", tmp_path / "s.h5", angular_step=180,
                                    threads=1, tilt_angles=angles)
        cmd[cmd.index("--wedge-axes") + 1] = axes
        assert "--no-filter-target" in cmd
        picking.run_pytme(cmd)
        picking.run_pytme(picking.peaks_command(tmp_path / "s.h5", tmp_path / "p",
                                                num_candidates=100, min_distance=1,
                                                min_score=None))
        df = picking.read_pytme_orientations(tmp_path / "p.tsv")
        at = np.linalg.norm(df[["x", "y", "z"]].to_numpy() - [18, 22, 20], axis=1) <= 1
        return float(df["score"][at].max()) if at.any() else 0.0  # score at the particle

    assert picking.WEDGE_AXES == "2,0"
    assert picking.tilt_wedge_argument([-30, 0, 60], "range") == "30,60"
    best = score("2,0", [-30, 60])
    assert best > 0.97
    for axes in ("2,1", "0,1", "0,2"):
        assert score(axes, [-30, 60]) < best - 0.05, axes
    assert score("2,0", [-60, 30]) < best - 0.05  # the mirrored wedge


@needs_pytme
def test_symmetric_template_orientations_agree_up_to_our_point_group(tmp_path):
    """A D3 map (our operators: 3-fold z, 2-fold x) at random orientations, matched with
    pytme's reduced D3 rotation set: every particle is found, with a small symmetry-aware
    orientation error, although pytme searched a sixth of the rotations."""
    rng = np.random.default_rng(7)
    base = blob_map(11, n=6)
    ops = euler.symmetry_operators("D3")
    vmap = np.mean([euler.rotate_volume(base, s, order=3) for s in ops], axis=0)
    centres = [(16, 16, 16), (16, 16, 46), (16, 46, 16), (16, 46, 46)]
    truth = euler.random_eulers(rng, len(centres))
    parts = [(euler.rotate_volume(vmap, euler.particle_matrix(*a), order=3), c)
             for a, c in zip(truth, centres)]
    picks = run_pick(tmp_path, "sym", place((32, 62, 62), parts), vmap,
                     {"angular_step": 15.0, "template_wedge": "none", "num_peaks": 4,
                      "threads": 2}, symmetry="D3")
    assert len(picks) == 4
    xyz = picks[list(COORDS)].to_numpy(float)
    errors = {"D3": [], "C3": []}
    for a, (z, y, x) in zip(truth, centres):
        i = int(np.argmin(np.linalg.norm(xyz - [x, y, z], axis=1)))
        assert np.linalg.norm(xyz[i] - [x, y, z]) <= 1.0
        r_pick = euler.particle_matrix(*picks.loc[i, list(ANGLES)].to_numpy(float))
        for g in errors:
            errors[g].append(float(euler.angular_distance(r_pick, euler.particle_matrix(*a), g)))
    # within the sampling step of the truth up to D3 (measured: 10.8-13.9 degrees) ...
    assert max(errors["D3"]) < 15.0
    # ... and pytme's two-fold is ours: some picks are the truth turned by it
    assert max(errors["C3"]) > 90.0


def test_pytme_symmetry_uses_subgroups_with_our_axes():
    assert picking.pytme_symmetry("c4") == "C4" and picking.pytme_symmetry("D7") == "D7"

    def contains(big, small):
        g = euler.symmetry_operators(big)
        return all(np.min(np.abs(g - s).reshape(len(g), -1).max(1)) < 1e-9
                   for s in euler.symmetry_operators(small))

    for group in ("T", "O", "I"):
        sub = picking.pytme_symmetry(group)
        assert sub[0] == "D" and contains(group, sub)
    with pytest.raises(ValueError, match="unknown symmetry"):
        picking.pytme_symmetry("X2")


def test_select_peaks_keeps_the_best_and_spaces_them():
    xyz = np.array([[0, 0, 0], [3, 0, 0], [10, 0, 0], [10, 4, 0], [30, 0, 0]], float)
    scores = np.array([0.5, 0.9, 0.8, 0.85, 0.1])
    # best 1 (0.9) suppresses 0 (3 away); 3 (0.85) suppresses 2 (4 away); then 4
    np.testing.assert_array_equal(picking.select_peaks(xyz, scores, 5.0), [1, 3, 4])
    np.testing.assert_array_equal(picking.select_peaks(xyz, scores, 5.0, num_peaks=2), [1, 3])
    np.testing.assert_array_equal(picking.select_peaks(xyz, scores, 5.0, threshold=0.2),
                                  [1, 3])
    np.testing.assert_array_equal(picking.select_peaks(xyz, scores, 4.0), [1, 3, 2, 4])
    assert picking.select_peaks(np.zeros((0, 3)), [], 5.0).size == 0


def test_template_box_is_odd_and_keeps_the_centre_voxel():
    vol = np.zeros((20, 20, 20), np.float32)
    vol[10, 10, 10] = 1.0
    vol[10, 12, 7] = 2.0
    t = picking.make_template(vol)
    assert t.shape == (21, 21, 21) and t[10, 10, 10] == 1.0 and t[10, 12, 7] == 2.0
    t = picking.make_template(vol, 15)
    assert t.shape == (15, 15, 15) and t[7, 7, 7] == 1.0 and t[7, 9, 4] == 2.0
    with pytest.raises(io.InputError, match="odd"):
        picking.make_template(vol, 16)
    np.testing.assert_array_equal(centre_box(centre_box(vol, 31), 20), vol)


def test_match_command_arguments(tmp_path):
    if shutil.which("pytme") is None:
        with pytest.raises(picking.PytmeError, match="downstream"):
            picking.pytme_executable()
        return
    cmd = picking.match_command("t.mrc", "tp.mrc", "m.mrc", "o.h5", angular_step=15,
                                symmetry="O", threads=3, tilt_angles=[-54, 0, 60])
    joined = " ".join(cmd[1:])
    for part in ("match -m t.mrc -i tp.mrc -I m.mrc -o o.h5 -a 15 --symmetry D4 -n 3",
                 "--backend numpyfftw", "--tilt-angles 54,60", "--wedge-axes 2,0",
                 "--no-filter-target"):
        assert part in joined
    cmd = picking.match_command("t.mrc", "tp.mrc", "m.mrc", "o.h5", angular_step=15,
                                wedge="tilts", tilt_file=tmp_path / "a.tlt",
                                filter_target=True)
    assert str(tmp_path / "a.tlt") in cmd and "--no-filter-target" not in cmd
    cmd = picking.match_command("t.mrc", "tp.mrc", "m.mrc", "o.h5", angular_step=15,
                                wedge="none", invert_contrast=True)
    assert "--tilt-angles" not in cmd and "--wedge-axes" not in cmd
    assert "--invert-target-contrast" in cmd
    with pytest.raises(io.InputError, match="template_wedge: tilts"):
        picking.tilt_wedge_argument([10, 20, 30], "range")


@needs_pytme
def test_no_pick_above_the_threshold_writes_an_empty_list(tmp_path):
    vmap = blob_map(2)
    noise = np.random.default_rng(3).normal(0, 1, (32, 32, 32)).astype(np.float32)
    angles = np.arange(-60, 61, 3.0)
    io.write_tlt(tmp_path / "a.tlt", angles)
    picks = run_pick(tmp_path, "empty", noise, vmap,
                     {"angular_step": 90.0, "score_threshold": 0.99, "threads": 1},
                     tilt_file=tmp_path / "a.tlt")
    assert len(picks) == 0
    assert set(COORDS + ANGLES + (SCORE, TOMO, CLASS)) <= set(picks.columns)


def test_pick_checks_inputs_before_running(tmp_path):
    io.write_mrc(tmp_path / "t.mrc", np.zeros((16, 16, 16), np.float32), 10.0)
    io.write_mrc(tmp_path / "c.mrc", np.zeros((9, 9, 9), np.float32), 8.0)
    with pytest.raises(io.InputError, match="c.mrc: voxel size 8"):
        picking.pick(tmp_path / "t.mrc", tmp_path / "c.mrc", tmp_path / "o.star",
                     class_name="a", radius=30.0, settings={"template_wedge": "none"})
    io.write_mrc(tmp_path / "c.mrc", np.zeros((9, 9, 9), np.float32), 10.0)
    with pytest.raises(io.InputError, match="does not fit"):
        picking.pick(tmp_path / "t.mrc", tmp_path / "c.mrc", tmp_path / "o.star",
                     class_name="a", radius=60.0, settings={"template_wedge": "none"})
    with pytest.raises(io.InputError, match=".tlt"):
        picking.pick(tmp_path / "t.mrc", tmp_path / "c.mrc", tmp_path / "o.star",
                     class_name="a", radius=30.0)
    assert not (tmp_path / "o.star").exists()


@pytest.mark.parametrize("key, value", [
    ("angular_step", 0), ("angular_step", 180), ("peak_min_distance", -1),
    ("num_peaks", 0), ("num_peaks", 2.5), ("threads", True), ("template_wedge", "cone"),
    ("template_box", 20), ("box", 4), ("edge", "wrap"), ("weight_epsilon", 1.0),
    ("interpolation_order", 2), ("class_weights", {"a": -1}), ("seed", -1),
    ("score_threshold", "high"), ("mask_radius", 0), ("invert_contrast", "yes"),
    ("bogus", 1)])
def test_settings_errors_name_the_key(key, value):
    with pytest.raises(io.InputError, match=rf"downstream\.{key}"):
        check_settings({key: value})


def test_settings_defaults_and_overrides():
    s = check_settings(None)
    assert s["angular_step"] == 10.0 and s["num_peaks"] == 100 and s["beta"] == 4.0 and s["template_box"] is None
    s = check_settings({"angular_step": 30, "template_box": 31, "class_weights": {"a": 2}})
    assert s["angular_step"] == 30 and s["template_box"] == 31 and s["class_weights"] == {"a": 2}
    assert check_settings(None)["class_weights"] == {}  # defaults not mutated


def test_picks_table_round_trips_through_star(tmp_path):
    df = picking.picks_table([[1, 2, 3]], [[10, 20, 30]], [0.5], "ribosome", "tomo 1")
    io.write_star(tmp_path / "p.star", df, name="picks")
    back = io.read_star(tmp_path / "p.star")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_pytme_is_never_imported():
    """pytme is GPL-2.0-only: it runs as a separate program and no module of ours (nor a
    test) imports it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(import\s+tme\b|from\s+tme\b)|import_module\(['\"]tme", re.M)
    offenders = [str(p.relative_to(root))
                 for d in ("src", "tests", "scripts", "workflow", "benchmarks")
                 for ext in ("*.py", "*.smk") for p in (root / d).rglob(ext)
                 if pattern.search(p.read_text())]
    assert offenders == []
