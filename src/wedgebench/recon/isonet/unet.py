"""IsoNet's 3-D U-Net, in PyTorch.

Architecture (IsoNet v1, sizes configurable)::

    level i = 0..L-1 (filters f_i):  ConvBlock(f_i) -> skip_i -> Down(f_i)
    bottleneck:                       Conv(2·f_{L-1}) -> Conv(f_{L-1})
    level i = L-1..0:                 Up(f_i) ++ skip_i -> ConvBlock(f_i)
    output:                           Conv1x1x1(1) + input          (residual)

* ConvBlock: ``convs_per_block`` × [Conv3d 3³ → BatchNorm → Dropout → LeakyReLU(0.05)].
* Down: stride-2 Conv3d 3³ → BatchNorm → LeakyReLU (halves every axis).
* Up: stride-2 ConvTranspose3d 3³ → BatchNorm → LeakyReLU (doubles every axis).

With filters (64, 128, 256) and 3 convolutions per block the network has
27.3 M parameters (IsoNet: ~27 M). Input sizes must be multiples of ``2**L``.
"""

from __future__ import annotations

import torch
from torch import nn

LEAKY_SLOPE = 0.05


def _conv_unit(cin: int, cout: int, dropout: float) -> list[nn.Module]:
    # the Dropout module is kept at p = 0 too, so state-dict keys do not depend on p
    return [nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.Dropout(dropout),
            nn.LeakyReLU(LEAKY_SLOPE)]


def conv_block(cin: int, cout: int, convs: int, dropout: float) -> nn.Sequential:
    """``convs`` × [Conv3d 3³ → BatchNorm → Dropout → LeakyReLU]."""
    layers = []
    for k in range(convs):
        layers += _conv_unit(cin if k == 0 else cout, cout, dropout)
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """IsoNet's residual 3-D U-Net.

    Parameters
    ----------
    filters : sequence of int
        Filters per level, e.g. ``(64, 128, 256)``; its length is the depth L.
    convs_per_block : int
        Convolutions per block.
    dropout : float
        Dropout probability after each convolution's batch norm (0 disables).
    identity_init : bool
        Initialise the output convolution to zero, so that the untrained network is
        exactly the identity (residual learning starts from the input). IsoNet v1
        uses the default random initialisation (False).
    """

    def __init__(self, filters=(64, 128, 256), convs_per_block: int = 3,
                 dropout: float = 0.3, identity_init: bool = False):
        super().__init__()
        filters = [int(f) for f in filters]
        if not filters or min(filters) < 1 or convs_per_block < 1:
            raise ValueError(f"isonet.unet: bad filters {filters} / convs_per_block "
                             f"{convs_per_block}")
        self.filters = filters
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = 1
        for f in filters:
            self.enc.append(conv_block(cin, f, convs_per_block, dropout))
            self.down.append(nn.Sequential(nn.Conv3d(f, f, 3, stride=2, padding=1),
                                           nn.BatchNorm3d(f), nn.LeakyReLU(LEAKY_SLOPE)))
            cin = f
        top = filters[-1]
        self.bottleneck = nn.Sequential(*_conv_unit(top, 2 * top, dropout),
                                        *_conv_unit(2 * top, top, dropout))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        cin = top
        for f in reversed(filters):
            self.up.append(nn.Sequential(
                nn.ConvTranspose3d(cin, f, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm3d(f), nn.LeakyReLU(LEAKY_SLOPE)))
            self.dec.append(conv_block(2 * f, f, convs_per_block, dropout))
            cin = f
        self.out = nn.Conv3d(filters[0], 1, 1)
        if identity_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (``2**depth``)."""
        return 2 ** len(self.filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, 1, z, y, x]`` with every size a multiple of :attr:`multiple`."""
        m = self.multiple
        if x.ndim != 5 or x.shape[1] != 1 or any(s % m for s in x.shape[2:]):
            raise ValueError(f"UNet input must be [B, 1, z, y, x] with sizes multiple of {m}, "
                             f"got {tuple(x.shape)}")
        return self.out(unet_levels(self, x)) + x


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def unet_levels(net, x):
    """Encoder, bottleneck and decoder of a U-Net with skip concatenation: ``net.enc``,
    ``net.down``, ``net.bottleneck``, ``net.up``, ``net.dec`` (shared by IsoNet's and
    DeepDeWedge's networks); returns the last decoder's features."""
    import torch

    skips = []
    h = x
    for enc, down in zip(net.enc, net.down):
        h = enc(h)
        skips.append(h)
        h = down(h)
    h = net.bottleneck(h)
    for up, dec, skip in zip(net.up, net.dec, reversed(skips)):
        h = dec(torch.cat([up(h), skip], dim=1))
    return h
