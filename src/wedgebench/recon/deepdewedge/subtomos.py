"""DeepDeWedge's sub-tomograms: cubes on a regular grid of both half tomograms.

Cubes of edge ``m = ceil_to_even(√2·N)`` (:func:`~.options.extraction_size`) are cut from
``v0`` and ``v1`` at the same positions, on a regular grid with the given stride (default
``N``), starting at the first voxel, without padding (a cube that would leave the tomogram
is not extracted). With an optional mask, a cube is kept when at least
``min_mask_fraction`` of its voxels lie inside the mask. A seeded ``val_fraction`` of the
kept cubes is held out for validation.

Positions are listed in a pandas DataFrame ready for a STAR file: centres as 0-based voxel
indices (the cube of centre ``c`` spans ``[c − m//2, c − m//2 + m)`` on each axis), the
sizes, the mask fraction and the split (``ddwSplit``: ``train`` or ``val``).
:func:`write_subtomos` adds ``rlnImageName`` (the ``v0`` cube, ``<index>@<stack>``) and
``ddwHalf1ImageName`` (the ``v1`` cube) and writes both stacks next to the STAR file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wedgebench.io import InputError
from wedgebench.recon.deepdewedge.options import SECTION, DDWOptions

STAR_COLUMNS = ("rlnSubtomoIndex", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
                "rlnCubeSize", "rlnCropSize", "ddwMaskFraction", "ddwSplit")
SPLITS = ("train", "val")


def grid_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets ``0, stride, 2·stride, …`` of the cubes of ``size`` inside ``length``."""
    if size > length:
        return np.zeros(0, int)
    return np.arange(0, length - size + 1, int(stride))


def grid_positions(shape, size: int, stride: int) -> np.ndarray:
    """Centres ``(z, y, x)`` of every ``size³`` cube on the regular grid that fits ``shape``.

    Raises
    ------
    InputError
        When no cube fits (an axis shorter than ``size``).
    """
    small = [f"{ax}={s}" for ax, s in zip("zyx", shape) if s < size]
    if small:
        raise InputError(f"{SECTION}.cube_size: the extracted cubes ({size}³ = "
                         f"ceil_to_even(√2·cube_size)) do not fit the tomogram "
                         f"({', '.join(small)} of shape {tuple(shape)}); lower "
                         f"{SECTION}.cube_size")
    starts = [grid_starts(n, size, stride) for n in shape]
    grid = np.stack(np.meshgrid(*starts, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + size // 2


def cut_cubes(vol: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """The ``size³`` cubes of ``vol`` around ``centres`` → ``[n, size, size, size]`` float32."""
    h = size // 2
    out = np.empty((len(centres), size, size, size), np.float32)
    for i, (z, y, x) in enumerate(np.asarray(centres, int)):
        out[i] = vol[z - h:z - h + size, y - h:y - h + size, x - h:x - h + size]
    return out


def validation_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean ``[n]``: True for the held-out cubes.

    ``round(fraction · n)`` cubes, at least one when ``fraction > 0`` and ``n ≥ 2``, never
    all of them; chosen by a generator seeded from ``seed``.
    """
    val = np.zeros(n, bool)
    k = int(round(float(fraction) * n))
    if fraction > 0 and n >= 2:
        k = max(k, 1)
    k = min(k, max(n - 1, 0))
    if k:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xDD5]))
        val[rng.choice(n, size=k, replace=False)] = True
    return val


def extract_subtomos(v0: np.ndarray, v1: np.ndarray, opts: DDWOptions,
                     mask: np.ndarray | None = None, seed: int = 0) -> dict:
    """Cubes of both half tomograms on a regular grid, with a validation split.

    Parameters
    ----------
    v0, v1 : ndarray ``[z, y, x]``, same shape
    opts : DDWOptions
        ``cube_size`` (the extracted edge is ``opts.extract_size``), ``stride``,
        ``min_mask_fraction``, ``val_fraction``.
    mask : ndarray of bool ``[z, y, x]``, optional
        Where the specimen is; cubes with less than ``min_mask_fraction`` inside are
        dropped. None keeps every cube.
    seed : int
        Seeds the validation split.

    Returns
    -------
    dict with ``table`` (pandas DataFrame, :data:`STAR_COLUMNS`, one row per cube),
    ``cubes0`` and ``cubes1`` (``[n, m, m, m]`` float32, from ``v0`` and ``v1``) and
    ``val`` (bool ``[n]``).
    """
    import pandas as pd

    v0, v1 = np.asarray(v0, np.float32), np.asarray(v1, np.float32)
    if v0.shape != v1.shape or v0.ndim != 3:
        raise InputError(f"{SECTION}: the half tomograms must be 3-D and of the same shape, "
                         f"got {v0.shape} and {v1.shape}")
    m = opts.extract_size
    centres = grid_positions(v0.shape, m, opts.grid_stride)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != v0.shape:
            raise InputError(f"{SECTION}: the mask {mask.shape} does not match the half "
                             f"tomograms {v0.shape}")
        frac = cut_cubes(mask.astype(np.float32), centres, m).mean(axis=(1, 2, 3))
    else:
        frac = np.ones(len(centres))
    keep = frac >= opts.min_mask_fraction - 1e-12
    if not keep.any():
        raise InputError(f"{SECTION}.min_mask_fraction: no cube has {opts.min_mask_fraction} "
                         f"of its voxels inside the mask (best {frac.max():.3f}); lower it "
                         "or widen the mask")
    centres, frac = centres[keep], frac[keep]
    val = validation_split(len(centres), opts.val_fraction, seed)
    table = pd.DataFrame({
        "rlnSubtomoIndex": np.arange(1, len(centres) + 1),
        "rlnCoordinateX": centres[:, 2].astype(int),
        "rlnCoordinateY": centres[:, 1].astype(int),
        "rlnCoordinateZ": centres[:, 0].astype(int),
        "rlnCubeSize": int(opts.cube_size),
        "rlnCropSize": int(m),
        "ddwMaskFraction": frac.astype(float),
        "ddwSplit": np.where(val, "val", "train"),
    }, columns=list(STAR_COLUMNS))
    return {"table": table, "cubes0": cut_cubes(v0, centres, m),
            "cubes1": cut_cubes(v1, centres, m), "val": val}


def write_subtomos(star_path, stack0_path, stack1_path, table, cubes0: np.ndarray,
                   cubes1: np.ndarray, voxel_size: float = 1.0) -> None:
    """Write both cube stacks and the STAR table (stacks next to the STAR file)."""
    from wedgebench.io import write_mrc, write_star

    star_path, s0, s1 = Path(star_path), Path(stack0_path), Path(stack1_path)
    if {s0.parent.resolve(), s1.parent.resolve()} != {star_path.parent.resolve()}:
        raise ValueError("the cube stacks must be in the STAR file's folder")
    if not len(table) == len(cubes0) == len(cubes1):
        raise ValueError(f"{len(table)} rows for {len(cubes0)}/{len(cubes1)} cubes")
    df = table.copy()
    idx = np.arange(1, len(df) + 1)
    df["rlnImageName"] = [f"{i:06d}@{s0.name}" for i in idx]
    df["ddwHalf1ImageName"] = [f"{i:06d}@{s1.name}" for i in idx]
    write_mrc(s0, np.asarray(cubes0, np.float32), voxel_size)
    write_mrc(s1, np.asarray(cubes1, np.float32), voxel_size)
    write_star(star_path, df, name="deepdewedge_subtomos")


def _stack_cubes(star_path: Path, names, stacks: dict) -> np.ndarray:
    from wedgebench.recon.isonet.extract import read_stack

    out = []
    for name in names:
        idx, _, fname = str(name).partition("@")
        if not fname or not idx.isdigit():
            raise InputError(f"{star_path}: image name {name!r} is not '<index>@<file>'")
        if fname not in stacks:
            stacks[fname] = read_stack(star_path.parent / fname)
        data = stacks[fname][0]
        if not 1 <= int(idx) <= len(data):
            raise InputError(f"{star_path}: {name!r} is out of range ({len(data)} cubes)")
        out.append(data[int(idx) - 1])
    return np.stack(out)


def read_subtomos(star_path) -> dict:
    """Read what :func:`write_subtomos` wrote.

    Returns
    -------
    dict with ``table``, ``cubes0``, ``cubes1``, ``val`` (as :func:`extract_subtomos`) and
    ``voxel_size``.
    """
    from wedgebench.io import read_star

    star_path = Path(star_path)
    df = read_star(star_path)
    need = ["rlnImageName", "ddwHalf1ImageName", "ddwSplit", "rlnCropSize"]
    missing = [c for c in need if c not in df]
    if missing:
        raise InputError(f"{star_path}: missing columns {missing}")
    bad = sorted(set(map(str, df["ddwSplit"])) - set(SPLITS))
    if bad:
        raise InputError(f"{star_path}: ddwSplit values {bad} not in {SPLITS}")
    stacks: dict = {}
    cubes0 = _stack_cubes(star_path, df["rlnImageName"], stacks)
    cubes1 = _stack_cubes(star_path, df["ddwHalf1ImageName"], stacks)
    if cubes0.shape[-1] != int(df["rlnCropSize"].iloc[0]):
        raise InputError(f"{star_path}: cubes of size {cubes0.shape[-1]} but rlnCropSize "
                         f"{df['rlnCropSize'].iloc[0]}")
    return {"table": df, "cubes0": cubes0, "cubes1": cubes1,
            "val": np.asarray(df["ddwSplit"].astype(str) == "val"),
            "voxel_size": next(iter(stacks.values()))[1]}
