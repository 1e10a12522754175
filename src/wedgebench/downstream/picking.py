"""Particle picking by template matching with pytme, run as a separate program.

pytme (PyPI ``pytme``, GPL-2.0-only) is an optional extra (``pip install
wedgebench[downstream]``). It is called through its command line only — ``pytme match``
then ``pytme postprocess`` — and never imported, so this package stays MIT.

What pytme is given
-------------------
* The template: the class map at the tomogram's voxel size, padded or cropped about its
  centre voxel to an **odd** box. pytme rotates the template about ``(n − 1) / 2``
  (``tme/matching_scores.py``: ``center = (shape − 1) / 2``) but reports positions for
  the voxel ``n // 2``; the two agree only for odd ``n``. Measured: a particle at an
  orientation of pytme's own set, with a 20³ template, scored 0.937 and was placed one
  voxel off; with the same map in a 21³ box, 0.99995 and exact.
* The mask: a sphere of the class radius (hard edge) about the centre voxel.
* The missing wedge of the template (``--tilt-angles``, ``--wedge-axes 2,0``). pytme
  reads MRC data transposed, so its array axes are (x, y, z); ``--wedge-axes`` takes the
  opening axis (the beam, z = 2) and the axis the tilted planes tip towards (x = 0), i.e.
  tilts about y, our tilt axis. Its continuous wedge ``"a,b"`` takes ``|min|, |max|`` of
  the acquisition; the tilt sign is ours. Pinned in ``tests/test_downstream_picking.py``:
  on a tomogram whose Fourier transform is limited by our
  :func:`wedgebench.geometry.wedge_mask` (−30°…+60°), ``2,0`` with ``30,60`` scores
  0.989 at the particle; ``2,1`` 0.73, ``0,1`` 0.36, ``0,2`` 0.37, the mirrored range
  0.74 (and pytme's wedge of the individual tilts, ``template_wedge: tilts``, 0.86).
* The rotations: ``-a angular_step`` and ``--symmetry`` (pytme knows only Cn and Dn
  about its z axis, with the Dn two-fold along x: ours; for T, O and I we pass their
  subgroup D2, D4 and D2, whose axes coincide with ours, so fewer redundant rotations are
  searched).

Angles
------
pytme reports ZYZ Euler angles of its rotation matrix ``M`` (scipy's intrinsic
``"ZYZ"``, on (x, y, z)); ``M`` takes the particle back onto the template, so our
particle matrix is ``R = Mᵀ`` (:func:`pytme_to_relion`). Numerically the angles are
RELION's unchanged. Pinned by a test: a map rotated with
``euler.rotate_volume(map, euler.particle_matrix(*angles))`` and matched by pytme gives
angles that, read back from our pick list, rotate the map onto the particle with
correlation ≥ 0.99.

Peaks
-----
``pytme postprocess`` (``PeakCallerMaximumFilter``: local maxima of the score map over
a cube of edge ``min_distance``) writes candidates with their scores and rotations as a
text table (``--output-format orientations``), which we read. We use pytme's peak caller
rather than our own on its score maps because pytme stores the maps only in its own
pickle/HDF5 containers whose rotation table is a Python pickle of its internals; the
text table is its documented output. On the candidates we then enforce our own rule,
greedily by score: no two picks closer than ``peak_min_distance`` class radii
(Euclidean), at most ``num_peaks``, scores ≥ ``score_threshold``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from wedgebench import euler
from wedgebench.downstream import ANGLES, CLASS, COORDS, SCORE, TOMO
from wedgebench.downstream.boxes import centre_box, sphere_mask
from wedgebench.downstream.settings import check_settings
from wedgebench.io import InputError, read_mrc, read_tlt, write_mrc, write_star

#: pytme's (opening axis, tilt axis) for our geometry (beam z, tilt axis y).
WEDGE_AXES = "2,0"

#: pytme's symmetry argument for each of our point groups (pytme knows Cn and Dn only).
_PYTME_SUBGROUP = {"T": "D2", "O": "D4", "I": "D2"}

#: Candidates asked of pytme per pick wanted (our distance rule removes some).
_CANDIDATES_PER_PICK = 4


class PytmeError(RuntimeError):
    """pytme is missing or one of its commands failed; the message says which."""


def pytme_executable() -> str:
    """Path of the ``pytme`` program, or :class:`PytmeError` naming the extra to install."""
    exe = shutil.which("pytme")
    if exe is None:
        raise PytmeError("pytme is not installed: template matching needs the optional "
                         "extra `pip install 'wedgebench[downstream]'` (pytme, GPL-2.0, run "
                         "as a separate program)")
    return exe


def pytme_symmetry(symbol: str) -> str:
    """The symmetry argument pytme gets for our point group ``symbol`` (checked)."""
    s = str(symbol).strip().upper()
    euler.symmetry_operators(s)  # raises on an unknown symbol
    return _PYTME_SUBGROUP.get(s, s)


def make_template(class_map: np.ndarray, box: int | None = None) -> np.ndarray:
    """The class map in an odd box about its centre voxel (see the module docstring).

    Parameters
    ----------
    class_map : ndarray ``[z, y, x]``, cubic
    box : int, optional
        Odd edge; default the map's edge, plus one when even (padding the high end keeps
        the centre voxel ``n // 2``).
    """
    n = max(class_map.shape)
    box = int(box) if box is not None else n + (1 - n % 2)
    if box % 2 == 0:
        raise InputError(f"template box must be odd, got {box}")
    return centre_box(class_map, box)


def tilt_wedge_argument(angles, mode: str) -> str | None:
    """The ``--tilt-angles`` range for ``mode == "range"`` (``"|min|,|max|"``).

    Raises
    ------
    InputError
        The range does not contain 0° (pytme's continuous wedge is two-sided).
    """
    a = np.asarray(angles, float)
    lo, hi = float(a.min()), float(a.max())
    if not lo <= 0 <= hi:
        raise InputError(f"tilt range {lo:g}…{hi:g}° does not contain 0°: pytme's "
                         "continuous wedge needs it; use downstream.template_wedge: tilts")
    return f"{abs(lo):g},{abs(hi):g}"


def match_command(tomogram, template, mask, output, *, angular_step: float,
                  symmetry: str = "C1", threads: int = 1, tilt_angles=None,
                  wedge: str = "range", tilt_file=None, filter_target: bool = False,
                  invert_contrast: bool = False) -> list[str]:
    """The ``pytme match`` command line (a list for :func:`subprocess.run`).

    Parameters
    ----------
    tomogram, template, mask, output : path-like
        MRC files; ``output`` ends in ``.h5``.
    angular_step : float
        Degrees.
    symmetry : str
        Our point group; see :func:`pytme_symmetry`.
    threads : int
    tilt_angles : array, optional
        The acquisition's angles (for ``wedge == "range"``).
    wedge : {"range", "tilts", "none"}
    tilt_file : path-like, optional
        IMOD ``.tlt`` of the angles (for ``wedge == "tilts"``).
    filter_target : bool
        False adds ``--no-filter-target``: the tomogram is matched as reconstructed.
    invert_contrast : bool
        Adds ``--invert-target-contrast`` (particles dark in the tomogram).
    """
    cmd = [pytme_executable(), "match", "-m", str(tomogram), "-i", str(template),
           "-I", str(mask), "-o", str(output), "-a", f"{float(angular_step):g}",
           "--symmetry", pytme_symmetry(symmetry), "-n", str(int(threads)),
           "--backend", "numpyfftw"]
    if invert_contrast:
        cmd += ["--invert-target-contrast"]
    if wedge == "range":
        cmd += ["--tilt-angles", tilt_wedge_argument(tilt_angles, wedge)]
    elif wedge == "tilts":
        cmd += ["--tilt-angles", str(tilt_file)]
    if wedge != "none":
        cmd += ["--wedge-axes", WEDGE_AXES]
        if not filter_target:
            cmd += ["--no-filter-target"]
    return cmd


def peaks_command(scores_h5, prefix, *, num_candidates: int, min_distance: float,
                  min_score: float | None) -> list[str]:
    """The ``pytme postprocess`` command line writing ``<prefix>.tsv``."""
    return [pytme_executable(), "postprocess", "--input-file", str(scores_h5),
            "--output-format", "orientations", "--output-prefix", str(prefix),
            "--peak-caller", "PeakCallerMaximumFilter",
            "--num-peaks", str(int(num_candidates)),
            "--min-distance", str(max(1, int(round(min_distance)))),
            "--min-score", f"{0.0 if min_score is None else float(min_score):g}"]


def run_pytme(cmd: list[str], log=None) -> subprocess.CompletedProcess:
    """Run a pytme command, appending its output to ``log``; raise :class:`PytmeError`
    with the output's tail when it fails (returns the process otherwise)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n"
    if log is not None:
        with open(log, "a") as fh:
            fh.write(text)
    if proc.returncode != 0 and "Found no peaks" not in proc.stdout + proc.stderr:
        raise PytmeError(f"pytme failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         + text[-2000:])
    return proc


def read_pytme_orientations(path) -> pd.DataFrame:
    """pytme's ``orientations`` table: columns ``x y z euler_x euler_y euler_z score``
    (``x`` is our array's last axis). A missing file (pytme found no peak) is empty."""
    cols = ["x", "y", "z", "euler_x", "euler_y", "euler_z", "score"]
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    df = pd.read_csv(path, sep="\t")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{path}: not a pytme orientations table (no {missing})")
    return df[cols].astype(float)


def pytme_to_relion(angles) -> np.ndarray:
    """Our RELION angles ``(n, 3)`` of pytme's ZYZ angles ``(n, 3)`` (degrees).

    pytme's matrix ``M = Rotation.from_euler("ZYZ", angles)`` (scipy, on (x, y, z))
    takes the particle back onto the template; the particle matrix is ``R = Mᵀ``.
    """
    from scipy.spatial.transform import Rotation

    a = np.asarray(angles, float).reshape(-1, 3)
    if a.shape[0] == 0:
        return np.zeros((0, 3))
    m = Rotation.from_euler("ZYZ", a, degrees=True).as_matrix()
    return euler.matrix_to_euler(np.swapaxes(m, -1, -2)).reshape(-1, 3)


def select_peaks(xyz, scores, min_distance: float, num_peaks: int | None = None,
                 threshold: float | None = None) -> np.ndarray:
    """Indices of picks kept greedily by descending score (ties: input order).

    A candidate is kept when it scores at least ``threshold`` and lies at least
    ``min_distance`` (voxels, Euclidean) from every pick kept before it; at most
    ``num_peaks`` are kept.
    """
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, float).reshape(-1, 3)
    scores = np.asarray(scores, float).ravel()
    keep: list[int] = []
    if xyz.shape[0] == 0:
        return np.zeros(0, int)
    tree = cKDTree(xyz)
    suppressed = np.zeros(len(scores), bool)
    for i in np.argsort(-scores, kind="stable"):
        if num_peaks is not None and len(keep) >= num_peaks:
            break
        if threshold is not None and scores[i] < threshold:
            break
        if suppressed[i]:
            continue
        keep.append(int(i))
        near = tree.query_ball_point(xyz[i], r=min_distance * (1 - 1e-9))
        suppressed[near] = True
    return np.asarray(keep, int)


def picks_table(xyz, angles, scores, class_name: str, tomo_name: str) -> pd.DataFrame:
    """A pick list (STAR columns of :mod:`wedgebench.downstream`)."""
    xyz = np.asarray(xyz, float).reshape(-1, 3)
    angles = np.asarray(angles, float).reshape(-1, 3)
    n = xyz.shape[0]
    data = {c: xyz[:, i] for i, c in enumerate(COORDS)}
    data.update({c: angles[:, i] for i, c in enumerate(ANGLES)})
    data[SCORE] = np.asarray(scores, float).ravel()
    data[TOMO] = np.array([tomo_name] * n, dtype=object)
    data[CLASS] = np.array([class_name] * n, dtype=object)
    return pd.DataFrame(data)


def _voxel_size(path) -> float:
    import mrcfile

    try:
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            v = float(mrc.voxel_size.x)
    except Exception as exc:
        raise InputError(f"{path}: not a readable MRC file ({exc})") from exc
    return v if v > 0 else 1.0


def pick(tomogram, class_map, out_star, *, class_name: str, radius: float,
         symmetry: str = "C1", tilt_file=None, settings: dict | None = None,
         workdir=None, tomo_name: str | None = None, log=None) -> pd.DataFrame:
    """Pick one class in one tomogram with pytme and write the STAR pick list.

    Parameters
    ----------
    tomogram : path-like
        The reconstruction (MRC; voxel size from the header).
    class_map : path-like
        The class's map at the tomogram's voxel size (MRC), centred on voxel ``n // 2``.
    out_star : path-like
        Written atomically (one block ``picks``; columns of :mod:`wedgebench.downstream`).
    class_name : str
    radius : float
        The class radius in Å (mask radius; the distance rule is in its units).
    symmetry : str
        The class's point group (our convention).
    tilt_file : path-like, optional
        The acquisition's IMOD ``.tlt`` (needed unless ``template_wedge`` is ``"none"``).
    settings : dict, optional
        ``downstream`` settings (:func:`~wedgebench.downstream.settings.check_settings`).
    workdir : path-like, optional
        Keeps pytme's inputs and outputs (template, mask, scores); default a temporary
        folder removed afterwards.
    tomo_name : str, optional
        Written in :data:`~wedgebench.downstream.TOMO`; default the tomogram's file stem.
    log : path-like, optional
        pytme's output is appended to it.

    Returns
    -------
    DataFrame
        The picks, best score first.
    """
    import tempfile

    s = check_settings(settings)
    tomogram, class_map = Path(tomogram), Path(class_map)
    if not tomogram.is_file():
        raise InputError(f"{tomogram}: file does not exist")
    voxel = _voxel_size(tomogram)
    vol, map_voxel = read_mrc(class_map)
    if abs(map_voxel - voxel) > 1e-3 * voxel:
        raise InputError(f"{class_map}: voxel size {map_voxel:g} Å differs from the "
                         f"tomogram's {voxel:g} Å ({tomogram})")
    if not radius > 0:
        raise InputError(f"class {class_name!r}: radius must be > 0 Å, got {radius}")
    angles = None
    if s["template_wedge"] != "none":
        if tilt_file is None:
            raise InputError("downstream.template_wedge needs the acquisition's .tlt file")
        angles = read_tlt(tilt_file)
    template = make_template(vol, s["template_box"])
    r_vox = radius / voxel
    if r_vox > template.shape[0] // 2:
        raise InputError(f"class {class_name!r}: radius {radius:g} Å ({r_vox:.1f} voxels) "
                         f"does not fit the {template.shape[0]}-voxel template box")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        write_mrc(work / "template.mrc", template, voxel)
        write_mrc(work / "mask.mrc", sphere_mask(template.shape, r_vox), voxel)
        scores = work / "scores.h5"
        run_pytme(match_command(tomogram, work / "template.mrc", work / "mask.mrc", scores,
                                angular_step=s["angular_step"], symmetry=symmetry,
                                threads=s["threads"], tilt_angles=angles,
                                wedge=s["template_wedge"], tilt_file=tilt_file,
                                filter_target=s["filter_target"],
                                invert_contrast=s["invert_contrast"]), log)
        picks = call_peaks(scores, work, class_name=class_name, radius_voxels=r_vox,
                           settings=s, tomo_name=tomo_name if tomo_name is not None
                           else tomogram.stem, log=log)
    write_star(out_star, picks, name="picks")
    return picks


def call_peaks(scores_h5, work, *, class_name: str, radius_voxels: float, settings: dict,
               tomo_name: str, log=None) -> pd.DataFrame:
    """The pick list of one pytme score file: pytme's peak caller (``postprocess``) for
    candidates, then :func:`select_peaks` (``peak_min_distance`` class radii apart, at most
    ``num_peaks``, above ``score_threshold``), best score first. Separate from the match so
    that peak settings can be compared on one score map."""
    s = check_settings(settings)
    work = Path(work)
    min_distance = s["peak_min_distance"] * radius_voxels
    table = work / "peaks.tsv"
    table.unlink(missing_ok=True)
    run_pytme(peaks_command(scores_h5, work / "peaks",
                            num_candidates=_CANDIDATES_PER_PICK * s["num_peaks"],
                            min_distance=min_distance,
                            min_score=s["score_threshold"]), log)
    cand = read_pytme_orientations(table)
    xyz = cand[["x", "y", "z"]].to_numpy()
    keep = select_peaks(xyz, cand["score"].to_numpy(), min_distance, s["num_peaks"],
                        s["score_threshold"])
    return picks_table(xyz[keep], pytme_to_relion(cand[["euler_x", "euler_y",
                                                         "euler_z"]].to_numpy()[keep]),
                       cand["score"].to_numpy()[keep], class_name, tomo_name)


__all__ = ["PytmeError", "call_peaks", "WEDGE_AXES", "make_template", "match_command", "peaks_command",
           "pick", "picks_table", "pytme_executable", "pytme_symmetry", "pytme_to_relion",
           "read_pytme_orientations", "run_pytme", "select_peaks", "tilt_wedge_argument"]
