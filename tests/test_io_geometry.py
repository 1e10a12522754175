"""File I/O (atomic, validated) and acquisition geometry."""
import gzip
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from wedgebench.geometry import acquisition_label, present_mask, tilt_angles
from wedgebench.io import (InputError, read_mrc, read_tiltseries, read_tlt, write_mrc,
                           write_tlt)
from wedgebench.tiltseries import add_noise, normalise


def test_mrc_round_trip_keeps_voxel_size(tmp_path):
    vol = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    write_mrc(tmp_path / "v.mrc", vol, 4.5)
    out, voxel = read_mrc(tmp_path / "v.mrc")
    assert np.array_equal(out, vol) and voxel == pytest.approx(4.5)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mrc"]  # no temporary left behind


def test_gzipped_mrc_is_read(tmp_path):
    write_mrc(tmp_path / "v.mrc", np.ones((2, 3, 4), np.float32), 2.0)
    (tmp_path / "v.mrc.gz").write_bytes(gzip.compress((tmp_path / "v.mrc").read_bytes()))
    assert read_mrc(tmp_path / "v.mrc.gz")[0].shape == (2, 3, 4)


def test_truncated_mrc_names_the_file(tmp_path):
    write_mrc(tmp_path / "v.mrc", np.ones((8, 8, 8), np.float32), 1.0)
    data = (tmp_path / "v.mrc").read_bytes()
    (tmp_path / "bad.mrc").write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="bad.mrc"):
        read_mrc(tmp_path / "bad.mrc")
    (tmp_path / "junk.mrc").write_bytes(b"not an mrc file at all" * 50)
    with pytest.raises(InputError, match="junk.mrc"):
        read_mrc(tmp_path / "junk.mrc")


def test_nan_mrc_is_rejected(tmp_path):
    vol = np.ones((2, 2, 2), np.float32)
    vol[1, 1, 1] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as m:
        m.set_data(vol)
    with pytest.raises(InputError, match="nan.mrc.*NaN"):
        read_mrc(tmp_path / "nan.mrc")
    with pytest.raises(InputError):
        write_mrc(tmp_path / "out.mrc", vol, 1.0)
    assert not (tmp_path / "out.mrc").exists()


def test_tlt_errors_and_count_mismatch(tmp_path):
    (tmp_path / "a.tlt").write_text("-60\n0\nsixty\n")
    with pytest.raises(InputError, match=r"a.tlt:3"):
        read_tlt(tmp_path / "a.tlt")
    write_tlt(tmp_path / "b.tlt", [-30, 0, 30])
    assert np.allclose(read_tlt(tmp_path / "b.tlt"), [-30, 0, 30])
    write_mrc(tmp_path / "s.mrc", np.zeros((4, 5, 6), np.float32), 1.0)
    with pytest.raises(InputError, match=r"s.mrc has 4 tilt images .*b.tlt lists 3"):
        read_tiltseries(tmp_path / "s.mrc", tmp_path / "b.tlt")


def test_tilt_angles_and_labels():
    a = tilt_angles([-60, 60], 2)
    assert a.size == 61 and a[0] == -60 and a[-1] == 60
    b = tilt_angles([-50, 61], 4)  # asymmetric, max off the grid
    assert b[0] == -50 and b[-1] == 58
    assert acquisition_label({"range": [-60, 60], "step": 2}) == "tilt-60_60_step2"
    assert acquisition_label({"range": [-40, 40], "step": 1.5}) == "tilt-40_40_step1.5"
    assert acquisition_label({"angles": [-10, 0, 10]}).startswith("tilt-list3_-10_10_")
    for bad in (dict(range_deg=[-60, 60], step=0), dict(range_deg=[10, -10], step=1),
                dict(range_deg=[-90, 60], step=2)):
        with pytest.raises(ValueError):
            tilt_angles(**bad)


def test_present_mask_contains_sampled_planes():
    shape = (16, 4, 24)
    m = present_mask(shape, [0.0])
    # tilt 0 samples the kz = 0 plane only
    assert m[0].all() and not m[1:].any()
    full = present_mask(shape, tilt_angles([-89, 89], 1))
    assert full.mean() > 0.95
    wedge = present_mask(shape, tilt_angles([-60, 60], 2))
    assert 0.4 < wedge.mean() < 0.9


def test_noise_and_normalisation_are_seeded():
    proj = np.abs(np.random.default_rng(1).normal(size=(3, 8, 8))).astype(np.float32) + 1
    g1 = add_noise(proj, "gaussian", snr=2.0, seed=3)
    assert np.array_equal(g1, add_noise(proj, "gaussian", snr=2.0, seed=3))
    assert np.var(g1 - proj) == pytest.approx(np.var(proj) / 2.0, rel=0.3)
    p = add_noise(proj, "poisson", dose=50.0, seed=3)
    assert p.shape == proj.shape and not np.array_equal(p, proj)
    n = normalise(proj)
    assert n.min() == 0 and n.max() == 1
    with pytest.raises(ValueError):
        add_noise(proj, "gaussian")


def test_range_normalisation_keeps_zero():
    """``range`` divides by max − min without shifting: equal to min–max when the minimum is
    0 (noise-free projections), and an empty background averaging 0 stays at 0 under noise."""
    rng = np.random.default_rng(0)
    clean = np.zeros((5, 16, 16), np.float32)
    clean[:, 6:10, 6:10] = 3.0
    assert np.array_equal(normalise(clean, "range"), normalise(clean, "minmax"))
    assert np.array_equal(normalise(clean, True), normalise(clean, "minmax"))
    assert np.array_equal(normalise(clean, False), clean)
    noisy = clean + rng.normal(0, 0.3, clean.shape).astype(np.float32)
    back = np.ones(clean.shape, bool)
    back[:, 5:11, 5:11] = False
    r, m = normalise(noisy, "range"), normalise(noisy, "minmax")
    assert abs(r[back].mean()) < 0.01 and m[back].mean() > 0.1  # min–max lifts the background
    np.testing.assert_allclose(np.ptp(r), 1.0, rtol=1e-6)
    np.testing.assert_allclose(r - m, r[0, 0, 0] - m[0, 0, 0], atol=1e-6)  # one shift apart
    assert not normalise(np.ones((2, 3, 3)), "range").any()  # constant stack: zeros
    with pytest.raises(ValueError, match="tiltseries.normalise"):
        normalise(clean, "percentile")


@pytest.mark.parametrize("name", ["spheres", "p22"])
def test_range_equals_minmax_on_default_noise_free_series(name):
    """The default switch to ``range`` leaves the noise-free default datasets' series as
    min–max made them (their minimum is 0 up to float rounding)."""
    import yaml

    from wedgebench.phantoms import make_phantom
    from wedgebench.tiltseries import simulate_tiltseries

    ds = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())["datasets"][name]
    vol, _ = make_phantom(ds["kind"], dict(ds["params"], shape=ds["shape"],
                                           voxel_size=ds["voxel_size"]), 1)
    proj = simulate_tiltseries(vol, tilt_angles([-60, 60], 30), normalise_to_unit="none")
    assert np.abs(normalise(proj, "range") - normalise(proj, "minmax")).max() < 1e-8
