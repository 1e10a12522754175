"""One reconstruction's downstream evaluation, as the workflow runs it in two jobs.

1. :func:`pick_classes` — template matching of every class of a crowded specimen's
   catalogue in the reconstruction (:func:`~wedgebench.downstream.picking.pick`), one STAR
   pick list for all classes;
2. :func:`score_and_average` — the picks scored against the true particles
   (:func:`~wedgebench.downstream.scoring.score_picks`), and every class averaged twice
   (:func:`~wedgebench.downstream.averaging.average_particles`): at the true poses, and
   at the true-positive picks with their template-matching angles. The result is one JSON
   record per reconstruction, with a flat ``summary`` the report tabulates.

The ground truth is the folder the ``crowded_truth`` job writes
(:func:`wedgebench.phantoms.crowded.write_ground_truth`: ``particles.star``,
``catalogue.json``, ``classes/<name>.mrc``); the reconstruction never sees it, only these
scores do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wedgebench.downstream import CLASS, COORDS, SCORE, TOMO
from wedgebench.downstream.settings import check_settings
from wedgebench.io import InputError, read_json, read_mrc, read_star, read_tlt, write_json

#: The tomogram name used in the pick lists and the truth of one reconstruction.
TOMOGRAM = "tomogram"


def read_catalogue(truth_dir) -> dict:
    """Class name → ``{radius (Å), symmetry, map (path), number}`` of a ground-truth folder.

    Raises
    ------
    InputError
        A missing or malformed ``catalogue.json`` (naming the file).
    """
    path = Path(truth_dir) / "catalogue.json"
    if not path.is_file():
        raise InputError(f"{path}: no class catalogue (is the dataset of kind crowded?)")
    cat = read_json(path)
    try:
        return {c["name"]: {"radius": float(c["radius_A"]), "symmetry": c["symmetry"],
                            "map": Path(truth_dir) / c["map"], "number": int(c["number"])}
                for c in cat["classes"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed class catalogue ({exc})") from exc


def read_truth(truth_dir) -> pd.DataFrame:
    """The true particles of a ground-truth folder, tagged with :data:`TOMOGRAM`."""
    truth = read_star(Path(truth_dir) / "particles.star")
    return truth.assign(**{TOMO: TOMOGRAM})


def pick_classes(tomogram, truth_dir, tlt, out_star, settings: dict | None = None,
                 log=None) -> pd.DataFrame:
    """Pick every class of the catalogue in ``tomogram``; one STAR for all classes.

    Parameters
    ----------
    tomogram : path-like
        The reconstruction (MRC, voxel size in its header).
    truth_dir : path-like
        The crowded specimen's ground-truth folder (only its class maps and catalogue are
        read: the templates).
    tlt : path-like
        The acquisition's angles (the template's missing wedge).
    out_star : path-like
        Written atomically, block ``picks``.
    settings : dict, optional
        ``downstream`` settings.
    log : path-like, optional
        pytme's output is appended to it.
    """
    from wedgebench.downstream.picking import pick
    from wedgebench.io import write_star

    s = check_settings(settings)
    frames = []
    for name, info in read_catalogue(truth_dir).items():
        frames.append(pick(tomogram, info["map"], Path(str(out_star) + f".{name}.tmp"),
                           class_name=name, radius=info["radius"],
                           symmetry=info["symmetry"], tilt_file=tlt, settings=s,
                           tomo_name=TOMOGRAM, log=log))
        Path(str(out_star) + f".{name}.tmp").unlink(missing_ok=True)
    picks = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(
        len(f) for f in frames) else frames[0]
    write_star(out_star, picks, name="picks")
    return picks


def _average(tomogram: np.ndarray, particles: pd.DataFrame, info: dict, voxel: float,
             tilt_range, settings: dict) -> dict:
    """Resolution of one class's average (0.5 and 0.143 crossings, counts, B factor and
    the resolution-against-N points), or the reason none exists."""
    from wedgebench.downstream.averaging import average_particles

    if particles.empty:
        return {"status": "no particles"}
    true_map, _ = read_mrc(info["map"])
    try:
        res = average_particles({TOMOGRAM: tomogram}, particles, true_map, voxel,
                                {TOMOGRAM: tilt_range}, radius=info["radius"],
                                symmetry=info["symmetry"], settings=settings)
    except InputError as exc:  # e.g. every particle too close to the edge
        return {"status": str(exc)}
    sub = res["subsets"]
    return {"status": "ok", "counts": res["counts"],
            "res05_A": res["crossings"]["fsc0.5"]["resolution"],
            "res05_status": res["crossings"]["fsc0.5"]["status"],
            "res0143_A": res["crossings"]["fsc0.143"]["resolution"],
            "B_A2": res["rosenthal_henderson"]["fsc0.5"]["B"],
            "B_reason": res["rosenthal_henderson"]["fsc0.5"]["reason"],
            "fsc": {"frequency": res["fsc"]["frequency"].tolist(),
                    "fsc": res["fsc"]["fsc"].tolist()},
            "subsets": {"n_particles": sub["n_particles"].tolist(),
                        "res05_A": sub["resolution_0.5"].tolist()}}


def score_and_average(tomogram, truth_dir, picks_star, tlt, settings: dict | None = None
                      ) -> dict:
    """Scores of one reconstruction's picks and averages.

    Returns
    -------
    dict
        ``classes`` (per class: picking scores, ``true_poses`` and ``picks`` averages),
        ``picking`` (the weighted F-β and its settings) and ``summary``, the flat numbers
        the report tabulates: ``weighted_fbeta``, ``mean_ap``, ``mean_recall``,
        ``mean_precision``, ``orientation_median_deg`` (median over classes),
        ``res05_true_A`` / ``res05_picks_A`` (mean over classes of the 0.5-FSC resolution
        of the averages; NaN when a class has none) and per class ``fbeta_<name>``,
        ``ap_<name>``, ``res05_true_<name>``, ``res05_picks_<name>``.
    """
    from wedgebench.downstream.scoring import pair_particles, score_picks

    s = check_settings(settings)
    classes = read_catalogue(truth_dir)
    truth = read_truth(truth_dir)
    picks = read_star(picks_star)
    if not len(picks.columns):
        picks = pd.DataFrame(columns=[*COORDS, SCORE, TOMO, CLASS])
    vol, voxel = read_mrc(tomogram)
    angles = read_tlt(tlt)
    tilt_range = (float(angles.min()), float(angles.max()))
    per_class, summary, pairs = score_picks(truth, picks, classes, voxel_size=voxel,
                                            settings=s)
    out = {"classes": {}, "picking": summary}
    flat = {"weighted_fbeta": summary["weighted_fbeta"]}
    for row in per_class.to_dict(orient="records"):
        name = row["class"]
        true_avg = _average(vol, truth[truth[CLASS].astype(str) == name], classes[name],
                            voxel, tilt_range, s)
        mine = pairs[pairs["class"] == name]
        pick_avg = _average(vol, pair_particles(mine, "pick").assign(**{TOMO: TOMOGRAM})
                            if len(mine) else pd.DataFrame(), classes[name], voxel,
                            tilt_range, s)
        out["classes"][name] = {"picking": row, "true_poses": true_avg, "picks": pick_avg}
        flat[f"fbeta_{name}"] = row["fbeta"]
        flat[f"ap_{name}"] = row["average_precision"]
        flat[f"res05_true_{name}"] = true_avg.get("res05_A", np.nan)
        flat[f"res05_picks_{name}"] = pick_avg.get("res05_A", np.nan)
    names = list(out["classes"])
    col = lambda key: np.array([out["classes"][n]["picking"][key] for n in names], float)  # noqa: E731
    flat.update(mean_ap=float(np.nanmean(col("average_precision"))),
                mean_recall=float(np.nanmean(col("recall"))),
                mean_precision=float(np.nanmean(col("precision")))
                if np.isfinite(col("precision")).any() else float("nan"),
                orientation_median_deg=float(np.nanmedian(col("orientation_median_deg")))
                if np.isfinite(col("orientation_median_deg")).any() else float("nan"))
    for which in ("true", "picks"):
        vals = np.array([flat[f"res05_{which}_{n}"] for n in names], float)
        flat[f"res05_{which}_A"] = float(vals.mean()) if np.isfinite(vals).all() else \
            float("nan")
    out["summary"] = flat
    out["voxel_size"] = voxel
    return out


def write_record(path, record: dict, info: dict) -> None:
    """The record with the run's identity (dataset, replicate, acquisition, method, ...)
    as JSON (NaN written as null)."""
    from wedgebench.downstream.scoring import _json_safe

    write_json(path, _json_safe({**info, **record}))
