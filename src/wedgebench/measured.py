"""A user's measured tilt series and the metadata it comes with.

A ``tiltseries`` dataset (README, "Use your own data") is an MRC stack plus any of:

* IMOD ``.tlt`` (refined angles) or ``.rawtlt`` (nominal angles): one angle per image, in
  stack order; the ``.tlt`` is preferred, then the ``.rawtlt``, then the mdoc's
  ``TiltAngle``;
* SerialEM ``.mdoc`` (read with :mod:`mdocfile`): one ``[ZValue = i]`` section per image of
  the stack, giving ``TiltAngle``, ``DateTime`` (the acquisition order; ZValue order
  without it), the dose of each image (``ExposureDose`` in e⁻/Å², or ``DoseRate`` in
  e⁻ per unbinned pixel per second × ``ExposureTime`` / (``PixelSpacing`` / ``Binning``)²),
  ``PixelSpacing`` (Å; checked against the MRC header), ``Voltage`` and the nominal
  ``Defocus``/``TargetDefocus`` (recorded, not used: they are the microscope's settings,
  not a fitted defocus);
* IMOD ``.xf``: per image a 2×3 affine transform ``A11 A12 A21 A22 DX DY`` that aligns it,
  applied as IMOD's ``newstack -xform`` does (:func:`apply_xf`).

:func:`read_measured` reads and checks all of it without reading the images (the workflow
calls it before any job); :func:`load_measured_series` returns the stack the methods get:
aligned (``.xf``), sorted by tilt angle, optionally dose-weighted with the exposure filter
of Grant & Grigorieff (2015) for the dose each image received before it (acquisition order
from the mdoc), optionally every other tilt — with the acquisition record of its tilts.

Every problem raises :class:`wedgebench.io.InputError` naming the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import InputError, read_tlt

#: Largest relative disagreement between the MRC header's and the mdoc's pixel size.
PIXEL_TOLERANCE = 0.01

#: Angle files in order of preference (dataset ``params`` keys).
ANGLE_KEYS = ("tlt", "rawtlt", "mdoc")

_DATETIME_FORMATS = ("%d-%b-%y %H:%M:%S", "%d-%b-%Y %H:%M:%S")


@dataclass
class MeasuredMeta:
    """Everything known about a measured tilt series but its images; arrays in stack order.

    Attributes
    ----------
    stack : str
        The MRC stack.
    shape : (n, ny, nx)
        The stack's shape from its header.
    pixel_A : float
        Pixel size in Å (the header's, checked against the mdoc's).
    angles : ndarray float64
        Tilt angle of each image (degrees), from ``angles_from``.
    angles_from : str
        The file the angles come from.
    acquisition_index : ndarray int or None
        Rank of each image in the acquisition (0 = first); None without an mdoc.
    order_from : str or None
        ``"DateTime"`` or ``"ZValue"`` (the mdoc's field the order comes from).
    dose : ndarray float64 or None
        Dose of each image (e⁻/Å²); None when unknown.
    dose_from : str or None
        Where the dose comes from (an mdoc field, or ``params.dose_per_tilt``).
    voltage_kv : float or None
    xf : ndarray ``[n, 2, 3]`` or None
        The IMOD alignment transforms.
    mdoc : dict
        Per-image mdoc values recorded as they are (``Defocus``, ``TargetDefocus``,
        ``DateTime``, ``ExposureDose``), lists in stack order; empty without an mdoc.
    notes : list of str
        What was used and checked (for the job's log).
    """

    stack: str
    shape: tuple
    pixel_A: float
    angles: np.ndarray
    angles_from: str
    acquisition_index: np.ndarray | None = None
    order_from: str | None = None
    dose: np.ndarray | None = None
    dose_from: str | None = None
    voltage_kv: float | None = None
    xf: np.ndarray | None = None
    mdoc: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


# ----------------------------------------------------------------------------- readers

def mrc_stack_header(path) -> tuple[tuple[int, int, int], float | None]:
    """Shape ``(n, ny, nx)`` and pixel size (Å, None when the header's is 0) of an MRC stack,
    from its header alone."""
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
            h = mrc.header
            shape = (int(h.nz), int(h.ny), int(h.nx))
            px, py = float(mrc.voxel_size.x), float(mrc.voxel_size.y)
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError variants
        raise InputError(f"{path}: not a readable MRC file ({exc})") from exc
    if px > 0 and py > 0 and abs(px - py) > PIXEL_TOLERANCE * px:
        raise InputError(f"{path}: the MRC header's pixel size differs in x ({px:g} Å) and "
                         f"y ({py:g} Å); square pixels are needed")
    return shape, (px if px > 0 else None)


def read_xf(path) -> np.ndarray:
    """An IMOD ``.xf`` file: one line ``A11 A12 A21 A22 DX DY`` per image.

    Returns
    -------
    ndarray float64 ``[n, 2, 3]``: ``[[A11, A12, DX], [A21, A22, DY]]`` per image, acting on
    ``(x, y)`` relative to the image centre (:func:`apply_xf`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InputError(f"{path}:{lineno}: {len(fields)} fields, expected 6 "
                             f"(A11 A12 A21 A22 DX DY): {line.strip()!r}")
        try:
            a11, a12, a21, a22, dx, dy = (float(f) for f in fields)
        except ValueError:
            raise InputError(f"{path}:{lineno}: not a number: {line.strip()!r}") from None
        m = np.array([[a11, a12, dx], [a21, a22, dy]])
        if not np.all(np.isfinite(m)):
            raise InputError(f"{path}:{lineno}: values must be finite: {line.strip()!r}")
        if abs(a11 * a22 - a12 * a21) < 1e-6:
            raise InputError(f"{path}:{lineno}: the matrix A11 A12 A21 A22 is singular "
                             f"(determinant {a11 * a22 - a12 * a21:g})")
        rows.append(m)
    if not rows:
        raise InputError(f"{path}: no transforms")
    return np.stack(rows)


def _mdoc_error(path: Path, exc: Exception) -> str:
    """A one-line account of mdocfile's error, with the line of the first bad value."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    err = errors()[0]
    key, value = ".".join(map(str, err.get("loc", ()))), err.get("input")
    where = ""
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        k, _, v = line.partition("=")
        if k.strip() == key and v.strip() == str(value):
            where = f"line {lineno}: "
            break
    return f"{where}{key} = {value!r}: {err.get('msg', '')}"


def _parse_datetime(text: str):
    text = " ".join(str(text).split())
    for fmt in _DATETIME_FORMATS:
        try:
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


def read_mdoc(path) -> dict:
    """The sections of a SerialEM tilt-series ``.mdoc``, in ZValue order.

    Returns
    -------
    dict with ``zvalues`` (0…n−1), per-section lists ``TiltAngle``, ``DateTime``,
    ``ExposureDose``, ``DoseRate``, ``ExposureTime``, ``PixelSpacing``, ``Binning``,
    ``Defocus``, ``TargetDefocus``, ``Voltage`` (None where absent), the global
    ``PixelSpacing``, ``Voltage`` and ``ImageSize`` (x, y), and ``path``.
    """
    from mdocfile.data_models import Mdoc

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        mdoc = Mdoc.from_file(path)
    except Exception as exc:  # pydantic ValidationError, ValueError on malformed lines
        raise InputError(f"{path}: not a readable SerialEM .mdoc ({_mdoc_error(path, exc)})"
                         ) from exc
    sections = mdoc.section_data
    if not sections:
        raise InputError(f"{path}: no [ZValue = ...] sections")
    for i, s in enumerate(sections):
        if s.ZValue is None:
            kind = "MontSection" if s.MontSection is not None else "FrameSet"
            raise InputError(f"{path}: section {i + 1} is a [{kind}] section; only a tilt "
                             "series' .mdoc ([ZValue = i] sections, one per image) is read")
    z = [int(s.ZValue) for s in sections]
    n = len(z)
    if sorted(z) != list(range(n)):
        dup = sorted({v for v in z if z.count(v) > 1})
        missing = sorted(set(range(n)) - set(z))
        what = f"ZValue {dup} given twice" if dup else f"ZValue {missing} missing"
        raise InputError(f"{path}: the [ZValue = i] sections must number the {n} images "
                         f"0…{n - 1} once each ({what})")
    sections = [sections[z.index(i)] for i in range(n)]
    keys = ("TiltAngle", "DateTime", "ExposureDose", "DoseRate", "ExposureTime",
            "PixelSpacing", "Binning", "Defocus", "TargetDefocus", "Voltage")
    out = {k: [getattr(s, k) for s in sections] for k in keys}
    g = mdoc.global_data
    out.update(zvalues=list(range(n)), path=str(path), global_PixelSpacing=g.PixelSpacing,
               global_Voltage=g.Voltage,
               ImageSize=tuple(int(v) for v in g.ImageSize) if g.ImageSize else None)
    return out


# ----------------------------------------------------------------------------- checks

def _angles_file(params: dict) -> tuple[str, str]:
    for key in ANGLE_KEYS:
        if params.get(key):
            return key, str(params[key])
    raise InputError("a tiltseries dataset needs its tilt angles: params.tlt, params.rawtlt "
                     "or params.mdoc")


def _check_order(angles, ref, path, ref_path):
    """``angles`` (one file's) must sort the images like ``ref`` (another file's)."""
    a, r = np.asarray(angles), np.asarray(ref)
    srt = np.argsort(r, kind="stable")
    bad = np.flatnonzero(np.diff(a[srt]) < 0)
    if bad.size:
        i, j = srt[bad[0]], srt[bad[0] + 1]
        raise InputError(
            f"{path}: the angles are not in the order of {ref_path}'s TiltAngle: image {i} "
            f"({r[i]:.2f}° in the mdoc) has {a[i]:.2f}° but image {j} ({r[j]:.2f}°) has "
            f"{a[j]:.2f}°; both files must list the images of the stack in the same order")


def _mdoc_pixel(md: dict) -> float | None:
    path = md["path"]
    values = [v for v in md["PixelSpacing"] if v]
    if values and max(values) - min(values) > PIXEL_TOLERANCE * min(values):
        raise InputError(f"{path}: PixelSpacing differs between sections ({min(values):g} to "
                         f"{max(values):g} Å)")
    glob = md["global_PixelSpacing"]
    if glob and values and abs(glob - values[0]) > PIXEL_TOLERANCE * glob:
        raise InputError(f"{path}: the global PixelSpacing ({glob:g} Å) differs from the "
                         f"sections' ({values[0]:g} Å)")
    return glob or (values[0] if values else None)


def _binning(md: dict, shape) -> int:
    """Integer binning of the stack relative to the mdoc's ImageSize (1 when equal or
    when the sizes are not an integer binning)."""
    size = md["ImageSize"]
    ny, nx = shape[1:]
    if not size or (size[0], size[1]) == (nx, ny):
        return 1
    b = int(round(size[0] / nx))
    if b >= 2 and size[0] // b == nx and size[1] // b == ny:
        return b
    return 1


def check_pixel(stack: str, header_px: float | None, mdoc_path: str | None,
                mdoc_px: float | None, binning: int = 1) -> float:
    """The pixel size (Å): the MRC header's, which must agree with the mdoc's PixelSpacing
    (times the stack's binning relative to the mdoc's ImageSize) within
    :data:`PIXEL_TOLERANCE`; the mdoc's when the header has none."""
    expected = mdoc_px * binning if mdoc_px else None
    if header_px is None and expected is None:
        where = (f"nor does {mdoc_path} give a PixelSpacing" if mdoc_path
                 else "and no .mdoc is given (params.mdoc)")
        raise InputError(f"{stack}: no pixel size: the MRC header's is 0 {where}; set it in "
                         "the header (IMOD: alterheader -PixelSize) or give the mdoc")
    if header_px is None:
        return float(expected)
    if expected is not None and abs(header_px - expected) > PIXEL_TOLERANCE * expected:
        binned = f" × binning {binning} = {expected:g} Å" if binning > 1 else ""
        raise InputError(
            f"pixel size disagreement: {stack} has {header_px:g} Å in its MRC header but "
            f"{mdoc_path} has PixelSpacing = {mdoc_px:g} Å{binned} (differ by "
            f"{abs(header_px / expected - 1) * 100:.1f} %, more than "
            f"{PIXEL_TOLERANCE * 100:g} %)")
    return float(header_px)


def _mdoc_order(md: dict) -> tuple[np.ndarray, str]:
    """Acquisition rank of each image: DateTime order (ties: ZValue order), or ZValue
    order when no section has a DateTime."""
    path, stamps = md["path"], md["DateTime"]
    n = len(stamps)
    if all(s is None for s in stamps):
        return np.arange(n), "ZValue"
    times = []
    for z, s in enumerate(stamps):
        t = _parse_datetime(s) if s is not None else None
        if t is None:
            what = "has no DateTime" if s is None else f"has an unreadable DateTime {s!r}"
            raise InputError(f"{path}: [ZValue = {z}] {what} (expected e.g. "
                             "'30-Nov-15  15:21:38'); give every section a DateTime or none")
        times.append(t)
    order = sorted(range(n), key=lambda z: (times[z], z))
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)
    return rank, "DateTime"


def _mdoc_dose(md: dict, pixel_A: float) -> tuple[np.ndarray | None, str | None]:
    """Dose of each image (e⁻/Å²) from ExposureDose, else DoseRate × ExposureTime over
    the unbinned pixel's area; None when the mdoc has neither."""
    path = md["path"]
    exp = md["ExposureDose"]
    if any(v for v in exp):
        missing = [z for z, v in enumerate(exp) if not v or v < 0]
        if missing:
            raise InputError(f"{path}: [ZValue = {missing[0]}] has ExposureDose "
                             f"{exp[missing[0]]!r} but other sections give a dose; every "
                             "image needs its dose (or set params.dose_per_tilt)")
        return np.asarray(exp, dtype=np.float64), "ExposureDose"
    rate, time, binning = md["DoseRate"], md["ExposureTime"], md["Binning"]
    if any(v for v in rate):
        dose = []
        for z in range(len(rate)):
            if not (rate[z] and time[z] and binning[z]):
                raise InputError(f"{path}: [ZValue = {z}] lacks DoseRate, ExposureTime or "
                                 "Binning while other sections give DoseRate; every image "
                                 "needs its dose (or set params.dose_per_tilt)")
            px = (md["PixelSpacing"][z] or pixel_A) / binning[z]  # unbinned pixel, Å
            dose.append(rate[z] * time[z] / px**2)
        return np.asarray(dose), "DoseRate × ExposureTime / (PixelSpacing / Binning)²"
    return None, None


def read_measured(params: dict, shape=None) -> MeasuredMeta:
    """Read and check a measured tilt series' metadata (not its images).

    Parameters
    ----------
    params : dict
        The dataset's ``params``: ``stack`` and at least one of ``tlt``, ``rawtlt``,
        ``mdoc``; optionally ``xf``, ``dose_per_tilt`` (e⁻/Å², instead of the mdoc's dose),
        ``voltage_kv`` (when the mdoc has no Voltage), ``dose_weighting``.
    shape : [nz, ny, nx], optional
        The configured reconstruction size; ny and nx must match the stack's.

    Returns
    -------
    MeasuredMeta
    """
    stack = str(params["stack"])
    key, angles_path = _angles_file(params)
    shape_s, header_px = mrc_stack_header(stack)
    n = shape_s[0]
    if shape is not None and tuple(shape_s[1:]) != tuple(int(s) for s in shape[1:]):
        raise InputError(f"{stack}: stack (y, x) = {shape_s[1:]} does not match the "
                         f"configured shape (ny, nx) = {tuple(shape[1:])}")
    notes = []
    md = read_mdoc(params["mdoc"]) if params.get("mdoc") else None
    if md is not None and len(md["zvalues"]) != n:
        raise InputError(f"{stack} has {n} tilt images but {md['path']} has "
                         f"{len(md['zvalues'])} [ZValue] sections")
    if md is not None:
        missing = [z for z, a in enumerate(md["TiltAngle"]) if a is None]
        if missing:
            raise InputError(f"{md['path']}: [ZValue = {missing[0]}] has no TiltAngle")
        mdoc_angles = np.asarray(md["TiltAngle"], dtype=np.float64)
        if np.any(np.abs(mdoc_angles) >= 90):
            z = int(np.flatnonzero(np.abs(mdoc_angles) >= 90)[0])
            raise InputError(f"{md['path']}: [ZValue = {z}] TiltAngle {mdoc_angles[z]:g} is "
                             "not strictly within ±90°")
    if key == "mdoc":
        angles = mdoc_angles
    else:
        angles = read_tlt(angles_path)
        if angles.size != n:
            raise InputError(f"{stack} has {n} tilt images but {angles_path} lists "
                             f"{angles.size} angles")
        if md is not None:
            _check_order(angles, mdoc_angles, angles_path, md["path"])
            notes.append(f"angles from {angles_path}; at most "
                         f"{np.max(np.abs(angles - mdoc_angles)):.2f}° from the mdoc's "
                         "TiltAngle")
    meta = MeasuredMeta(stack=stack, shape=shape_s, pixel_A=0.0, angles=angles,
                        angles_from=angles_path, notes=notes)
    mdoc_px = _mdoc_pixel(md) if md is not None else None
    binning = _binning(md, shape_s) if md is not None else 1
    meta.pixel_A = check_pixel(stack, header_px, md and md["path"], mdoc_px, binning)
    notes.append(f"pixel {meta.pixel_A:g} Å (header {header_px}, mdoc {mdoc_px}"
                 + (f", stack binned {binning}× from the mdoc's ImageSize" if binning > 1
                    else "") + ")")
    if md is not None:
        meta.acquisition_index, meta.order_from = _mdoc_order(md)
        meta.dose, meta.dose_from = _mdoc_dose(md, meta.pixel_A / binning)
        meta.mdoc = {k: md[k] for k in ("Defocus", "TargetDefocus", "DateTime",
                                        "ExposureDose")}
        volts = {v for v in md["Voltage"] + [md["global_Voltage"]] if v}
        if len(volts) > 1:
            raise InputError(f"{md['path']}: Voltage differs between sections: {sorted(volts)}")
        meta.voltage_kv = volts.pop() if volts else None
    if params.get("dose_per_tilt"):
        if md is None:
            raise InputError(f"{stack}: params.dose_per_tilt needs params.mdoc (the "
                             "acquisition order the dose accumulates in)")
        if meta.dose is not None:
            notes.append(f"params.dose_per_tilt replaces the mdoc's {meta.dose_from}")
        meta.dose = np.full(n, float(params["dose_per_tilt"]))
        meta.dose_from = "params.dose_per_tilt"
    if params.get("voltage_kv"):
        v = float(params["voltage_kv"])
        if meta.voltage_kv is not None and abs(v - meta.voltage_kv) > 1e-6:
            raise InputError(f"params.voltage_kv = {v:g} disagrees with {md['path']}: "
                             f"Voltage = {meta.voltage_kv:g}")
        meta.voltage_kv = v
    if params.get("dose_weighting"):
        if md is None:
            raise InputError(f"{stack}: params.dose_weighting needs params.mdoc (the "
                             "acquisition order and the dose of each image)")
        if meta.dose is None:
            raise InputError(f"{md['path']}: params.dose_weighting needs the dose of each "
                             "image, but no section gives ExposureDose or DoseRate; set "
                             "params.dose_per_tilt (e/A^2)")
        if meta.voltage_kv is None:
            notes.append("no Voltage in the mdoc nor params.voltage_kv: the exposure filter "
                         "assumes 300 kV")
    if params.get("xf"):
        meta.xf = read_xf(params["xf"])
        if len(meta.xf) != n:
            raise InputError(f"{stack} has {n} tilt images but {params['xf']} has "
                             f"{len(meta.xf)} transforms (lines)")
    return meta


def measured_problems(params: dict, shape, key: str) -> list[str]:
    """:func:`read_measured`'s problem (if any) as a list of messages under config ``key``."""
    try:
        read_measured(params, shape)
    except InputError as exc:
        return [f"config key '{key}.params': {exc}"]
    return []


# ----------------------------------------------------------------------------- processing

def apply_xf(stack: np.ndarray, xf: np.ndarray, order: int = 3) -> np.ndarray:
    """Align each image with its IMOD transform, as ``newstack -xform`` does.

    IMOD's convention: a point at ``(x, y)`` of the input image (pixel-centre indices
    from 0) goes to ``(x', y')`` of the output, same size, with
    ``x' − cx = A11 (x − cx) + A12 (y − cy) + DX`` and
    ``y' − cy = A21 (x − cx) + A22 (y − cy) + DY``, ``(cx, cy) = (nx / 2, ny / 2)``.
    Each output pixel is interpolated (spline of ``order``) at the inverse-mapped point;
    outside the input the image's mean is used (as IMOD fills).

    Parameters
    ----------
    stack : ndarray ``[tilt, y, x]``
    xf : ndarray ``[tilt, 2, 3]`` (:func:`read_xf`)

    Returns
    -------
    ndarray float32 ``[tilt, y, x]``
    """
    from scipy import ndimage

    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim != 3 or np.shape(xf) != (stack.shape[0], 2, 3):
        raise ValueError(f"one 2x3 transform per image is needed: stack {stack.shape}, "
                         f"transforms {np.shape(xf)}")
    c = np.array([stack.shape[1] / 2.0, stack.shape[2] / 2.0])  # (cy, cx)
    out = np.empty_like(stack)
    for i, (img, m) in enumerate(zip(stack, np.asarray(xf, np.float64))):
        a_yx = m[:, :2][::-1, ::-1]  # the matrix acting on (y, x)
        d_yx = m[::-1, 2]
        inv = np.linalg.inv(a_yx)
        out[i] = ndimage.affine_transform(img, inv, offset=c - inv @ (c + d_yx), order=order,
                                          mode="constant", cval=float(img.mean()))
    return out


def prior_dose(dose, acquisition_index) -> np.ndarray:
    """Dose each image received before it was recorded: the sum of the doses of the images
    acquired earlier (``acquisition_index`` = rank in the acquisition)."""
    dose = np.asarray(dose, np.float64)
    rank = np.asarray(acquisition_index)
    order = np.argsort(rank, kind="stable")
    before = np.empty_like(dose)
    before[order] = np.concatenate([[0.0], np.cumsum(dose[order])[:-1]])
    return before


def dose_weight(stack: np.ndarray, prior, pixel_A: float, voltage_kv: float = 300.0):
    """Each image multiplied in Fourier space by the exposure filter of Grant & Grigorieff
    (2015), ``exp(−N / (2 N_e(k)))``, for the dose ``N`` it received before it
    (:func:`wedgebench.acquisition.exposure_filter`)."""
    from .acquisition import exposure_filter

    stack = np.asarray(stack, dtype=np.float32)
    ny, nx = stack.shape[1:]
    out = np.empty_like(stack)
    for i, (img, n_before) in enumerate(zip(stack, np.asarray(prior, np.float64))):
        filt = exposure_filter((ny, nx), pixel_A, float(n_before), voltage_kv)
        out[i] = np.fft.irfft2(np.fft.rfft2(img) * filt[:, : nx // 2 + 1], s=(ny, nx))
    return out


def load_measured_series(params: dict, shape, subset: str = "all"):
    """The tilt series the methods get from a user's measured data, and its record.

    The stack is aligned with the ``.xf`` (if given), sorted by tilt angle (stable), and,
    with ``params.dose_weighting``, exposure-filtered for each image's prior dose (whole
    series, acquisition order from the mdoc); ``subset`` ``"even"``/``"odd"`` then keeps
    every other tilt in order of angle (:func:`wedgebench.geometry.even_odd_indices`).

    Returns
    -------
    stack : ndarray float32 ``[tilt, y, x]``, angles ascending
    angles : ndarray float64, degrees
    pixel_A : float
    record : dict
        The acquisition record of the kept tilts (JSON-ready): ``nominal_angles``,
        ``stack_index`` (section of the input stack), ``acquisition_index``, ``dose``,
        ``prior_dose`` (e⁻/Å², null when unknown), ``dose_from``, ``order_from``,
        ``dose_weighted``, ``voltage_kv``, ``pixel_size_A``, ``xf_applied``, ``subset``,
        ``files`` and the mdoc's per-image ``Defocus``, ``TargetDefocus``, ``DateTime``.
    meta : MeasuredMeta
    """
    from .io import read_mrc
    from .geometry import even_odd_indices

    meta = read_measured(params, shape)
    stack, _ = read_mrc(meta.stack)
    if stack.shape != tuple(meta.shape):
        raise InputError(f"{meta.stack}: data shape {stack.shape} differs from its header's "
                         f"{meta.shape}")
    if meta.xf is not None:
        stack = apply_xf(stack, meta.xf)
    srt = np.argsort(meta.angles, kind="stable")
    stack, angles = stack[srt], meta.angles[srt]
    prior = (prior_dose(meta.dose, meta.acquisition_index)
             if meta.dose is not None else None)
    voltage = meta.voltage_kv or 300.0
    weighted = bool(params.get("dose_weighting"))
    if weighted:
        stack = dose_weight(stack, prior[srt], meta.pixel_A, voltage)
    keep = np.arange(angles.size)
    if subset != "all":
        keep = even_odd_indices(angles, subset)
        if keep.size < 2:
            raise InputError(f"{meta.angles_from}: too few tilts to split into even/odd "
                             "halves")
    idx = srt[keep]

    def per_tilt(values):
        return None if values is None else [values[i] for i in idx.tolist()]

    record = {
        "nominal_angles": angles[keep].tolist(),
        "stack_index": idx.tolist(),
        "acquisition_index": (None if meta.acquisition_index is None
                              else meta.acquisition_index[idx].tolist()),
        "order_from": meta.order_from,
        "dose": None if meta.dose is None else meta.dose[idx].tolist(),
        "prior_dose": None if prior is None else prior[idx].tolist(),
        "dose_from": meta.dose_from,
        "dose_weighted": weighted,
        "voltage_kv": voltage if weighted else meta.voltage_kv,
        "pixel_size_A": meta.pixel_A,
        "angles_from": meta.angles_from,
        "xf_applied": meta.xf is not None,
        "subset": subset,
        "files": dataset_files(params),
        **{f"mdoc_{k}": per_tilt(v) for k, v in meta.mdoc.items()},
    }
    return stack[keep], angles[keep], meta.pixel_A, record, meta


def dataset_files(params: dict) -> dict[str, str]:
    """The user's files of a ``tiltseries`` dataset (rule inputs), by ``params`` key."""
    return {k: os.fspath(params[k]) for k in ("stack", "tlt", "rawtlt", "mdoc", "xf")
            if params.get(k)}
