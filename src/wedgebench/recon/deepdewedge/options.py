"""DeepDeWedge's settings: one frozen dataclass, built from a config section.

Defaults are the published ones (paper and tutorial, ``/work/shared/reference.md`` §7):
cubes of 96³ extracted at ``ceil_to_even(√2·96) = 136``, a U-Net with 3 down-samplings,
Adam at 4e-4 with batch 5 for 1000 epochs, a wedge update and a validation loss every 10
epochs, 10 % of the cubes held out, cubes kept when ≥ 30 % inside the optional mask,
refinement tiles overlapping by ⌈N/3⌉.

Everything else follows the official code by default, and each of wedgebench's earlier
departures from it is a named setting (``docs/methods.md``, "DeepDeWedge as published"):

==================== =================== ==============================================
setting              published (default) departure
==================== =================== ==============================================
``network``          ``published``       ``normalised_bottleneck``: a full conv + instance
                                         norm block at the bottom, no activation after the
                                         down/up-samplings, 2³ transposed convolutions
``input_statistics`` ``per_cube``        ``global``: mean and std of all unrotated crops
``shuffle``          ``False``           ``True``: a fresh cube order every epoch
``mask_rotation``    ``cubic``           ``linear_clipped``: trilinear, clipped to [0, 1],
                                         Friedel-symmetrised, edge values continued
``refine_statistics`` ``recompute``      ``fit``: the fitting statistics only
``tiling``           ``end_padded``      ``centred``: symmetric reflected margins
==================== =================== ==============================================

Base channels: 32 (the paper reports 32 and 64). 32 costs about a quarter of the
arithmetic and of the parameters of 64 (9.1 M vs 36.4 M at 3 levels), which matters on this
benchmark's CPU- and small-GPU-sized volumes; set ``base_channels: 64`` for the larger net.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from wedgebench.io import InputError

SECTION = "deepdewedge"
HALVES = ("tilts", "frames")
#: the named departures from the official code: allowed values, the published one first
CHOICES = {"network": ("published", "normalised_bottleneck"),
           "input_statistics": ("per_cube", "global"),
           "mask_rotation": ("cubic", "linear_clipped"),
           "refine_statistics": ("recompute", "fit"),
           "tiling": ("end_padded", "centred")}


def ceil_to_even(x: float) -> int:
    """The smallest even integer ≥ ``x``."""
    n = math.ceil(x - 1e-9)
    return n + (n % 2)


def extraction_size(cube_size: int) -> int:
    """Edge of the extracted cubes: ``ceil_to_even(√2 · cube_size)`` (136 for 96).

    A cube of that size still covers the central ``cube_size³`` after any rotation about
    one axis, so rotated cubes can be centre-cropped to ``cube_size³``.
    """
    return ceil_to_even(math.sqrt(2.0) * int(cube_size))


@dataclasses.dataclass(frozen=True)
class DDWOptions:
    """Everything that shapes DeepDeWedge's extraction, fitting and refinement.

    Field names are the keys of the config's ``deepdewedge`` section.

    Attributes
    ----------
    cube_size : int
        N, the network's cube edge; a multiple of ``2**levels`` (paper: 96).
    levels : int
        Down-samplings of the U-Net (3).
    base_channels : int
        Channels of the first level, doubled per level (32; the paper uses 32 or 64).
    learning_rate : float
        Adam's step size (4e-4, no schedule).
    batch_size : int
        Sub-tomogram pairs per step (5).
    epochs : int
        Total epochs of the fit (1000 in the tutorial).
    update_every : int
        Epochs between wedge updates of the ``v0`` cubes (10); 0 disables them.
    val_every : int
        Epochs between validation losses (10).
    val_fraction : float
        Fraction of the cubes held out for validation, in [0, 1) (0.1).
    stride : int or None
        Grid step of the extraction, voxels (None: ``cube_size``).
    min_mask_fraction : float
        A cube is kept when at least this fraction of it lies inside the mask (0.3).
    spline_order : int
        Interpolation order of the cube rotations, 0–5 (3: cubic spline).
    overlap : int or None
        Overlap of the refinement tiles, voxels (None: ⌈N/3⌉).
    refine_batch_size : int
        Tiles per forward pass in refinement.
    halves : {"tilts", "frames"}
        How the two half tomograms were made: even/odd tilts, or even/odd movie frames
        of every tilt (recommended by the paper when the frames exist).
    network : {"published", "normalised_bottleneck"}
        The official U-Net (:func:`~.model.build_unet`) or wedgebench's earlier variant.
    input_statistics : {"per_cube", "global"}
        The model's input normalisation: the mean of per-cube means and the square root of
        the mean per-cube variance of the rotated training inputs (official), or the mean
        and standard deviation of all unrotated crops.
    shuffle : bool
        Visit the training cubes in a fresh random order every epoch (the official loader
        keeps their order).
    mask_rotation : {"cubic", "linear_clipped"}
        How the wedge mask is rotated with a cube (:func:`~.masks.rotated_mask`).
    refine_statistics : {"recompute", "fit"}
        Refinement: standardise each half and map it to the input statistics recomputed on
        ``v0``'s rotated cubes (official), or feed the halves as they are.
    tiling : {"end_padded", "centred"}
        Refinement tiles (:func:`~.predict.tile_volume`): the official grid from the
        origin with reflection padding at the end of each axis, or IsoNet's centred tiling
        with symmetric reflected margins.
    """

    cube_size: int = 96
    levels: int = 3
    base_channels: int = 32
    learning_rate: float = 4e-4
    batch_size: int = 5
    epochs: int = 1000
    update_every: int = 10
    val_every: int = 10
    val_fraction: float = 0.1
    stride: int | None = None
    min_mask_fraction: float = 0.3
    spline_order: int = 3
    overlap: int | None = None
    refine_batch_size: int = 5
    halves: str = "tilts"
    network: str = "published"
    input_statistics: str = "per_cube"
    shuffle: bool = False
    mask_rotation: str = "cubic"
    refine_statistics: str = "recompute"
    tiling: str = "end_padded"

    def __post_init__(self):
        def integer(key, lo, allow_none=False):
            v = getattr(self, key)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or \
                    not float(v).is_integer():
                raise InputError(f"{SECTION}.{key} must be an integer, got {v!r}")
            if int(v) < lo:
                raise InputError(f"{SECTION}.{key} must be >= {lo}, got {v!r}")
            object.__setattr__(self, key, int(v))

        def real(key):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise InputError(f"{SECTION}.{key} must be a finite number, got {v!r}")
            object.__setattr__(self, key, float(v))

        for key in ("levels", "base_channels", "batch_size", "epochs", "val_every",
                    "refine_batch_size"):
            integer(key, 1)
        integer("update_every", 0)
        integer("spline_order", 0)
        integer("cube_size", 2 ** self.levels)
        integer("stride", 1, allow_none=True)
        integer("overlap", 0, allow_none=True)
        for key in ("learning_rate", "val_fraction", "min_mask_fraction"):
            real(key)
        m = 2 ** self.levels
        if self.cube_size % m:
            raise InputError(f"{SECTION}.cube_size ({self.cube_size}) must be divisible by "
                             f"2**{SECTION}.levels = {m}")
        if self.cube_size < 2 * m:
            raise InputError(f"{SECTION}.cube_size ({self.cube_size}) must be at least "
                             f"2**({SECTION}.levels + 1) = {2 * m} (the bottleneck needs more "
                             "than one voxel for its instance norm)")
        if self.spline_order > 5:
            raise InputError(f"{SECTION}.spline_order must be in 0..5, got "
                             f"{self.spline_order}")
        if not self.learning_rate > 0:
            raise InputError(f"{SECTION}.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"{SECTION}.val_fraction must be in [0, 1), got "
                             f"{self.val_fraction}")
        if not 0 <= self.min_mask_fraction <= 1:
            raise InputError(f"{SECTION}.min_mask_fraction must be in [0, 1], got "
                             f"{self.min_mask_fraction}")
        if self.overlap is not None and self.overlap >= self.cube_size:
            raise InputError(f"{SECTION}.overlap ({self.overlap}) must be smaller than "
                             f"{SECTION}.cube_size ({self.cube_size})")
        if self.halves not in HALVES:
            raise InputError(f"{SECTION}.halves: {self.halves!r} not in {HALVES}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"{SECTION}.{key}: {getattr(self, key)!r} not in "
                                 f"{allowed}")
        if not isinstance(self.shuffle, bool):
            raise InputError(f"{SECTION}.shuffle must be true or false, got "
                             f"{self.shuffle!r}")

    @property
    def extract_size(self) -> int:
        """Edge of the extracted cubes, :func:`extraction_size` of ``cube_size``."""
        return extraction_size(self.cube_size)

    @property
    def grid_stride(self) -> int:
        """The extraction grid's step (``stride``, or ``cube_size`` when unset)."""
        return self.cube_size if self.stride is None else self.stride

    @property
    def tile_overlap(self) -> int:
        """Overlap of the refinement tiles (``overlap``, or ⌈N/3⌉ when unset)."""
        return -(-self.cube_size // 3) if self.overlap is None else self.overlap

    def fit_dict(self) -> dict:
        """The settings a fit's weights depend on (checked when a fit is resumed)."""
        return {k: getattr(self, k) for k in FIT_KEYS}


#: Settings that change the fitted weights; a resumed fit must use the same values.
FIT_KEYS = ("cube_size", "levels", "base_channels", "learning_rate", "batch_size",
            "update_every", "val_every", "spline_order", "network", "input_statistics",
            "shuffle", "mask_rotation")
#: Settings the refinement of the half tomograms depends on (beside the fit).
REFINE_KEYS = ("cube_size", "levels", "overlap", "refine_batch_size", "spline_order",
               "refine_statistics", "tiling")


def options_from_config(cfg: dict | None, ignore=("kind", "overrides", "per_dataset")
                        ) -> DDWOptions:
    """:class:`DDWOptions` from the config's ``deepdewedge`` section (a flat dict).

    Missing keys take the defaults. Keys listed in ``ignore`` are skipped (the
    workflow's own keys); any other unknown key raises.

    Raises
    ------
    InputError (a ValueError)
        Naming the offending key, e.g. ``deepdewedge.cube_size (100) must be divisible by
        2**deepdewedge.levels = 8``.
    """
    cfg = dict(cfg or {})
    names = {f.name for f in dataclasses.fields(DDWOptions)}
    unknown = sorted(k for k in cfg if k not in names and k not in set(ignore))
    if unknown:
        raise InputError(f"{SECTION}: unknown key(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(names))})")
    return DDWOptions(**{k: v for k, v in cfg.items() if k in names})
