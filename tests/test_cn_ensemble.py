"""CN batched ensemble: the slabs of a chunk fitted together equal the same slabs fitted
one by one from the same start (cn.ensemble, cn.warm_start: anchor)."""
import copy

import numpy as np
import pytest
import torch

from wedgebench.phantoms import make_phantom
from wedgebench.projector import Projector
from wedgebench.recon.cn import drivers, fit, model, optimise
from wedgebench.recon.cn.ensemble import NetworkEnsemble, ensemble_groups
from wedgebench.tiltseries import simulate_tiltseries

CFG = dict(width=24, depth=3, slab_size=4, iterations=25, lr=1e-3, lr_end=1e-4, chunks=1,
           anchor_iterations=5)


@pytest.fixture(scope="module")
def data():
    """Spheres phantom (12 × 11 × 24) and its simulated tilt series, 21 tilts."""
    vol, _ = make_phantom("spheres", dict(shape=[12, 11, 24], voxel_size=10.0, count=2,
                                          diameter=[6, 8], max_tries=2000), seed=4)
    angles = np.arange(-60, 61, 6.0)
    return simulate_tiltseries(vol, angles, oversampling=2), angles


class RecordingAdamW(torch.optim.AdamW):
    """AdamW that records the gradients it is given at every step."""

    steps = []

    def step(self, closure=None):
        RecordingAdamW.steps.append([p.grad.clone() for g in self.param_groups
                                     for p in g["params"]])
        return super().step(closure)


def test_ensemble_gradient_is_each_slabs_own_gradient(data, monkeypatch):
    """The optimiser sees, for every network, exactly its own loss's gradient: the loss is a
    sum over slabs (a mean would scale them by 1/S, which Adam hides up to its eps)."""
    stack, angles = data
    proj = Projector(12, 24, angles)
    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(RecordingAdamW, "steps", [])
    rows = stack[:, [0, 1, 2, 4, 5, 6, 7, 8, 9]].reshape(stack.shape[0], 3, 3, 24)
    kwargs = dict(iterations=1, lr=1e-3, lr_end=1e-4, gain=0.1, reg_weight=0.5,
                  coordinates="isotropic")
    nets = [model.build_network(CFG, seed=s) for s in range(3)]
    optimise.fit_slabs(rows, proj, [copy.deepcopy(n) for n in nets], **kwargs)
    for i, net in enumerate(nets):
        optimise.fit_slab(rows[:, i], proj, net, **kwargs)
    batched, singles = RecordingAdamW.steps[0], RecordingAdamW.steps[1:]
    assert len(singles) == 3
    for i, single in enumerate(singles):
        for stacked, own in zip(batched, single, strict=True):
            torch.testing.assert_close(stacked[i], own, rtol=1e-5, atol=1e-7)


def test_network_ensemble_evaluates_and_returns_each_network():
    nets = [model.build_network(dict(CFG, encoding="fourier", n_features=4), seed=s)
            for s in range(3)]
    ens = NetworkEnsemble(nets)
    coords = torch.rand(50, 3)
    out = ens(coords)
    assert out.shape == (3, 50) and len(ens) == 3
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(coords), rtol=1e-5, atol=1e-6)
        state = ens.state_dict(i)
        assert list(state) == list(net.state_dict())
        for k, v in net.state_dict().items():
            torch.testing.assert_close(state[k], v, rtol=0, atol=0)


def test_ensemble_groups_by_height_and_size():
    slabs = [(0, 0, 4), (1, 4, 8), (2, 8, 11), (3, 11, 15), (4, 15, 19)]
    assert ensemble_groups(slabs) == [[slabs[0], slabs[1], slabs[3], slabs[4]], [slabs[2]]]
    assert ensemble_groups(slabs, 3) == [slabs[:2] + slabs[3:4], slabs[4:], [slabs[2]]]
    assert ensemble_groups([], 0) == []
    with pytest.raises(ValueError, match="ensemble_size"):
        ensemble_groups(slabs, -1)


@pytest.mark.parametrize("size,reg", [(0, 0.0), (2, 0.1)])
def test_ensemble_equals_sequential_fits_from_the_anchor(data, size, reg):
    """Same start, seed, iterations and schedule: the same fitted volumes, losses and
    final weights (a thinner slab at the edge is fitted in its own group)."""
    stack, angles = data
    cfg = dict(CFG, reg_weight=reg, ensemble_size=size)
    start = model.build_network(cfg, seed=7).state_dict()
    slabs = [(1, 4, 8), (0, 0, 4), (2, 8, 11), (3, 7, 11)]  # fitting order, one thinner
    seq, seq_state = drivers.fit_chain(stack, angles, 12, slabs, dict(cfg, warm_start="anchor"),
                                       init_state=start, seed=0, anchor=False)
    ens, ens_state = drivers.fit_ensemble(stack, angles, 12, slabs, cfg, init_state=start,
                                          seed=0)
    assert [(f.index, f.y0, f.y1) for f in ens] == slabs
    scale = max(float(np.abs(f.volume).max()) for f in seq)
    for a, b in zip(seq, ens):
        assert b.volume.shape == a.volume.shape
        np.testing.assert_allclose(b.volume, a.volume, rtol=0, atol=2e-5 * scale)
        np.testing.assert_allclose([l for _, l, _ in b.losses], [l for _, l, _ in a.losses],
                                   rtol=1e-4)
        assert not np.allclose(a.volume, 0)
    for k, v in seq_state.items():
        torch.testing.assert_close(ens_state[k], v, rtol=1e-4, atol=1e-5)


def test_anchor_warm_start_makes_slabs_independent(data):
    stack, angles = data
    cfg = dict(CFG, iterations=5, warm_start="anchor")
    start = model.build_network(cfg, seed=7).state_dict()
    both, _ = drivers.fit_chain(stack, angles, 12, [(0, 0, 4), (1, 4, 8)], cfg,
                                init_state=start, seed=0, anchor=False)
    alone, _ = drivers.fit_chain(stack, angles, 12, [(1, 4, 8)], cfg, init_state=start, seed=0,
                                 anchor=False)
    np.testing.assert_array_equal(both[1].volume, alone[0].volume)
    chained, _ = drivers.fit_chain(stack, angles, 12, [(0, 0, 4), (1, 4, 8)],
                                   dict(cfg, warm_start="neighbour"), init_state=start, seed=0,
                                   anchor=False)
    assert not np.array_equal(chained[1].volume, alone[0].volume)
    with pytest.raises(ValueError, match="warm_start"):
        drivers.fit_chain(stack, angles, 12, [(0, 0, 4)], dict(cfg, warm_start="left"),
                          init_state=start, seed=0, anchor=False)


def test_chunk_job_uses_the_ensemble(data):
    """fit_chunk with cn.ensemble = fit_chunk with warm_start anchor (the chunk job path)."""
    stack, angles = data
    cfg = dict(CFG, slab_size=3, iterations=10)
    _, _, state = fit.fit_anchor(stack, angles, 12, cfg, seed=0)
    seq, seq_state = fit.fit_chunk(stack, angles, 12, dict(cfg, warm_start="anchor"), 0,
                                   state, seed=0)
    ens, ens_state = fit.fit_chunk(stack, angles, 12, dict(cfg, ensemble=True), 0, state,
                                   seed=0)
    assert [f.index for f in ens] == [f.index for f in seq] and len(ens) == 3
    for a, b in zip(seq, ens):
        np.testing.assert_allclose(b.volume, a.volume, rtol=0, atol=1e-6)
    torch.testing.assert_close(ens_state, seq_state, rtol=1e-4, atol=1e-6)
    fits, same = drivers.fit_ensemble(stack, angles, 12, [], cfg, init_state=state, seed=0)
    assert fits == [] and same.keys() == state.keys()


def test_ensemble_names_the_diverging_slab(data):
    stack, angles = data
    stack = stack.copy()
    stack[0, 9, 5] = np.nan
    with pytest.raises(FloatingPointError, match=r"slab 2 \(y 8:11\) diverged at iteration 0"):
        drivers.fit_ensemble(stack, angles, 12, [(0, 0, 3), (1, 3, 6), (2, 8, 11)], CFG,
                             init_state=None, seed=0)
