"""DeepDeWedge's model fitting, in resumable blocks of epochs.

**Pairs.** For a cube pair ``(v0, v1)`` (edge ``m = ceil_to_even(√2·N)``) and a rotation ``R``
drawn uniformly from SO(3): both cubes are rotated by ``R`` (spline interpolation, order
``spline_order``) and centre-cropped to ``N³``; the input is ``Re F⁻¹[M · F(R v0)]`` (the
wedge removed once more, now in the original orientation), the target ``R v1`` unmasked,
and the loss (:func:`~.loss.masked_loss`) weighs the Fourier components by ``M_R``, the
wedge mask rotated by ``R`` (:func:`~.masks.rotated_mask`). Training cubes get a fresh
rotation at every load; each validation cube keeps one fixed rotation.

**Fitting.** Adam (lr 4e-4, no schedule), batches of ``batch_size`` training cubes in
their stored order (the official loader; ``shuffle: true``: a random order per epoch), the
last batch possibly smaller. After epoch ``e`` (0-based):
a validation loss when ``(e + 1) % val_every == 0``; then, when ``(e + 1) % update_every ==
0``, the *wedge update* of every ``v0`` cube (training and validation)::

    v0 ← F⁻¹[M · F(v0)] + F⁻¹[(1 − M) · F(f(F⁻¹[M · F(v0)]))]

on the ``m³`` grid (the measured components of ``v0`` are kept, the missing ones come from
the model); ``v1`` never changes. The model's input statistics are computed at the start
and after every wedge update (:func:`input_statistics`): by default as the official code
does, the mean of the per-cube means and the square root of the mean per-cube variance of
the model inputs of one pass over the training cubes, each at a fresh random rotation
(``input_statistics: per_cube``); ``global``: the mean and standard deviation of
``F⁻¹[M · F(v0)]`` over the central ``N³`` of all unrotated training cubes.

**Blocks and resumption.** :func:`fit_block` runs epochs ``[epochs_from, epochs_to)`` from a
state (None for a fresh fit) and returns the new state. Nothing random is carried from one
epoch to the next: the initial weights come from ``(seed, 0)``, epoch ``e``'s cube order and
rotations from a generator seeded by ``(seed, 1, e)``, validation cube ``i``'s rotation from
``(seed, 2, i)``, the rotations of the statistics pass after epoch ``e`` (−1: at the start)
from ``(seed, 3, e + 1)``. Together with the optimiser's state this makes ``[0, 2)`` then ``[2, 4)``
(with :func:`save_state`/:func:`load_state` in between) bit-identical on the CPU to
``[0, 4)`` at once.

**State** (a dict of tensors and plain Python values, saved with ``torch.save`` and read
with ``weights_only=True``): ``model`` (state dict, incl. the normalisation buffers),
``optimizer`` (Adam's moments and step count per parameter), ``v0`` (the current,
wedge-updated ``v0`` cubes, ``[n, m, m, m]`` float32 tensor), ``norm`` (mean, std),
``epoch`` (the next epoch), ``seed``, ``rng`` (the seeding scheme), ``options``
(:meth:`DDWOptions.fit_dict`, checked on resumption), ``n_cubes``, ``val`` (the split) and
``history`` (one dict per epoch: epoch, train_loss, val_loss, wedge_update, seconds).

On the CPU the optimiser is :class:`wedgebench.recon.isonet.refine.CpuAdam` (torch's Adam
op for op, without the seconds-long import of ``torch.optim``); it runs unchanged on CUDA.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from wedgebench.io import InputError
from wedgebench.recon.deepdewedge.masks import (apply_mask, big_wedge_mask, rotated_mask,
                                                wedge_mask)
from wedgebench.recon.deepdewedge.options import SECTION, DDWOptions
from wedgebench.recon.deepdewedge.rotation import random_rotation, rotate_crop

STATE_VERSION = 1
RNG_SCHEME = ("numpy SeedSequence([seed, 0xDD, 0]) for the initial weights, "
              "([seed, 0xDD, 1, epoch]) for each epoch's order and rotations, "
              "([seed, 0xDD, 2, cube]) for each validation cube's rotation, "
              "([seed, 0xDD, 3, epoch + 1]) for the statistics pass after an epoch")


@dataclasses.dataclass(frozen=True)
class FitData:
    """The cubes a fit runs on.

    Attributes
    ----------
    cubes0, cubes1 : ndarray ``[n, m, m, m]`` float32
        Cubes of ``v0`` and ``v1`` at the same positions (edge ``m = extraction_size(N)``);
        ``cubes0`` is the starting point (a resumed fit takes ``v0`` from its state).
    val : ndarray of bool ``[n]``
        Held-out cubes.
    angles : ndarray of float
        The acquisition's tilt angles (their min and max give the wedge mask).
    """

    cubes0: np.ndarray
    cubes1: np.ndarray
    val: np.ndarray
    angles: np.ndarray

    def __post_init__(self):
        c0 = np.ascontiguousarray(self.cubes0, np.float32)
        c1 = np.ascontiguousarray(self.cubes1, np.float32)
        val = np.asarray(self.val, bool).ravel()
        angles = np.asarray(self.angles, np.float64).ravel()
        if c0.ndim != 4 or c0.shape[1:] != (c0.shape[-1],) * 3 or c0.shape != c1.shape:
            raise InputError(f"{SECTION}: cubes must be two stacks [n, m, m, m] of the same "
                             f"shape, got {c0.shape} and {c1.shape}")
        if val.size != len(c0):
            raise InputError(f"{SECTION}: {val.size} split flags for {len(c0)} cubes")
        if val.all():
            raise InputError(f"{SECTION}: every cube is held out for validation; lower "
                             f"{SECTION}.val_fraction or extract more cubes")
        if angles.size == 0:
            raise InputError(f"{SECTION}: no tilt angles given")
        for k, v in (("cubes0", c0), ("cubes1", c1), ("val", val), ("angles", angles)):
            object.__setattr__(self, k, v)


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xDD, *map(int, key)]))


def centre_crop(vol: np.ndarray, size: int) -> np.ndarray:
    """The central ``size³`` of the last three axes (edge difference even)."""
    s = (vol.shape[-1] - size) // 2
    return vol[..., s:s + size, s:s + size, s:s + size]


def make_pair(cube0: np.ndarray, cube1: np.ndarray, rot: np.ndarray, mask: np.ndarray,
              mask_big: np.ndarray, size: int, order: int = 3,
              mask_rotation: str = "cubic"):
    """One training pair.

    Parameters
    ----------
    cube0, cube1 : ndarray ``(m, m, m)``
    rot : (3, 3) rotation
    mask : ndarray ``(size,)*3``
        :func:`~.masks.wedge_mask` of ``size``.
    mask_big : ndarray ``(m, m, m)``
        :func:`~.masks.big_wedge_mask` of ``size``.
    size : int
        N.
    order : int
        Spline order of the rotation.
    mask_rotation : {"cubic", "linear_clipped"}
        :func:`~.masks.rotated_mask`'s ``how``.

    Returns
    -------
    input ``Re F⁻¹[M · F(R v0)]``, target ``R v1``, rotated mask ``M_R``: float32 ``(N, N, N)``
    """
    r0 = rotate_crop(cube0, rot, size, order=order)
    r1 = rotate_crop(cube1, rot, size, order=order)
    return apply_mask(r0, mask), r1, rotated_mask(mask_big, rot, size, mask_rotation)


def input_statistics(cubes0: np.ndarray, mask: np.ndarray, size: int, how: str = "per_cube",
                     rots=None, order: int = 3) -> tuple[float, float]:
    """The model's input statistics ``(loc, scale)`` from the ``v0`` cubes.

    Parameters
    ----------
    cubes0 : ndarray ``[n, m, m, m]``
    mask : ndarray ``(size,)*3``, :func:`~.masks.wedge_mask` of ``size``
    size : int
        N.
    how : {"per_cube", "global"}
        ``per_cube`` (the official code): the model inputs ``Re F⁻¹[M · F(R_i v0_i)]``
        (each cube rotated by ``rots[i]`` and centre-cropped); loc is the mean of the
        per-cube means, scale the square root of the mean per-cube variance (unbiased).
        ``global``: the mean and standard deviation of ``F⁻¹[M · F(·)]`` over the central
        ``size³`` of all cubes, unrotated.
    rots : sequence of (3, 3) rotations, one per cube (``per_cube``)
    order : int
        Spline order of the rotations.

    Returns
    -------
    (loc, scale), scale 1 when the inputs are constant.
    """
    if how == "global":
        x = apply_mask(centre_crop(cubes0, size), mask).astype(np.float64)
        mean, std = float(x.mean()), float(x.std())
        return mean, (std if std > 0 else 1.0)
    if how != "per_cube":
        raise ValueError(f"input statistics must be 'per_cube' or 'global', got {how!r}")
    if rots is None or len(rots) != len(cubes0):
        raise ValueError("per-cube statistics need one rotation per cube")
    means, variances = [], []
    for cube, rot in zip(cubes0, rots):
        x = apply_mask(rotate_crop(cube, rot, size, order=order), mask).astype(np.float64)
        means.append(x.mean())
        variances.append(x.var(ddof=1))
    scale = float(np.sqrt(np.mean(variances)))
    return float(np.mean(means)), (scale if scale > 0 else 1.0)


def _statistics(cubes0, mask, opts: DDWOptions, seed: int, after_epoch: int):
    """:func:`input_statistics` of the training cubes, rotations from ``(seed, 3, e + 1)``."""
    rng = seeded_rng(seed, 3, after_epoch + 1)
    rots = [random_rotation(rng) for _ in range(len(cubes0))]
    return input_statistics(cubes0, mask, opts.cube_size, opts.input_statistics, rots,
                            opts.spline_order)


def apply_model(model, cubes: np.ndarray, batch_size: int, device="cpu") -> np.ndarray:
    """``model`` on ``[n, m, m, m]`` cubes in eval mode, batch by batch.

    Cubes whose edge is not a multiple of ``model.multiple`` are reflection-padded up to one
    and the output is cropped back.
    """
    import torch

    m = cubes.shape[-1]
    mult = model.multiple
    pad = (-m) % mult
    lo = pad // 2
    model.eval()
    out = np.empty(cubes.shape, np.float32)
    with torch.no_grad():
        for s in range(0, len(cubes), batch_size):
            b = cubes[s:s + batch_size]
            if pad:
                b = np.pad(b, [(0, 0)] + [(lo, pad - lo)] * 3, mode="reflect")
            y = model(torch.from_numpy(np.ascontiguousarray(b, np.float32))[:, None]
                      .to(device))[:, 0].cpu().numpy()
            out[s:s + batch_size] = y[:, lo:lo + m, lo:lo + m, lo:lo + m]
    return out


def wedge_update(model, cubes0: np.ndarray, mask_m: np.ndarray, batch_size: int,
                 device="cpu") -> np.ndarray:
    """``F⁻¹[M·F(v0)] + F⁻¹[(1 − M)·F(f(F⁻¹[M·F(v0)]))]`` for every cube (``m³`` grid).

    Parameters
    ----------
    model : the network
    cubes0 : ndarray ``[n, m, m, m]``
    mask_m : ndarray ``(m, m, m)``, :func:`~.masks.wedge_mask` of ``m``
    """
    measured = apply_mask(cubes0, mask_m)
    pred = apply_model(model, measured, batch_size, device)
    return (measured + apply_mask(pred, 1.0 - mask_m)).astype(np.float32)


def _stack_pairs(cubes0, cubes1, idx, rots, mask, mask_big, size, order, device,
                 mask_rotation="cubic"):
    import torch

    pairs = [make_pair(cubes0[i], cubes1[i], r, mask, mask_big, size, order, mask_rotation)
             for i, r in zip(idx, rots)]
    return [torch.from_numpy(np.stack(p))[:, None].to(device) for p in zip(*pairs)]


def validation_loss(model, cubes0, cubes1, val_idx, val_rots, mask, mask_big, size, order,
                    batch_size, device="cpu", mask_rotation="cubic") -> float:
    """Mean masked loss of the held-out cubes at their fixed rotations (NaN when none)."""
    if len(val_idx) == 0:
        return float("nan")
    import torch

    from wedgebench.recon.deepdewedge.loss import masked_loss

    mask_t = torch.from_numpy(mask).to(device)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(val_idx), batch_size):
            idx = val_idx[s:s + batch_size]
            inp, tgt, rmask = _stack_pairs(cubes0, cubes1, idx, val_rots[s:s + batch_size],
                                           mask, mask_big, size, order, device,
                                           mask_rotation)
            total += masked_loss(model(inp), tgt, rmask, mask_t).item() * len(idx)
    return total / len(val_idx)


def model_from_state(state: dict, device="cpu"):
    """The network of a fit state (eval mode, on ``device``)."""
    import torch

    from wedgebench.recon.deepdewedge.model import build_unet

    opts = state["options"]
    # states written before the published network existed hold the earlier one
    network = opts.get("network", "normalised_bottleneck")
    with torch.random.fork_rng(devices=[]):  # the weights are overwritten: leave torch's
        model = build_unet(opts["levels"], opts["base_channels"], network)  # generator
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"the fit state does not match {SECTION}.levels/base_channels: "
                         f"{str(exc).splitlines()[0]}") from exc
    return model.to(device).eval()


def _optimizer_state(opt) -> list[dict]:
    out = []
    for p in opt.params:
        st = opt.state.get(p)
        out.append({} if st is None else {"step": float(st["step"]),
                                          "exp_avg": st["exp_avg"].detach().cpu().clone(),
                                          "exp_avg_sq": st["exp_avg_sq"].detach().cpu().clone()})
    return out


def _load_optimizer_state(opt, saved: list[dict]) -> None:
    if len(saved) != len(opt.params):
        raise InputError(f"the fit state's optimiser has {len(saved)} parameters, the model "
                         f"{len(opt.params)}")
    for p, st in zip(opt.params, saved):
        if st:
            opt.state[p] = {"step": float(st["step"]),
                            "exp_avg": st["exp_avg"].to(p.device).clone(),
                            "exp_avg_sq": st["exp_avg_sq"].to(p.device).clone()}


def _check_resume(state: dict, data: FitData, epochs_from: int, opts: DDWOptions, seed: int):
    if state.get("version") != STATE_VERSION:
        raise InputError(f"fit state version {state.get('version')!r} is not "
                         f"{STATE_VERSION}")
    if int(state["epoch"]) != epochs_from:
        raise InputError(f"the fit state ends at epoch {state['epoch']}, but the block "
                         f"starts at {epochs_from}")
    before = state["options"]
    changed = [k for k, v in opts.fit_dict().items() if before.get(k) != v]
    if changed:
        was = ", ".join(f"{k}={before.get(k)!r}" for k in changed)
        raise InputError(f"{SECTION}: {', '.join(changed)} changed since the fit started "
                         f"(was {was}); start the fit again")
    if int(state["seed"]) != int(seed):
        raise InputError(f"the fit state was made with seed {state['seed']}, not {seed}")
    if int(state["n_cubes"]) != len(data.cubes1) or \
            tuple(state["v0"].shape) != data.cubes1.shape or \
            not np.array_equal(np.asarray(state["val"], bool), data.val):
        raise InputError("the fit state's cubes or validation split do not match the "
                         "sub-tomograms given")


def epoch_batches(train_idx: np.ndarray, seed: int, epoch: int, batch_size: int,
                  shuffle: bool = False) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """The batches of one epoch: ``[(cube indices, their rotations), …]``.

    The generator ``(seed, 1, epoch)`` draws a permutation (used only with ``shuffle``;
    drawn either way, so the rotations do not depend on ``shuffle``), then one rotation per
    cube in visiting order. Without ``shuffle`` the cubes come in ``train_idx``'s order, as
    the official loader serves them.
    """
    rng = seeded_rng(seed, 1, epoch)
    shuffled = rng.permutation(len(train_idx))
    order = np.asarray(train_idx)[shuffled] if shuffle else np.asarray(train_idx)
    out = []
    for s in range(0, len(order), int(batch_size)):
        idx = order[s:s + int(batch_size)]
        out.append((idx, [random_rotation(rng) for _ in idx]))
    return out


def fit_block(state: dict | None, data: FitData, epochs_from: int, epochs_to: int,
              options: DDWOptions, seed: int = 0, device="cpu",
              log: logging.Logger | None = None) -> dict:
    """Fit DeepDeWedge's model for epochs ``[epochs_from, epochs_to)``.

    Parameters
    ----------
    state : dict or None
        The state returned by the previous block (or :func:`load_state` of its file);
        None starts a fresh fit, which must start at epoch 0.
    data : FitData
        The sub-tomograms (the same for every block of a fit).
    epochs_from, epochs_to : int
        The block, ``0 <= epochs_from <= epochs_to``.
    options : DDWOptions
    seed : int
        The fit's seed (the same for every block).
    device : str or torch.device
    log : logging.Logger, optional
        Progress (one line per epoch); default ``logging.getLogger("wedgebench")``.

    Returns
    -------
    dict, the new state (see the module docstring); CPU tensors.
    """
    import torch

    from wedgebench.recon.deepdewedge.loss import masked_loss
    from wedgebench.recon.deepdewedge.model import build_unet
    from wedgebench.recon.isonet.refine import CpuAdam

    log = log or logging.getLogger("wedgebench")
    opts = options
    e0, e1 = int(epochs_from), int(epochs_to)
    if not 0 <= e0 <= e1:
        raise ValueError(f"bad epoch block [{epochs_from}, {epochs_to})")
    m, n = data.cubes0.shape[-1], opts.cube_size
    if m != opts.extract_size:
        raise InputError(f"{SECTION}: cubes of edge {m}, but {SECTION}.cube_size "
                         f"{opts.cube_size} needs {opts.extract_size}")
    dev = torch.device(device)
    mask = wedge_mask(n, data.angles)
    mask_m = wedge_mask(m, data.angles)
    mask_big = big_wedge_mask(n, data.angles)
    train_idx = np.flatnonzero(~data.val)
    val_idx = np.flatnonzero(data.val)
    if state is None:
        if e0 != 0:
            raise InputError(f"a fit without a state must start at epoch 0, not {e0}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeded_rng(seed, 0).integers(2 ** 62)))
            model = build_unet(opts.levels, opts.base_channels, opts.network)
        cubes0 = data.cubes0.copy()
        norm = _statistics(cubes0[train_idx], mask, opts, seed, -1)
        model.set_normalisation(*norm)
        history: list[dict] = []
        saved_opt: list[dict] = []
    else:
        _check_resume(state, data, e0, opts, seed)
        model = model_from_state(state, "cpu")
        cubes0 = state["v0"].numpy().copy()
        norm = tuple(state["norm"])
        history = [dict(h) for h in state["history"]]
        saved_opt = state["optimizer"]
    model = model.to(dev)
    opt = CpuAdam(model.parameters(), lr=opts.learning_rate)
    if saved_opt:
        _load_optimizer_state(opt, saved_opt)
    mask_t = torch.from_numpy(mask).to(dev)
    val_rots = [random_rotation(seeded_rng(seed, 2, i)) for i in val_idx]
    bs, order = opts.batch_size, opts.spline_order

    for epoch in range(e0, e1):
        t0 = time.perf_counter()
        total = 0.0
        model.train()
        for idx, rots in epoch_batches(train_idx, seed, epoch, bs, opts.shuffle):
            inp, tgt, rmask = _stack_pairs(cubes0, data.cubes1, idx, rots, mask, mask_big, n,
                                           order, dev, opts.mask_rotation)
            opt.zero_grad()
            loss = masked_loss(model(inp), tgt, rmask, mask_t)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_loss = total / len(train_idx)
        val_loss = float("nan")
        if (epoch + 1) % opts.val_every == 0:
            val_loss = validation_loss(model, cubes0, data.cubes1, val_idx, val_rots, mask,
                                       mask_big, n, order, bs, dev, opts.mask_rotation)
        updated = bool(opts.update_every) and (epoch + 1) % opts.update_every == 0
        if updated:
            cubes0 = wedge_update(model, cubes0, mask_m, bs, dev)
            norm = _statistics(cubes0[train_idx], mask, opts, seed, epoch)
            model.set_normalisation(*norm)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "wedge_update": updated, "seconds": seconds})
        log.info("deepdewedge epoch %d: train loss %.6g, val loss %s%s, %.1f s", epoch,
                 train_loss, "-" if math.isnan(val_loss) else f"{val_loss:.6g}",
                 ", wedge updated" if updated else "", seconds)

    return {"version": STATE_VERSION,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": _optimizer_state(opt),
            "v0": torch.from_numpy(np.ascontiguousarray(cubes0, np.float32)),
            "norm": [float(norm[0]), float(norm[1])],
            "epoch": e1, "seed": int(seed), "rng": RNG_SCHEME,
            "options": opts.fit_dict(), "n_cubes": int(len(data.cubes1)),
            "val": [bool(v) for v in data.val], "history": history}


def epoch_blocks(epochs: int, block: int) -> list[tuple[int, int]]:
    """``[(0, block), (block, 2·block), …]`` up to ``epochs`` (the last block may be shorter)."""
    if int(block) < 1 or int(epochs) < 0:
        raise ValueError(f"bad epochs {epochs} / block {block}")
    return [(s, min(s + int(block), int(epochs))) for s in range(0, int(epochs), int(block))]


def save_state(state: dict, path) -> None:
    """Write a fit state with ``torch.save``, atomically."""
    import torch

    from wedgebench.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path) -> dict:
    """A fit state written by :func:`save_state` (read with ``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable DeepDeWedge fit state ({exc})") from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(f"{path}: not a DeepDeWedge fit state (version "
                         f"{STATE_VERSION})")
    return state


def history_csv(state: dict) -> str:
    """The fit's loss table as CSV text (epoch, train_loss, val_loss, wedge_update, seconds)."""
    from wedgebench.recon.isonet.refine import history_csv as _csv

    return _csv(state["history"])
