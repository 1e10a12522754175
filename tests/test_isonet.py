"""IsoNet: rotations, wedge geometry, Fourier filling, tiling, extraction, resumability."""
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from wedgebench.geometry import tilt_angles, wedge_mask
from wedgebench.io import InputError, read_mrc, write_tlt
from wedgebench.projector import backproject, project
from wedgebench.recon.isonet import extract, mask as isomask, predict, refine, rotations
from wedgebench.recon.isonet.unet import UNet, count_parameters

ASYM = tilt_angles([-50, 60], 2)



def blob_tomogram(shape=(24, 40, 40), n=12, seed=0):
    """Random Gaussian blobs (bright density) on a zero background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    vol = np.zeros(shape, np.float32)
    for _ in range(n):
        c = rng.uniform(4, np.array(shape) - 4)
        r = rng.uniform(1.5, 3.5)
        vol += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * r * r))
    return vol


# --- rotations -------------------------------------------------------------------------

def test_twenty_distinct_rotations_that_all_move_the_wedge():
    rots = rotations.isonet_rotations()
    assert len(rotations.cube_rotations()) == 24
    assert len(rots) == 20
    assert len({r.tobytes() for r in rots}) == 20
    for r in rots:
        assert np.array_equal(r @ r.T, np.eye(3)) and round(np.linalg.det(r)) == 1
    # a symmetric wedge on an odd, centred grid: rotating the volume rotates its spectrum
    n = 15
    wedge = np.fft.fftshift(wedge_mask((n, n, n), -60, 60))
    moved = [rotations.rotate(wedge, r) for r in rots]
    assert all(not np.array_equal(m, wedge) for m in moved)
    kept = [r for r in rotations.cube_rotations() if rotations.keeps_wedge(r)]
    assert len(kept) == 4
    assert all(np.array_equal(rotations.rotate(wedge, r), wedge) for r in kept)
    vol = np.random.default_rng(0).normal(size=(n, n, n))
    assert len({rotations.rotate(vol, r).tobytes() for r in rots}) == 20


def test_rotate_moves_a_voxel_by_the_matrix():
    n = 9
    p = np.array([1, -3, 2])  # centred (z, y, x)
    vol = np.zeros((n, n, n))
    vol[tuple(p + n // 2)] = 1
    for r in rotations.cube_rotations():
        out = rotations.rotate(vol, r)
        assert out[tuple(r @ p + n // 2)] == 1
        t = rotations.rotate(torch.from_numpy(vol)[None], r)[0].numpy()
        assert np.array_equal(t, out)


# --- wedge geometry --------------------------------------------------------------------

def test_wedge_mask_matches_projected_and_backprojected_sampling():
    """White noise projected over an ASYMMETRIC range (-50..+60) and back-projected has
    its Fourier power where wedge_mask says 'measured'. The zones 52..58° (measured) and
    -58..-52° (missing) have identical radial distributions, so their power ratio pins
    down the mask's sign convention: it would be inverted if the sign were wrong."""
    n = 64
    vol = np.random.default_rng(1).normal(size=(n, 2, n)).astype(np.float32)
    rec = backproject(project(vol, ASYM), ASYM, n)
    power = np.abs(np.fft.fftn(rec, axes=(0, 2))) ** 2
    fz = np.fft.fftfreq(n)[:, None, None]
    fx = np.fft.fftfreq(n)[None, None, :]
    radius = np.broadcast_to(np.hypot(fz, fx), power.shape)
    band = (radius > 0.2) & (radius < 0.45)

    def zone(lo, hi):
        return wedge_mask(power.shape, lo, hi).astype(bool) & band

    measured, mirror = zone(52, 58), zone(-58, -52)
    assert measured.sum() == mirror.sum() > 100
    assert power[measured].mean() > 10 * power[mirror].mean()
    core, missing = zone(-40, 50), band & ~wedge_mask(power.shape, -60, 70).astype(bool)
    assert power[core].mean() > 10 * power[missing].mean()


def test_cube_wedge_modes():
    n = 16
    m = rotations.cube_wedge(n, ASYM, "from_angles")
    assert m.dtype == np.float32 and m.shape == (n, n, n)
    # Hermitian-symmetric, so masked real volumes stay real
    assert np.array_equal(m, rotations.hermitian_part(m))
    inner = np.ones(n, bool)
    inner[n // 2] = False  # the Nyquist planes, where only the symmetric part is kept
    sel = np.ix_(inner, inner, inner)
    assert np.array_equal(m[sel], wedge_mask((n, n, n), -50, 60)[sel])
    v1 = rotations.cube_wedge(n, None, "isonet_v1")
    f = np.fft.fftfreq(n) * n
    r = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    assert v1[r > n / 2].sum() == 0
    assert v1[0, 0, 3] == 1 and v1[3, 0, 0] == 0  # kx axis measured, kz axis missing
    with pytest.raises(ValueError, match="isonet.wedge"):
        rotations.cube_wedge(n, ASYM, "bogus")


def test_pairs_are_wedged_rotated_crops():
    n, size = 16, 8
    cubes = torch.from_numpy(np.random.default_rng(2).normal(size=(3, n, n, n)).astype(np.float32))
    rots = rotations.isonet_rotations()
    mask = torch.from_numpy(rotations.cube_wedge(n, ASYM))
    inp, tgt = rotations.make_pairs(cubes, [0, 5, 19], rots, mask, size)
    assert inp.shape == tgt.shape == (3, 1, size, size, size)
    want = rotations.rotate(cubes[1].numpy(), rots[5])[4:12, 4:12, 4:12]
    assert np.array_equal(tgt[1, 0].numpy(), want)
    wedged = np.fft.ifftn(np.fft.fftn(rotations.rotate(cubes[2].numpy(), rots[19])) *
                          mask.numpy()).real[4:12, 4:12, 4:12]
    np.testing.assert_allclose(inp[2, 0].numpy(), wedged, atol=1e-5)


# --- filling ---------------------------------------------------------------------------

def test_fill_keeps_the_measured_fourier_coefficients():
    n = 16
    rng = np.random.default_rng(3)
    orig = torch.from_numpy(rng.normal(size=(2, n, n, n)).astype(np.float32))
    pred = torch.from_numpy(rng.normal(size=(2, n, n, n)).astype(np.float32))
    mask = rotations.cube_wedge(n, ASYM)
    filled = rotations.fill_wedge(pred, orig, torch.from_numpy(mask)).numpy()
    fo, fp, ff = (np.fft.fftn(a, axes=(1, 2, 3)) for a in (orig.numpy(), pred.numpy(), filled))
    m = np.broadcast_to(mask.astype(bool), ff.shape)
    scale = np.abs(fo).max()
    assert 0.3 < m.mean() < 0.9
    np.testing.assert_allclose(ff[m], fo[m], rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(ff[~m], fp[~m], rtol=0, atol=1e-5 * scale)


TINY = dict(cube_size=8, crop_size=16, filters=(4, 8), epochs=1, batch_size=4, max_steps=2,
            dropout=0.3, bn_recalibration=2, noise_pool=2, noise_filter="ramp")


def tiny_subtomos(n=5, seed=4):
    tomo = blob_tomogram(seed=seed)
    return extract.extract_subtomos(tomo, n, 8, 16, invert=False, seed=seed), tomo


@pytest.mark.parametrize("mode", ["subtomogram", "tomogram"])
def test_refine_iteration_keeps_the_originals_measured_region(mode):
    tomo = blob_tomogram(seed=4)
    ex = extract.extract_subtomos(tomo, 5, 8, 16, invert=False, seed=4, normalisation=mode)
    opts = refine.TrainOptions(**TINY, normalisation=mode)
    res = refine.refine_iteration(ex["cubes"], ASYM, 1, opts, seed=0)
    mask = rotations.cube_wedge(16, ASYM)
    orig = refine.prepare_originals(torch.from_numpy(ex["cubes"]), torch.from_numpy(mask),
                                    opts.percentiles, mode).numpy()
    m = mask.astype(bool)
    if mode == "subtomogram":
        m[0, 0, 0] = False  # the per-cube re-normalisation shifts the mean
    for o, f in zip(orig, res["filled"]):
        fo, ff = np.fft.fftn(o)[m], np.fft.fftn(f)[m]
        # the per-cube normalisation rescales; the tomogram mode keeps the scale
        a = np.vdot(fo, ff).real / np.vdot(fo, fo).real if mode == "subtomogram" else 1.0
        assert a > 0
        np.testing.assert_allclose(ff, a * fo, atol=1e-5 * np.abs(ff).max())
        assert not np.allclose(f, (o - o.mean()) * a + f.mean(), atol=1e-3)  # wedge filled
    assert set(res["history"][0]) >= {"train_loss", "val_loss", "val_loss_identity"}


def test_nan_loss_is_a_clear_error():
    ex, _ = tiny_subtomos()
    cubes = ex["cubes"].copy()
    cubes[:, 0, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="loss is nan"):
        refine.refine_iteration(cubes, ASYM, 1, refine.TrainOptions(**TINY), seed=0)


def test_noise_schedule_and_noise_cubes():
    levels = [refine.noise_level(i) for i in (1, 10, 11, 15, 16, 20, 21, 26, 40)]
    assert levels == [0, 0, 0.05, 0.05, 0.10, 0.10, 0.15, 0.20, 0.20]
    assert refine.noise_level(30, 11, 5, []) == 0
    cubes = refine.noise_cubes(ASYM, 16, 3, "none", np.random.default_rng(0))
    assert cubes.shape == (3, 16, 16, 16)
    np.testing.assert_allclose(cubes.std(dim=(1, 2, 3)).numpy(), 1, rtol=1e-4)
    # back-projected noise lives in the measured region only
    power = (np.abs(np.fft.fftn(cubes.numpy(), axes=(1, 2, 3))) ** 2).mean(0)
    fz = np.fft.fftfreq(16)[:, None, None]
    fx = np.fft.fftfreq(16)[None, None, :]
    band = np.broadcast_to((np.hypot(fz, fx) > 0.1) & (np.hypot(fz, fx) < 0.4), power.shape)
    inside = wedge_mask(power.shape, -40, 50).astype(bool) & band
    outside = ~wedge_mask(power.shape, -60, 70).astype(bool) & band
    assert power[inside].mean() > 8 * power[outside].mean()


def test_bad_sizes_name_the_key():
    with pytest.raises(InputError, match="isonet.cube_size"):
        refine.TrainOptions(cube_size=12, crop_size=16, filters=(4, 8, 16))
    with pytest.raises(InputError, match="isonet.crop_size"):
        extract.extract_subtomos(blob_tomogram((12, 40, 40)), 4, 8, 16, False, 0)


# --- U-Net -----------------------------------------------------------------------------

def test_unet_size_and_shapes():
    assert 26.5e6 < count_parameters(UNet((64, 128, 256))) < 28e6  # IsoNet: ~27 M
    net = UNet((4, 8), convs_per_block=2, identity_init=True).eval()
    x = torch.randn(2, 1, 8, 12, 16)
    assert torch.equal(net(x), x)
    with pytest.raises(ValueError, match="multiple"):
        net(torch.randn(1, 1, 8, 10, 8))


# --- prediction ------------------------------------------------------------------------

def test_tiled_prediction_of_an_identity_network_is_exact():
    vol = np.random.default_rng(5).normal(size=(20, 37, 50)).astype(np.float32)
    out = predict.predict_volume(vol, lambda x: x, tile=16, overlap=6, multiple=8)
    assert np.array_equal(out, vol)
    # any voxel-wise network too: the blending weights form a partition of unity
    out = predict.predict_volume(vol, lambda x: torch.tanh(x) * 2, tile=16, overlap=6,
                                 multiple=8, batch_size=3)
    np.testing.assert_allclose(out, np.tanh(vol) * 2, atol=1e-6)


def test_predict_tomogram_identity_returns_the_input():
    tomo = blob_tomogram((20, 30, 26)) * 3 + 1
    opts = refine.TrainOptions(**{**TINY, "dropout": 0.0})
    state = UNet(opts.filters, opts.convs_per_block, identity_init=True).state_dict()
    for invert in (False, True):
        out = predict.predict_tomogram(tomo, state, opts, invert, tile=16, overlap=4)
        np.testing.assert_allclose(out, tomo, rtol=0, atol=1e-5 * np.abs(tomo).max())


def test_tile_layout_covers_with_overlap():
    for length, tile, overlap in [(100, 32, 8), (33, 32, 8), (32, 32, 8), (200, 48, 16)]:
        starts = predict.tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == max(0, length - tile)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


# --- mask and extraction ---------------------------------------------------------------

def test_masks_select_density_and_structure():
    tomo = np.zeros((20, 40, 40), np.float32)
    tomo[8:12, 8:16, 8:16] = 1.0
    dens = isomask.density_mask(tomo, 10, patch_size=2)
    assert dens[10, 12, 12] and not dens[10, 35, 35]
    std = isomask.std_mask(tomo + np.random.default_rng(0).normal(0, 1e-3, tomo.shape), 10, 2)
    assert std[10, 8, 12] and not std[2, 35, 35]
    m = isomask.make_mask(tomo, 100, 100, 2, z_crop=0.25)
    assert not m[:5].any() and m[5:15].all() and not m[15:].any()


def test_extraction_round_trip(tmp_path):
    tomo = blob_tomogram()
    ex = extract.extract_subtomos(tomo, 7, 8, 16, invert=True, seed=1,
                                  mask_opts={"std_percentage": 30})
    assert ex["cubes"].shape == (7, 16, 16, 16)
    for cube, (z, y, x) in zip(ex["cubes"], ex["centres"]):
        assert ex["mask"][z, y, x]
        ref = extract.percentile_normalise(-tomo[z - 8:z + 8, y - 8:y + 8, x - 8:x + 8])[0]
        np.testing.assert_array_equal(cube, ref)
        lo, hi = np.percentile(cube, [4, 96])
        assert abs(lo) < 1e-6 and abs(hi - 1) < 1e-6
    star, stack = tmp_path / "subtomos.star", tmp_path / "subtomos.mrc"
    extract.write_subtomos(star, stack, ex["cubes"], ex["centres"], 8, "tomo.mrc", True, 5.0)
    cubes, table, voxel = extract.read_subtomos(star)
    assert np.array_equal(cubes, ex["cubes"]) and voxel == 5.0
    assert table["rlnCoordinateZ"].tolist() == ex["centres"][:, 0].tolist()
    assert (table["rlnCubeSize"] == 8).all() and (table["rlnCropSize"] == 16).all()
    again = extract.extract_subtomos(tomo, 7, 8, 16, invert=True, seed=1,
                                     mask_opts={"std_percentage": 30})
    assert np.array_equal(again["cubes"], ex["cubes"])
    whole = extract.extract_subtomos(tomo, 7, 8, 16, invert=True, seed=1,
                                     mask_opts={"std_percentage": 30}, normalisation="tomogram")
    norm = extract.percentile_normalise(-tomo)[0]
    assert np.array_equal(whole["centres"], ex["centres"])
    for cube, (z, y, x) in zip(whole["cubes"], whole["centres"]):
        np.testing.assert_array_equal(cube, norm[z - 8:z + 8, y - 8:y + 8, x - 8:x + 8])


# --- resumability ----------------------------------------------------------------------

def _same_iteration(a, b):
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(read_mrc(a / "subtomos.mrc", 4)[0], read_mrc(b / "subtomos.mrc", 4)[0])
    la, lb = (pd.read_csv(p / "loss.csv").drop(columns="seconds") for p in (a, b))
    pd.testing.assert_frame_equal(la, lb)


def test_resumed_run_equals_straight_run(tmp_path):
    """Iterations 1-2 in one process == iteration 1, then 2 in a fresh process from files."""
    ex, _ = tiny_subtomos(n=6)
    star, stack, tlt = tmp_path / "subtomos.star", tmp_path / "subtomos.mrc", tmp_path / "a.tlt"
    extract.write_subtomos(star, stack, ex["cubes"], ex["centres"], 8, "t.mrc", False, 1.0)
    write_tlt(tlt, ASYM)
    opts = {**refine.TrainOptions(**TINY).__dict__}
    schedule = dict(start_iter=2, every=1, levels=[0.1])  # iteration 2 adds noise
    refine.run_refine(ex["cubes"], ASYM, 2, refine.TrainOptions(**opts), schedule, seed=7,
                      out_dir=tmp_path / "straight")
    res = tmp_path / "resumed"
    refine.refine_iteration_files(star, tlt, 1, opts, res / "iter_1/model.pt",
                                  res / "iter_1/subtomos.mrc", res / "iter_1/loss.csv", seed=7)
    code = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from wedgebench.recon.isonet import refine
        r = {str(res)!r}
        refine.refine_iteration_files({str(star)!r}, {str(tlt)!r}, 2, {opts!r},
            r + "/iter_2/model.pt", r + "/iter_2/subtomos.mrc", r + "/iter_2/loss.csv",
            prev_model=r + "/iter_1/model.pt", prev_filled=r + "/iter_1/subtomos.mrc",
            level={refine.noise_level(2, **schedule)}, seed=7)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    for it in (1, 2):
        _same_iteration(tmp_path / "straight" / f"iter_{it}", res / f"iter_{it}")
    # and the iterations really differ (the test would pass trivially otherwise)
    s1 = torch.load(res / "iter_1/model.pt", weights_only=True)
    s2 = torch.load(res / "iter_2/model.pt", weights_only=True)
    assert not all(torch.equal(s1[k], s2[k]) for k in s1)


# --- workflow --------------------------------------------------------------------------

@pytest.mark.slow
def test_workflow_iterations_are_cached_stages(tmp_path):
    """Real Snakemake: IsoNet on the tiny spheres; raising `iterations` reuses 1..N."""
    from workflow_utils import planned_jobs, run_snakemake, tiny_config

    isonet = {"n_subtomos": 4, "cube_size": 8, "crop_size": 16, "iterations": 2, "epochs": 1,
              "max_steps": 2, "batch_size": 4, "unet": {"filters": [4, 8]},
              "predict": {"tile": 16, "overlap": 4}}
    cfg = tiny_config(methods=["imod_wbp", "isonet"], isonet=isonet)
    cfg["datasets"] = {"spheres": cfg["datasets"]["spheres"]}
    acq = "tilt-60_60_step6"
    base = tmp_path / "results" / "spheres" / acq
    targets = [f"results/spheres/{acq}/recon/isonet.mrc", f"results/spheres/{acq}/isonet/runtime.json"]
    run_snakemake(tmp_path, cfg, *targets)
    out, _ = read_mrc(base / "recon" / "isonet.mrc")
    wbp, _ = read_mrc(base / "recon" / "imod_wbp.mrc")
    assert out.shape == wbp.shape and np.isfinite(out).all()
    table = extract.read_subtomos(base / "isonet" / "subtomos.star")[1]
    assert len(table) == 4
    benches = sorted((tmp_path / "results" / "benchmarks" / "spheres" / acq / "isonet").glob("*.tsv"))
    assert [b.name for b in benches] == ["extract.tsv", "predict.tsv",
                                         "refine_1.tsv", "refine_2.tsv"]
    want = sum(pd.read_csv(b, sep="\t")["s"].mean() for b in benches)
    runtime = pd.read_json(base / "isonet" / "runtime.json", typ="series")
    assert runtime["runtime_s"] == pytest.approx(want) and runtime["wall_s"] == pytest.approx(want)
    # raising the iteration count plans only the new iteration, predict and the runtime sum
    cfg["isonet"] = {**isonet, "iterations": 3}
    plan = planned_jobs(run_snakemake(tmp_path, cfg, "-n", *targets))
    assert plan == {"isonet_refine": 1, "isonet_predict": 1, "isonet_runtime": 1}
