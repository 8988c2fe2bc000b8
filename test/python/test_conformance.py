"""Tests of the section-5 conformance helpers (python/moe_mlir/conformance.py) and of the
margins that ``reference.route_decisions`` reports."""
import numpy as np
import pytest

from moe_mlir import conformance as conf
from moe_mlir import reference as ref

NAN = float("nan")
INF = float("inf")


def f32(a):
    return np.asarray(a, np.float32)


def clear_rows(T, S=4, seed=0):
    """Rows for scoring='none' whose keys are far apart (no knife-edge decisions)."""
    rng = np.random.default_rng(seed)
    base = np.array([0.9, 0.6, 0.3, 0.0][:S], np.float32)
    return np.stack([rng.permutation(base) for _ in range(T)]).astype(np.float32)


def random_case(T=200, S=8, seed=1):
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal((T, S))).astype(np.float32)


ROUTE = dict(scoring="softmax", normalize="selected")


# --------------------------------------------------------------------------------------
# route comparisons
# --------------------------------------------------------------------------------------
def test_route_accepts_the_reference_and_a_tiny_perturbation():
    logits = random_case()
    ex = ref.ExpertSpace(8)
    ids, w = ref.route(logits, ex, 2, **ROUTE)
    res = conf.assert_route_conforms(ids, w, logits, ex, 2, **ROUTE)
    assert res.ok and res.failures == [] and res.ambiguous_fraction <= 0.05
    # |dv| = 1e-7 * |v| <= 1e-5 * max|row| + 1e-6
    conf.assert_route_conforms(ids, (w * (1 + 1e-7)).astype(np.float32), logits, ex, 2, **ROUTE)


def test_route_rejects_a_wrong_id_on_an_unambiguous_token():
    logits = random_case()
    ex = ref.ExpertSpace(8)
    ids, w = ref.route(logits, ex, 2, **ROUTE)
    d = ref.route_decisions(logits, ex, 2, **ROUTE)
    t = int(np.nonzero(~d.ambiguous)[0][3])
    bad = ids.copy()
    bad[t, 0] = (bad[t, 0] + 1) % 8 if (bad[t, 0] + 1) % 8 != bad[t, 1] else (bad[t, 0] + 2) % 8
    res = conf.compare_route(bad, w, logits, ex, 2, **ROUTE)
    assert not res.ok
    assert [(m.what, m.token, m.slot) for m in res.failures] == [("ids", t, 0)]
    with pytest.raises(AssertionError, match=f"ids token {t} slot 0"):
        res.assert_ok()


def test_route_rejects_a_weight_out_of_tolerance():
    logits = random_case()
    ex = ref.ExpertSpace(8)
    ids, w = ref.route(logits, ex, 2, **ROUTE)
    bad = w.copy()
    bad[5, 1] += 1e-4   # > 1e-5 * max|row| (<= 1) + 1e-6
    res = conf.compare_route(ids, bad, logits, ex, 2, **ROUTE)
    assert [(m.what, m.token, m.slot) for m in res.failures] == [("weights", 5, 1)]
    with pytest.raises(AssertionError, match="weights token 5 slot 1"):
        res.assert_ok()


def test_route_shape_mismatch_is_a_failure():
    logits = clear_rows(10)
    ex = ref.ExpertSpace(4)
    ids, w = ref.route(logits, ex, 2, scoring="none")
    res = conf.compare_route(ids[:, :1], w, logits, ex, 2, scoring="none")
    assert not res.ok and res.failures[0].what == "ids shape"


def test_near_tie_is_reported_as_ambiguous_and_excluded():
    logits = clear_rows(40)
    logits[7] = [0.5, np.float32(0.5000001), 0.0, 0.1]   # keys differ by 1.2e-7 < 1e-5
    ex = ref.ExpertSpace(4)
    ids, w = ref.route(logits, ex, 1, scoring="none")
    assert ids[7, 0] == 1
    got = ids.copy()
    got[7, 0] = 0                       # the other side of the knife edge
    gw = w.copy()
    gw[7, 0] = 0.5
    res = conf.assert_route_conforms(got, gw, logits, ex, 1, scoring="none")
    assert res.ambiguous == [7] and res.ambiguous_fraction == 1 / 40
    assert any("order" in r for r in res.reasons[7])
    assert "ambiguous token 7" in res.report()


def test_exact_tie_is_not_ambiguous():
    logits = clear_rows(40)
    logits[7] = [0.5, 0.5, 0.0, 0.1]    # the tie rule decides: expert 0
    ex = ref.ExpertSpace(4)
    ids, w = ref.route(logits, ex, 1, scoring="none")
    got = ids.copy()
    got[7, 0] = 1
    res = conf.compare_route(got, w, logits, ex, 1, scoring="none")
    assert res.ambiguous == []
    assert [(m.what, m.token) for m in res.failures] == [("ids", 7)]


def test_more_than_five_percent_ambiguous_is_a_badly_chosen_case():
    logits = clear_rows(10)
    logits[3] = [0.5, np.float32(0.5000001), 0.0, 0.1]   # 1 of 10 tokens = 10% > 5%
    ex = ref.ExpertSpace(4)
    ids, w = ref.route(logits, ex, 1, scoring="none")
    res = conf.compare_route(ids, w, logits, ex, 1, scoring="none")
    assert res.failures == [] and res.badly_chosen and not res.ok
    with pytest.raises(AssertionError, match="badly chosen"):
        res.assert_ok()
    # the limit is a parameter
    assert conf.compare_route(ids, w, logits, ex, 1, scoring="none",
                              max_ambiguous_fraction=0.2).ok


# --------------------------------------------------------------------------------------
# margins of each kind of decision (route_decisions)
# --------------------------------------------------------------------------------------
def amb(logits, k, experts=None, **kw):
    logits = f32(logits)
    kw.setdefault("scoring", "none")
    d = ref.route_decisions(logits, experts or ref.ExpertSpace(logits.shape[1]), k, **kw)
    return d.ambiguous.tolist()


def test_margin_is_absolute_below_one_and_relative_above():
    # 1e-5 * max(1, |operands|): keys 100 and 100.0005 differ by 5e-4 <= 1e-5 * 100.0005
    assert amb([[100.0, 100.0005, 0]], 1) == [True]
    # keys .5 and .50002: 2e-5 > 1e-5 -> decided
    assert amb([[0.5, 0.50002, 0]], 1) == [False]
    d = ref.route_decisions(f32([[0.5, 0.50002, 0]]), ref.ExpertSpace(3), 1, scoring="none")
    assert d.margin[0] == pytest.approx(2e-5, rel=1e-2)


def test_only_pairs_that_decide_slots_count():
    # near tie between the 3rd and 4th keys: irrelevant for K = 1, relevant for K = 3
    row = [[0.9, 0.5, 0.2, np.float32(0.2000001)]]
    assert amb(row, 1) == [False]
    assert amb(row, 3) == [True]


def test_top_p_sum_near_p():
    # sums .5, .7500001 vs p = .75: within 1e-5 -> ambiguous
    assert amb([[0.5, np.float32(0.2500001), 0.1, 0.0]], 3, strategy=ref.TopP(0.75)) == [True]
    assert amb([[0.5, 0.3, 0.1, 0.0]], 3, strategy=ref.TopP(0.75)) == [False]
    # p = 1 decides nothing
    assert amb([[0.5, 0.5, 0.0]], 2, strategy=ref.TopP(1.0)) == [False]


def test_adaptive_gap_near_tau():
    # gap .5 - .4 = .1 (f32 rounding) vs tau .1 -> ambiguous
    assert amb([[0.5, 0.4, 0.0]], 3, strategy=ref.Adaptive(0.1)) == [True]
    assert amb([[0.5, 0.3, 0.0]], 3, strategy=ref.Adaptive(0.1)) == [False]
    # exact score ties with tau = 0 are tie-rule decisions, not knife edges
    assert amb([[0.5, 0.5, 0.0]], 3, strategy=ref.Adaptive(0.0)) == [False]


def test_threshold_score_near_tau_only_when_it_changes_n():
    assert amb([[np.float32(0.3000001), 0.1]], 2, strategy=ref.Threshold(0.3, 0)) == [True]
    # with k_min = K the count is K whatever the test says
    assert amb([[np.float32(0.3000001), 0.1]], 1, strategy=ref.Threshold(0.3, 1)) == [False]


def test_capacity_cut_between_close_weights():
    # E = 1, K = 1, T = 2, cf .5 -> C = 1: weights .5 and .5000001 compete for one place
    assert amb([[0.5], [np.float32(0.5000001)]], 1, capacity=ref.Capacity(0.5, "score")) == [True, True]
    assert amb([[0.5], [0.9]], 1, capacity=ref.Capacity(0.5, "score")) == [False, False]


def test_capacity_cut_moves_with_an_ambiguous_token():
    # t0 is on a knife edge between e0 and e1 (reference: e1). C = ceil(.5 * 3 / 2) = 1.
    # If t0 went to e0 it would take e0's place from t1 (position priority), and free e1's
    # place for t2: both are ambiguous through the capacity cut.
    logits = [[0.5, np.float32(0.5000001)], [0.9, 0.1], [0.1, 0.9]]
    d = ref.route_decisions(f32(logits), ref.ExpertSpace(2), 1, scoring="none",
                            capacity=ref.Capacity(0.5, "position"))
    np.testing.assert_array_equal(d.ids, [[1], [0], [-1]])
    assert d.ambiguous.tolist() == [True, True, True]
    assert any("capacity cut of expert 0" in r for r in d.reasons[1])


def test_expert_choice_cut():
    # one expert, C = min(2, ceil(.5 * 2 / 1)) = 1: tokens .5 and .5000001
    assert amb([[0.5], [np.float32(0.5000001)]], 1, strategy=ref.ExpertChoice(0.5)) == [True, True]
    assert amb([[0.5], [0.9]], 1, strategy=ref.ExpertChoice(0.5)) == [False, False]


def test_group_cut():
    # g0 = .75, g1 = .7500001
    assert amb([[0.5, 0.25, np.float32(0.5000001), 0.25]], 1, groups=ref.Groups(2, 1)) == [True]
    assert amb([[0.5, 0.25, 0.6, 0.25]], 1, groups=ref.Groups(2, 1)) == [False]


def test_nan_and_inf_keys_are_never_knife_edges():
    assert amb([[NAN, NAN, 1.0]], 2) == [False]
    assert amb([[INF, np.finfo(np.float32).max, 0.0]], 2) == [False]


# --------------------------------------------------------------------------------------
# row comparisons (ops with matmuls)
# --------------------------------------------------------------------------------------
def test_close_rows_tolerance_is_per_row():
    refv = f32([[1, 100], [1e-3, 0]])
    # row 0: tol = 1e-4 * 100 + 1e-5 = 0.01001; row 1: tol = 1e-4 * 1e-3 + 1e-5 = 1.01e-5
    conf.assert_close_rows(f32([[1.009, 100], [1e-3, 1e-5]]), refv)
    res = conf.compare_rows(f32([[1.009, 100], [1e-3, 2e-5]]), refv)
    assert [(m.token, m.slot) for m in res.failures] == [(1, 1)]
    with pytest.raises(AssertionError, match="token 1 slot 1"):
        res.assert_ok()


def test_close_rows_non_finite_values():
    refv = f32([[NAN, INF, 1.0]])
    conf.assert_close_rows(f32([[NAN, INF, 1.0]]), refv)
    res = conf.compare_rows(f32([[0.0, -INF, NAN]]), refv)
    assert [m.slot for m in res.failures] == [0, 1, 2]


def test_close_rows_exclusions_count_as_ambiguous():
    refv = np.zeros((40, 3), np.float32)
    got = refv.copy()
    got[4] = 1.0
    res = conf.compare_rows(got, refv, exclude_tokens=[4])
    assert res.ok and res.ambiguous == [4]
    res = conf.compare_rows(got, refv, exclude_tokens=[4, 5, 6])   # 7.5% > 5%
    assert res.badly_chosen and not res.ok


def test_close_rows_shape_and_element_type_bounds():
    assert not conf.compare_rows(np.zeros((2, 3)), np.zeros((3, 2))).ok
    assert conf.matmul_tolerance("f32") == (1e-4, 1e-5)
    assert conf.compare_rows(f32([[1.01]]), f32([[1.0]]), elem_type="bf16").ok
    assert not conf.compare_rows(f32([[1.01]]), f32([[1.0]])).ok
    with pytest.raises(ValueError):
        conf.matmul_tolerance("f8")


def test_layer_comparison():
    rng = np.random.default_rng(3)
    T, H, F, E = 64, 8, 16, 4
    ex = ref.ExpertSpace(E, null=1, copy=1)
    x = rng.standard_normal((T, H)).astype(np.float32)
    wr = (2 * rng.standard_normal((H, ex.S))).astype(np.float32)
    wu = rng.standard_normal((E, H, F)).astype(np.float32)
    wg = rng.standard_normal((E, H, F)).astype(np.float32)
    wd = rng.standard_normal((E, F, H)).astype(np.float32)
    kw = dict(w_gate=wg, normalize="selected")
    y = ref.layer(x, wr, wu, wd, ex, 2, **kw)
    res = conf.assert_layer_conforms((y * (1 + 1e-6)).astype(np.float32), x, wr, wu, wd, ex, 2, **kw)
    assert res.what == "layer"
    bad = y.copy()
    t = next(t for t in range(T) if t not in res.ambiguous)
    bad[t, 2] += 1.0
    res = conf.compare_layer(bad, x, wr, wu, wd, ex, 2, **kw)
    assert [(m.token, m.slot) for m in res.failures] == [(t, 2)]
