"""File input/output: MRC volumes and stacks, IMOD ``.tlt`` files, STAR and JSON.

Every writer is atomic: data go to a temporary file in the destination folder,
which is renamed onto the final name only once it is complete. A job killed
mid-write therefore never leaves a file that looks finished.

Every reader validates what it reads and raises :class:`InputError` with the
offending path in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


class InputError(ValueError):
    """A user-supplied file or value is unusable; the message names it."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_finite(data: np.ndarray, path) -> None:
    if not np.all(np.isfinite(data)):
        n = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{path}: contains {n} NaN/Inf values")


def read_mrc(path: str | os.PathLike, ndim: int = 3) -> tuple[np.ndarray, float]:
    """Read an MRC/CCP4 file (optionally gzipped) as float32 with its voxel size.

    Parameters
    ----------
    path : path-like
        The file.
    ndim : int
        Required number of dimensions (3 for volumes and tilt stacks).

    Returns
    -------
    data : ndarray, float32
        Array indexed ``[z, y, x]`` (or ``[tilt, y, x]`` for a stack).
    voxel_size : float
        Voxel size in Å from the header (x spacing); 1.0 when the header has 0.
    """
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32).copy()
            voxel = float(mrc.voxel_size.x)
    except InputError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError variants
        raise InputError(f"{path}: not a readable MRC file ({exc})") from exc
    if data.ndim == 2 and ndim == 3:
        data = data[None]
    if data.ndim != ndim:
        raise InputError(f"{path}: expected a {ndim}-D MRC, found shape {data.shape}")
    _check_finite(data, path)
    return data, (voxel if voxel > 0 else 1.0)


def write_mrc(path: str | os.PathLike, data: np.ndarray, voxel_size: float) -> None:
    """Write ``data`` (float32 ``[z, y, x]``) atomically with ``voxel_size`` in Å."""
    import mrcfile

    data = np.ascontiguousarray(data, dtype=np.float32)
    _check_finite(data, path)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = float(voxel_size)
            if data.ndim == 3 and data.shape[0] > 1:
                mrc.header.ispg = 1  # a volume, not an image stack


def read_tlt(path: str | os.PathLike) -> np.ndarray:
    """Read an IMOD ``.tlt`` file: one angle in degrees per line, blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    angles = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            angles.append(float(line.split()[0]))
        except ValueError:
            raise InputError(f"{path}:{lineno}: not a number: {line!r}") from None
    if not angles:
        raise InputError(f"{path}: no angles")
    angles = np.asarray(angles, dtype=np.float64)
    if not np.all(np.isfinite(angles)) or np.any(np.abs(angles) >= 90):
        raise InputError(f"{path}: angles must be finite and strictly within ±90°")
    return angles


def write_tlt(path: str | os.PathLike, angles: np.ndarray) -> None:
    """Write angles in degrees, one per line, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{a:.4f}\n" for a in np.asarray(angles, float)))


def read_tiltseries(stack_path, tlt_path) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a tilt stack ``[tilt, y, x]`` and its angles, checking they agree.

    Returns
    -------
    stack : ndarray, float32
    angles : ndarray, float64, degrees
    pixel_size : float, Å
    """
    stack, pixel = read_mrc(stack_path)
    angles = read_tlt(tlt_path)
    if stack.shape[0] != angles.size:
        raise InputError(
            f"{stack_path} has {stack.shape[0]} tilt images but {tlt_path} lists "
            f"{angles.size} angles")
    return stack, angles, pixel


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_star(path: str | os.PathLike, df, name: str = "wedgebench") -> None:
    """Write a pandas DataFrame as a STAR file (one data block), atomically."""
    import starfile

    with atomic_path(path) as tmp:
        starfile.write({name: df}, tmp, overwrite=True)


def read_star(path: str | os.PathLike):
    """Read a single-block STAR file into a pandas DataFrame."""
    import starfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    data = starfile.read(path, always_dict=True)
    if len(data) != 1:
        raise InputError(f"{path}: expected one data block, found {len(data)}")
    return next(iter(data.values()))


_STAR_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|\S+')


def read_star_columns(path: str | os.PathLike) -> dict[str, list[str]]:
    """The columns of a one-block, one-loop STAR file as lists of strings, without pandas.

    A light reader for the STAR files this package writes (jobs that only need a
    column or two then skip importing pandas and starfile); quoted values (``"a b"``)
    are unquoted. Anything else (several blocks, key-value pairs, ragged rows) raises
    :class:`InputError`; :func:`read_star` reads those.

    Returns
    -------
    dict : column name (without the leading ``_``) → values, in file order
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    names: list[str] = []
    rows: list[list[str]] = []
    blocks, in_loop = 0, False
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_"):
            blocks += 1
            if blocks > 1:
                raise InputError(f"{path}:{lineno}: more than one data block")
        elif line == "loop_":
            if in_loop or names:
                raise InputError(f"{path}:{lineno}: more than one loop")
            in_loop = True
        elif line.startswith("_"):
            if not in_loop or rows:
                raise InputError(f"{path}:{lineno}: not a loop column: {line!r}")
            names.append(line.split()[0][1:])
        else:
            if not names:
                raise InputError(f"{path}:{lineno}: data before any loop column")
            vals = [v[1:-1] if v[0] in "\"'" and len(v) > 1 else v
                    for v in _STAR_TOKEN.findall(line)]
            if len(vals) != len(names):
                raise InputError(f"{path}:{lineno}: {len(vals)} values for {len(names)} "
                                 "columns")
            rows.append(vals)
    if blocks != 1 or not names:
        raise InputError(f"{path}: expected one data block with one loop")
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def read_benchmark_seconds(paths) -> float:
    """Total run time in seconds from Snakemake benchmark TSV files.

    Each file's column ``s`` (wall-clock seconds) is read; a file with several rows
    (``benchmark: repeat(...)``) contributes the mean of its rows, i.e. one run; the
    files (e.g. the stages of one reconstruction) are summed.

    Parameters
    ----------
    paths : path-like or iterable of path-like

    Raises
    ------
    InputError
        A file is missing, unreadable, empty, or has no numeric ``s`` column.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    total = 0.0
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"{path}: benchmark file does not exist")
        import pandas as pd

        try:
            df = pd.read_csv(path, sep="\t")
        except Exception as exc:
            raise InputError(f"{path}: not a readable benchmark TSV ({exc})") from exc
        if "s" not in df.columns or df.empty:
            raise InputError(f"{path}: no 's' column or no rows")
        s = pd.to_numeric(df["s"], errors="coerce")
        if s.isna().any():
            raise InputError(f"{path}: non-numeric values in column 's'")
        total += float(s.mean())
    return total
