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


def test_data_scaling_grows_with_the_fitted_size_and_never_shrinks():
    from wedgebench.budgets import apply_data_scaling, fitted_voxels

    rule = {"reference_voxels": 64 * 8 * 64, "iterations": 1.0, "width": 0.5}
    cn = {"slab_size": 8, "anchor_iterations": 300, "iterations": 150, "width": 64,
          "scale_with_data": rule}
    assert fitted_voxels("cn", cn, (96, 96, 96)) == 96 * 8 * 96
    big = apply_data_scaling("cn", cn, (96, 96, 96))  # 2.25x the reference slab
    assert (big["anchor_iterations"], big["iterations"], big["width"]) == (675, 338, 96)
    small = apply_data_scaling("cn", cn, (32, 96, 96))  # smaller: the default stays
    assert small == cn
    assert apply_data_scaling("cn", dict(cn, scale_with_data={}), (96, 96, 96)) == \
        dict(cn, scale_with_data={})
    assert apply_data_scaling("cn", dict(cn, slab_size="auto"), (96, 96, 96))["width"] == 64
    iso = {"n_subtomos": 64, "iterations": 10,
           "scale_with_data": {"reference_voxels": 64 ** 3, "n_subtomos": 1.0,
                               "iterations": 0.5}}
    out = apply_data_scaling("isonet", iso, (40, 128, 128))  # 2.5x the reference volume
    assert (out["n_subtomos"], out["iterations"]) == (160, 16)
    assert apply_data_scaling("deepdewedge", {"epochs": 8}, (99, 99, 99)) == {"epochs": 8}


def test_a_bad_scaling_rule_names_the_key():
    from wedgebench.budgets import apply_data_scaling

    with pytest.raises(InputError, match=r"'cn.scale_with_data.reference_voxels'"):
        apply_data_scaling("cn", {"slab_size": 8, "scale_with_data": {"reference_voxels": 0}},
                           (8, 8, 8))
    with pytest.raises(InputError, match=r"'isonet.scale_with_data.iterations'"):
        apply_data_scaling("isonet", {"iterations": 2, "scale_with_data": {
            "reference_voxels": 10, "iterations": -1}}, (8, 8, 8))
