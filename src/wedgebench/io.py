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
from dataclasses import dataclass
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


#: Bytes of the fixed MRC header (before the extended header and the data).
MRC_HEADER_BYTES = 1024

#: MRC modes of real-valued data (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16).
REAL_MRC_MODES = (0, 1, 2, 6, 12)

#: Largest relative difference between the voxel sizes of two axes that must agree.
VOXEL_TOLERANCE = 0.01


@dataclass(frozen=True)
class MrcHeader:
    """What an MRC file's header says about its data.

    Attributes
    ----------
    shape : (int, int, int)
        ``(nz, ny, nx)``: ``[z, y, x]`` of a volume, ``[tilt, y, x]`` of a stack.
    voxel_size : float
        Å per voxel along x; 0 when the header leaves it unset.
    mode : int
        The MRC data mode (one of :data:`REAL_MRC_MODES`).
    """

    shape: tuple
    voxel_size: float
    mode: int


def read_mrc_header(path: str | os.PathLike, kind: str = "volume") -> MrcHeader:
    """Check an MRC file from its header alone (the data are not read).

    The header is opened with ``mrcfile`` (``permissive=False``); then the data mode must be
    a real-valued one, the file must hold one 3-D array of positive dimensions (a 2-D image
    or a 4-D volume stack is refused), an uncompressed file must be at least as long as
    its header says (header, extended header and data), and the voxel size must be finite
    and not negative (0 = unset), the same along the axes that must agree (x, y and z of a
    volume; x and y of a tilt stack) within :data:`VOXEL_TOLERANCE`. A gzip/bzip2 file is
    not checked for truncation (that would mean decompressing it); reading it does.

    Parameters
    ----------
    path : path-like
    kind : {"volume", "stack"}
        A volume ``[z, y, x]`` or a tilt stack ``[tilt, y, x]``.

    Returns
    -------
    MrcHeader

    Raises
    ------
    InputError
        The message names the file and the reason.
    """
    import mrcfile
    from mrcfile.utils import data_shape_from_header, dtype_from_mode

    if kind not in ("volume", "stack"):
        raise ValueError(f"kind must be 'volume' or 'stack', got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(MRC_HEADER_BYTES)
    compressed = head[:2] == b"\x1f\x8b" or head[:3] == b"BZh"
    if not compressed and len(head) < MRC_HEADER_BYTES:
        if len(head) >= 212 and head[208:212] == b"MAP ":
            raise InputError(f"{path}: truncated MRC file: {size} bytes, shorter than the "
                             f"{MRC_HEADER_BYTES}-byte MRC header")
        raise InputError(f"{path}: not an MRC file ({size} bytes, shorter than the "
                         f"{MRC_HEADER_BYTES}-byte MRC header)")
    try:
        with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
            h = mrc.header.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                voxel = tuple(float(v) for v in (mrc.voxel_size.x, mrc.voxel_size.y,
                                                  mrc.voxel_size.z))
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError variants
        raise InputError(f"{path}: not an MRC file ({exc})") from exc
    mode = int(h.mode)
    if mode not in REAL_MRC_MODES:
        what = "complex values" if mode in (3, 4) else "an unknown data type"
        raise InputError(f"{path}: MRC mode {mode} ({what}) is not supported; real-valued "
                         f"modes are {list(REAL_MRC_MODES)}")
    dims = (int(h.nz), int(h.ny), int(h.nx))
    if min(dims) < 1:
        raise InputError(f"{path}: the MRC header's dimensions (nz, ny, nx) = {dims} are not "
                         "all positive")
    shape = data_shape_from_header(h)
    what = "volume [z, y, x]" if kind == "volume" else "tilt stack [tilt, y, x]"
    if len(shape) != 3 or dims[0] == 1:
        found = (f"a {len(shape)}-D volume stack of shape {shape} (space group {int(h.ispg)})"
                 if len(shape) == 4 else f"a single 2-D image of {dims[1]} x {dims[2]} "
                 "pixels (nz = 1)")
        raise InputError(f"{path}: wrong number of dimensions: {found}; a 3-D {what} is "
                         "needed")
    expected = MRC_HEADER_BYTES + int(h.nsymbt) + int(np.prod(shape)) * \
        dtype_from_mode(mode).itemsize
    if not compressed and size < expected:
        raise InputError(f"{path}: truncated MRC file: {size} bytes, but its header announces "
                         f"{expected} (a {'x'.join(map(str, shape))} "
                         f"{dtype_from_mode(mode).name} {what} after {MRC_HEADER_BYTES} + "
                         f"{int(h.nsymbt)} header bytes)")
    # a tilt stack's z "voxel" (cella.z / mz) says nothing about its pixels
    names, need, axes = (("x, y, z", "cubic voxels", voxel) if kind == "volume" else
                         ("x, y", "square pixels", voxel[:2]))
    if not all(np.isfinite(v) and v >= 0 for v in axes):
        raise InputError(f"{path}: the MRC header's voxel size ({names}) = {axes} Å is not "
                         "valid (finite and >= 0 needed; 0 = unset)")
    if axes[0] > 0 and any(v > 0 and abs(v - axes[0]) > VOXEL_TOLERANCE * axes[0]
                           for v in axes[1:]):
        raise InputError(f"{path}: the MRC header's voxel size differs between axes "
                         f"({names}) = {axes} Å; {need} are needed")
    return MrcHeader(shape=tuple(int(n) for n in shape), voxel_size=voxel[0], mode=mode)


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


def read_benchmark_seconds(paths, column: str = "s") -> float:
    """Total seconds from Snakemake benchmark TSV files.

    Each file's ``column`` is read: ``s`` (wall-clock seconds, the default) or
    ``cpu_time`` (user + system CPU seconds of the job's processes); a file with several
    rows (``benchmark: repeat(...)``) contributes the mean of its rows, i.e. one run; the
    files (e.g. the stages of one reconstruction) are summed.

    Parameters
    ----------
    paths : path-like or iterable of path-like
    column : {"s", "cpu_time"}

    Raises
    ------
    InputError
        A file is missing, unreadable, empty, or has no numeric ``column``.
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
        if column not in df.columns or df.empty:
            raise InputError(f"{path}: no {column!r} column or no rows")
        s = pd.to_numeric(df[column], errors="coerce")
        if s.isna().any():
            raise InputError(f"{path}: non-numeric values in column {column!r}")
        total += float(s.mean())
    return total
