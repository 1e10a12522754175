"""IsoNet's Extract step: random subtomograms inside the mask, normalised, listed in a STAR file.

Subtomograms are ``crop_size³`` cubes whose centres are drawn at random (seeded)
among the mask voxels where the whole cube fits inside the tomogram. The tomogram
is contrast-inverted when requested (IsoNet multiplies by −1 so that EM density,
dark in a tomogram, becomes bright) and the cubes are percentile-normalised
(4–96 % by default: the lower percentile maps to 0, the upper to 1), each on its
own as IsoNet does (``normalisation="subtomogram"``) or all with the whole
tomogram's percentiles (``"tomogram"``, the normalisation the predict step applies).

Files: one 4-D MRC stack ``[n, c, c, c]`` holds all cubes; the STAR file lists one
row per subtomogram, ``rlnImageName = "<index>@<stack file name>"`` (1-based, the
stack next to the STAR file), centres as 0-based voxel indices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wedgebench.io import (InputError, read_mrc, read_star, read_star_columns, write_mrc,
                           write_star)
from wedgebench.recon.isonet.mask import make_mask

STAR_COLUMNS = ("rlnSubtomoIndex", "rlnImageName", "rlnCoordinateX", "rlnCoordinateY",
                "rlnCoordinateZ", "rlnCubeSize", "rlnCropSize", "rlnMicrographName",
                "rlnContrastInverted")


def percentile_normalise(x, lower: float = 4.0, upper: float = 96.0):
    """Map the ``lower`` percentile of ``x`` to 0 and the ``upper`` one to 1.

    Parameters
    ----------
    x : ndarray (any shape)
    lower, upper : float
        Percentiles, 0 ≤ lower < upper ≤ 100.

    Returns
    -------
    normalised : ndarray float32
    (lo, hi) : the two percentile values (to undo: ``y·(hi − lo) + lo``).
    A constant ``x`` gets ``hi = lo + 1``.
    """
    x = np.asarray(x, np.float32)
    lo, hi = (float(v) for v in np.percentile(x, [lower, upper]))
    if not hi > lo:
        hi = lo + 1.0
    return ((x - lo) / (hi - lo)).astype(np.float32), (lo, hi)


def extraction_centres(mask: np.ndarray, n: int, crop: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``n`` random centres ``(z, y, x)`` in ``mask`` whose ``crop³`` cube fits the volume.

    The cube of centre ``c`` spans ``[c − crop//2, c − crop//2 + crop)`` on each
    axis. Centres are distinct when the mask has at least ``n`` valid voxels;
    otherwise they are drawn with replacement.
    """
    valid = np.zeros(mask.shape, bool)
    h = crop // 2
    valid[tuple(slice(h, s - (crop - h) + 1) for s in mask.shape)] = True
    idx = np.flatnonzero(valid & mask)
    if idx.size == 0:
        raise InputError("isonet: no voxel of the mask can centre a crop_size cube; relax "
                         "isonet.mask (density_percentage/std_percentage/z_crop) or lower "
                         "isonet.crop_size")
    pick = rng.choice(idx, size=n, replace=n > idx.size)
    return np.stack(np.unravel_index(np.sort(pick), mask.shape), axis=1)


def crop_cubes(tomo: np.ndarray, centres: np.ndarray, crop: int) -> np.ndarray:
    """The ``crop³`` cubes around ``centres`` → ``[n, crop, crop, crop]`` float32."""
    h = crop // 2
    out = np.empty((len(centres), crop, crop, crop), np.float32)
    for i, (z, y, x) in enumerate(centres):
        out[i] = tomo[z - h:z - h + crop, y - h:y - h + crop, x - h:x - h + crop]
    return out


def check_sizes(shape, cube_size: int, crop_size: int, source: str = "the tomogram") -> None:
    """Clear errors for cube/crop sizes that do not fit each other or the tomogram."""
    if cube_size > crop_size:
        raise InputError(f"isonet.cube_size ({cube_size}) must not exceed isonet.crop_size "
                         f"({crop_size})")
    if (crop_size - cube_size) % 2:
        raise InputError(f"isonet.crop_size − isonet.cube_size must be even, got "
                         f"{crop_size} − {cube_size}")
    small = [f"{ax}={s}" for ax, s in zip("zyx", shape) if s < crop_size]
    if small:
        raise InputError(f"isonet.crop_size ({crop_size}) is larger than {source} "
                         f"({', '.join(small)} of shape {tuple(shape)}); lower isonet.crop_size "
                         "and isonet.cube_size")


def extract_subtomos(tomo: np.ndarray, n_subtomos: int, cube_size: int, crop_size: int,
                     invert: bool, seed: int, percentiles=(4.0, 96.0), mask_opts=None,
                     source: str = "the tomogram", normalisation: str = "subtomogram") -> dict:
    """IsoNet's mask + extraction on one tomogram.

    Parameters
    ----------
    tomo : ndarray ``[z, y, x]``
    n_subtomos : int
        Number of subtomograms.
    cube_size, crop_size : int
        Network cube and extraction crop edges (crop ≥ cube).
    invert : bool
        Multiply by −1 first (EM data: dark density).
    seed : int
    percentiles : (float, float)
        Percentile normalisation.
    normalisation : {"subtomogram", "tomogram"}
        Normalise each cube on its own (IsoNet) or the whole tomogram once, as the
        predict step does (cubes keep their intensities relative to the tomogram).
    mask_opts : dict, optional
        Keyword arguments of :func:`~wedgebench.recon.isonet.mask.make_mask`.
    source : str
        Name of the tomogram for error messages.

    Returns
    -------
    dict with ``cubes`` ``[n, c, c, c]`` (normalised), ``centres`` ``[n, 3]`` (z, y, x)
    and ``mask`` (bool, the tomogram's shape).
    """
    if n_subtomos < 1:
        raise InputError(f"isonet.n_subtomos must be >= 1, got {n_subtomos}")
    check_sizes(tomo.shape, cube_size, crop_size, source)
    t = -tomo if invert else np.asarray(tomo)
    mask = make_mask(t, **(mask_opts or {}))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x150]))
    centres = extraction_centres(mask, n_subtomos, crop_size, rng)
    if normalisation == "tomogram":
        cubes = crop_cubes(percentile_normalise(t, *percentiles)[0], centres, crop_size)
    elif normalisation == "subtomogram":
        cubes = np.stack([percentile_normalise(c, *percentiles)[0]
                          for c in crop_cubes(t, centres, crop_size)])
    else:
        raise InputError(f"isonet.normalisation: {normalisation!r} not in "
                         "('subtomogram', 'tomogram')")
    return {"cubes": cubes, "centres": centres, "mask": mask}


def write_subtomos(star_path, stack_path, cubes: np.ndarray, centres: np.ndarray,
                   cube_size: int, tomo_name: str, invert: bool, voxel_size: float) -> None:
    """Write the cube stack and its STAR list (the stack must sit next to the STAR file)."""
    import pandas as pd

    star_path, stack_path = Path(star_path), Path(stack_path)
    if star_path.parent.resolve() != stack_path.parent.resolve():
        raise ValueError("the subtomogram stack must be in the STAR file's folder")
    n, crop = len(cubes), cubes.shape[-1]
    df = pd.DataFrame({
        "rlnSubtomoIndex": np.arange(1, n + 1),
        "rlnImageName": [f"{i:06d}@{stack_path.name}" for i in range(1, n + 1)],
        "rlnCoordinateX": centres[:, 2].astype(int),
        "rlnCoordinateY": centres[:, 1].astype(int),
        "rlnCoordinateZ": centres[:, 0].astype(int),
        "rlnCubeSize": int(cube_size),
        "rlnCropSize": int(crop),
        "rlnMicrographName": str(tomo_name),
        "rlnContrastInverted": int(bool(invert)),
    }, columns=list(STAR_COLUMNS))
    write_mrc(stack_path, cubes, voxel_size)
    write_star(star_path, df, name="isonet_subtomos")


def read_stack(path) -> tuple[np.ndarray, float]:
    """A 4-D cube stack ``[n, c, c, c]`` (a single cube is accepted as n = 1)."""
    path = Path(path)
    try:
        data, voxel = read_mrc(path, ndim=4)
    except InputError:
        data, voxel = read_mrc(path, ndim=3)
        data = data[None]
    if data.shape[1:] != (data.shape[-1],) * 3:
        raise InputError(f"{path}: expected a stack of cubes, found shape {data.shape}")
    return data, voxel


def read_subtomos(star_path, table: bool = True) -> tuple[np.ndarray, "object", float]:
    """Read the cubes listed in a STAR file written by :func:`write_subtomos`.

    Parameters
    ----------
    star_path : path
    table : bool
        Also return the STAR table as a pandas DataFrame. ``False`` reads only the
        two columns needed with :func:`~wedgebench.io.read_star_columns` (no pandas or
        starfile import: a refine job's start-up) and returns ``None`` for the table.

    Returns
    -------
    cubes : ndarray ``[n, c, c, c]`` in STAR order
    table : pandas DataFrame (None when ``table=False``)
    voxel_size : float
    """
    star_path = Path(star_path)
    df = None
    if table:
        df = read_star(star_path)
        cols = {c: list(df[c]) for c in ("rlnImageName", "rlnCubeSize", "rlnCropSize")
                if c in df}
    else:
        try:
            cols = read_star_columns(star_path)
        except InputError:
            if not star_path.is_file():
                raise
            df = read_star(star_path)  # a STAR layout the light reader does not handle
            cols = {c: list(df[c]) for c in df.columns}
    missing = [c for c in ("rlnImageName", "rlnCubeSize", "rlnCropSize") if c not in cols]
    if missing:
        raise InputError(f"{star_path}: missing columns {missing}")
    stacks = {}
    cubes = []
    for name in cols["rlnImageName"]:
        idx, _, fname = str(name).partition("@")
        if not fname or not idx.isdigit():
            raise InputError(f"{star_path}: rlnImageName {name!r} is not '<index>@<file>'")
        if fname not in stacks:
            stacks[fname] = read_stack(star_path.parent / fname)
        data = stacks[fname][0]
        k = int(idx) - 1
        if not 0 <= k < len(data):
            raise InputError(f"{star_path}: {name!r} is out of range ({len(data)} cubes)")
        cubes.append(data[k])
    cubes = np.stack(cubes)
    crop = int(float(cols["rlnCropSize"][0]))
    if cubes.shape[-1] != crop:
        raise InputError(f"{star_path}: cubes of size {cubes.shape[-1]} but rlnCropSize "
                         f"{crop}")
    return cubes, (df if table else None), next(iter(stacks.values()))[1]
