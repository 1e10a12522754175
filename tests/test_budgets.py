"""The ``budget`` setting and budget ladders (wedgebench.budgets)."""

import pytest

from wedgebench.budgets import apply_budget, factor_name, ladder_methods, scaled_count
from wedgebench.io import InputError


def test_scaled_counts_round_half_up_and_stay_positive():
    assert [scaled_count(10, b) for b in (0.25, 0.5, 1, 2, 8)] == [3, 5, 10, 20, 80]
    assert scaled_count(1, 0.25) == 1 and scaled_count(150, 0.25) == 38


def test_apply_budget_scales_each_kinds_length_only():
    cn = {"budget": 2, "anchor_iterations": 300, "iterations": 150, "lr": 1e-3, "width": 64}
    assert apply_budget("cn", cn) == {**cn, "anchor_iterations": 600, "iterations": 300}
    iso = {"budget": 0.5, "iterations": 10, "epochs": 1}
    assert apply_budget("isonet", iso) == {**iso, "iterations": 5}
    ddw = {"budget": 4, "epochs": 8, "block_epochs": 4, "update_every": 2}
    assert apply_budget("deepdewedge", ddw) == {**ddw, "epochs": 32}
    assert apply_budget("imod_wbp", {"cutoff": 0.35}) == {"cutoff": 0.35}
    assert apply_budget("cn", {"budget": 1, "iterations": 7})["iterations"] == 7


@pytest.mark.parametrize("bad", [0, -1, "2", True, None])
def test_a_bad_budget_names_the_key(bad):
    with pytest.raises(InputError, match=r"'isonet.budget'"):
        apply_budget("isonet", {"budget": bad, "iterations": 10})


def test_ladder_registers_named_rungs_of_each_method():
    reg = {"cn": {"kind": "cn"}, "cn_paper": {"kind": "cn", "positivity": "none"},
           "imod_wbp": {"kind": "imod_wbp"}}
    rungs = ladder_methods(reg, {"methods": ["cn_paper", "isonet"],
                                 "factors": [0.25, 0.5, 1, 2]})
    assert list(rungs) == ["cn_paper_x0p25", "cn_paper_x0p5", "cn_paper_x2",
                           "isonet_x0p25", "isonet_x0p5", "isonet_x2"]
    assert rungs["cn_paper_x2"] == {"kind": "cn", "positivity": "none", "budget": 2.0,
                                    "budget_of": "cn_paper"}
    assert rungs["isonet_x0p5"] == {"kind": "isonet", "budget": 0.5, "budget_of": "isonet"}
    assert factor_name("cn", 0.25) == "cn_x0p25" and factor_name("cn", 8) == "cn_x8"
    assert ladder_methods(reg, None) == {}


def test_ladder_errors_name_the_key():
    with pytest.raises(InputError, match=r"'budgets.methods.0'.*'imod_wbp'"):
        ladder_methods({"imod_wbp": {"kind": "imod_wbp"}}, {"methods": ["imod_wbp"],
                                                           "factors": [2]})
    with pytest.raises(InputError, match=r"'budgets.factors.1'"):
        ladder_methods({}, {"methods": ["cn"], "factors": [2, 0]})
    with pytest.raises(InputError, match=r"'methods.cn_x2'"):
        ladder_methods({"cn_x2": {"kind": "cn", "width": 8}}, {"methods": ["cn"],
                                                             "factors": [2]})
