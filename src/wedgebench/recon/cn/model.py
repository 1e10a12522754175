"""The coordinate network: a SIREN mapping slab-local (x, y, z) ∈ [0, 1]³ to density.

Architecture (Sitzmann et al. 2020, as used by the CN missing-wedge paper):
``depth`` sine layers ``h ← sin(ω0 · (W h + b))`` of ``width`` features, then a
linear output layer (no output activation). The paper's network is
``depth = 5, width = 256`` without encoding: 264,449 parameters.

Initialisation (SIREN): the first layer's weights are ``U(−1/in, 1/in)``, every
later layer's ``U(±√(6/in)/ω0)`` (``in`` = its fan-in, i.e. ``width``); biases keep
PyTorch's default ``U(±1/√in)``.

Optional non-negative output (not in the paper, whose output is merely clipped at 0
afterwards): ``positivity: softplus`` gives the density ``softplus_β(f) =
log(1 + exp(β f)) / β``, which builds the prior that densities are non-negative
into the fit. Softplus is monotone, so unlike ``abs`` (``|f|``) it cannot create
dark "creases" where ``f`` changes sign inside an object (such creases, once formed,
are carried from slab to slab by the warm starts), and unlike a ReLU it never blocks
a voxel's gradient. β is in units of the (gain-normalised, order-one) output.
For data whose zero level is not the background (inverted contrast, unnormalised
measured stacks) use ``none``.

Optional Fourier-feature encoding (Tancik et al. 2020): the coordinates are
first mapped to ``[sin(2π B p), cos(2π B p)]`` with a fixed Gaussian matrix
``B ~ N(0, scale²)`` of shape ``(n_features, 3)``, stored as a buffer so that it
is part of the state dict (and therefore of every checkpoint and warm start).

Output gain: the slab volume is ``gain · f(p)`` (:func:`output_gain`). With
``output_scale: auto`` the gain is ``max(tilt series) / thickness`` (the density of a
column that alone would produce the brightest measured pixel), so that the network works
with outputs of order one whatever the thickness and normalisation of the data; the paper
uses no gain (``output_scale: 1``). Without it a SIREN spends its first hundreds of
iterations shrinking its default-initialised output to the data's tiny density scale
(≈ 0.02–0.1 for data normalised to [0, 1]).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: Defaults of every ``cn`` option; identical to the defaults of the ``cn`` section of
#: ``workflow/schemas/config.schema.yaml`` (a test checks this), i.e. the CPU preset.
CN_DEFAULTS = {
    "width": 64, "depth": 3, "omega0": 30.0, "encoding": "none", "n_features": 64,
    "fourier_scale": 4.0, "positivity": "softplus", "softplus_beta": 5.0,
    "coordinates": "isotropic", "output_scale": "auto", "slab_size": 8,
    "params_per_measurement": 2.0, "overlap": 0, "chunks": 2, "anchor_iterations": 300,
    "anchor_lr": 1.0e-3, "anchor_lr_end": 1.0e-4, "iterations": 150, "lr": 1.0e-3,
    "lr_end": 1.0e-4, "reg_weight": 0.0, "output": "clip_rescale", "mixed_precision": True,
    "log_every": 0, "mem_mb": 2000, "runtime": 60, "warm_start": "neighbour",
    "chain_start": "anchor", "ensemble": False, "ensemble_size": 0, "holdout_fraction": 0.0, "holdout_every": 10,
    "patience": 5, "projector": "footprint", "budget": 1.0,
    "scale_with_data": {},
}

ENCODINGS = ("none", "fourier")
POSITIVITY = ("none", "abs", "softplus")


class SineLayer(nn.Module):
    """``sin(ω0 · (W x + b))`` with SIREN initialisation.

    Parameters
    ----------
    n_in, n_out : int
        Fan-in and fan-out.
    omega0 : float
        Frequency factor ω0.
    first : bool
        First layer of the network: weights ``U(−1/n_in, 1/n_in)``; otherwise
        ``U(±√(6/n_in)/ω0)``.
    generator : torch.Generator, optional
        Random source of the initialisation.
    """

    def __init__(self, n_in: int, n_out: int, omega0: float, first: bool,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.omega0 = float(omega0)
        self.linear = nn.Linear(n_in, n_out)
        bound = 1.0 / n_in if first else math.sqrt(6.0 / n_in) / self.omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            b = 1.0 / math.sqrt(n_in)
            self.linear.bias.uniform_(-b, b, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ω0·(W x + b) computed as (ω0 W) x + ω0 b: same values and gradients, but the
        # scaling touches the weights instead of every activation.
        w, b = self.linear.weight, self.linear.bias
        return torch.sin(nn.functional.linear(x, w * self.omega0, b * self.omega0))


class CoordinateNetwork(nn.Module):
    """SIREN with an optional Fourier-feature encoding of its 3-D input.

    Parameters
    ----------
    width : int
        Features of every sine layer.
    depth : int
        Number of sine layers (≥ 1); a final linear layer maps ``width → 1``.
    omega0 : float
        SIREN frequency factor (paper: 30).
    encoding : {"none", "fourier"}
        Positional encoding of the coordinates.
    n_features : int
        Number of Fourier frequencies (the encoding has ``2 · n_features`` channels).
    scale : float
        Standard deviation of the Fourier frequencies, in cycles per unit length
        (the slab spans [0, 1] along each axis).
    positivity : {"none", "abs", "softplus"}
        Output transform: none (the paper), the absolute value, or softplus.
    softplus_beta : float
        β of the softplus (> 0).
    seed : int
        Seed of the initialisation (and of the Fourier matrix).
    """

    def __init__(self, width: int = 256, depth: int = 5, omega0: float = 30.0,
                 encoding: str = "none", n_features: int = 64, scale: float = 4.0,
                 positivity: str = "none", softplus_beta: float = 5.0, seed: int = 0):
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"cn encoding must be one of {ENCODINGS}, got {encoding!r}")
        if positivity not in POSITIVITY:
            raise ValueError(f"cn positivity must be one of {POSITIVITY}, got {positivity!r}")
        if not float(softplus_beta) > 0:
            raise ValueError(f"cn softplus_beta must be > 0, got {softplus_beta}")
        self.positivity = positivity
        self.softplus_beta = float(softplus_beta)
        if int(width) < 1 or int(depth) < 1:
            raise ValueError(f"cn width and depth must be >= 1, got {width}, {depth}")
        gen = torch.Generator().manual_seed(int(seed))
        self.encoding = encoding
        if encoding == "fourier":
            if int(n_features) < 1 or not float(scale) > 0:
                raise ValueError(f"cn fourier encoding needs n_features >= 1 and scale > 0, "
                                 f"got {n_features}, {scale}")
            b = torch.randn(int(n_features), 3, generator=gen) * float(scale)
            self.register_buffer("fourier_b", b)
            n_in = 2 * int(n_features)
        else:
            n_in = 3
        layers = [SineLayer(n_in, int(width), omega0, True, gen)]
        layers += [SineLayer(int(width), int(width), omega0, False, gen)
                   for _ in range(int(depth) - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(int(width), 1)
        with torch.no_grad():
            bound = math.sqrt(6.0 / int(width)) / float(omega0)
            self.head.weight.uniform_(-bound, bound, generator=gen)
            b = 1.0 / math.sqrt(int(width))
            self.head.bias.uniform_(-b, b, generator=gen)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """The network's input features of ``coords[..., 3]``."""
        if self.encoding == "fourier":
            proj = (2.0 * math.pi) * coords @ self.fourier_b.t().to(coords.dtype)
            return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        return coords

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Density at ``coords[..., 3]`` (x, y, z); returns ``[...]``."""
        out = self.head(self.body(self.encode(coords)))[..., 0]
        if self.positivity == "abs":
            return out.abs()
        if self.positivity == "softplus":
            return nn.functional.softplus(out, beta=self.softplus_beta)
        return out


def n_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def options(cfg: dict | None) -> dict:
    """The ``cn`` section completed with :data:`CN_DEFAULTS`.

    Raises
    ------
    ValueError
        A key that is not a ``cn`` option (named in the message).
    """
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(CN_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown cn option(s) {unknown}; allowed: {sorted(CN_DEFAULTS)}")
    return {**CN_DEFAULTS, **cfg}


def output_gain(stack: np.ndarray, thickness: int, output_scale="auto") -> float:
    """The factor between network output and density (module docstring, *Output gain*).

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
        The whole tilt series (every slab of a reconstruction uses the same gain).
    thickness : int
    output_scale : "auto" or float > 0
    """
    if output_scale == "auto":
        peak = float(np.max(np.abs(stack)))
        return peak / int(thickness) if peak > 0 else 1.0
    if isinstance(output_scale, bool) or not isinstance(output_scale, (int, float)) \
            or not output_scale > 0:
        raise ValueError(f"cn output_scale must be 'auto' or a number > 0, got "
                         f"{output_scale!r}")
    return float(output_scale)


def build_network(cfg: dict, seed: int = 0) -> CoordinateNetwork:
    """A :class:`CoordinateNetwork` from the ``cn`` config section (see :func:`options`)."""
    cfg = options(cfg)
    return CoordinateNetwork(width=cfg["width"], depth=cfg["depth"], omega0=cfg["omega0"],
                             encoding=cfg["encoding"], n_features=cfg["n_features"],
                             scale=cfg["fourier_scale"], positivity=cfg["positivity"],
                             softplus_beta=cfg["softplus_beta"], seed=seed)


def slab_coordinates(nz: int, j: int, nx: int, device="cpu",
                     mode: str = "unit") -> torch.Tensor:
    """Slab-local coordinates ``[nz, j, nx, 3]`` = (x, y, z) in [0, 1].

    Parameters
    ----------
    nz, j, nx : int
        Slab size.
    device : str or torch.device
    mode : {"unit", "isotropic"}
        ``unit`` (the paper): every axis is ``linspace(0, 1, n)`` (an axis of length 1
        sits at 0), so one voxel step differs between axes. ``isotropic``: voxel
        index / (max(nz, j, nx) − 1) on every axis, so a voxel step is the same
        length along x, y and z and the network's frequency content means the same
        thing in every direction (the longest axis spans [0, 1]).
    """
    if mode == "unit":
        axes = [np.linspace(0.0, 1.0, n, dtype=np.float32) for n in (nz, j, nx)]
    elif mode == "isotropic":
        step = 1.0 / max(max(nz, j, nx) - 1, 1)
        axes = [(np.arange(n) * step).astype(np.float32) for n in (nz, j, nx)]
    else:
        raise ValueError(f"cn coordinates must be 'unit' or 'isotropic', got {mode!r}")
    z, y, x = torch.meshgrid(*(torch.from_numpy(a) for a in axes), indexing="ij")
    return torch.stack([x, y, z], dim=-1).to(device)


def save_weights(path, state: dict) -> None:
    """Write a state dict atomically with ``torch.save``."""
    from ...io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)


def load_weights(path) -> dict:
    """Read a state dict written by :func:`save_weights` (``weights_only=True``)."""
    from ...io import InputError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise InputError(f"{path}: not a readable CN weights file ({exc})") from exc
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(f"{path}: not a CN state dict")
    return state
