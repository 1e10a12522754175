"""DeepDeWedge's 3-D U-Net, in PyTorch: the published network and wedgebench's variant.

Architecture (``L`` = ``levels`` down-samplings, ``c_i = base_channels · 2**i``)::

    x_n = (x − mean) / std                          input normalisation (buffers)
    level i = 0..L-1:  Block(c_{i-1} → c_i) -> skip_i -> Down(c_i)      (c_{-1} = 1)
    bottleneck
    level i = L-1..0:  Up(· → c_i) ++ skip_i -> Block(2·c_i → c_i)
    y = Conv1³(c_0 → 1) + x_n                        residual add of the (normalised) input
    return y · std + mean                            output de-normalisation

* Block: 3 × [Conv3d 3³ → InstanceNorm3d → LeakyReLU(0.05)].

``network="published"`` (the official code's U-Net, facts in ``docs/methods.md``):

* Down: stride-2 Conv3d 3³ (c_i → c_i) → LeakyReLU.
* Bottleneck: Conv3d 3³ (c_{L-1} → 2·c_{L-1}) → LeakyReLU → Conv3d 3³ (→ c_{L-1}), no
  normalisation.
* Up: stride-2 ConvTranspose3d 3³ (padding 1, output padding 1) from c_{L-1} (the
  bottleneck) or c_{i+1} (the level below) to c_i; the LeakyReLU follows the concatenation
  with the skip, so it acts on both.
* Trainable parameters (1 channel in and out): 102,417 at 8 channels × 2 levels, 6,832,129
  at 32 × 3, 27,322,369 at 64 × 3.

``network="normalised_bottleneck"`` (wedgebench's earlier network): Down without an
activation, a full Block(c_{L-1} → c_L) as bottleneck, Up a stride-2 ConvTranspose3d 2³
(c_{i+1} → c_i) without an activation (138,689 / 9,111,937 / 36,440,833 parameters).

With base 64 and 3 levels the channels are 64/128/256 and the bottleneck doubles to 512,
as in the paper. The normalisation statistics are buffers of the module (they travel with
its state dict); the fit sets them (:mod:`.fit`). Input sizes must be multiples of
``2**levels``.

torch is imported when a network is built, not when this module is imported.
"""

from __future__ import annotations

import functools

LEAKY_SLOPE = 0.05
CONVS_PER_BLOCK = 3
NETWORKS = ("published", "normalised_bottleneck")


@functools.cache
def _unet_class():
    """The ``nn.Module`` class, defined on first use (keeps torch out of module import)."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        layers = []
        for k in range(CONVS_PER_BLOCK):
            layers += [nn.Conv3d(cin if k == 0 else cout, cout, 3, padding=1),
                       nn.InstanceNorm3d(cout), nn.LeakyReLU(LEAKY_SLOPE)]
        return nn.Sequential(*layers)

    class DDWUNet(nn.Module):
        """DeepDeWedge's residual 3-D U-Net (see :mod:`wedgebench.recon.deepdewedge.model`)."""

        def __init__(self, levels: int = 3, base_channels: int = 32,
                     network: str = "published"):
            super().__init__()
            self.levels, self.base_channels = int(levels), int(base_channels)
            self.network = network
            published = network == "published"
            ch = [self.base_channels * 2 ** i for i in range(self.levels + 1)]
            self.enc = nn.ModuleList()
            self.down = nn.ModuleList()
            cin = 1
            for i in range(self.levels):
                self.enc.append(block(cin, ch[i]))
                down = nn.Conv3d(ch[i], ch[i], 3, stride=2, padding=1)
                self.down.append(nn.Sequential(down, nn.LeakyReLU(LEAKY_SLOPE)) if published
                                 else down)
                cin = ch[i]
            bottom = ch[self.levels - 1]
            self.bottleneck = nn.Sequential(
                nn.Conv3d(bottom, 2 * bottom, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
                nn.Conv3d(2 * bottom, bottom, 3, padding=1)) if published else \
                block(bottom, ch[self.levels])
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for i in reversed(range(self.levels)):
                if published:
                    below = ch[min(i + 1, self.levels - 1)]
                    self.up.append(nn.ConvTranspose3d(below, ch[i], 3, stride=2, padding=1,
                                                      output_padding=1))
                    self.dec.append(nn.Sequential(nn.LeakyReLU(LEAKY_SLOPE),
                                                  *block(2 * ch[i], ch[i])))
                else:
                    self.up.append(nn.ConvTranspose3d(ch[i + 1], ch[i], 2, stride=2))
                    self.dec.append(block(2 * ch[i], ch[i]))
            self.out = nn.Conv3d(ch[0], 1, 1)
            self.register_buffer("norm_mean", torch.zeros((), dtype=torch.float32))
            self.register_buffer("norm_std", torch.ones((), dtype=torch.float32))

        @property
        def multiple(self) -> int:
            """Input sizes must be multiples of this (``2**levels``)."""
            return 2 ** self.levels

        def set_normalisation(self, mean: float, std: float) -> None:
            """Set the input statistics (``std`` must be > 0)."""
            if not std > 0:
                raise ValueError(f"normalisation std must be > 0, got {std}")
            self.norm_mean.fill_(float(mean))
            self.norm_std.fill_(float(std))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``x``: ``[B, 1, z, y, x]``, every size a multiple of :attr:`multiple`."""
            m = self.multiple
            if x.ndim != 5 or x.shape[1] != 1 or any(s % m for s in x.shape[2:]):
                raise ValueError(f"DDWUNet input must be [B, 1, z, y, x] with sizes multiple "
                                 f"of {m}, got {tuple(x.shape)}")
            xn = (x - self.norm_mean) / self.norm_std
            from ..isonet.unet import unet_levels

            return (self.out(unet_levels(self, xn)) + xn) * self.norm_std + self.norm_mean

    return DDWUNet


def build_unet(levels: int = 3, base_channels: int = 32, network: str = "published"):
    """A fresh (randomly initialised from torch's global generator) DeepDeWedge U-Net.

    Parameters
    ----------
    levels : int
        Down-samplings (3).
    base_channels : int
        Channels of the first level (32; the paper uses 32 or 64).
    network : {"published", "normalised_bottleneck"}
        The official network or wedgebench's earlier variant (module docstring).

    Returns
    -------
    torch.nn.Module with ``set_normalisation(mean, std)`` and ``multiple``
    """
    if int(levels) < 1 or int(base_channels) < 1:
        raise ValueError(f"levels and base_channels must be >= 1, got {levels}, "
                         f"{base_channels}")
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    return _unet_class()(levels, base_channels, network)


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
