"""IsoNet's Refine step: one iteration at a time, resumable from files.

One iteration N (:func:`refine_iteration`):

1. The *originals* are the extracted cubes with their missing-wedge region
   emptied and re-normalised (``norm(IFFT[mw·F(raw)])``, IsoNet's first step;
   ``norm`` is the per-subtomogram percentile normalisation, or nothing with
   ``normalisation="tomogram"``, where the cubes keep the whole tomogram's);
   iteration N starts from the *filled* cubes of iteration N−1 (the originals
   for N = 1) and from the model of iteration N−1 (a fresh, seeded network for
   N = 1).
2. Training pairs: every (cube, rotation) of the 20 wedge-moving rotations;
   ``val_fraction`` of them are held out for a validation loss. Pairs are
   built on the fly: rotate the filled crop, remove the wedge in Fourier space,
   centre-crop both to ``cube_size`` (input = wedged, target = rotated).
3. Optional denoising (noisier-input): each input gets a noise cube scaled to
   ``noise_level`` × its standard deviation; noise cubes are back-projections
   (:meth:`wedgebench.projector.Projector.adjoint`) of 2-D Gaussian noise
   sinograms at the acquisition's angles, optionally ramp/Hamming filtered.
4. Training: L1 loss, Adam (a new optimiser each iteration, lr 4e-4 by
   default), ``epochs`` × ``min(steps_per_subtomo·N / batch_size, max_steps)``
   steps; mixed precision on CUDA.
5. The network is applied to every original, and the cubes are filled:
   ``filled = norm(IFFT[(1−mw)·F(pred)] + IFFT[mw·F(orig)])`` — the measured
   Fourier data of the original are never changed.

Everything random is derived from ``(seed, N)``, so iteration N gives the same
result whether it runs straight after N−1 in one process or later from N−1's
files (on CPU, bit for bit).

Each iteration is its own Snakemake job, so start-up counts: torch is imported by
the functions that need it (the workflow imports this module for :func:`train_options`
and :func:`noise_level` alone), the STAR file is read without pandas, and on the
CPU the optimiser is :class:`CpuAdam` (``torch.optim`` imports ``torch._dynamo``,
about as slow to import as torch itself).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from wedgebench.io import InputError, atomic_path, read_tlt, write_mrc
from wedgebench.recon.isonet.extract import percentile_normalise, read_stack, read_subtomos
from wedgebench.recon.isonet.rotations import (WEDGE_MODES, apply_fourier_mask, cube_wedge,
                                               fill_wedge, isonet_rotations, make_pairs)

NOISE_FILTERS = ("none", "ramp", "hamming")
NORMALISATIONS = ("subtomogram", "tomogram")


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Everything that shapes one refine iteration (not the iteration count).

    Field names are the keys of the config's ``isonet`` section (``unet.*`` and
    ``noise.filter``/``noise.pool`` flattened, see :func:`train_options`).
    """

    cube_size: int = 64
    crop_size: int = 80
    wedge: str = "from_angles"
    filters: tuple = (64, 128, 256)
    convs_per_block: int = 3
    dropout: float = 0.3
    identity_init: bool = False
    epochs: int = 10
    batch_size: int = 8
    steps_per_subtomo: float = 6.0
    max_steps: int = 200
    learning_rate: float = 4e-4
    val_fraction: float = 0.1
    percentiles: tuple = (4.0, 96.0)
    normalisation: str = "subtomogram"
    noise_filter: str = "none"
    noise_pool: int = 100
    bn_recalibration: int = 0
    mixed_precision: bool = True

    def __post_init__(self):
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        m = 2 ** len(self.filters)
        for key in ("cube_size", "crop_size"):
            v = getattr(self, key)
            if v < m or v % m:
                raise InputError(f"isonet.{key} ({v}) must be a multiple of 2**len("
                                 f"isonet.unet.filters) = {m}")
        if self.cube_size > self.crop_size:
            raise InputError(f"isonet.cube_size ({self.cube_size}) must not exceed "
                             f"isonet.crop_size ({self.crop_size})")
        if self.wedge not in WEDGE_MODES:
            raise InputError(f"isonet.wedge: {self.wedge!r} not in {WEDGE_MODES}")
        if self.normalisation not in NORMALISATIONS:
            raise InputError(f"isonet.normalisation: {self.normalisation!r} not in "
                             f"{NORMALISATIONS}")
        if self.noise_filter not in NOISE_FILTERS:
            raise InputError(f"isonet.noise.filter: {self.noise_filter!r} not in "
                             f"{NOISE_FILTERS}")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"isonet.val_fraction must be in [0, 1), got {self.val_fraction}")
        if int(self.bn_recalibration) < 0:
            raise InputError(f"isonet.unet.bn_recalibration must be >= 0, got "
                             f"{self.bn_recalibration}")
        for key in ("epochs", "batch_size", "max_steps", "noise_pool"):
            if int(getattr(self, key)) < 1:
                raise InputError(f"isonet.{key} must be >= 1, got {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise InputError(f"isonet.learning_rate must be > 0, got {self.learning_rate}")


def train_options(cfg: dict) -> dict:
    """The training-relevant part of the config's ``isonet`` section, as a flat dict.

    Leaves out ``iterations``, the noise *schedule* (an iteration gets its own
    level), extraction and prediction settings, so that a workflow rule can pass
    the result as ``params`` without re-running iterations when those change.
    """
    unet = cfg.get("unet") or {}
    noise = cfg.get("noise") or {}
    default = TrainOptions()
    flat = {f.name: cfg.get(f.name, getattr(default, f.name))
            for f in dataclasses.fields(TrainOptions)}
    flat["filters"] = list(unet.get("filters", default.filters))
    flat["convs_per_block"] = int(unet.get("convs_per_block", default.convs_per_block))
    flat["dropout"] = float(unet.get("dropout", default.dropout))
    flat["identity_init"] = bool(unet.get("identity_init", default.identity_init))
    flat["bn_recalibration"] = int(unet.get("bn_recalibration", default.bn_recalibration))
    flat["noise_filter"] = noise.get("filter", default.noise_filter)
    flat["noise_pool"] = int(noise.get("pool", default.noise_pool))
    flat["percentiles"] = list(flat["percentiles"])
    return flat


def noise_level(iteration: int, start_iter: int = 11, every: int = 5,
                levels=(0.05, 0.10, 0.15, 0.20)) -> float:
    """IsoNet's denoising schedule: 0 before ``start_iter``, then ``levels[k]`` from
    iteration ``start_iter + k·every`` on (the last level is kept)."""
    levels = list(levels)
    if iteration < start_iter or not levels:
        return 0.0
    return float(levels[min((iteration - start_iter) // max(int(every), 1), len(levels) - 1)])


def build_model(opts: TrainOptions) -> UNet:
    """The U-Net of ``opts``."""
    from wedgebench.recon.isonet.unet import UNet

    return UNet(opts.filters, opts.convs_per_block, opts.dropout, opts.identity_init)


def load_state(model: torch.nn.Module, state: dict, source: str = "the model") -> None:
    """Load a state dict, with an error that names the configuration on mismatch."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{source} does not match isonet.unet (filters/convs_per_block): "
                         f"{str(exc).splitlines()[0]}") from exc


def _sinogram_filter(n_det: int, kind: str) -> np.ndarray | None:
    f = np.abs(np.fft.fftfreq(n_det))
    if kind == "none":
        return None
    if kind == "ramp":
        return f
    return f * (0.54 + 0.46 * np.cos(2 * np.pi * f))  # Hamming-windowed ramp


def noise_cubes(angles_deg, size: int, count: int, kind: str, rng: np.random.Generator,
                device="cpu") -> torch.Tensor:
    """Noise cubes shaped like reconstruction noise: back-projected 2-D Gaussian noise.

    Each cube is the back-projection (:meth:`Projector.adjoint`) of a sinogram of
    independent Gaussian noise at the acquisition's angles, optionally ramp- or
    Hamming-filtered along the detector first (WBP-like noise), normalised to
    zero mean and unit standard deviation.

    Returns
    -------
    tensor ``[count, size, size, size]`` on ``device``
    """
    import torch

    from wedgebench.projector import Projector

    proj = Projector(size, size, angles_deg, device=device)
    filt = _sinogram_filter(size, kind)
    out = torch.empty((count, size, size, size), dtype=torch.float32, device=device)
    for i in range(count):
        sino = rng.standard_normal((len(angles_deg), size, size)).astype(np.float32)
        if filt is not None:
            sino = np.fft.ifft(np.fft.fft(sino, axis=-1) * filt, axis=-1).real.astype(np.float32)
        with torch.no_grad():
            v = proj.adjoint(torch.from_numpy(sino).to(device))
        out[i] = (v - v.mean()) / v.std().clamp_min(1e-12)
    return out


def _normalise_batch(x: torch.Tensor, percentiles, mode: str = "subtomogram") -> torch.Tensor:
    """Percentile-normalise each cube of a batch (numpy percentiles, as at extraction);
    ``mode="tomogram"``: cubes keep the whole tomogram's normalisation (no-op)."""
    if mode == "tomogram":
        return x
    import torch

    arr = x.detach().cpu().numpy()
    out = np.stack([percentile_normalise(c, *percentiles)[0] for c in arr])
    return torch.from_numpy(out).to(x.device)


def prepare_originals(raw: torch.Tensor, mask: torch.Tensor, percentiles,
                      mode: str = "subtomogram") -> torch.Tensor:
    """``norm(IFFT[mw·F(raw)])``: the extracted cubes without anything in their wedge."""
    return _normalise_batch(apply_fourier_mask(raw, mask), percentiles, mode)


def _seeds(seed: int, iteration: int) -> tuple[int, np.random.Generator]:
    ss = np.random.SeedSequence([int(seed), int(iteration), 0x1507])
    torch_seed, np_seed = ss.generate_state(2, dtype=np.uint64)
    return int(torch_seed) & 0x7FFF_FFFF_FFFF_FFFF, np.random.default_rng(int(np_seed))


def _autocast(device: torch.device, enabled: bool):
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.float16,
                          enabled=enabled and device.type == "cuda")


def predict_cubes(model: torch.nn.Module, cubes: torch.Tensor, batch_size: int,
                  mixed_precision: bool = True) -> torch.Tensor:
    """Apply ``model`` (in eval mode) to ``[N, c, c, c]`` cubes, batch by batch."""
    import torch

    model.eval()
    out = torch.empty_like(cubes)
    with torch.no_grad():
        for s in range(0, len(cubes), batch_size):
            with _autocast(cubes.device, mixed_precision):
                out[s:s + batch_size] = model(cubes[s:s + batch_size, None]).float()[:, 0]
    return out


class CpuAdam:
    """Adam with torch's defaults (betas 0.9/0.999, eps 1e-8, no weight decay), computed
    exactly as ``torch.optim.Adam`` computes it on the CPU (its single-tensor path, op
    for op, so results are bit-identical; ``tests/test_overhead.py`` checks this).

    ``torch.optim`` imports ``torch._dynamo`` when an optimiser is created, which takes
    about as long as importing torch; every refine iteration is its own job, so this
    class saves that much per job. Other devices keep ``torch.optim.Adam`` (CUDA: its
    foreach kernels and the gradient scaler of mixed precision).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), betas, float(eps)
        self.state: dict = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    def step(self) -> None:
        import torch

        lr, beta1, beta2, eps = self.lr, self.beta1, self.beta2, self.eps
        with torch.no_grad():
            for p in self.params:
                if p.grad is None:
                    continue
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {
                        "step": 0.0,
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                st["step"] += 1.0
                step = st["step"]
                grad, exp_avg, exp_avg_sq = p.grad, st["exp_avg"], st["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1 ** step
                bias_correction2 = 1 - beta2 ** step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2 ** 0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def refine_iteration(raw: np.ndarray, angles_deg, iteration: int, opts: TrainOptions,
                     filled: np.ndarray | None = None, state: dict | None = None,
                     level: float = 0.0, seed: int = 0, device="cpu",
                     log: logging.Logger | None = None) -> dict:
    """One IsoNet refine iteration.

    Parameters
    ----------
    raw : ndarray ``[N, c, c, c]``
        Extracted, normalised crop-size cubes (:mod:`.extract`).
    angles_deg : array of float
        The acquisition's tilt angles (wedge mask and noise model).
    iteration : int
        N ≥ 1 (seeds and the log).
    opts : TrainOptions
    filled : ndarray ``[N, c, c, c]``, optional
        Iteration N−1's filled cubes (None for N = 1: the originals).
    state : dict, optional
        Iteration N−1's model state dict (None for N = 1: a fresh network).
    level : float
        Noise level of this iteration (0 = no denoising).
    seed : int
    device : str or torch.device
    log : logging.Logger, optional

    Returns
    -------
    dict with ``state`` (CPU state dict), ``filled`` (ndarray like ``raw``) and
    ``history`` (one dict per epoch: train and validation loss, seconds).
    """
    import torch
    import torch.nn.functional as F

    log = log or logging.getLogger("wedgebench")
    dev = torch.device(device)
    n, c = raw.shape[0], raw.shape[-1]
    if c != opts.crop_size:
        raise InputError(f"subtomograms are {c}³ but isonet.crop_size is {opts.crop_size}")
    if filled is not None and filled.shape != raw.shape:
        raise InputError(f"filled cubes {filled.shape} do not match the extracted {raw.shape}")
    torch_seed, rng = _seeds(seed, iteration)
    torch.manual_seed(torch_seed)
    amp = opts.mixed_precision and dev.type == "cuda"

    mask = torch.from_numpy(cube_wedge(c, angles_deg, opts.wedge)).to(dev)
    orig = prepare_originals(torch.from_numpy(np.ascontiguousarray(raw)).to(dev), mask,
                             opts.percentiles, opts.normalisation)
    current = orig if filled is None else torch.from_numpy(np.ascontiguousarray(filled)).to(dev)

    model = build_model(opts).to(dev)
    if state is not None:
        load_state(model, state, f"the model of iteration {iteration - 1}")
    rotations = isonet_rotations()
    pairs = np.array([(i, r) for i in range(n) for r in range(len(rotations))])
    pairs = pairs[rng.permutation(len(pairs))]
    n_val = int(round(opts.val_fraction * len(pairs)))
    n_val = min(n_val, len(pairs) - 1)
    val, train = pairs[:n_val], pairs[n_val:]
    steps = max(1, min(int(opts.steps_per_subtomo * n / opts.batch_size), opts.max_steps))
    noise = (noise_cubes(angles_deg, opts.cube_size, opts.noise_pool, opts.noise_filter, rng,
                         dev) if level > 0 else None)

    if dev.type == "cpu":  # torch.optim.Adam's CPU arithmetic, without torch.optim's imports
        optimiser, scaler = CpuAdam(model.parameters(), lr=opts.learning_rate), None
    else:
        optimiser = torch.optim.Adam(model.parameters(), lr=opts.learning_rate)
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
    history = []
    order = np.empty(0, dtype=int)
    for epoch in range(1, opts.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        for step in range(steps):
            if order.size < opts.batch_size:
                order = np.concatenate([order, rng.permutation(len(train))])
            batch, order = train[order[:opts.batch_size]], order[opts.batch_size:]
            sel = torch.from_numpy(batch[:, 0]).to(dev)
            inp, tgt = make_pairs(current[sel], batch[:, 1], rotations, mask, opts.cube_size)
            if noise is not None:
                pick = torch.from_numpy(rng.integers(0, len(noise), len(batch))).to(dev)
                sd = inp.std(dim=(1, 2, 3, 4), keepdim=True)
                inp = inp + level * sd * noise[pick].unsqueeze(1)
            optimiser.zero_grad(set_to_none=True)
            with _autocast(dev, amp):
                loss = F.l1_loss(model(inp).float(), tgt)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"IsoNet training loss is {loss.item()} at iteration {iteration}, epoch "
                    f"{epoch}, step {step + 1}; lower isonet.learning_rate or check the input "
                    "tomogram")
            if scaler is None:
                loss.backward()
                optimiser.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
            losses.append(loss.item())
        if opts.bn_recalibration:
            recalibrate_batchnorm(model, orig, opts, amp)
        val_loss, val_identity = _validation_loss(model, current, val, rotations, mask, opts,
                                                  amp)
        history.append({"iteration": iteration, "epoch": epoch, "steps": steps,
                        "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_loss_identity": val_identity,
                        "noise_level": level, "seconds": time.perf_counter() - t0})
        log.info("iteration %d epoch %d/%d: train L1 %.5f, val L1 %.5f (identity %.5f), "
                 "%.1f s", iteration, epoch, opts.epochs, history[-1]["train_loss"], val_loss,
                 val_identity, history[-1]["seconds"])

    pred = predict_cubes(model, orig, opts.batch_size, opts.mixed_precision)
    new = _normalise_batch(fill_wedge(pred, orig, mask), opts.percentiles, opts.normalisation)
    return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "filled": new.cpu().numpy(), "history": history}


def recalibrate_batchnorm(model, cubes, opts, amp) -> None:
    """Re-estimate every BatchNorm's running statistics for the current weights.

    Running statistics are reset and re-accumulated as an exact average over the
    first ``opts.bn_recalibration`` batches of ``cubes`` (dropout off, no added noise).
    ``cubes`` are the inputs the eval-mode network will be applied to: the original
    (singly wedged, unrotated) subtomograms, which is what prediction sees. Without it
    the statistics lag behind the weights and carry dropout's variance shift, which
    after only a few hundred steps makes eval-mode predictions erratic. Estimating them
    on the *training* inputs instead (rotated, wedge-filtered a second time) gives
    statistics of a different distribution; with a wide missing wedge (±40°) the
    mismatch made predictions worse than the WBP input (benchmarks/README.md).
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.eval()
    for bn in bns:
        bn.train()
    with torch.no_grad():
        for k in range(int(opts.bn_recalibration)):
            sel = np.arange(k * opts.batch_size, (k + 1) * opts.batch_size) % len(cubes)
            with _autocast(cubes.device, amp):
                model(cubes[torch.from_numpy(sel).to(cubes.device), None])
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.eval()


def _validation_loss(model, cubes, val, rotations, mask, opts, amp) -> tuple[float, float]:
    """Mean L1 of the model and of the identity (input as prediction) on the held-out pairs."""
    if len(val) == 0:
        return float("nan"), float("nan")
    import torch
    import torch.nn.functional as F

    model.eval()
    total = ident = 0.0
    with torch.no_grad():
        for s in range(0, len(val), opts.batch_size):
            b = val[s:s + opts.batch_size]
            sel = torch.from_numpy(b[:, 0]).to(cubes.device)
            inp, tgt = make_pairs(cubes[sel], b[:, 1], rotations, mask, opts.cube_size)
            with _autocast(cubes.device, amp):
                total += F.l1_loss(model(inp).float(), tgt, reduction="sum").item()
            ident += F.l1_loss(inp, tgt, reduction="sum").item()
    n = len(val) * opts.cube_size ** 3
    return total / n, ident / n


def write_iteration(result: dict, model_path, filled_path, loss_path,
                    voxel_size: float = 1.0) -> None:
    """Write one iteration's model (state dict), filled cubes and loss table, atomically."""
    import torch

    with atomic_path(model_path) as tmp:
        torch.save(result["state"], tmp)
    write_mrc(filled_path, result["filled"], voxel_size)
    with atomic_path(loss_path) as tmp:
        tmp.write_text(history_csv(result["history"]))


def history_csv(history: list[dict]) -> str:
    """The loss table as CSV text, as ``pandas.DataFrame(history).to_csv(index=False)``
    writes it (shortest round-trip floats, NaN as an empty field), without pandas."""
    if not history:
        return "\n"

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return repr(float(v))

    cols = list(history[0])
    lines = [",".join(cols)]
    lines += [",".join(fmt(row.get(c)) for c in cols) for row in history]
    return "\n".join(lines) + "\n"


def read_model(path) -> dict:
    """A state dict saved by :func:`write_iteration` (``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable model state dict ({exc})") from exc


def refine_iteration_files(subtomos_star, tlt_path, iteration: int, opts: dict, out_model,
                           out_filled, out_loss, prev_model=None, prev_filled=None,
                           level: float = 0.0, seed: int = 0, device="cpu",
                           log: logging.Logger | None = None) -> dict:
    """:func:`refine_iteration` from and to files (the workflow's refine step).

    Parameters
    ----------
    subtomos_star : path
        STAR file of the extracted cubes.
    tlt_path : path
        The acquisition's ``.tlt``.
    iteration : int
    opts : dict
        :func:`train_options` of the config.
    out_model, out_filled, out_loss : paths
        ``model.pt``, the filled-cube stack, ``loss.csv``.
    prev_model, prev_filled : paths, optional
        Iteration N−1's outputs (both or neither; neither for N = 1).
    level : float
        This iteration's noise level.
    """
    if (prev_model is None) != (prev_filled is None) or (iteration > 1) != (prev_model is not None):
        raise ValueError("iteration > 1 needs the previous model and filled cubes (and "
                         "iteration 1 neither)")
    raw, _, voxel = read_subtomos(subtomos_star, table=False)
    angles = read_tlt(tlt_path)
    state = read_model(prev_model) if prev_model else None
    filled = read_stack(prev_filled)[0] if prev_filled else None
    result = refine_iteration(raw, angles, iteration, TrainOptions(**opts), filled=filled,
                              state=state, level=level, seed=seed, device=device, log=log)
    write_iteration(result, out_model, out_filled, out_loss, voxel)
    return result


def run_refine(raw: np.ndarray, angles_deg, iterations: int, opts: TrainOptions,
               schedule: dict | None = None, seed: int = 0, device="cpu", out_dir=None,
               log: logging.Logger | None = None, voxel_size: float = 1.0) -> dict:
    """Iterations 1..``iterations`` in one process, the model kept in memory.

    ``schedule``: keyword arguments of :func:`noise_level`. When ``out_dir`` is
    given, iteration N's files are written to ``out_dir/iter_N/`` exactly as the
    workflow writes them. Returns the last iteration's result.
    """
    result = {"state": None, "filled": None}
    for it in range(1, int(iterations) + 1):
        level = noise_level(it, **(schedule or {}))
        result = refine_iteration(raw, angles_deg, it, opts, filled=result["filled"],
                                  state=result["state"], level=level, seed=seed,
                                  device=device, log=log)
        if out_dir is not None:
            d = Path(out_dir) / f"iter_{it}"
            write_iteration(result, d / "model.pt", d / "subtomos.mrc", d / "loss.csv",
                            voxel_size)
    return result
