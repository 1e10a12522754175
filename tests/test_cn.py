"""Coordinate-network reconstruction: model, fitting, slab plan, stitching, checkpoints."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wedgebench.io import InputError
from wedgebench.metrics.shape import sphere_zx_ratio
from wedgebench.phantoms import make_phantom
from wedgebench.projector import Projector
from wedgebench.recon.cn import drivers, fit, model, optimise, schedule, slabs
from wedgebench.tiltseries import simulate_tiltseries




SMALL = dict(width=48, depth=3, omega0=30.0, encoding="none", positivity="softplus",
             coordinates="isotropic", output_scale="auto",
             slab_size=4, overlap=0, chunks=2, anchor_iterations=300, anchor_lr=2e-3,
             anchor_lr_end=2e-4, iterations=120, lr=1e-3, lr_end=1e-4, reg_weight=0.0,
             output="clip_rescale", mixed_precision=True, log_every=0)


def blob_slab(nz=8, j=2, nx=16, seed=0):
    """A smooth random non-negative slab and its exact reprojection."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:nz, :j, :nx].astype(np.float32)
    vol = np.zeros((nz, j, nx), np.float32)
    for _ in range(3):
        cz, cx = rng.uniform(2, nz - 2), rng.uniform(3, nx - 3)
        vol += np.exp(-((z - cz) ** 2 + (x - cx) ** 2) / 6.0)
    angles = np.arange(-60, 61, 10.0)
    proj = Projector(nz, nx, angles)
    with torch.no_grad():
        meas = proj.forward(torch.from_numpy(vol)).numpy()
    return vol, meas, proj


# ---------------------------------------------------------------- model


def test_paper_network_has_264449_parameters_and_siren_init():
    net = model.CoordinateNetwork(width=256, depth=5, omega0=30.0, seed=0)
    assert model.n_parameters(net) == 264_449
    first = net.body[0].linear.weight
    assert first.abs().max() <= 1 / 3 and first.abs().max() > 0.9 / 3
    for layer in list(net.body[1:]) + [net.head]:
        bound = math.sqrt(6 / 256) / 30
        w = layer.linear.weight if hasattr(layer, "linear") else layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        # uniform: the variance of U(-b, b) is b²/3
        assert w.var().item() == pytest.approx(bound ** 2 / 3, rel=0.05)


def test_sine_layer_matches_its_definition():
    layer = model.SineLayer(3, 5, omega0=30.0, first=True,
                            generator=torch.Generator().manual_seed(1))
    x = torch.rand(7, 3)
    want = torch.sin(30.0 * (x @ layer.linear.weight.T + layer.linear.bias))
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)


def test_fourier_encoding_and_positivity():
    net = model.CoordinateNetwork(width=8, depth=2, encoding="fourier", n_features=5,
                                  scale=3.0, positivity="abs", seed=2)
    c = torch.rand(11, 3)
    enc = net.encode(c)
    arg = 2 * math.pi * c @ net.fourier_b.T
    torch.testing.assert_close(enc, torch.cat([torch.sin(arg), torch.cos(arg)], -1))
    assert net.body[0].linear.in_features == 10
    assert (net(c) >= 0).all()
    assert "fourier_b" in net.state_dict()
    raw = model.CoordinateNetwork(width=8, depth=2, positivity="none", seed=2)
    soft = model.CoordinateNetwork(width=8, depth=2, positivity="softplus", softplus_beta=3.0,
                                   seed=2)
    torch.testing.assert_close(soft(c), torch.log1p(torch.exp(3.0 * raw(c))) / 3.0)
    with pytest.raises(ValueError, match="encoding"):
        model.CoordinateNetwork(encoding="hash")


def test_coordinates_are_local_unit_cube():
    c = model.slab_coordinates(4, 2, 5)
    assert c.shape == (4, 2, 5, 3)
    torch.testing.assert_close(c[0, 0, :, 0], torch.linspace(0, 1, 5))  # x: last axis
    torch.testing.assert_close(c[0, :, 0, 1], torch.tensor([0.0, 1.0]))  # y
    torch.testing.assert_close(c[:, 0, 0, 2], torch.linspace(0, 1, 4))  # z: first axis
    assert torch.equal(c[2, 1, 3], c[2, 0, 3] + torch.tensor([0.0, 1.0, 0.0]))


def test_defaults_match_the_config_schema():
    import yaml
    from pathlib import Path

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas"
                             / "config.schema.yaml").read_text())
    props = schema["properties"]["cn"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == model.CN_DEFAULTS
    with pytest.raises(ValueError, match="widht"):
        model.options({"widht": 3})


def test_weights_round_trip_with_weights_only(tmp_path):
    net = model.build_network(dict(SMALL, encoding="fourier", n_features=4), seed=5)
    path = tmp_path / "w.pt"
    model.save_weights(path, net.state_dict())
    state = torch.load(path, weights_only=True)
    other = model.build_network(dict(SMALL, encoding="fourier", n_features=4), seed=99)
    other.load_state_dict(state)
    c = torch.rand(13, 3)
    torch.testing.assert_close(other(c), net(c), rtol=0, atol=0)
    assert model.load_weights(path).keys() == state.keys()
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        model.load_weights(tmp_path / "bad.pt")


# ---------------------------------------------------------------- fitting


def test_learning_rate_schedule():
    lr = [schedule.learning_rate(i, 11, 1e-3, 1e-4) for i in range(11)]
    assert lr[:5] == [1e-3] * 5
    assert lr[10] == pytest.approx(1e-4)
    # log-linear between the midpoint and the end
    assert np.allclose(np.diff(np.log(lr[5:])), np.log(0.1) / 5)


def test_loss_falls_tenfold_on_a_tiny_slab():
    _, meas, proj = blob_slab()
    net = model.build_network(dict(SMALL, width=32), seed=0)
    _, losses = optimise.fit_slab(meas, proj, net, iterations=150, lr=2e-3, lr_end=2e-4)
    assert losses[-1][1] <= losses[0][1] / 10


def test_fit_is_deterministic_on_cpu():
    _, meas, proj = blob_slab()
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = model.build_network(dict(SMALL, width=16), seed=3)
        outs.append(optimise.fit_slab(meas, proj, net, iterations=20, lr=1e-3, lr_end=1e-4)[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_nan_loss_raises_a_clear_error():
    _, meas, proj = blob_slab()
    meas = meas.copy()
    meas[0, 0, 3] = np.nan
    net = model.build_network(dict(SMALL, width=16), seed=0)
    with pytest.raises(FloatingPointError, match=r"slab 7 .*iteration 0"):
        optimise.fit_slab(meas, proj, net, iterations=5, lr=1e-3, lr_end=1e-4, name="slab 7")


def test_exploding_loss_raises(monkeypatch):
    _, meas, proj = blob_slab()
    net = model.build_network(dict(SMALL, width=16), seed=0)
    monkeypatch.setattr(optimise, "EXPLODE_FACTOR", 3.0)  # reachable within a few huge steps
    with pytest.raises(FloatingPointError, match="diverged at iteration [1-9]"):
        optimise.fit_slab(meas * 1e-7, proj, net, iterations=50, lr=1.0, lr_end=1.0)


@pytest.mark.filterwarnings("ignore:placed only")
def test_warm_start_from_anchor_beats_random_init():
    """A slab started from its neighbour's weights reaches the loss that a random
    initialisation reaches after N iterations in clearly fewer iterations."""
    vol, _ = make_phantom("spheres", dict(shape=[16, 24, 32], voxel_size=10.0, count=3,
                                          diameter=[10, 13]), seed=4)
    angles = np.arange(-60, 61, 4.0)
    stack = simulate_tiltseries(vol, angles, oversampling=2)
    proj = Projector(16, 32, angles)
    cfg = dict(SMALL, width=32)
    opts = dict(gain=model.output_gain(stack, 16), coordinates="isotropic")
    anchor = model.build_network(cfg, seed=0)
    optimise.fit_slab(stack[:, 10:12], proj, anchor, iterations=200, lr=1e-3, lr_end=1e-4,
                      **opts)
    n = 100
    rand = model.build_network(cfg, seed=1)
    _, rand_losses = optimise.fit_slab(stack[:, 12:14], proj, rand, iterations=n, lr=1e-3,
                                       lr_end=1e-4, **opts)
    target = min(l for _, l, _ in rand_losses)
    warm = model.build_network(cfg, seed=1)
    warm.load_state_dict(anchor.state_dict())
    _, warm_losses = optimise.fit_slab(stack[:, 12:14], proj, warm, iterations=n, lr=3e-4,
                                       lr_end=3e-5, **opts)
    assert warm_losses[0][1] < 0.25 * rand_losses[0][1]  # the neighbour is a good start
    reached = [it for it, l, _ in warm_losses if l <= target]
    assert reached and reached[0] < 0.5 * n, (target, warm_losses[::10])


def _affine_scores(gt, rec):
    """PSNR and 3-D SSIM (skimage) after the least-squares affine fit of rec to gt."""
    a = np.stack([rec.ravel(), np.ones(rec.size)], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, gt.ravel().astype(np.float64), rcond=None)
    fitted = (a @ coef).reshape(gt.shape)
    rng = float(gt.max() - gt.min())
    return (peak_signal_noise_ratio(gt, fitted, data_range=rng),
            structural_similarity(gt.astype(np.float64), fitted, data_range=rng))


def test_cn_recovers_a_nearly_full_range_acquisition():
    """Mechanism, not verdict: from ±87° tilts (almost no wedge) CN must reproduce the
    phantom (measured 41.2 dB, SSIM 0.998, z/x 0.993) and keep spheres round."""
    vol, _ = make_phantom("spheres", dict(shape=[16, 16, 40], voxel_size=10.0, count=2,
                                          diameter=[9, 12]), seed=2)
    angles = np.arange(-87, 88, 3.0)
    stack = simulate_tiltseries(vol, angles, oversampling=2)
    rec = fit.reconstruct(stack, angles, 16, SMALL, seed=0)
    psnr, ssim = _affine_scores(vol, rec)
    assert psnr > 36.0 and ssim > 0.99
    assert abs(sphere_zx_ratio(vol, rec) - 1) < 0.03


# ---------------------------------------------------------------- slabs


def test_slab_ranges_cover_ny_with_overlap():
    assert slabs.slab_ranges(10, 4, 0) == ((0, 4), (4, 8), (6, 10))
    assert slabs.slab_ranges(10, 4, 2) == ((0, 4), (2, 6), (4, 8), (6, 10))
    assert slabs.slab_ranges(3, 8, 0) == ((0, 3),)
    with pytest.raises(ValueError, match="overlap"):
        slabs.slab_ranges(10, 4, 4)


@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 9])
def test_plan_runs_outward_from_the_middle_anchor(chunks):
    plan = slabs.make_plan(40, 4, 1, chunks)
    n = len(plan.slabs)
    assert plan.anchor == (n - 1) // 2
    assert len(plan.chunks) == chunks
    seen = [i for chunk in plan.chunks for run in chunk for i in run]
    assert sorted(seen) == [i for i in range(n) if i != plan.anchor]
    for chunk in plan.chunks:
        for run in chunk:
            # contiguous, on one side of the anchor, moving away from it
            d = np.asarray(run) - plan.anchor
            assert np.all(np.abs(np.diff(run)) == 1)
            assert len(set(np.sign(d))) == 1
            assert np.all(np.diff(np.abs(d)) == 1)
    if 2 <= chunks <= n - 1:
        lengths = [len(run) for chunk in plan.chunks for run in chunk]
        assert max(lengths) - min(lengths) <= math.ceil((n - 1) / chunks)


def test_auto_slab_size_follows_the_parameter_ratio():
    # 264449 / (2 · 61 · 1024) = 2.1 → j = 2 (the paper's spheres)
    assert slabs.slab_size("auto", 1024, 61, 1024, 264_449, 2.0) == 2
    # 264449 / (0.5 · 61 · 360) = 24.1 → 24
    assert slabs.slab_size("auto", 360, 61, 360, 264_449, 0.5) == 24
    assert slabs.slab_size("auto", 5, 61, 10, 10**9, 2.0) == 5
    assert slabs.slab_size(6, 100, 61, 64, 1) == 6
    with pytest.raises(ValueError, match="slab_size"):
        slabs.slab_size(0, 100, 61, 64, 1)


@pytest.mark.parametrize("j,overlap", [(4, 0), (5, 0), (4, 1), (6, 3), (3, 2)])
def test_merge_puts_every_slab_at_its_y(j, overlap):
    ny, nz, nx = 23, 3, 5
    ranges = slabs.slab_ranges(ny, j, overlap)
    parts = [(a, b, np.broadcast_to(np.arange(a, b, dtype=np.float32)[None, :, None],
                                    (nz, b - a, nx))) for a, b in ranges]
    rng = np.random.default_rng(0)
    out = slabs.merge([parts[i] for i in rng.permutation(len(parts))], ny)
    np.testing.assert_allclose(out, np.broadcast_to(np.arange(ny)[None, :, None], out.shape),
                               atol=1e-5)


def test_merge_blends_overlaps_linearly():
    # two constant slabs 0 and 1 overlapping on rows 4..6: weights ramp 1/4, 2/4, 3/4
    a = np.zeros((1, 7, 1), np.float32)
    b = np.ones((1, 7, 1), np.float32)
    out = slabs.merge([(0, 7, a), (4, 11, b)], 11)[0, :, 0]
    np.testing.assert_allclose(out, [0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1], atol=1e-6)
    with pytest.raises(ValueError, match="covered by no slab"):
        slabs.merge([(0, 4, a[:, :4])], 6)
    with pytest.raises(ValueError, match="twice"):
        slabs.merge([(0, 7, a), (0, 7, a)], 7)


def test_slab_and_loss_files_round_trip(tmp_path):
    fits = [drivers.SlabFit(3, 6, 8, np.full((2, 2, 4), 3.0, np.float32), [(0, 1.5, 0.1)]),
            drivers.SlabFit(4, 8, 10, np.full((2, 2, 4), 4.0, np.float32), [(0, 2.5, 0.2)])]
    slabs.save_slabs(tmp_path / "s.npz", fits)
    back = slabs.load_slabs(tmp_path / "s.npz")
    assert [(i, a, b) for i, a, b, _ in back] == [(3, 6, 8), (4, 8, 10)]
    np.testing.assert_array_equal(back[1][3], fits[1].volume)
    slabs.save_losses(tmp_path / "l.csv", fits)
    lines = (tmp_path / "l.csv").read_text().splitlines()
    assert lines[0] == "slab,iteration,loss,seconds" and lines[2].startswith("4,0,2.5,")
    slabs.save_slabs(tmp_path / "empty.npz", [])
    assert slabs.load_slabs(tmp_path / "empty.npz") == []


def test_postprocess_and_runtime_summary(tmp_path):
    v = np.array([-1.0, 0.2, 0.6, 2.0], np.float32)
    np.testing.assert_allclose(slabs.postprocess(v, "clip_rescale"), [0, 0.2, 0.6, 1])
    np.testing.assert_array_equal(slabs.postprocess(v, "raw"), v)
    head = "s\th:m:s\tmax_rss\tcpu_time\n"
    for name, s in (("a", 10.0), ("c0", 5.0), ("c1", 7.5)):
        (tmp_path / f"{name}.tsv").write_text(head + f"{s}\t0:00:10\t1.0\t{2 * s}\n")
    rt = slabs.runtime_summary(tmp_path / "a.tsv", [tmp_path / "c0.tsv", tmp_path / "c1.tsv"])
    assert rt["runtime_s"] == pytest.approx(22.5) and rt["wall_s"] == pytest.approx(17.5)
    assert rt["cpu_s"] == pytest.approx(45.0)


def test_chunks_reproduce_the_single_process_reconstruction():
    """Anchor + chunk jobs + merge (as the workflow runs them) = reconstruct()."""
    rng = np.random.default_rng(1)
    stack = rng.random((7, 11, 12)).astype(np.float32)
    angles = np.linspace(-60, 60, 7)
    cfg = dict(SMALL, width=8, depth=2, slab_size=3, overlap=1, chunks=3,
               anchor_iterations=4, iterations=3)
    plan, anchor, state = fit.fit_anchor(stack, angles, 6, cfg, seed=0)
    parts = [anchor]
    for c in range(3):
        parts += fit.fit_chunk(stack, angles, 6, cfg, c, state, seed=0)[0]
    assert sorted(p.index for p in parts) == list(range(len(plan.slabs)))
    merged = slabs.postprocess(slabs.merge([(p.y0, p.y1, p.volume) for p in parts], 11),
                               "clip_rescale")
    np.testing.assert_array_equal(merged, fit.reconstruct(stack, angles, 6, cfg, seed=0))


@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_authors_chain_start_plan(chunks):
    """chain_start authors: the anchor job's lead is the two slabs below the anchor; the
    lower side continues below them, the upper side starts by refitting the anchor."""
    plan = slabs.make_plan(80, 8, 0, chunks, "authors")  # 10 slabs, anchor 4
    assert plan.anchor == 4 and plan.lead == (3, 2) and not plan.keeps_anchor
    runs = [run for chunk in plan.chunks for run in chunk]
    merged = [*plan.lead, *(i for run in runs for i in run)]
    assert sorted(merged) == list(range(10))  # every slab once; the anchor's from a chunk
    assert sorted(runs) == [(1, 0), (4, 5, 6, 7, 8, 9)]  # two chains, never cut
    assert len(plan.chunks) == chunks
    default = slabs.make_plan(80, 8, 0, chunks)
    assert default.lead == () and default.keeps_anchor


def test_authors_chain_start_small_plans_do_not_refit_into_chunk_zero():
    """With no slab below the anchor there is no lead and no refit (the authors' code
    refits the central slices into chunk 0 then: not reproduced)."""
    for ny in (8, 16):  # one or two slabs: anchor 0
        plan = slabs.make_plan(ny, 8, 0, 2, "authors")
        assert plan.anchor == 0 and plan.lead == () and plan.keeps_anchor
        assert plan.chunks == slabs.make_plan(ny, 8, 0, 2).chunks
    plan = slabs.make_plan(24, 8, 0, 2, "authors")  # three slabs: the lead is slab 0 only
    assert plan.lead == (0,) and plan.chunks == (((1, 2),), ())
    with pytest.raises(ValueError, match="chain_start"):
        slabs.make_plan(24, 8, 0, 2, "below")


def test_authors_chain_start_fits():
    """The lead is a chain from the anchor's weights; every chunk starts from the lead's
    last weights; the merge has the refitted anchor slab, not the anchor job's."""
    rng = np.random.default_rng(2)
    stack = rng.random((7, 15, 12)).astype(np.float32)
    angles = np.linspace(-60, 60, 7)
    cfg = dict(SMALL, width=8, depth=2, slab_size=3, overlap=0, chunks=2,
               anchor_iterations=4, iterations=3, chain_start="authors")
    plan, anchor, state = fit.fit_anchor(stack, angles, 6, cfg, seed=0)
    assert plan.anchor == 2 and plan.lead == (1, 0)
    lead, lead_state = fit.fit_lead(stack, angles, 6, cfg, plan, state, seed=0)
    chain, chain_state = fit.fit_chain(stack, angles, 6, [(1, 3, 6), (0, 0, 3)], cfg,
                                       init_state=state, seed=0, anchor=False)
    for a, b in zip(lead, chain):
        np.testing.assert_array_equal(a.volume, b.volume)
    up = fit.fit_chunk(stack, angles, 6, cfg, 0, lead_state, seed=0)[0]
    assert [f.index for f in up] == [2, 3, 4]  # nothing below the lead: chunk 1 is empty
    assert fit.fit_chunk(stack, angles, 6, cfg, 1, lead_state, seed=0)[0] == []
    refit = fit.fit_chain(stack, angles, 6, [(2, 6, 9)], cfg, init_state=lead_state,
                          seed=0, anchor=False)[0][0]
    np.testing.assert_array_equal(up[0].volume, refit.volume)
    assert not np.array_equal(up[0].volume, anchor.volume)
    merged = slabs.postprocess(slabs.merge([(p.y0, p.y1, p.volume) for p in lead + up], 15),
                               "clip_rescale")
    np.testing.assert_array_equal(merged, fit.reconstruct(stack, angles, 6, cfg, seed=0))
    default = fit.reconstruct(stack, angles, 6, dict(cfg, chain_start="anchor"), seed=0)
    assert not np.array_equal(default, merged)
    with pytest.raises(ValueError, match="warm_start 'neighbour'"):
        fit.plan_for(stack.shape, dict(cfg, warm_start="anchor"))
