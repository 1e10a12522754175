"""CZII-style scoring of pick lists: counts, F-β, average precision, orientation errors,
against hand computations."""

import json

import numpy as np
import pandas as pd
import pytest

from wedgebench import io
from wedgebench.downstream import ANGLES, CLASS, COORDS, SCORE, TOMO
from wedgebench.downstream import scoring

VOXEL = 10.0
RADIUS = 150.0  # Å: reach 0.5 * 150 / 10 = 7.5 voxels


def table(rows, cls="ribosome", with_score=True):
    """rows: (tomo, x, y, z, rot, tilt, psi[, score])."""
    cols = [TOMO, *COORDS, *ANGLES] + ([SCORE] if with_score else [])
    df = pd.DataFrame(rows, columns=cols)
    df[CLASS] = cls
    return df


TRUTH = table([
    ("t1", 20, 20, 20, 0, 0, 0),     # P0
    ("t1", 60, 20, 20, 30, 40, 50),  # P1
    ("t1", 20, 60, 20, 0, 0, 0),     # P2
    ("t1", 60, 60, 20, 0, 0, 0),     # P3
    ("t2", 30, 30, 30, 0, 90, 0),    # P4
], with_score=False)

PICKS = table([
    ("t1", 23, 24, 20, 10, 0, 0, 0.9),     # A: P0 + (3, 4, 0), 5 voxels: TP, 10 deg off
    ("t1", 60, 20, 27.5, 30, 40, 50, 0.5),  # B: P1 + (0, 0, 7.5), exactly the reach: TP
    ("t1", 26, 66, 20, 0, 0, 0, 0.8),      # C: P2 + (6, 6, 0), 8.49 voxels: FP
    ("t1", 18, 20, 20, 0, 0, 0, 0.7),      # D: P0 + (-2, 0, 0), P0 already found by A: FP
    ("t1", 90, 90, 20, 0, 0, 0, 0.95),     # E: nowhere: FP
    ("t2", 30, 31, 30, 0, 90, 20, 0.6),    # F: P4 + (0, 1, 0): TP, 20 deg off
])


def test_shifted_picks_score_as_computed_by_hand():
    row, pairs = scoring.score_class(TRUTH, PICKS, radius=RADIUS, voxel_size=VOXEL,
                                     name="ribosome")
    # TP = {A, B, F} = 3, picks 6 -> FP 3, particles 5 -> FN 2
    assert (row["tp"], row["fp"], row["fn"]) == (3, 3, 2)
    assert row["n_particles"] == 5 and row["n_picks"] == 6
    assert row["precision"] == pytest.approx(3 / 6)
    assert row["recall"] == pytest.approx(3 / 5)
    assert row["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 3))  # 6/11
    assert row["fbeta"] == pytest.approx(17 * 3 / (17 * 3 + 16 * 2 + 3))  # 51/86
    f4 = (1 + 16) * 0.5 * 0.6 / (16 * 0.5 + 0.6)  # the same from precision and recall
    assert row["fbeta"] == pytest.approx(f4)
    # ranking E(FP) A(TP) C(FP) D(FP) F(TP) B(TP): precision at the TPs 1/2, 2/5, 3/6
    assert row["average_precision"] == pytest.approx((1 / 2 + 2 / 5 + 3 / 6) / 5)
    # orientation errors of A, B, F: 10, 0, 20 degrees
    assert sorted(pairs["angle_error"].round(6)) == [0, 10, 20]
    assert row["orientation_median_deg"] == pytest.approx(10)
    assert row["orientation_within"] == pytest.approx(2 / 3)
    # distances in Å: A 5 voxels, B 7.5, F 1
    assert sorted(pairs["distance"].round(6)) == [10, 50, 75]
    a = pairs[pairs["score"] == 0.9].iloc[0]
    assert (a["pick_rlnCoordinateX"], a["true_rlnCoordinateX"]) == (23, 20)


def test_duplicates_near_one_particle_count_once():
    truth = table([("t", 50, 50, 50, 0, 0, 0)], with_score=False)
    picks = table([("t", 50 + d, 50, 50, 0, 0, 0, s)
                   for d, s in ((0, 0.3), (1, 0.9), (-2, 0.5), (3, 0.1))])
    row, pairs = scoring.score_class(truth, picks, radius=RADIUS, voxel_size=VOXEL)
    assert (row["tp"], row["fp"], row["fn"]) == (1, 3, 0)
    assert pairs["score"].tolist() == [0.9]  # the best-scoring pick is the match
    assert row["average_precision"] == pytest.approx(1.0)  # found before any false pick


def test_competition_is_resolved_greedily_by_score():
    # particles 10 voxels apart; pick X (best) reaches both, pick Y only the first
    truth = table([("t", 0, 0, 0, 0, 0, 0), ("t", 10, 0, 0, 0, 0, 0)], with_score=False)
    picks = table([("t", 4, 0, 0, 0, 0, 0, 0.9), ("t", -5, 0, 0, 0, 0, 0, 0.5)])
    m = scoring.match_picks(truth[list(COORDS)], picks[list(COORDS)], picks[SCORE], 7.5)
    np.testing.assert_array_equal(m, [0, -1])  # X takes its nearest; Y is left without
    m = scoring.match_picks(truth[list(COORDS)], picks[list(COORDS)], [0.1, 0.5], 7.5)
    np.testing.assert_array_equal(m, [1, 0])  # Y first: X falls back to the other


def test_empty_pick_list_and_class_without_particles():
    row, pairs = scoring.score_class(TRUTH, None, radius=RADIUS, voxel_size=VOXEL)
    assert (row["tp"], row["fp"], row["fn"]) == (0, 0, 5)
    assert np.isnan(row["precision"]) and row["recall"] == 0 and row["fbeta"] == 0
    assert row["average_precision"] == 0 and len(pairs) == 0
    assert np.isnan(row["orientation_median_deg"])
    row, _ = scoring.score_class(None, PICKS, radius=RADIUS, voxel_size=VOXEL)
    assert (row["tp"], row["fp"], row["fn"]) == (0, 6, 0)
    assert row["precision"] == 0 and np.isnan(row["recall"]) and row["fbeta"] == 0
    assert np.isnan(row["average_precision"])
    row, _ = scoring.score_class(None, None, radius=RADIUS, voxel_size=VOXEL)
    assert np.isnan(row["fbeta"]) and np.isnan(row["precision"])


def test_weighted_mean_over_classes():
    classes = {"ribosome": {"radius": RADIUS}, "apo": {"radius": 60.0},
               "empty": {"radius": 90.0, "symmetry": "O"}}
    picks = pd.concat([PICKS, table([("t1", 5, 5, 5, 0, 0, 0, 0.4),
                                     ("t1", 9, 9, 9, 0, 0, 0, 0.3)], cls="apo")])
    per, summary, pairs = scoring.score_picks(TRUTH, picks, classes, voxel_size=VOXEL)
    f = dict(zip(per["class"], per["fbeta"]))
    assert f["apo"] == 0 and np.isnan(f["empty"])  # absent class: picked 0, unpicked NaN
    assert summary["weighted_fbeta"] == pytest.approx((51 / 86 + 0) / 2)
    assert summary["total_weight"] == 2 and len(pairs) == 3
    per, summary, _ = scoring.score_picks(TRUTH, picks, classes, voxel_size=VOXEL,
                                          settings={"class_weights": {"ribosome": 2}})
    assert summary["weighted_fbeta"] == pytest.approx(2 * (51 / 86) / 3)
    assert per.set_index("class").loc["ribosome", "weight"] == 2
    with pytest.raises(io.InputError, match="not in the class list"):
        scoring.score_picks(TRUTH, picks, {"apo": {"radius": 60.0}}, voxel_size=VOXEL)


def test_czii_constants_and_f_beta_limits():
    assert scoring.CZII_WEIGHTS["beta-galactosidase"] == 2 and scoring.CZII_WEIGHTS[
        "beta-amylase"] == 0
    assert scoring.CZII_RADII["ribosome"] == 150
    assert set(scoring.CZII_RADII) == set(scoring.CZII_WEIGHTS)
    assert scoring.f_beta(5, 0, 0, 4) == 1 and scoring.f_beta(0, 0, 3, 4) == 0
    # F-beta with large beta tends to recall
    assert scoring.f_beta(1, 100, 1, 1000) == pytest.approx(0.5, abs=1e-3)


def test_orientation_error_respects_the_class_symmetry():
    truth = table([("t", 10, 10, 10, 0, 0, 0)], with_score=False)
    picks = table([("t", 10, 10, 10, 90, 0, 0, 1.0)])  # 90 deg about z
    row, _ = scoring.score_class(truth, picks, radius=RADIUS, voxel_size=VOXEL, symmetry="C4")
    assert row["orientation_median_deg"] == pytest.approx(0, abs=1e-6)
    row, _ = scoring.score_class(truth, picks, radius=RADIUS, voxel_size=VOXEL)
    assert row["orientation_median_deg"] == pytest.approx(90)


def test_tables_without_tomogram_names():
    truth = TRUTH[TRUTH[TOMO] == "t1"].drop(columns=TOMO)
    row, _ = scoring.score_class(truth, PICKS[PICKS[TOMO] == "t1"], radius=RADIUS,
                                 voxel_size=VOXEL)
    assert (row["tp"], row["fp"], row["fn"]) == (2, 3, 2)
    with pytest.raises(io.InputError, match="several"):
        scoring.score_class(truth, PICKS, radius=RADIUS, voxel_size=VOXEL)
    with pytest.raises(io.InputError, match="missing columns"):
        scoring.score_class(truth, PICKS.drop(columns=SCORE), radius=RADIUS, voxel_size=VOXEL)


def test_score_files_writes_csv_json_and_pairs(tmp_path):
    io.write_star(tmp_path / "truth.star", TRUTH)
    io.write_star(tmp_path / "p1.star", PICKS[PICKS[TOMO] == "t1"], name="picks")
    io.write_star(tmp_path / "p2.star", PICKS[PICKS[TOMO] == "t2"], name="picks")
    classes = {"ribosome": {"radius": RADIUS}, "apo": {"radius": 60.0}}
    per, summary = scoring.score_files([tmp_path / "truth.star"],
                                       [tmp_path / "p1.star", tmp_path / "p2.star"],
                                       classes, voxel_size=VOXEL,
                                       out_csv=tmp_path / "s.csv", out_json=tmp_path / "s.json",
                                       out_pairs=tmp_path / "pairs.csv")
    csv = pd.read_csv(tmp_path / "s.csv")
    assert csv.set_index("class").loc["ribosome", "tp"] == 3
    js = json.loads((tmp_path / "s.json").read_text())
    assert js["weighted_fbeta"] == pytest.approx(51 / 86)  # apo: no particles, no picks
    assert js["classes"][1]["fbeta"] is None  # NaN written as null
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    parts = scoring.pair_particles(pairs, "pick")
    assert len(parts) == 3 and set(COORDS + ANGLES) <= set(parts.columns)
    np.testing.assert_allclose(sorted(parts["rlnCoordinateZ"]), [20, 27.5, 30])
