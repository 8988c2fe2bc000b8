"""Golden vectors for the NumPy reference (python/moe_mlir/reference.py).

Every expectation below is written literally and derived by hand from the contract
(docs: moe-semantics); the comment next to it shows the calculation. Most routing cases use
``scoring="none"`` so that the scores are the logits exactly and the arithmetic is easy to
follow; softmax/sigmoid have their own cases.
"""
import dataclasses
import math

import numpy as np
import pytest

from moe_mlir import reference as ref

NAN = float("nan")
INF = float("inf")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def route(logits, k, experts=None, **kw):
    logits = np.asarray(logits, np.float32)
    experts = experts if experts is not None else ref.ExpertSpace(logits.shape[1])
    kw.setdefault("scoring", "none")
    return ref.route(logits, experts, k, **kw)


def check(got, ids, weights, rtol=1e-6):
    gi, gw = got
    assert gi.dtype == np.int32, gi.dtype
    assert gw.dtype == np.float32, gw.dtype
    np.testing.assert_array_equal(gi, np.asarray(ids, np.int64))
    np.testing.assert_allclose(gw, np.asarray(weights, np.float64), rtol=rtol, atol=0)


def f32(a):
    return np.asarray(a, np.float32)


# --------------------------------------------------------------------------------------
# section 1: expert space
# --------------------------------------------------------------------------------------
def test_expert_space_index_order_and_kinds():
    ex = ref.ExpertSpace(compute=2, null=1, copy=1, const=2)
    assert ex.S == 6 and ex.E == 2
    # [0,2) compute, 2 null, 3 copy, [4,6) const; -1 empty; anything else invalid
    assert [ex.kind(i) for i in range(-2, 7)] == [
        "invalid", "empty", "compute", "compute", "null", "copy", "const", "const", "invalid"]
    ids = np.array([-1, 0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(ex.is_compute(ids), [0, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(ex.is_null(ids), [0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ex.is_copy(ids), [0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(ex.is_const(ids), [0, 0, 0, 0, 0, 1, 1, 0])


def test_expert_space_plain_moe_and_validation():
    assert ref.ExpertSpace(8).S == 8
    with pytest.raises(ValueError, match="compute"):
        ref.ExpertSpace(-1)
    with pytest.raises(ValueError, match="compute"):   # project rule: at least one compute expert
        ref.ExpertSpace(0, null=4)
    with pytest.raises(ValueError, match="null"):
        ref.ExpertSpace(2, null=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.ExpertSpace(2).compute = 3


# --------------------------------------------------------------------------------------
# 2.1 gate
# --------------------------------------------------------------------------------------
def test_gate_by_hand():
    x = [[1, 2]]
    w = [[1, 0, 2], [0, 1, 1]]
    b = [0.5, 0, -1]
    # [1*1+2*0+0.5, 1*0+2*1+0, 1*2+2*1-1] = [1.5, 2, 3]
    out = ref.gate(f32(x), f32(w), f32(b))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.5, 2, 3]])
    np.testing.assert_array_equal(ref.gate(f32(x), f32(w)), [[1, 2, 4]])


def test_gate_T0_and_shapes():
    out = ref.gate(np.zeros((0, 2), np.float32), np.ones((2, 3), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.float32
    with pytest.raises(ValueError, match="gate"):
        ref.gate(np.zeros((1, 2), np.float32), np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="'b'"):
        ref.gate(np.zeros((1, 2), np.float32), np.ones((2, 3), np.float32), np.ones(2, np.float32))


# --------------------------------------------------------------------------------------
# 2.2 step 1: scoring
# --------------------------------------------------------------------------------------
def test_softmax_uniform_and_tie_order():
    # exp(0)/4 = 0.25 each; all keys equal -> index order
    check(route([[0, 0, 0, 0]], 4, scoring="softmax"), [[0, 1, 2, 3]], [[0.25] * 4])


def test_softmax_values():
    # l = [ln2, 0, 0]: exp(l - ln2) = [1, 0.5, 0.5], sum 2 -> [0.5, 0.25, 0.25]
    check(route([[math.log(2), 0, 0]], 3, scoring="softmax"), [[0, 1, 2]], [[0.5, 0.25, 0.25]])


def test_softmax_nan_anywhere_makes_row_nan():
    # row 0 has a NaN: all scores NaN, all keys NaN -> order by index, weights NaN
    # row 1: [e^-1, 1, e^-2] / (1 + e^-1 + e^-2 = 1.5032147) -> expert 1: 0.6652410, expert 0: 0.2447285
    got = route([[1, NAN, 0], [1, 2, 0]], 2, scoring="softmax")
    check(got, [[0, 1], [1, 0]], [[NAN, NAN], [0.66524096, 0.24472847]])


def test_softmax_infinities_follow_ieee():
    # +inf: inf - max(inf) = NaN -> the row is NaN; all -inf: -inf - (-inf) = NaN -> NaN row
    check(route([[INF, 0, 0]], 2, scoring="softmax"), [[0, 1]], [[NAN, NAN]])
    check(route([[-INF, -INF]], 2, scoring="softmax"), [[0, 1]], [[NAN, NAN]])
    # a single -inf next to a finite max: exp(-inf) = 0 -> [0, 1]
    check(route([[-INF, 0]], 2, scoring="softmax"), [[1, 0]], [[1, 0]])


def test_sigmoid_values_and_nan_only_in_its_entry():
    # sigmoid(0) = 0.5, sigmoid(NaN) = NaN (only that entry): order 0, 2 (tie -> index), NaN last
    check(route([[0, NAN, 0]], 3, scoring="sigmoid"), [[0, 2, 1]], [[0.5, 0.5, NAN]])
    # sigmoid(inf) = 1, sigmoid(2) = 1/(1+e^-2) = 0.8807971, sigmoid(0) = 0.5, sigmoid(-inf) = 0
    check(route([[0, 2, -INF, INF]], 4, scoring="sigmoid"), [[3, 1, 0, 2]],
          [[1.0, 0.8807971, 0.5, 0.0]])


def test_none_scoring_is_identity():
    check(route([[-1.5, 2.5]], 2), [[1, 0]], [[2.5, -1.5]])


# --------------------------------------------------------------------------------------
# 2.2 step 4: order
# --------------------------------------------------------------------------------------
def test_order_ties_lower_index_first():
    # keys [1,3,3,2]: 3 (idx 1) and 3 (idx 2) tie -> 1 before 2, then 2.0 (idx 3)
    check(route([[1, 3, 3, 2]], 3), [[1, 2, 3]], [[3, 3, 2]])


def test_order_negative_zero_equals_zero():
    # -0 == +0 -> a tie decided by index, in both arrangements
    ids, w = route([[-0.0, 0.0, -1]], 2)
    np.testing.assert_array_equal(ids, [[0, 1]])
    assert np.signbit(w[0, 0]) and not np.signbit(w[0, 1])  # raw weights are the scores
    check(route([[0.0, -0.0, -1]], 2), [[0, 1]], [[0, 0]])
    check(route([[-1, -0.0, 0.0]], 2), [[1, 2]], [[0, 0]])


def test_order_nan_keys_below_everything_by_index():
    # non-NaN descending: 2 (idx 4), 1 (idx 1), -inf (idx 3); then NaNs by index: 0, 2
    check(route([[NAN, 1, NAN, -INF, 2]], 5), [[4, 1, 3, 0, 2]], [[2, 1, -INF, NAN, NAN]])


def test_empty_slots_come_last():
    # threshold 0.6: only 0.9 passes -> one valid slot, then id -1 / weight 0
    check(route([[0.2, 0.9, 0.5], [0.7, 0.8, 0.65]], 3, strategy=ref.Threshold(0.6, 0)),
          [[1, -1, -1], [1, 0, 2]], [[0.9, 0, 0], [0.8, 0.7, 0.65]])


# --------------------------------------------------------------------------------------
# 2.2 step 5: strategies
# --------------------------------------------------------------------------------------
def test_top_p_prefix_reaching_p():
    # order 1 (.5), 2 (.25), 0 (.125), 3 (.125); sums .5, .75 >= .75 -> n = 2
    check(route([[0.125, 0.5, 0.25, 0.125]], 4, strategy=ref.TopP(0.75)),
          [[1, 2, -1, -1]], [[0.5, 0.25, 0, 0]])


def test_top_p_exactly_p_counts():
    # 0.5 >= 0.5 at m = 1
    check(route([[0.5, 0.5]], 2, strategy=ref.TopP(0.5)), [[0, -1]], [[0.5, 0]])


def test_top_p_not_reached_within_K_gives_K():
    # sums .25, .5, .75, 1.0: reached at m = 4 > K = 2 -> capped at 2
    check(route([[0.25] * 4], 2, strategy=ref.TopP(0.9)), [[0, 1]], [[0.25, 0.25]])
    # sums .3, .5, .6: never >= .9 -> K = 2
    check(route([[0.1, 0.2, 0.3]], 2, strategy=ref.TopP(0.9)), [[2, 1]], [[0.3, 0.2]])


def test_top_p_p_equal_one_gives_K():
    # the first score already sums to 1, but p == 1 -> n = K = 2
    check(route([[0, 1.0, 0]], 2, strategy=ref.TopP(1.0)), [[1, 0]], [[1.0, 0]])


def test_top_p_running_sum_is_sequential_f32():
    # p = 0.75 + 2^-24 (an f32). In f32, 0.75 + 2^-25 is a tie at half an ulp (ulp = 2^-24)
    # -> rounds to even = 0.75, twice; the sum never reaches p -> n = K = 5.
    # (An f64 sum would reach 0.75 + 2^-24 at m = 3.)
    s = [[0.75, 2.0 ** -25, 2.0 ** -25, 0.0, 0.0]]
    check(route(s, 5, strategy=ref.TopP(0.75 + 2.0 ** -24)), [[0, 1, 2, 3, 4]], s)


def test_top_p_nan_score_never_reaches():
    # order 0, 2, then NaN (idx 1); sums .25, .5, NaN -> never >= .9 -> K = 3
    check(route([[0.25, NAN, 0.25]], 3, strategy=ref.TopP(0.9)), [[0, 2, 1]], [[0.25, 0.25, NAN]])
    # softmax NaN row: every sum is NaN -> K
    check(route([[NAN, 0, 0]], 2, scoring="softmax", strategy=ref.TopP(0.5)), [[0, 1]], [[NAN, NAN]])


def test_adaptive_gap_test():
    # order 0 (.5), 2 (.45), 1 (.3), 3 (.1); gaps 0, .05, .2 -> prefix 2 with tau .1
    check(route([[0.5, 0.3, 0.45, 0.1]], 4, strategy=ref.Adaptive(0.1)),
          [[0, 2, -1, -1]], [[0.5, 0.45, 0, 0]])


def test_adaptive_is_a_prefix_test_on_scores():
    # u = s + bias = [1.0, 0.7, 0.45] -> order 0, 1, 2; gaps on s: 0, 0.5-0.2 = .3 > .1 stops,
    # although expert 2 (gap .05) would pass -> n = 1
    check(route([[0.5, 0.2, 0.45]], 3, strategy=ref.Adaptive(0.1),
                selection_bias=[0.5, 0.5, 0.0]), [[0, -1, -1]], [[0.5, 0, 0]])


def test_adaptive_nan_first_gives_zero_slots():
    # softmax NaN row: s[o_1] is NaN -> NaN - x <= tau is false -> n = 0
    check(route([[NAN, 0]], 2, scoring="softmax", strategy=ref.Adaptive(0.5)), [[-1, -1]], [[0, 0]])


def test_adaptive_tau_zero_keeps_exact_ties_and_caps_at_K():
    # order 0, 2 (tie .5 -> index), 1; gaps 0, 0, .3 -> n = 2
    check(route([[0.5, 0.2, 0.5]], 3, strategy=ref.Adaptive(0.0)), [[0, 2, -1]], [[0.5, 0.5, 0]])
    # all gaps 0 -> prefix 3, capped at K = 2
    check(route([[1, 1, 1]], 2, strategy=ref.Adaptive(0.0)), [[0, 1]], [[1, 1]])


def test_threshold_negative_tau():
    # order 0 (.5), 2 (.3), 1 (-.2), 3 (-.5); >= -.3: T, T, T, F -> n = 3
    check(route([[0.5, -0.2, 0.3, -0.5]], 4, strategy=ref.Threshold(-0.3, 0)),
          [[0, 2, 1, -1]], [[0.5, 0.3, -0.2, 0]])


def test_threshold_k_min_extends_from_the_same_order():
    # tau .4: prefix 1 (.5 passes, .3 fails); n = max(k_min=2, 1) = 2 -> o_1, o_2
    check(route([[0.5, -0.2, 0.3, -0.5]], 4, strategy=ref.Threshold(0.4, 2)),
          [[0, 2, -1, -1]], [[0.5, 0.3, 0, 0]])


def test_threshold_nothing_passes_and_k_min_zero():
    check(route([[0.5, -0.2, 0.3]], 3, strategy=ref.Threshold(0.9, 0)), [[-1, -1, -1]], [[0, 0, 0]])


def test_threshold_prefix_uses_scores_in_key_order():
    # u = [.5, .6, .45] -> order 1, 0, 2; s[o_1] = .1 < .3 -> prefix 0; n = max(1, 0) = 1
    check(route([[0.5, 0.1, 0.45]], 3, strategy=ref.Threshold(0.3, 1),
                selection_bias=[0, 0.5, 0]), [[1, -1, -1]], [[0.1, 0, 0]])


def test_dynamic_k_clamps():
    s = [[0.1, 0.4, 0.3, 0.2]] * 6
    # order 1, 2, 3, 0; n = clamp(k, 0, 3): -3 -> 0, 0 -> 0, 2 -> 2, 7 -> 3, INT_MAX -> 3, INT_MIN -> 0
    kpt = np.array([-3, 0, 2, 7, 2 ** 31 - 1, -2 ** 31], np.int32)
    check(route(s, 3, strategy=ref.DynamicK(), k_per_token=kpt),
          [[-1, -1, -1], [-1, -1, -1], [1, 2, -1], [1, 2, 3], [1, 2, 3], [-1, -1, -1]],
          [[0, 0, 0], [0, 0, 0], [0.4, 0.3, 0], [0.4, 0.3, 0.2], [0.4, 0.3, 0.2], [0, 0, 0]])


# --------------------------------------------------------------------------------------
# 2.2 step 2: selection bias
# --------------------------------------------------------------------------------------
def test_selection_bias_changes_which_not_the_weights():
    # u = [.5, .4, .1+.5=.6] -> order 2, 0; weights are s: [.1, .5]
    check(route([[0.5, 0.4, 0.1]], 2, selection_bias=[0, 0, 0.5]), [[2, 0]], [[0.1, 0.5]])
    # softmax s = [.5, .25, .25]; u = [.5, .25, .55] -> expert 2 with weight s = .25
    check(route([[math.log(2), 0, 0]], 1, scoring="softmax", selection_bias=[0, 0, 0.3]),
          [[2]], [[0.25]])


# --------------------------------------------------------------------------------------
# 2.2 step 3: groups
# --------------------------------------------------------------------------------------
def test_groups_score_is_sum_of_two_largest():
    # groups [0,1,2] [3,4,5]: g0 = .9 + 0 = .9, g1 = .4 + .4 = .8 (the sum of all would be 1.2)
    # keep g0 -> order 0 (.9), 1 (0, tie with 2 -> index)
    check(route([[0.9, 0, 0, 0.4, 0.4, 0.4]], 2, groups=ref.Groups(2, 1)), [[0, 1]], [[0.9, 0]])


def test_groups_tie_keeps_lower_group_index():
    # g0 = .5 + .25 = .75 = g1 -> keep g0
    check(route([[0.5, 0.25, 0.25, 0.5]], 2, groups=ref.Groups(2, 1)), [[0, 1]], [[0.5, 0.25]])


def test_groups_top_two_of_three():
    # g0 = .1+.2 = .3, g1 = .3+.05 = .35, g2 = .15+.15 = .3 (== g0 in f32) -> keep g1, g0
    # selectable {0,1,2,3}: order 2 (.3), 1 (.2), 0 (.1)
    check(route([[0.1, 0.2, 0.3, 0.05, 0.15, 0.15]], 3, groups=ref.Groups(3, 2)),
          [[2, 1, 0]], [[0.3, 0.2, 0.1]])


def test_groups_nan_key_counts_as_minus_inf():
    # g0 = 5 + (-inf for NaN) = -inf, g1 = .1 + .2 = .3 -> keep g1
    check(route([[NAN, 5.0, 0.1, 0.2]], 2, groups=ref.Groups(2, 1)), [[3, 2]], [[0.2, 0.1]])


def test_groups_nan_group_score_ranks_last():
    # g0 = inf + (-inf) = NaN -> last; g1 = -inf + -inf = -inf -> kept
    check(route([[INF, NAN, -INF, -INF]], 2, groups=ref.Groups(2, 1)), [[2, 3]], [[-INF, -INF]])


def test_groups_nan_expert_in_kept_group_sorts_last():
    # groups of 3: g0 = 1 + .5 = 1.5 (NaN is the smallest), g1 = .2 + .2 = .4 -> keep g0
    # order in g0: 0 (1), 2 (.5), 1 (NaN)
    check(route([[1, NAN, 0.5, 0.2, 0.2, 0.2]], 3, groups=ref.Groups(2, 1)),
          [[0, 2, 1]], [[1, 0.5, NAN]])


def test_groups_max_score_is_the_largest_member():
    # v1.1: groups [.9, 0, 0] [.85, .8, 0]. top2_sum: g0 = .9 < g1 = 1.65 -> keep g1;
    # max: g0 = .9 > g1 = .85 -> keep g0 (order 0, then 1: a tie with 2 at 0).
    keys = [[0.9, 0, 0, 0.85, 0.8, 0]]
    check(route(keys, 2, groups=ref.Groups(2, 1)), [[3, 4]], [[0.85, 0.8]])
    check(route(keys, 2, groups=ref.Groups(2, 1, "max")), [[0, 1]], [[0.9, 0]])


def test_groups_max_allows_one_expert_per_group():
    # n = E: each group is one expert, so groups<4, 2, max> keeps the two best experts.
    check(route([[0.1, 0.4, 0.3, 0.2]], 2, groups=ref.Groups(4, 2, "max")),
          [[1, 2]], [[0.4, 0.3]])
    with pytest.raises(ValueError, match="E / n >= 2"):
        route([[0.1, 0.4, 0.3, 0.2]], 2, groups=ref.Groups(4, 2))


def test_groups_max_nan_key_counts_as_minus_inf():
    # g0 = max(-inf for NaN, -inf) = -inf, g1 = .2 -> keep g1
    check(route([[NAN, -INF, 0.1, 0.2]], 2, groups=ref.Groups(2, 1, "max")),
          [[3, 2]], [[0.2, 0.1]])


def test_groups_rejects_an_unknown_score():
    with pytest.raises(ValueError, match="'score'"):
        route([[0.1, 0.4, 0.3, 0.2]], 2, groups=ref.Groups(2, 1, "sum"))


# --------------------------------------------------------------------------------------
# 2.2 step 7: capacity
# --------------------------------------------------------------------------------------
S3 = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]  # slots before capacity: (0,1) (0,1) (1,0)


def test_capacity_position_priority():
    # C = ceil(0.5 * 3 * 2 / 2) = 2. Expert 0 by (j,t): (0,t0) (0,t1) (1,t2) -> drop t2 slot 1.
    # Expert 1: (0,t2) (1,t0) (1,t1) -> drop t1 slot 1.
    check(route(S3, 2, capacity=ref.Capacity(0.5, "position")),
          [[0, 1], [0, -1], [1, -1]], [[0.9, 0.1], [0.8, 0], [0.7, 0]])


def test_capacity_score_priority():
    # C = 2. Expert 0 weights .9 (t0) .8 (t1) .3 (t2) -> drop t2; expert 1: .7 (t2) .2 (t1) .1 (t0)
    # -> drop t0's slot 1
    check(route(S3, 2, capacity=ref.Capacity(0.5, "score")),
          [[0, -1], [0, 1], [1, -1]], [[0.9, 0], [0.8, 0.2], [0.7, 0]])


@pytest.mark.parametrize("priority", ["score", "position"])
def test_capacity_compacts_remaining_slots(priority):
    # C = ceil(0.5 * 2 * 2 / 3) = 1. t0: (0, 1), t1: (0, 2). Expert 0 keeps t0 (slot 0 first;
    # .6 > .5); t1 loses slot 0 and its slot 1 (expert 2) moves to the front
    check(route([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4]], 2, capacity=ref.Capacity(0.5, priority)),
          [[0, 1], [2, -1]], [[0.6, 0.3], [0.4, 0]])


def test_capacity_score_nan_last_and_ties_lower_token():
    # K = 1, C = ceil(1.0 * 4 * 1 / 2) = 2. t0 = [NaN, NaN] -> expert 0 with weight NaN;
    # t1, t2 -> expert 0 with .5 (tie), t3 -> expert 0 with .7.
    # Expert 0 keeps .7 (t3) and .5 (t1: lower t than t2); t2 and the NaN t0 are dropped
    check(route([[NAN, NAN], [0.5, 0.1], [0.5, 0.2], [0.7, 0.0]], 1,
                capacity=ref.Capacity(1.0, "score")),
          [[-1], [0], [-1], [0]], [[0], [0.5], [0], [0.7]])


def test_capacity_ceiling_is_exact():
    # cf = 0.1 is 0.1000000000000000055511151231257827 in f64; x 10 tokens x K 1 / E 1 is just
    # above 1 -> C = 2 (a float product would round to 1.0 and give 1)
    assert ref.capacity_limit(0.1, 10, 1, 1) == 2
    assert ref.capacity_limit(0.5, 4, 1, 1) == 2        # exactly 2
    assert ref.capacity_limit(1.25, 3, 2, 4) == 2       # 1.875 -> 2
    check(route([[1.0]] * 10, 1, capacity=ref.Capacity(0.1, "position")),
          [[0], [0]] + [[-1]] * 8, [[1], [1]] + [[0]] * 8)


def test_capacity_infinite_factor_keeps_everything():
    # project rule: cf = +inf passes "cf > 0" and means no limit
    assert ref.capacity_limit(INF, 3, 2, 2) == 6       # T * K: more than any expert receives
    check(route(S3, 2, capacity=ref.Capacity(INF, "score")),
          [[0, 1], [0, 1], [1, 0]], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])


def test_capacity_only_caps_compute_experts():
    ex = ref.ExpertSpace(1, null=1)
    # C = ceil(0.5 * 4 * 1 / 1) = 2: t0, t1 keep expert 0, t2 is dropped; t3's null slot stays
    check(route([[1, 0], [1, 0], [1, 0], [0, 1]], 1, ex, capacity=ref.Capacity(0.5, "position")),
          [[0], [0], [-1], [1]], [[1], [1], [0], [1]])


# --------------------------------------------------------------------------------------
# 2.2 step 8: normalize and scale
# --------------------------------------------------------------------------------------
def test_normalize_selected():
    # raw [.5, .25] / .75 = [2/3, 1/3]
    check(route([[0.5, 0.25, 0.25]], 2, normalize="selected"), [[0, 1]], [[0.6666667, 0.33333334]])


def test_normalize_selected_zero_sum_and_empty():
    # raw [1, -1] sums to 0 -> all-zero weights
    check(route([[1, -1, -2]], 2, normalize="selected"), [[0, 1]], [[0, 0]])
    # no valid slot -> all zero
    check(route([[0.1, 0.2]], 2, normalize="selected", strategy=ref.Threshold(5.0, 0)),
          [[-1, -1]], [[0, 0]])


def test_normalize_non_null():
    ex = ref.ExpertSpace(2, null=1)
    # order 2 (null, .5), 1 (.3), 0 (.2); non-null sum .5 -> [0, .6, .4]
    check(route([[0.2, 0.3, 0.5]], 3, ex, normalize="non_null"), [[2, 1, 0]], [[0, 0.6, 0.4]])
    # only a null slot -> empty set to normalise over -> 0
    check(route([[0.1, 0.1, 0.8]], 1, ex, normalize="non_null"), [[2]], [[0]])
    # "selected" counts the null slot: [.5, .3, .2] / 1.0
    check(route([[0.2, 0.3, 0.5]], 3, ex, normalize="selected"), [[2, 1, 0]], [[0.5, 0.3, 0.2]])


def test_normalize_non_null_counts_copy_and_const():
    ex = ref.ExpertSpace(1, null=1, copy=1, const=1)
    # order 3 (const .4), 2 (copy .3), 1 (null .2), 0 (.1); sum over non-null .8
    # -> [.4/.8, .3/.8, 0, .1/.8] = [.5, .375, 0, .125]
    check(route([[0.1, 0.2, 0.3, 0.4]], 4, ex, normalize="non_null"),
          [[3, 2, 1, 0]], [[0.5, 0.375, 0, 0.125]])


def test_scale():
    # [2/3, 1/3] * 2.5
    check(route([[0.5, 0.25, 0.25]], 2, normalize="selected", scale=2.5), [[0, 1]],
          [[1.6666666, 0.8333333]])
    # prefix 1 with threshold .3 -> [1.0] * 2.5; the empty slots stay 0
    check(route([[0.5, 0.25, 0.25]], 3, normalize="selected", scale=2.5,
                strategy=ref.Threshold(0.3, 0)), [[0, -1, -1]], [[2.5, 0, 0]])
    # none: raw * -2
    check(route([[0.5, 0.25, 0.25]], 2, scale=-2.0), [[0, 1]], [[-1.0, -0.5]])
    # zero-sum token stays all zero after scaling
    check(route([[1, -1, -2]], 2, normalize="selected", scale=3.0), [[0, 1]], [[0, 0]])


def test_scale_applies_to_valid_slots_only():
    # a NaN scale makes valid weights NaN; empty slots keep weight 0 (id -1, weight 0)
    check(route([[0.5, 0.25, 0.25]], 3, scale=NAN, strategy=ref.Threshold(0.3, 0)),
          [[0, -1, -1]], [[NAN, 0, 0]])


# --------------------------------------------------------------------------------------
# 2.2.1 expert_choice
# --------------------------------------------------------------------------------------
EC_S = [[0.9, 0.1, 0.5], [0.8, 0.7, 0.6], [0.1, 0.2, 0.3], [0.8, 0.9, 0.1]]


def test_expert_choice_basic():
    # C = min(4, ceil(1.0 * 4 / 3)) = 2. e0: .9 (t0), .8 (t1 beats t3 on the tie); e1: .9 (t3),
    # .7 (t1); e2: .6 (t1), .5 (t0). t0 <- e0 .9, e2 .5; t1 <- e0 .8, e1 .7, e2 .6 truncated
    # to K = 2; t2 gets nothing; t3 <- e1 .9
    check(route(EC_S, 2, strategy=ref.ExpertChoice(1.0)),
          [[0, 2], [0, 1], [-1, -1], [1, -1]], [[0.9, 0.5], [0.8, 0.7], [0, 0], [0.9, 0]])


def test_expert_choice_then_normalize_and_scale():
    # step 8 applies: t0 [.9,.5]/1.4*2, t1 [.8,.7]/1.5*2, t2 empty -> 0, t3 [.9]/.9*2
    check(route(EC_S, 2, strategy=ref.ExpertChoice(1.0), normalize="selected", scale=2.0),
          [[0, 2], [0, 1], [-1, -1], [1, -1]],
          [[1.2857143, 0.71428573], [1.0666667, 0.93333334], [0, 0], [2.0, 0]])


def test_expert_choice_nan_last():
    # C = min(3, ceil(3 / 2)) = 2. e0 column [NaN, .2, .1] -> t1, t2; e1 [.1, .3, NaN] -> t1, t0
    check(route([[NAN, 0.1], [0.2, 0.3], [0.1, NAN]], 2, strategy=ref.ExpertChoice(1.0)),
          [[1, -1], [1, 0], [0, -1]], [[0.1, 0], [0.3, 0.2], [0.1, 0]])


def test_expert_choice_C_capped_at_T():
    # C = min(2, ceil(10 * 2 / 2) = 10) = 2: every expert takes every token
    # t0: e1 .6, e0 .3; t1: tie .5/.5 -> lower e first
    check(route([[0.3, 0.6], [0.5, 0.5]], 2, strategy=ref.ExpertChoice(10.0)),
          [[1, 0], [0, 1]], [[0.6, 0.3], [0.5, 0.5]])
    assert ref.expert_choice_limit(0.1, 10, 1) == 2  # exact ceiling of 1.0000000000000000555
    assert ref.expert_choice_limit(10.0, 2, 2) == 2  # min(T = 2, ceil(10 * 2 / 2) = 10)
    assert ref.expert_choice_limit(INF, 3, 2) == 3   # project rule: cf = +inf -> C = T
    check(route([[0.3, 0.6], [0.5, 0.5]], 2, strategy=ref.ExpertChoice(INF)),
          [[1, 0], [0, 1]], [[0.6, 0.3], [0.5, 0.5]])
    assert ref.expert_choice_limit(0.5, 4, 2) == 1


# --------------------------------------------------------------------------------------
# section 3 duties of route: bad configuration -> ValueError
# --------------------------------------------------------------------------------------
def _bad(match, logits=None, experts=None, k=2, **kw):
    logits = np.zeros((3, 4), np.float32) if logits is None else np.asarray(logits, np.float32)
    experts = experts or ref.ExpertSpace(logits.shape[1] if logits.ndim == 2 else 4)
    with pytest.raises(ValueError, match=match):
        ref.route(logits, experts, k, **kw)


@pytest.mark.parametrize("k", [0, 5, -1, 1.5])
def test_route_rejects_k_out_of_range(k):
    _bad("'K'", k=k)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, NAN, 1e-50])
def test_route_rejects_top_p(p):
    _bad("'p'", strategy=ref.TopP(p))


@pytest.mark.parametrize("tau", [-0.1, NAN])
def test_route_rejects_adaptive_tau(tau):
    _bad("'tau'", strategy=ref.Adaptive(tau))


@pytest.mark.parametrize("strategy,match", [
    (ref.Threshold(INF, 0), "'tau'"), (ref.Threshold(NAN, 0), "'tau'"),
    (ref.Threshold(-INF, 0), "'tau'"), (ref.Threshold(0.1, -1), "'k_min'"),
    (ref.Threshold(0.1, 3), "'k_min'")])
def test_route_rejects_threshold(strategy, match):
    _bad(match, strategy=strategy)


@pytest.mark.parametrize("cap,match", [
    (ref.Capacity(0.0, "score"), "'cf'"), (ref.Capacity(-1.0, "score"), "'cf'"),
    (ref.Capacity(-INF, "score"), "'cf'"), (ref.Capacity(NAN, "position"), "'cf'"),
    (ref.Capacity(1.0, "random"), "'priority'")])
def test_route_rejects_capacity(cap, match):
    _bad(match, capacity=cap)


def test_route_rejects_expert_choice_misuse():
    _bad("capacity_factor", strategy=ref.ExpertChoice(0.0))
    _bad("capacity_factor", strategy=ref.ExpertChoice(NAN))
    _bad("S = E", experts=ref.ExpertSpace(3, null=1), strategy=ref.ExpertChoice(1.0))
    _bad("selection_bias", strategy=ref.ExpertChoice(1.0), selection_bias=np.zeros(4))
    _bad("capacity", strategy=ref.ExpertChoice(1.0), capacity=ref.Capacity(1.0, "score"))
    _bad("groups", strategy=ref.ExpertChoice(1.0), groups=ref.Groups(2, 1))


@pytest.mark.parametrize("experts,groups,k,match", [
    (ref.ExpertSpace(3, null=1), ref.Groups(2, 1), 2, "S = E"),
    (ref.ExpertSpace(4), ref.Groups(3, 1), 2, "divisor"),
    (ref.ExpertSpace(4), ref.Groups(4, 1), 1, "E / n >= 2"),
    (ref.ExpertSpace(4), ref.Groups(2, 0), 2, "'top'"),
    (ref.ExpertSpace(4), ref.Groups(2, 3), 2, "'top'"),
    (ref.ExpertSpace(4), ref.Groups(2, 1), 3, "K <= top"),
])
def test_route_rejects_groups(experts, groups, k, match):
    _bad(match, experts=experts, k=k, groups=groups)


def test_route_rejects_k_per_token_misuse():
    _bad("k_per_token", k_per_token=np.ones(3, np.int32))                     # not dynamic_k
    _bad("k_per_token", strategy=ref.DynamicK())                              # missing
    _bad("k_per_token", strategy=ref.DynamicK(), k_per_token=np.ones(2, np.int32))   # shape
    _bad("integer", strategy=ref.DynamicK(), k_per_token=np.ones(3, np.float32))     # type


def test_route_rejects_bad_operands_and_names():
    _bad("selection_bias", selection_bias=np.zeros(3))
    _bad("scoring", scoring="relu")
    _bad("normalize", normalize="l1")
    _bad("strategy", strategy="top_k")
    _bad("logits", experts=ref.ExpertSpace(5))
    _bad("rank 2", logits=np.zeros(4))


# --------------------------------------------------------------------------------------
# section 4: T = 0 for every op
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {}, {"strategy": ref.TopP(0.5)}, {"strategy": ref.Adaptive(0.1)},
    {"strategy": ref.Threshold(0.1, 1)}, {"strategy": ref.ExpertChoice(1.0)},
    {"strategy": ref.DynamicK(), "k_per_token": np.zeros(0, np.int32)},
    {"capacity": ref.Capacity(1.0, "score"), "normalize": "selected"},
    {"groups": ref.Groups(2, 1), "selection_bias": np.zeros(4, np.float32)},
])
def test_route_T0(kw):
    ids, w = ref.route(np.zeros((0, 4), np.float32), ref.ExpertSpace(4), 2, **kw)
    assert ids.shape == (0, 2) and ids.dtype == np.int32
    assert w.shape == (0, 2) and w.dtype == np.float32


def test_other_ops_T0():
    ex = ref.ExpertSpace(2, copy=1, const=1)
    rows, off, sr = ref.dispatch(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int32), 2)
    assert rows.shape == (0, 3) and sr.shape == (0, 2)
    np.testing.assert_array_equal(off, [0, 0, 0])
    assert ref.grouped_matmul(rows, np.ones((2, 3, 5), np.float32), off).shape == (0, 5)
    y = ref.expert_ffn(rows, off, np.ones((2, 3, 4)), np.ones((2, 4, 3)), np.ones((2, 3, 4)))
    assert y.shape == (0, 3)
    out = ref.combine(y, sr, np.zeros((0, 2), np.int32), np.zeros((0, 2), np.float32),
                      np.zeros((0, 3), np.float32), ex, wc=np.ones((1, 3, 2)), v=np.ones((1, 3)))
    assert out.shape == (0, 3) and out.dtype == np.float32
    assert ref.aux_loss(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.int32)) == 0.0
    d = ref.route_decisions(np.zeros((0, 4), np.float32), ex, 2)
    assert d.ambiguous.shape == (0,) and d.ambiguous_fraction == 0.0


# --------------------------------------------------------------------------------------
# 2.3 dispatch
# --------------------------------------------------------------------------------------
X3 = [[1, 1], [2, 2], [3, 3]]
IDS3 = [[1, 0], [2, -1], [0, 1]]  # E = 2; id 2 is a zero-computation expert


def test_dispatch_order_offsets_slot_rows():
    # compute slots: (t0,j0,e1) (t0,j1,e0) (t2,j0,e0) (t2,j1,e1)
    # by expert, token, slot: e0: (t0,j1) (t2,j0); e1: (t0,j0) (t2,j1)
    rows, off, sr = ref.dispatch(f32(X3), np.array(IDS3, np.int32), 2)
    np.testing.assert_array_equal(rows, [[1, 1], [3, 3], [1, 1], [3, 3]])
    np.testing.assert_array_equal(off, [0, 2, 4])
    np.testing.assert_array_equal(sr, [[2, 0], [-1, -1], [1, 3]])
    assert off.dtype == np.int32 and sr.dtype == np.int32


def test_dispatch_out_of_range_ids_dispatch_nothing():
    # only (t1, j0) -> e0 is a compute slot
    rows, off, sr = ref.dispatch(f32([[1, 1], [2, 2]]), np.array([[5, -7], [0, 2 ** 31 - 1]], np.int32), 2)
    np.testing.assert_array_equal(rows, [[2, 2]])
    np.testing.assert_array_equal(off, [0, 1, 1])
    np.testing.assert_array_equal(sr, [[-1, -1], [0, -1]])


def test_dispatch_same_expert_twice_orders_by_slot():
    # e0: (t0,j2) -> row 0; e1: (t0,j0) -> row 1, (t0,j1) -> row 2
    rows, off, sr = ref.dispatch(f32([[7, 8]]), np.array([[1, 1, 0]], np.int32), 2)
    np.testing.assert_array_equal(rows, [[7, 8]] * 3)
    np.testing.assert_array_equal(off, [0, 1, 3])
    np.testing.assert_array_equal(sr, [[1, 2, 0]])


def test_dispatch_all_tokens_on_one_expert():
    rows, off, sr = ref.dispatch(f32([[1], [2], [3]]), np.array([[1], [1], [1]], np.int32), 3)
    np.testing.assert_array_equal(rows, [[1], [2], [3]])
    np.testing.assert_array_equal(off, [0, 0, 3, 3])
    np.testing.assert_array_equal(sr, [[0], [1], [2]])


def test_dispatch_padded_r_max():
    # unpadded R = 4; with R_max = 3 the 4th row (t2,j1,e1) does not fit -> slot_rows -1 and
    # offsets clamped to R_max
    rows, off, sr = ref.dispatch(f32(X3), np.array(IDS3, np.int32), 2, r_max=3)
    assert rows.shape == (3, 2)
    np.testing.assert_array_equal(rows, [[1, 1], [3, 3], [1, 1]])
    np.testing.assert_array_equal(off, [0, 2, 3])
    np.testing.assert_array_equal(sr, [[2, 0], [-1, -1], [1, -1]])
    # R_max = 6 >= R: same as unpadded, rows past offsets[E] = 4 are padding
    rows, off, sr = ref.dispatch(f32(X3), np.array(IDS3, np.int32), 2, r_max=6)
    assert rows.shape == (6, 2)
    np.testing.assert_array_equal(rows[:4], [[1, 1], [3, 3], [1, 1], [3, 3]])
    np.testing.assert_array_equal(off, [0, 2, 4])
    np.testing.assert_array_equal(sr, [[2, 0], [-1, -1], [1, 3]])
    # R_max = 0: nothing fits
    rows, off, sr = ref.dispatch(f32(X3), np.array(IDS3, np.int32), 2, r_max=0)
    assert rows.shape == (0, 2)
    np.testing.assert_array_equal(off, [0, 0, 0])
    np.testing.assert_array_equal(sr, -np.ones((3, 2)))


def test_dispatch_validation():
    with pytest.raises(ValueError, match="'ids'"):
        ref.dispatch(f32(X3), np.zeros((2, 1), np.int32), 2)
    with pytest.raises(ValueError, match="r_max"):
        ref.dispatch(f32(X3), np.zeros((3, 1), np.int32), 2, r_max=-1)


# --------------------------------------------------------------------------------------
# 2.4 grouped_matmul
# --------------------------------------------------------------------------------------
LHS = [[1, 0], [0, 1], [1, 1]]
RHS = [[[1, 2], [3, 4]], [[10, 0], [0, 10]]]


@pytest.mark.parametrize("offsets,expected", [
    ([0, 1, 3], [[1, 2], [0, 10], [10, 10]]),      # row 0 e0; rows 1,2 e1
    ([5, 1, 9], [[1, 2], [0, 10], [10, 10]]),      # o0 -> 0, o2 = clamp(9, 1, 3) = 3
    ([0, 2, 1], [[1, 2], [3, 4], [0, 0]]),         # decreasing: o2 = clamp(1, 2, 3) = 2; row 2 past o[E]
    ([0, -4, -1], [[0, 0], [0, 0], [0, 0]]),       # negative: [0, 0, 0] -> every row past o[E]
    ([0, 100, 200], [[1, 2], [3, 4], [4, 6]]),     # oversized: [0, 3, 3] -> all e0
    ([0, 1, 2], [[1, 2], [0, 10], [0, 0]]),        # row 2 at o[E] = 2 -> 0
    ([-3, 0, 3], [[10, 0], [0, 10], [10, 10]]),    # [0, 0, 3]: empty group 0, all e1
])
def test_grouped_matmul_offsets(offsets, expected):
    out = ref.grouped_matmul(f32(LHS), f32(RHS), np.array(offsets, np.int64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_grouped_matmul_validation_and_no_experts():
    with pytest.raises(ValueError, match="offsets"):
        ref.grouped_matmul(f32(LHS), f32(RHS), np.array([0, 3], np.int32))
    with pytest.raises(ValueError, match="rhs"):
        ref.grouped_matmul(f32(LHS), np.ones((2, 3, 2), np.float32), np.array([0, 1, 3]))
    out = ref.grouped_matmul(f32(LHS), np.ones((0, 2, 2), np.float32), np.array([0]))
    np.testing.assert_array_equal(out, np.zeros((3, 2)))


# --------------------------------------------------------------------------------------
# 2.5 expert_ffn
# --------------------------------------------------------------------------------------
I2 = np.eye(2, dtype=np.float32)[None]


def test_expert_ffn_not_gated_relu_with_biases():
    # up = [1,-2] @ I + [.5,.5] = [1.5, -1.5]; relu -> [1.5, 0]; @ I + [1, 0] -> [2.5, 0]
    y = ref.expert_ffn(f32([[1, -2]]), np.array([0, 1]), I2, I2, b_up=f32([[0.5, 0.5]]),
                       b_down=f32([[1, 0]]), activation="relu", gated=False)
    np.testing.assert_array_equal(y, [[2.5, 0]])


def test_expert_ffn_gated_silu():
    # gate = [1, 0], up = [2, 0]; silu(1) * 2 = 2 / (1 + e^-1) = 1.4621172; silu(0) * 0 = 0
    y = ref.expert_ffn(f32([[1, 0]]), np.array([0, 1]), 2 * I2, I2, w_gate=I2)
    np.testing.assert_allclose(y, [[1.4621172, 0]], rtol=1e-6)


@pytest.mark.parametrize("act,expected", [
    ("silu", [0.7310586, -0.26894143]),      # x / (1 + e^-x)
    ("gelu", [0.8413447, -0.15865526]),      # 0.5 x (1 + erf(x / sqrt 2)) = x Phi(x)
    ("gelu_tanh", [0.841192, -0.15880801]),  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    ("relu", [1.0, 0.0]),
])
def test_expert_ffn_activations(act, expected):
    y = ref.expert_ffn(f32([[1, -1]]), np.array([0, 1]), I2, I2, activation=act, gated=False)
    np.testing.assert_allclose(y, [expected], rtol=1e-6)


def test_activation_values_far_out():
    # gelu(2) = 2 Phi(2) = 1.9544997; gelu_tanh(2) = 1.9545977; silu(2) = 1.7615942; relu(NaN) = NaN
    np.testing.assert_allclose(ref.activation(f32([2.0]), "gelu"), [1.9544997], rtol=1e-6)
    np.testing.assert_allclose(ref.activation(f32([2.0]), "gelu_tanh"), [1.9545977], rtol=1e-6)
    np.testing.assert_allclose(ref.activation(f32([2.0]), "silu"), [1.7615942], rtol=1e-6)
    assert np.isnan(ref.activation(f32([NAN]), "relu")[0])


def test_activation_edges_follow_ieee():
    # relu(-0) = +0, relu(NaN) = NaN; silu(+inf) = inf / (1 + 0) = inf; silu(-inf) = -inf / inf = NaN;
    # gelu(-inf) = 0.5 * -inf * (1 + erf(-inf) = 0) = NaN
    r = ref.activation(f32([-0.0, NAN, -3.0]), "relu")
    assert r[0] == 0 and not np.signbit(r[0]) and np.isnan(r[1]) and r[2] == 0
    np.testing.assert_array_equal(ref.activation(f32([INF, -INF]), "silu"), [INF, NAN])
    np.testing.assert_array_equal(ref.activation(f32([INF, -INF]), "gelu"), [INF, NAN])


def test_expert_ffn_groups_and_rows_past_offsets_are_zero():
    # H = F = 1. row 0 -> e0: relu(1*1)*1 + 10 = 11; rows 1, 2 -> e1: relu(2*2) + 20 = 24,
    # relu(3*2) + 20 = 26; row 3 is past offsets[E] = 3 -> 0 (no bias either)
    y = ref.expert_ffn(f32([[1], [2], [3], [4]]), np.array([0, 1, 3]), f32([[[1]], [[2]]]),
                       f32([[[1]], [[1]]]), b_down=f32([[10], [20]]), activation="relu",
                       gated=False)
    np.testing.assert_array_equal(y, [[11], [24], [26], [0]])
    # sanitised offsets [0, 9, -1] with R = 4 -> [0, 4, 4]: everything on e0
    y = ref.expert_ffn(f32([[1], [2], [3], [4]]), np.array([0, 9, -1]), f32([[[1]], [[2]]]),
                       f32([[[1]], [[1]]]), b_down=f32([[10], [20]]), activation="relu",
                       gated=False)
    np.testing.assert_array_equal(y, [[11], [12], [13], [14]])


def test_expert_ffn_validation():
    r, o = f32([[1, 0]]), np.array([0, 1])
    with pytest.raises(ValueError, match="w_gate"):
        ref.expert_ffn(r, o, I2, I2)                                  # gated needs w_gate
    with pytest.raises(ValueError, match="w_gate"):
        ref.expert_ffn(r, o, I2, I2, w_gate=I2, gated=False)          # not gated: no w_gate
    with pytest.raises(ValueError, match="b_up"):
        ref.expert_ffn(r, o, I2, I2, w_gate=I2, b_up=f32([[0, 0]]))   # biases only not gated
    with pytest.raises(ValueError, match="activation"):
        ref.expert_ffn(r, o, I2, I2, gated=False, activation="tanh")
    with pytest.raises(ValueError, match="w_down"):
        ref.expert_ffn(r, o, I2, np.ones((1, 3, 2)), gated=False)


def test_round_to_bf16():
    vals = f32([1 + 2 ** -8,               # tie between 1 and 1 + 2^-7 -> even: 1
                1 + 3 * 2 ** -8,           # tie between 1 + 2^-7 (odd) and 1 + 2^-6 -> 1 + 2^-6
                1 + 2 ** -8 + 2 ** -20,    # just above the tie -> 1 + 2^-7
                -(1 + 2 ** -8),            # -1
                INF, -INF, 3.4028235e38])  # the largest f32 rounds up to inf
    np.testing.assert_array_equal(ref.round_to_bf16(vals),
                                  [1.0, 1.015625, 1.0078125, -1.0, INF, -INF, INF])
    assert np.isnan(ref.round_to_bf16(f32([NAN]))[0])


def test_expert_ffn_mixed_types_keep_weights_as_given():
    # bf16 rows with f32 weights: the weights [1 + 2^-8, 2^-8] are used as given (rounding
    # 1 + 2^-8 to bf16 would give 1); [1, 1] @ w_up = 1 + 2^-7 (bf16-exact); @ w_down = 2
    y = ref.expert_ffn(f32([[1, 1]]), np.array([0, 1]), f32([[[1 + 2 ** -8], [2 ** -8]]]),
                       f32([[[2, 2]]]), activation="relu", gated=False, elem_type="bf16")
    np.testing.assert_array_equal(y, [[2.015625, 2.015625]])


def test_expert_ffn_rounds_intermediates_to_the_rows_type():
    # up = 1 + 2^-8: f32 keeps it; bf16 rounds it to 1 (tie -> even); f16 keeps it (10 bits)
    args = (np.array([0, 1]), f32([[[1]]]), f32([[[1]]]))
    kw = dict(b_up=f32([[2 ** -8]]), activation="relu", gated=False)
    np.testing.assert_array_equal(ref.expert_ffn(f32([[1]]), *args, **kw), [[1.00390625]])
    np.testing.assert_array_equal(ref.expert_ffn(f32([[1]]), *args, elem_type="bf16", **kw), [[1.0]])
    y16 = ref.expert_ffn(np.array([[1]], np.float16), *args, **kw)
    assert y16.dtype == np.float16
    np.testing.assert_array_equal(y16, [[1.00390625]])


# --------------------------------------------------------------------------------------
# 2.6 combine
# --------------------------------------------------------------------------------------
def test_combine_every_kind():
    ex = ref.ExpertSpace(1, null=1, copy=1, const=1)  # ids: 0 compute, 1 null, 2 copy, 3 const
    # compute .5 * y[0] = [2, 4]; null skipped (NaN weight ignored); copy 2 * x = [2, 4];
    # const: Wc = 0 -> softmax([0, 0]) = [.5, .5] -> 1 * (.5 x + .5 v) = [2, 3]; empty skipped
    out = ref.combine(f32([[4, 8]]), np.array([[0, -1, -1, -1, -1]]), np.array([[0, 1, 2, 3, -1]]),
                      f32([[0.5, NAN, 2.0, 1.0, NAN]]), f32([[1, 2]]), ex,
                      wc=np.zeros((1, 2, 2), np.float32), v=f32([[3, 4]]))
    np.testing.assert_array_equal(out, [[6, 11]])


def test_combine_constant_expert_softmax():
    ex = ref.ExpertSpace(1, const=1)
    # x @ Wc = [ln 3, 0] -> [a1, a2] = [3/4, 1/4]; c = .75 [1, 0] + .25 [4, 8] = [1.75, 2]; * 2
    wc = f32([[[math.log(3), 0], [0, 0]]])
    out = ref.combine(np.zeros((0, 2), np.float32), np.array([[-1]]), np.array([[1]]), f32([[2.0]]),
                      f32([[1, 0]]), ex, wc=wc, v=f32([[4, 8]]))
    np.testing.assert_allclose(out, [[3.5, 4.0]], rtol=1e-6)


def test_combine_uses_slot_rows_in_slot_order():
    # t0: .5 * y[2] + .25 * y[0] = [1.75, 1.75]; t1: 2 * y[1] = [4, 4]
    out = ref.combine(f32([[1, 1], [2, 2], [3, 3]]), np.array([[2, 0], [1, -1]]),
                      np.array([[1, 0], [0, -1]]), f32([[0.5, 0.25], [2, 0]]),
                      f32([[9, 9], [9, 9]]), ref.ExpertSpace(2))
    np.testing.assert_array_equal(out, [[1.75, 1.75], [4, 4]])


def test_combine_skips_null_empty_out_of_range_and_bad_slot_rows():
    ex = ref.ExpertSpace(1, null=1)
    # null (1), out of range (7, -5), empty (-1), compute with slot_rows -1 and with slot_rows 5
    # outside [0, R = 1): all skipped, so the NaN weights never reach the output -> +0
    out = ref.combine(f32([[4, 4]]), np.array([[-1, -1, -1, -1, -1, 5]]),
                      np.array([[1, 7, -1, -5, 0, 0]]), f32([[NAN] * 6]), f32([[1, 2]]), ex)
    np.testing.assert_array_equal(out, [[0, 0]])
    assert not np.signbit(out).any()


def test_combine_nan_weight_on_a_compute_slot_propagates():
    out = ref.combine(f32([[4, 4]]), np.array([[0]]), np.array([[0]]), f32([[NAN]]),
                      f32([[1, 2]]), ref.ExpertSpace(1))
    assert np.isnan(out).all()


def test_combine_starts_from_plus_zero():
    # a single copy slot with weight -0: -0 * x = -0; +0 + (-0) = +0
    out = ref.combine(np.zeros((0, 2), np.float32), np.array([[-1]]), np.array([[1]]), f32([[-0.0]]),
                      f32([[1, 2]]), ref.ExpertSpace(1, copy=1))
    np.testing.assert_array_equal(out, [[0, 0]])
    assert not np.signbit(out).any()


def test_combine_returns_x_type():
    # copy with weight 1 + 2^-8: f32 keeps 1.00390625, bf16 output rounds to 1.0
    args = (np.zeros((0, 1), np.float32), np.array([[-1]]), np.array([[1]]), f32([[1 + 2 ** -8]]),
            f32([[1]]), ref.ExpertSpace(1, copy=1))
    np.testing.assert_array_equal(ref.combine(*args), [[1.00390625]])
    np.testing.assert_array_equal(ref.combine(*args, elem_type="bf16"), [[1.0]])


def test_combine_validation():
    ex = ref.ExpertSpace(1, const=1)
    args = (f32([[1, 1]]), np.array([[0]]), np.array([[0]]), f32([[1]]), f32([[1, 1]]))
    with pytest.raises(ValueError, match="N_const"):
        ref.combine(*args, ex)
    with pytest.raises(ValueError, match="N_const"):
        ref.combine(*args, ref.ExpertSpace(1), wc=np.zeros((1, 2, 2)), v=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="'Wc'"):
        ref.combine(*args, ex, wc=np.zeros((1, 3, 2)), v=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="shape"):
        ref.combine(f32([[1, 1]]), np.array([[0, 0]]), np.array([[0]]), f32([[1]]), f32([[1, 1]]),
                    ref.ExpertSpace(1))


# --------------------------------------------------------------------------------------
# 2.7 layer
# --------------------------------------------------------------------------------------
X2 = f32([[1, 0], [0, 1]])
W_ROUTER = f32([[2, 1, 0], [0, 1, 3]])   # logits: t0 [2, 1, 0], t1 [0, 1, 3]
W_UP = np.stack([np.eye(2), 5 * np.eye(2)]).astype(np.float32)
W_DOWN = np.stack([np.eye(2), np.eye(2)]).astype(np.float32)


def test_layer_by_hand_with_null_expert():
    # K = 1, scoring none: t0 -> e0 with weight 2, t1 -> expert 2 = null with weight 3
    # t0: 2 * relu([1, 0] @ I) @ I = [2, 0]; t1: null contributes 0
    y = ref.layer(X2, W_ROUTER, W_UP, W_DOWN, ref.ExpertSpace(2, null=1), 1, scoring="none",
                  activation="relu", gated=False)
    np.testing.assert_array_equal(y, [[2, 0], [0, 0]])
    tr = ref.layer_trace(X2, W_ROUTER, W_UP, W_DOWN, ref.ExpertSpace(2, null=1), 1,
                         scoring="none", activation="relu", gated=False)
    np.testing.assert_array_equal(tr.logits, [[2, 1, 0], [0, 1, 3]])
    np.testing.assert_array_equal(tr.ids, [[0], [2]])
    np.testing.assert_array_equal(tr.rows, [[1, 0]])
    np.testing.assert_array_equal(tr.offsets, [0, 1, 1])
    np.testing.assert_array_equal(tr.slot_rows, [[0], [-1]])


def test_layer_by_hand_with_copy_expert_and_k2():
    # K = 2: t0 -> e0 (2), e1 (1); t1 -> copy (3), e1 (1)
    # t0: 2 * [1, 0] + 1 * relu(5 [1, 0]) = [7, 0]; t1: 3 * [0, 1] + 1 * (5 [0, 1]) = [0, 8]
    y = ref.layer(X2, W_ROUTER, W_UP, W_DOWN, ref.ExpertSpace(2, copy=1), 2, scoring="none",
                  activation="relu", gated=False)
    np.testing.assert_array_equal(y, [[7, 0], [0, 8]])


def test_layer_padded_r_max_drops_what_does_not_fit():
    # rows: e0 <- t0; e1 <- t0, t1 (R = 3). R_max = 2: (t1, e1) does not fit -> t1 only copy
    y = ref.layer(X2, W_ROUTER, W_UP, W_DOWN, ref.ExpertSpace(2, copy=1), 2, scoring="none",
                  activation="relu", gated=False, r_max=2)
    np.testing.assert_array_equal(y, [[7, 0], [0, 3]])


def test_layer_T0():
    y = ref.layer(np.zeros((0, 2), np.float32), W_ROUTER, W_UP, W_DOWN, ref.ExpertSpace(2, null=1),
                  1, activation="relu", gated=False)
    assert y.shape == (0, 2) and y.dtype == np.float32


# --------------------------------------------------------------------------------------
# 2.8 aux_loss
# --------------------------------------------------------------------------------------
def test_aux_loss_by_hand():
    scores = f32([[0.5, 0.5], [1, 0]])   # P = [.75, .25]
    # counts [2, 0] over 2 valid slots -> f = [1, 0]; L = 2 * (1 * .75) = 1.5
    loss = ref.aux_loss(scores, np.array([[0], [0]]))
    assert isinstance(loss, np.float32) and loss == np.float32(1.5)
    # valid slots: id 0 and id 1 (-1 and 5 not counted) -> f = [.5, .5]; 2 * (.375 + .125) = 1
    assert ref.aux_loss(scores, np.array([[0, -1], [5, 1]])) == np.float32(1.0)
    # a single valid slot -> f = [1, 0] -> 1.5
    assert ref.aux_loss(scores, np.array([[0, -1], [-1, -1]])) == np.float32(1.5)
    # no valid slot: f = 0 -> 0
    assert ref.aux_loss(scores, np.array([[-1], [-1]])) == np.float32(0.0)
