"""CN with held-out rays and early stopping (cn.holdout_fraction, the cn_denoise variant)."""
import numpy as np
import pytest
import torch

from wedgebench.projector import Projector
from wedgebench.recon.cn import drivers, fit, model, optimise, schedule, slabs
from wedgebench.recon.cn.holdout import EarlyStopping, holdout_mask, holdout_options

TINY = dict(width=16, depth=2, slab_size=3, overlap=1, chunks=2, anchor_iterations=12,
            iterations=8)


def noisy_blob_slab(sigma=0.3, seed=0):
    """A smooth slab's reprojection (13 tilts, 2 rows, 16 px) plus Gaussian noise of
    ``sigma`` × its standard deviation: a network of ~1k weights fits that noise within a
    few tens of steps."""
    rng = np.random.default_rng(seed)
    nz, j, nx = 8, 2, 16
    z, _, x = np.mgrid[:nz, :j, :nx].astype(np.float32)
    vol = np.zeros((nz, j, nx), np.float32)
    for _ in range(3):
        cz, cx = rng.uniform(2, nz - 2), rng.uniform(3, nx - 3)
        vol += np.exp(-((z - cz) ** 2 + (x - cx) ** 2) / 6.0)
    proj = Projector(nz, nx, np.arange(-60, 61, 10.0))
    with torch.no_grad():
        meas = proj.forward(torch.from_numpy(vol)).numpy()
    noisy = meas + rng.normal(0, sigma * meas.std(), meas.shape)
    return noisy.astype(np.float32), proj


def random_series(seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((9, 13, 16)).astype(np.float32), np.linspace(-60, 60, 9)


def todays_fit(meas, proj, net, *, iterations, lr, lr_end, gain):
    """The CN fit as it was before hold-outs existed (CPU path), written out here."""
    nz, j, nx = proj.nz, meas.shape[1], proj.nx
    coords = model.slab_coordinates(nz, j, nx, mode="unit").reshape(-1, 3)
    target = torch.from_numpy(meas)[:, None]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0, amsgrad=True)
    losses = []
    for it in range(iterations):
        for group in opt.param_groups:
            group["lr"] = schedule.learning_rate(it, iterations, lr, lr_end)
        vol = (gain * net(coords)).reshape(nz, j, nx)
        pred = proj.forward(vol).reshape(proj.n_tilts, 1, j, proj.n_det)
        loss = (pred - target).abs().mean(dim=(0, 2, 3))
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        return (gain * net(coords)).reshape(nz, j, nx).numpy(), losses


# ---------------------------------------------------------------- off = today's fit


def test_fraction_zero_is_todays_fit():
    meas, proj = noisy_blob_slab()
    ours = model.build_network(dict(width=16, depth=2), seed=3)
    ref = model.build_network(dict(width=16, depth=2), seed=3)
    vol, losses = optimise.fit_slab(meas, proj, ours, iterations=15, lr=2e-3, lr_end=2e-4,
                                    gain=0.5)
    want, want_losses = todays_fit(meas, proj, ref, iterations=15, lr=2e-3, lr_end=2e-4,
                                   gain=0.5)
    np.testing.assert_array_equal(vol, want)
    assert [l for _, l, _ in losses] == want_losses


@pytest.mark.parametrize("ensemble", [False, True])
def test_fraction_zero_changes_nothing_in_the_workflow_path(ensemble, tmp_path):
    """holdout_fraction 0 (whatever holdout_every/patience say) = no hold-out keys at all:
    the same volumes, the same state, the old loss-file columns and no extra arrays."""
    stack, angles = random_series()
    base = dict(TINY, ensemble=ensemble)
    off = dict(base, holdout_fraction=0.0, holdout_every=1, patience=1)
    for cfg in (base, off):
        plan, anchor, state = fit.fit_anchor(stack, angles, 6, cfg, seed=0)
        fits, last = fit.fit_chunk(stack, angles, 6, cfg, 0, state, seed=0)
        cfg["_out"] = [anchor.volume] + [f.volume for f in fits], last, fits
    for a, b in zip(base["_out"][0], off["_out"][0]):
        np.testing.assert_array_equal(a, b)
    for k, v in base["_out"][1].items():
        assert torch.equal(off["_out"][1][k], v)
    fits = off["_out"][2]
    assert all(f.holdout == [] and f.kept is None and f.stopped is None for f in fits)
    slabs.save_losses(tmp_path / "l.csv", fits)
    assert (tmp_path / "l.csv").read_text().splitlines()[0] == "slab,iteration,loss,seconds"
    slabs.save_slabs(tmp_path / "s.npz", fits)
    with np.load(tmp_path / "s.npz") as data:
        assert "kept" not in data.files


# ---------------------------------------------------------------- the held-out rays


def test_mask_is_seeded_and_stratified():
    a = holdout_mask((5, 7, 40), 0.1, seed=3)
    assert a.shape == (5, 7, 40) and a.dtype == bool
    assert (a.sum(axis=2) == 4).all()  # every (tilt, row): round(0.1 · 40) pixels
    np.testing.assert_array_equal(a, holdout_mask((5, 7, 40), 0.1, seed=3))
    assert not np.array_equal(a, holdout_mask((5, 7, 40), 0.1, seed=4))
    assert not np.array_equal(a[0], a[1])  # not the same pixels in every tilt
    assert (holdout_mask((2, 3, 40), 0.001, 0).sum(axis=2) == 1).all()  # at least one
    assert (holdout_mask((2, 3, 4), 0.99, 0).sum(axis=2) == 3).all()  # one left to train
    assert not holdout_mask((2, 3, 4), 0.0, 0).any()


def test_held_out_rays_are_excluded_from_the_training_loss():
    """Held-out rays set to 1e6: the same training losses and the same volume at every
    iteration, bit for bit; only the held-out losses see the difference."""
    meas, proj = noisy_blob_slab()
    mask = holdout_mask(meas.shape, 0.25, seed=0)
    corrupt = np.where(mask, np.float32(1e6), meas)
    runs = []
    for data in (meas, corrupt):
        vols = []
        stop = EarlyStopping(mask[:, None], every=1, patience=0)
        net = model.build_network(dict(width=16, depth=2), seed=0)
        _, losses = optimise.fit_slab(data, proj, net, iterations=20, lr=2e-3, lr_end=2e-4,
                                      gain=0.5, holdout=stop,
                                      callback=lambda it, v: vols.append(v.numpy().copy()))
        runs.append((losses, vols, stop))
    (l0, v0, s0), (l1, v1, s1) = runs
    assert [l for _, l, _ in l0] == [l for _, l, _ in l1]
    for a, b in zip(v0, v1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert min(h for _, h in s1.history[0]) > 1e5 > max(h for _, h in s0.history[0])
    # the training loss is the mean over the training rays only
    with torch.no_grad():
        pred = proj.forward(torch.from_numpy(v0[0])).numpy()
    np.testing.assert_allclose(l0[0][1], np.abs(pred - meas)[~mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(s0.history[0][0][1], np.abs(pred - meas)[mask].mean(),
                               rtol=1e-5)


# ---------------------------------------------------------------- early stopping


def test_early_stopping_keeps_the_best_held_out_weights():
    """From the recorded history: the kept step is the (first) lowest held-out loss, the
    fit stopped at the first evaluation in the decay half ``patience`` evaluations after
    it, and the returned volume is the one of the kept step."""
    meas, proj = noisy_blob_slab()
    mask = holdout_mask(meas.shape, 0.2, seed=0)
    vols = {}
    stop = EarlyStopping(mask[:, None], every=5, patience=3)
    net = model.build_network(dict(width=32, depth=3), seed=0)
    iterations = 80
    vol, losses = optimise.fit_slab(
        meas, proj, net, iterations=iterations, lr=3e-3, lr_end=3e-4,
        gain=model.output_gain(meas, 8), holdout=stop,
        callback=lambda it, v: vols.__setitem__(it, v.numpy().copy()))
    steps = [s for s, _ in stop.history[0]]
    held = [h for _, h in stop.history[0]]
    best = steps[int(np.argmin(held))]
    assert stop.best_step[0] == best and stop.best_loss[0] == min(held)
    since = [i - max(k for k in range(i + 1) if held[k] == min(held[:i + 1]))
             for i in range(len(held))]
    want_stop = next(s for s, n in zip(steps, since) if s >= iterations // 2 and n >= 3)
    assert stop.stopped[0] == want_stop == steps[-1] < iterations  # it did stop early
    assert steps == list(range(0, want_stop + 1, 5))
    assert len(losses) == want_stop + 1  # no step after the stopping evaluation
    assert 0 < best < want_stop
    np.testing.assert_array_equal(vol, vols[best])
    # and the network itself holds the kept weights
    with torch.no_grad():
        coords = model.slab_coordinates(8, 2, 16, mode="unit").reshape(-1, 3)
        again = model.output_gain(meas, 8) * net(coords).reshape(8, 2, 16).numpy()
    np.testing.assert_array_equal(again, vol)


def test_patience_zero_runs_every_iteration_and_evaluates_the_final_weights():
    meas, proj = noisy_blob_slab(sigma=0.0)
    stop = EarlyStopping(holdout_mask(meas.shape, 0.2, 0)[:, None], every=4, patience=0)
    net = model.build_network(dict(width=16, depth=2), seed=0)
    _, losses = optimise.fit_slab(meas, proj, net, iterations=10, lr=2e-3, lr_end=2e-4,
                                  gain=0.5, holdout=stop)
    assert len(losses) == 10 and stop.stopped == [None]
    assert [s for s, _ in stop.history[0]] == [0, 4, 8, 10]  # 10: after the last step


def test_anchor_and_chunks_record_and_continue_from_the_kept_weights(tmp_path):
    stack, angles = random_series()
    cfg = dict(TINY, anchor_iterations=20, iterations=16, holdout_fraction=0.2,
               holdout_every=2, patience=2)
    plan, anchor, state = fit.fit_anchor(stack, angles, 6, cfg, seed=0)
    assert anchor.kept is not None and anchor.holdout
    assert anchor.kept == min(anchor.holdout, key=lambda h: h[1])[0]
    fits, last = fit.fit_chunk(stack, angles, 6, cfg, 0, state, seed=0)
    assert all(f.kept is not None for f in fits)
    # the returned state is the last slab's kept network: it gives that slab's volume
    net = model.build_network(cfg)
    net.load_state_dict(last)
    f = fits[-1]
    with torch.no_grad():
        coords = model.slab_coordinates(6, f.y1 - f.y0, 16, mode="isotropic").reshape(-1, 3)
        vol = model.output_gain(stack, 6) * net(coords).reshape(6, f.y1 - f.y0, 16).numpy()
    np.testing.assert_allclose(vol, f.volume, rtol=1e-6, atol=1e-7)
    # loss file: held-out column, the kept row marked; slab file: kept and stopped steps
    slabs.save_losses(tmp_path / "l.csv", [anchor] + fits)
    rows = (tmp_path / "l.csv").read_text().splitlines()
    assert rows[0] == "slab,iteration,loss,seconds,holdout_loss,kept"
    kept_rows = [r.split(",") for r in rows[1:] if r.endswith(",1")]
    assert len(kept_rows) == 1 + len(fits)
    assert [int(r[1]) for r in kept_rows][0] == anchor.kept and kept_rows[0][4] != ""
    slabs.save_slabs(tmp_path / "s.npz", [anchor] + fits)
    with np.load(tmp_path / "s.npz") as data:
        assert data["kept"].tolist() == [anchor.kept] + [f.kept for f in fits]
        assert data["stopped"].tolist() == [-1 if f.stopped is None else f.stopped
                                            for f in [anchor] + fits]
    assert [i for i, *_ in slabs.load_slabs(tmp_path / "s.npz")] == [anchor.index] + [
        f.index for f in fits]


def test_ensemble_with_holdout_equals_sequential_fits():
    """Each slab of a batched ensemble keeps the same step and (up to float rounding) the
    same volume as when fitted alone from the same start (warm_start: anchor)."""
    stack, angles = random_series()
    cfg = dict(TINY, iterations=16, holdout_fraction=0.2, holdout_every=2, patience=2)
    start = model.build_network(cfg, seed=7).state_dict()
    group = [(1, 3, 6), (0, 0, 3), (2, 6, 9)]
    seq, _ = drivers.fit_chain(stack, angles, 6, group, dict(cfg, warm_start="anchor"),
                               init_state=start, seed=0, anchor=False)
    ens, _ = drivers.fit_ensemble(stack, angles, 6, group, cfg, init_state=start, seed=0)
    for a, b in zip(seq, ens):
        assert (b.kept, b.stopped) == (a.kept, a.stopped)
        np.testing.assert_allclose([h for _, h in b.holdout], [h for _, h in a.holdout],
                                   rtol=1e-5)
        np.testing.assert_allclose(b.volume, a.volume, rtol=0,
                                   atol=1e-5 * np.abs(a.volume).max())


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize("key,value", [("holdout_fraction", 1.0), ("holdout_fraction", 1.5),
                                       ("holdout_fraction", -0.1),
                                       ("holdout_fraction", "0.1"),
                                       ("holdout_every", 0), ("patience", -1),
                                       ("patience", 2.5)])
def test_bad_values_name_the_key(key, value):
    stack, angles = random_series()
    with pytest.raises(ValueError, match=key):
        holdout_options(model.options({key: value}))
    with pytest.raises(ValueError, match=key):
        fit.fit_anchor(stack, angles, 6, dict(TINY, **{key: value}), seed=0)
    if key == "holdout_fraction":
        with pytest.raises(ValueError, match=key):
            holdout_mask((2, 3, 4), value, 0)


def test_the_schema_refuses_bad_values_naming_the_key():
    import yaml
    from pathlib import Path

    import jsonschema

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "schemas"
                             / "config.schema.yaml").read_text())
    cn = schema["properties"]["cn"]
    jsonschema.validate({"holdout_fraction": 0.1, "holdout_every": 5, "patience": 0}, cn)
    for bad in ({"holdout_fraction": 1.0}, {"holdout_fraction": -0.5},
                {"holdout_every": 0}, {"patience": -1}):
        with pytest.raises(jsonschema.ValidationError) as err:
            jsonschema.validate(bad, cn)
        assert list(err.value.path) == list(bad)
