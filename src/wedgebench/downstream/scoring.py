"""Scoring pick lists against the ground truth, following the CZII challenge.

Matching
--------
Per tomogram and class, a pick *finds* a true particle when it lies within
``match_radius × class radius`` of it (CZII: 0.5; a KD-tree ball query). Each true
particle is counted once and each pick matches at most one particle. Competition is
resolved greedily by score: picks are taken best score first (ties in input order), and
each takes the nearest particle within reach not yet found. CZII counts a particle as
found when any pick is in reach and sets FP = picks − TP; for particles that do not
overlap (centres ≥ 2 radii apart) no pick can reach two particles at 0.5 radii, so the
two rules give the same counts. TP, FP = picks − TP and FN = particles − TP are pooled
over tomograms.

Per class
---------
precision = TP / (TP + FP) (NaN without picks); recall = TP / (TP + FN) (NaN without
particles); F-β = (1 + β²) TP / ((1 + β²) TP + β² FN + FP) (NaN when the denominator is
0, i.e. no particles and no picks; 0 for picks of a class absent from the data); F1 the
same with β = 1. The weighted mean of F-β over classes with a finite F-β uses the class
weights (CZII's in :data:`CZII_WEIGHTS`).

Average precision (threshold-free)
----------------------------------
All picks of a class, pooled over tomograms, ranked by descending score (ties by
tomogram, then input order); pick k is a true positive when the greedy rule above
matches it (taking picks in rank order is exactly that rule). With precision
``P_k = TP_k / k`` and recall ``R_k = TP_k / N`` after k picks,
``AP = Σ_k (R_k − R_{k−1}) P_k = (1/N) Σ_{k TP} P_k``: the area under the step-wise
precision–recall curve, without interpolation (1 when every particle is found before any
false pick; NaN without particles).

Orientation error
-----------------
For every true-positive pick, the symmetry-aware angle between its orientation and its
particle's (:func:`wedgebench.euler.angular_distance` with the class's point group):
the median and the fraction within ``orientation_threshold`` degrees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wedgebench import euler
from wedgebench.downstream import ANGLES, CLASS, COORDS, SCORE, TOMO
from wedgebench.io import InputError

#: CZII challenge class radii in Å.
CZII_RADII = {"apo-ferritin": 60.0, "beta-amylase": 65.0, "beta-galactosidase": 90.0,
              "ribosome": 150.0, "thyroglobulin": 130.0, "virus-like-particle": 135.0}
#: CZII challenge class weights.
CZII_WEIGHTS = {"apo-ferritin": 1.0, "beta-amylase": 0.0, "beta-galactosidase": 2.0,
                "ribosome": 1.0, "thyroglobulin": 2.0, "virus-like-particle": 1.0}

PAIR_COLUMNS = ("tomogram", "class", "score", "distance", "angle_error",
                *(p + c for p in ("pick_", "true_") for c in COORDS + ANGLES))


def match_picks(true_xyz, pick_xyz, pick_scores, radius: float) -> np.ndarray:
    """For each pick, the index of the true particle it finds, or −1 (greedy by score).

    Parameters
    ----------
    true_xyz : array ``(n, 3)``
    pick_xyz : array ``(m, 3)``
        Same units as ``radius``.
    pick_scores : array ``(m,)``
    radius : float
        Reach: a pick finds particles within this distance (inclusive).

    Returns
    -------
    ndarray of int ``(m,)``
    """
    from scipy.spatial import cKDTree

    true_xyz = np.asarray(true_xyz, float).reshape(-1, 3)
    pick_xyz = np.asarray(pick_xyz, float).reshape(-1, 3)
    out = np.full(pick_xyz.shape[0], -1, int)
    if true_xyz.shape[0] == 0 or pick_xyz.shape[0] == 0:
        return out
    tree = cKDTree(true_xyz)
    found = np.zeros(true_xyz.shape[0], bool)
    for i in np.argsort(-np.asarray(pick_scores, float), kind="stable"):
        near = tree.query_ball_point(pick_xyz[i], r=radius)
        near = [j for j in near if not found[j]]
        if near:
            d = np.linalg.norm(true_xyz[near] - pick_xyz[i], axis=1)
            j = near[int(np.argmin(d))]
            found[j] = True
            out[i] = j
    return out


def f_beta(tp: float, fp: float, fn: float, beta: float) -> float:
    """``(1 + β²) TP / ((1 + β²) TP + β² FN + FP)``; NaN when the denominator is 0."""
    b2 = float(beta) ** 2
    den = (1 + b2) * tp + b2 * fn + fp
    return float((1 + b2) * tp / den) if den > 0 else float("nan")


def average_precision(is_tp, n_true: int) -> float:
    """Area under the step-wise precision–recall curve of ranked picks (module docstring).

    Parameters
    ----------
    is_tp : array of bool
        Whether each pick, in rank order (best first), is a true positive.
    n_true : int
        Number of true particles.
    """
    is_tp = np.asarray(is_tp, bool)
    if n_true <= 0:
        return float("nan")
    if is_tp.size == 0:
        return 0.0
    precision = np.cumsum(is_tp) / np.arange(1, is_tp.size + 1)
    return float(precision[is_tp].sum() / n_true)


def _frame(df: pd.DataFrame | None, name: str, need_score: bool) -> pd.DataFrame:
    """The columns scoring uses, checked, with a fresh index (angles only when given)."""
    if df is None:
        df = pd.DataFrame({c: pd.Series(dtype=float) for c in COORDS + (SCORE,)})
    missing = [c for c in COORDS if c not in df.columns]
    if need_score and SCORE not in df.columns:
        missing.append(SCORE)
    if missing:
        raise InputError(f"{name}: missing columns {missing}")
    cols = list(COORDS) + [c for c in ANGLES if ANGLES[0] in df.columns]
    cols += [SCORE] * need_score + [TOMO] * (TOMO in df.columns)
    return df.reset_index(drop=True)[cols]


def _same_tomograms(truth: pd.DataFrame, picks: pd.DataFrame, name: str):
    """Both tables with a :data:`TOMO` column: a table without one belongs to the other's
    single tomogram (or to one unnamed tomogram when neither names it)."""
    has_t, has_p = TOMO in truth.columns, TOMO in picks.columns
    if has_t != has_p:
        named, other = (truth, "picks") if has_t else (picks, "ground truth")
        unnamed = picks if has_t else truth
        tomos = pd.unique(named[TOMO].astype(str))
        if len(tomos) > 1 and len(unnamed):
            raise InputError(f"class {name!r}: the {other} name no tomogram ({TOMO}) but "
                             f"the other table has several: {list(tomos)}")
        fill = tomos[0] if len(tomos) else ""
        truth = truth if has_t else truth.assign(**{TOMO: fill})
        picks = picks if has_p else picks.assign(**{TOMO: fill})
    elif not has_t:
        truth, picks = truth.assign(**{TOMO: ""}), picks.assign(**{TOMO: ""})
    return (truth.assign(**{TOMO: truth[TOMO].astype(str)}),
            picks.assign(**{TOMO: picks[TOMO].astype(str)}))


def score_class(truth: pd.DataFrame | None, picks: pd.DataFrame | None, *, radius: float,
                voxel_size: float, symmetry: str = "C1", beta: float = 4.0,
                match_radius: float = 0.5, orientation_threshold: float = 15.0,
                name: str = "") -> tuple[dict, pd.DataFrame]:
    """Score the picks of one class against its true particles, pooled over tomograms.

    Parameters
    ----------
    truth, picks : DataFrame or None
        STAR tables of one class (columns of :mod:`wedgebench.downstream`; ``picks``
        needs :data:`~wedgebench.downstream.SCORE`). Rows are grouped by
        :data:`~wedgebench.downstream.TOMO` when present. Coordinates in voxels.
    radius : float
        Class radius in Å.
    voxel_size : float
        Å per voxel of the coordinates.
    symmetry : str
        Class point group for the orientation error.
    beta, match_radius, orientation_threshold
        See :mod:`wedgebench.downstream.settings`.
    name : str
        Class name (in the row and in errors).

    Returns
    -------
    row : dict
        ``class, n_particles, n_picks, tp, fp, fn, precision, recall, f1, fbeta,
        average_precision, n_oriented, orientation_median_deg, orientation_within``.
    pairs : DataFrame
        One row per true-positive pick: :data:`PAIR_COLUMNS` (the pick's and its
        particle's coordinates and angles, prefixed ``pick_`` and ``true_``; distance in
        Å; ``angle_error`` in degrees, NaN when either table lacks angles).
    """
    if not (radius > 0 and voxel_size > 0):
        raise InputError(f"class {name!r}: radius and voxel size must be > 0, got "
                         f"{radius}, {voxel_size}")
    truth, picks = _same_tomograms(
        _frame(truth, f"ground truth of class {name!r}", need_score=False),
        _frame(picks, f"picks of class {name!r}", need_score=True), name)
    reach = match_radius * radius / voxel_size
    # rank all picks: score descending, then tomogram, then input order
    order = np.lexsort((np.arange(len(picks)), picks[TOMO].to_numpy(),
                        -picks[SCORE].to_numpy(float)))
    matched = np.full(len(picks), -1, int)
    for tomo in pd.unique(picks[TOMO]):
        p_idx = np.flatnonzero(picks[TOMO].to_numpy() == tomo)
        t_idx = np.flatnonzero(truth[TOMO].to_numpy() == tomo)
        m = match_picks(truth.loc[t_idx, list(COORDS)].to_numpy(float),
                        picks.loc[p_idx, list(COORDS)].to_numpy(float),
                        picks.loc[p_idx, SCORE].to_numpy(float), reach)
        matched[p_idx[m >= 0]] = t_idx[m[m >= 0]]
    tp = int((matched >= 0).sum())
    n_true, n_picks = len(truth), len(picks)
    fp, fn = n_picks - tp, n_true - tp
    tps = np.flatnonzero(matched >= 0)
    pts = matched[tps]
    dist = np.linalg.norm(picks.loc[tps, list(COORDS)].to_numpy(float)
                          - truth.loc[pts, list(COORDS)].to_numpy(float), axis=1) * voxel_size
    if ANGLES[0] in picks and ANGLES[0] in truth and tps.size:
        err = euler.angular_distance(
            euler.particle_matrix(*picks.loc[tps, list(ANGLES)].to_numpy(float).T),
            euler.particle_matrix(*truth.loc[pts, list(ANGLES)].to_numpy(float).T),
            symmetry)
    else:
        err = np.full(tps.size, np.nan)
    err = np.atleast_1d(err)
    ok = np.isfinite(err)
    row = {
        "class": name, "n_particles": n_true, "n_picks": n_picks, "tp": tp, "fp": fp,
        "fn": fn,
        "precision": tp / n_picks if n_picks else float("nan"),
        "recall": tp / n_true if n_true else float("nan"),
        "f1": f_beta(tp, fp, fn, 1.0),
        "fbeta": f_beta(tp, fp, fn, beta),
        "average_precision": average_precision(matched[order] >= 0, n_true),
        "n_oriented": int(ok.sum()),
        "orientation_median_deg": float(np.median(err[ok])) if ok.any() else float("nan"),
        "orientation_within": float(np.mean(err[ok] <= orientation_threshold))
        if ok.any() else float("nan"),
    }
    pairs = pd.DataFrame({"tomogram": picks.loc[tps, TOMO].to_numpy(),
                          "class": [name] * tps.size,
                          "score": picks.loc[tps, SCORE].to_numpy(float),
                          "distance": dist, "angle_error": err})
    for prefix, table, rows in (("pick_", picks, tps), ("true_", truth, pts)):
        for c in COORDS + ANGLES:
            pairs[prefix + c] = (table.loc[rows, c].to_numpy(float) if c in table
                                 else np.full(rows.size, np.nan))
    return row, pairs


def pair_particles(pairs: pd.DataFrame, which: str = "pick") -> pd.DataFrame:
    """The picks (``which="pick"``) or their true particles (``"true"``) of true-positive
    pairs as a particle table (coordinates, angles, tomogram, class) for averaging."""
    if which not in ("pick", "true"):
        raise ValueError(f"which must be 'pick' or 'true', got {which!r}")
    out = pd.DataFrame({c: pairs[f"{which}_{c}"].to_numpy(float) for c in COORDS + ANGLES})
    out[TOMO] = pairs["tomogram"].to_numpy()
    out[CLASS] = pairs["class"].to_numpy()
    return out


def weighted_mean(values: dict, weights: dict | None = None) -> tuple[float, float]:
    """Weighted mean of the finite ``values`` (class → value); weights default to 1.

    Returns
    -------
    mean, total_weight : float
        NaN and 0 when no finite value has a positive weight.
    """
    weights = weights or {}
    v = np.array([values[k] for k in values], float)
    w = np.array([float(weights.get(k, 1.0)) for k in values], float)
    ok = np.isfinite(v) & (w > 0)
    if not ok.any():
        return float("nan"), 0.0
    return float(np.sum(w[ok] * v[ok]) / np.sum(w[ok])), float(np.sum(w[ok]))


def score_picks(truth: pd.DataFrame, picks: pd.DataFrame, classes: dict, *,
                voxel_size: float, settings: dict | None = None
                ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score pick lists of several classes (rows split by :data:`~wedgebench.downstream.CLASS`).

    Parameters
    ----------
    truth, picks : DataFrame
        All classes and tomograms together.
    classes : dict
        Class name → ``{"radius": Å, "symmetry": "C1", ...}``; every class listed is
        scored (one with no particles or no picks too); rows of other classes are an error.
    voxel_size : float
    settings : dict, optional
        ``downstream`` settings (``beta``, ``match_radius``, ``class_weights``,
        ``orientation_threshold``).

    Returns
    -------
    per_class : DataFrame
        One row per class (see :func:`score_class`), with its ``weight``.
    summary : dict
        ``weighted_fbeta``, ``total_weight``, ``beta``, ``match_radius``, ``weights``.
    pairs : DataFrame
        The true-positive pairs of every class.
    """
    from wedgebench.downstream.settings import check_settings

    s = check_settings(settings)
    for label, df in (("ground truth", truth), ("picks", picks)):
        if CLASS not in df.columns:
            raise InputError(f"{label}: no {CLASS} column")
        unknown = sorted(set(df[CLASS].astype(str)) - set(classes))
        if unknown:
            raise InputError(f"{label}: classes {unknown} are not in the class list "
                             f"{sorted(classes)}")
    rows, all_pairs = [], []
    for name, info in classes.items():
        row, pairs = score_class(truth[truth[CLASS].astype(str) == name],
                                 picks[picks[CLASS].astype(str) == name],
                                 radius=float(info["radius"]), voxel_size=voxel_size,
                                 symmetry=info.get("symmetry", "C1"), beta=s["beta"],
                                 match_radius=s["match_radius"],
                                 orientation_threshold=s["orientation_threshold"],
                                 name=name)
        row["weight"] = float(s["class_weights"].get(name, 1.0))
        rows.append(row)
        all_pairs.append(pairs)
    per_class = pd.DataFrame(rows)
    mean, total = weighted_mean(dict(zip(per_class["class"], per_class["fbeta"])),
                                s["class_weights"])
    summary = {"weighted_fbeta": mean, "total_weight": total, "beta": s["beta"],
               "match_radius": s["match_radius"],
               "weights": {n: float(s["class_weights"].get(n, 1.0)) for n in classes}}
    pairs = pd.concat(all_pairs, ignore_index=True) if all_pairs else pd.DataFrame(
        columns=list(PAIR_COLUMNS))
    return per_class, summary, pairs


def score_files(truth_stars, pick_stars, classes: dict, *, voxel_size: float,
                out_csv, out_json, out_pairs=None, settings: dict | None = None
                ) -> tuple[pd.DataFrame, dict]:
    """File wrapper of :func:`score_picks`: read STAR files, write CSV and JSON.

    Parameters
    ----------
    truth_stars, pick_stars : sequence of path-like
        STAR files (any split over tomograms and classes); concatenated.
    out_csv : path-like
        Per-class table.
    out_json : path-like
        The summary, with the per-class rows.
    out_pairs : path-like, optional
        CSV of the true-positive pairs (for averaging from picks).
    """
    from wedgebench.io import atomic_path, read_star, write_json

    def load(paths):
        frames = [read_star(p) for p in paths]
        frames = [f for f in frames if len(f.columns)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=list(COORDS) + [SCORE, TOMO, CLASS])

    truth, picks = load(truth_stars), load(pick_stars)
    per_class, summary, pairs = score_picks(truth, picks, classes, voxel_size=voxel_size,
                                            settings=settings)
    with atomic_path(out_csv) as tmp:
        per_class.to_csv(tmp, index=False)
    summary = dict(summary, classes=per_class.to_dict(orient="records"))
    write_json(out_json, _json_safe(summary))
    if out_pairs is not None:
        with atomic_path(out_pairs) as tmp:
            pairs.to_csv(tmp, index=False)
    return per_class, summary


def _json_safe(obj):
    """NaN → None (JSON has no NaN), numpy scalars → Python."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


__all__ = ["CZII_RADII", "CZII_WEIGHTS", "PAIR_COLUMNS", "average_precision", "f_beta",
           "match_picks", "pair_particles", "score_class", "score_files", "score_picks",
           "weighted_mean"]
