"""Section 4 ("runtime duties") of the contract on the compiled CPU code: every edge case
is run through the compiled route / layer / op and compared with the NumPy reference
(section 5 rule), and, where the contract fixes the answer outright, with that answer.

Route/layer edge cases: T = 0, T = 1, K = S, every token on one expert, exact ties (and
-0 == +0), NaN logits (softmax poisons the row; sigmoid/none only the entry), +-inf
logits, out-of-range k_per_token (also int64 beyond i32), capacity that keeps a single
slot per expert, expert_choice with T < E.

Direct ``moe_mlir.compile`` tests of moe.dispatch, moe.grouped_matmul, moe.expert_ffn and
moe.combine with adversarial ids (>= E, >= S, < -1, INT32_MIN/MAX), garbage offsets
(decreasing, negative, > R, INT32_MAX) and slot_rows outside [0, R): they must not crash
and must match the reference ops.
"""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance as conf
from moe_mlir import reference as ref

NAN = np.float32("nan")
INF = np.float32("inf")
I32_MIN = -2**31
I32_MAX = 2**31 - 1



def _ref_strategy(strategy, p=None, tau=None, k_min=None, capacity_factor=None):
    return {"top_k": lambda: ref.TopK(), "top_p": lambda: ref.TopP(p),
            "adaptive": lambda: ref.Adaptive(tau),
            "threshold": lambda: ref.Threshold(tau, 1 if k_min is None else k_min),
            "dynamic_k": lambda: ref.DynamicK(),
            "expert_choice": lambda: ref.ExpertChoice(capacity_factor)}[strategy]()


_ROUTES = {}


def route_fn(E, K, **kw):
    """compile_route with a cache (same configuration: same compiled function)."""
    key = (E, K, tuple(sorted((k, repr(v)) for k, v in kw.items())))
    if key not in _ROUTES:
        _ROUTES[key] = moe_mlir.compile_route(E, K, **kw)
    return _ROUTES[key]


def reference_args(E, K, **kw):
    """The expert space and reference.route keyword arguments of a compile_route config."""
    ex = ref.ExpertSpace(E, kw.get("num_null", 0), kw.get("num_copy", 0), kw.get("num_const", 0))
    cap = kw.get("capacity")
    grp = kw.get("groups")
    ref_args = dict(scoring=kw.get("scoring", "softmax"),
                    strategy=_ref_strategy(kw.get("strategy", "top_k"), kw.get("p"),
                                           kw.get("tau"), kw.get("k_min"),
                                           kw.get("capacity_factor")),
                    normalize=kw.get("normalize", "none"), scale=kw.get("scale", 1.0),
                    capacity=None if cap is None else ref.Capacity(*cap),
                    groups=None if grp is None else ref.Groups(*grp))
    return ex, ref_args


def run_route(logits, E, K, k_per_token=None, selection_bias=None, **kw):
    """Runs the compiled route and compares it with the reference (section 5);
    returns (ids, weights, reference decisions)."""
    f = route_fn(E, K, **kw)
    extra = {}
    if k_per_token is not None:
        extra["k_per_token"] = k_per_token
    if selection_bias is not None:
        extra["selection_bias"] = selection_bias
    ids, w = f(logits, **extra)
    ex, ref_args = reference_args(E, K, **kw)
    dec = ref.route_decisions(logits, ex, K, **ref_args, **extra)
    if logits.shape[0] == 0:
        # conformance.compare_values cannot reshape an empty (0, K) array (helper bug,
        # reported); with no tokens the comparison is on shapes and dtypes only
        assert ids.shape == dec.ids.shape and w.shape == dec.weights.shape
        assert ids.dtype == np.int32 and w.dtype == np.float32
        return ids, w, dec
    res = conf.compare_route(ids, w, logits, ex, K, **ref_args, **extra)
    assert res.ok, res.report()
    return ids, w, dec


def well_chosen(make_logits, E, K, first_seed, extra=None, attempts=40, **kw):
    """The first ``make_logits(seed)`` (seed = first_seed, first_seed + 1, ...) whose
    reference routing has at most 5% ambiguous tokens: deterministic regeneration of a
    badly chosen case (section 5) instead of skipping it."""
    ex, ref_args = reference_args(E, K, **kw)
    for seed in range(first_seed, first_seed + attempts):
        logits = make_logits(seed)
        dec = ref.route_decisions(logits, ex, K, **ref_args, **(extra or {}))
        if dec.ambiguous_fraction <= conf.MAX_AMBIGUOUS_FRACTION:
            return logits
    raise AssertionError("no well-chosen logits found")


def close_rows(got, expect):
    """conf.assert_close_rows, also for zero rows (the helper cannot reshape an empty
    array: reported; then only the shapes are compared)."""
    got = np.asarray(got)
    if np.asarray(expect).shape[0] == 0:
        assert got.shape == np.asarray(expect).shape
        return
    conf.assert_close_rows(got, expect)


def rand_logits(T, S, seed, amp=3.0):
    return (amp * np.random.default_rng(seed).standard_normal((T, S))).astype(np.float32)


# --------------------------------------------------------------------------------------
# T = 0 and T = 1
# --------------------------------------------------------------------------------------
ZERO_T_CONFIGS = [
    dict(strategy="top_k"),
    dict(strategy="top_p", p=0.5, num_null=2, normalize="non_null"),
    dict(strategy="adaptive", tau=0.2, scoring="sigmoid", capacity=(1.0, "score")),
    dict(strategy="threshold", tau=0.1, k_min=0, capacity=(2.0, "position")),
    dict(strategy="dynamic_k", num_copy=1),
    dict(strategy="expert_choice", capacity_factor=2.0, normalize="selected"),
    dict(strategy="top_k", groups=(2, 1), scoring="sigmoid"),
]


@pytest.mark.parametrize("kw", ZERO_T_CONFIGS, ids=lambda kw: kw["strategy"] + "-" + str(len(kw)))
def test_route_zero_tokens(kw):
    """T = 0: the compiled route returns empty (0, K) int32 / float32 results, like the
    reference (with capacity and expert_choice too, where C = ceil(cf*0*K/E) = 0)."""
    kpt = np.zeros(0, np.int32) if kw["strategy"] == "dynamic_k" else None
    S = 6 + kw.get("num_null", 0) + kw.get("num_copy", 0)
    ids, w, dec = run_route(np.zeros((0, S), np.float32), 6, 2, k_per_token=kpt, **kw)
    assert ids.shape == (0, 2) and ids.dtype == np.int32
    assert w.shape == (0, 2) and w.dtype == np.float32
    assert dec.ids.shape == (0, 2)


@pytest.mark.parametrize("gated", [True, False])
def test_layer_zero_tokens(gated):
    """T = 0: the compiled layer returns an empty (0, H) float32 array (also with null,
    copy and constant experts and capacity)."""
    H, F, E = 8, 12, 4
    rng = np.random.default_rng(5)
    g = moe_mlir.compile_layer(H, F, E, 2, num_null=1, num_copy=1, num_const=1,
                               capacity=(1.0, "score"), gated=gated, normalize="non_null")
    ops = dict(x=np.zeros((0, H), np.float32),
               w_router=rng.standard_normal((H, E + 3)).astype(np.float32),
               w_up=rng.standard_normal((E, H, F)).astype(np.float32),
               w_down=rng.standard_normal((E, F, H)).astype(np.float32),
               wc=rng.standard_normal((1, H, 2)).astype(np.float32),
               v=rng.standard_normal((1, H)).astype(np.float32))
    if gated:
        ops["w_gate"] = rng.standard_normal((E, H, F)).astype(np.float32)
    y = g(**ops)
    assert y.shape == (0, H) and y.dtype == np.float32
    out = ref.layer(ops["x"], ops["w_router"], ops["w_up"], ops["w_down"],
                    ref.ExpertSpace(E, 1, 1, 1), 2, capacity=ref.Capacity(1.0, "score"),
                    normalize="non_null", gated=gated, w_gate=ops.get("w_gate"),
                    wc=ops["wc"], v=ops["v"])
    assert out.shape == y.shape


ONE_T_CONFIGS = [
    dict(strategy="top_k", normalize="selected"),
    dict(strategy="top_p", p=0.7, num_null=2, normalize="non_null"),
    dict(strategy="adaptive", tau=0.3, scoring="sigmoid"),
    dict(strategy="threshold", tau=0.1, k_min=1, num_null=1, num_copy=1),
    dict(strategy="expert_choice", capacity_factor=1.0),
    dict(strategy="top_k", capacity=(1.0, "score"), num_null=1),
    dict(strategy="top_k", capacity=(0.5, "position")),
]


@pytest.mark.parametrize("kw", ONE_T_CONFIGS, ids=lambda kw: kw["strategy"] + "-" + str(len(kw)))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_route_one_token(kw, seed):
    """T = 1 matches the reference (expert_choice: each expert's C = min(1, ...) = 1, so
    the single token gets its K best experts)."""
    S = 6 + kw.get("num_null", 0) + kw.get("num_copy", 0)
    ids, w, dec = run_route(rand_logits(1, S, seed), 6, 3, **kw)
    assert ids.shape == (1, 3)
    if kw["strategy"] == "expert_choice":
        s = dec.scores[0]
        assert list(ids[0]) == list(np.argsort(-s, kind="stable")[:3])


def test_layer_one_token():
    """A single token through a compiled layer (null + copy + const experts) matches the
    reference."""
    H, F, E = 16, 8, 4
    rng = np.random.default_rng(11)
    ex = ref.ExpertSpace(E, 1, 1, 1)
    g = moe_mlir.compile_layer(H, F, E, 3, num_null=1, num_copy=1, num_const=1,
                               normalize="selected")
    ops = dict(x=rng.standard_normal((1, H)).astype(np.float32),
               w_router=(rng.standard_normal((H, ex.S)) * 0.75).astype(np.float32),
               w_up=rng.standard_normal((E, H, F)).astype(np.float32) / 4,
               w_down=rng.standard_normal((E, F, H)).astype(np.float32) / 4,
               w_gate=rng.standard_normal((E, H, F)).astype(np.float32) / 4,
               wc=rng.standard_normal((1, H, 2)).astype(np.float32),
               v=rng.standard_normal((1, H)).astype(np.float32))
    y = g(**ops)
    rest = {k: ops[k] for k in ("w_gate", "wc", "v")}
    conf.assert_layer_conforms(y, ops["x"], ops["w_router"], ops["w_up"], ops["w_down"], ex,
                               3, normalize="selected", **rest)


# --------------------------------------------------------------------------------------
# K = S, one expert for every token, ties
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(strategy="top_k", num_null=1, num_copy=1, num_const=1, normalize="non_null"),
    dict(strategy="top_p", p=0.8, num_null=2, scoring="sigmoid", normalize="selected"),
    dict(strategy="adaptive", tau=0.05, normalize="selected"),
    dict(strategy="threshold", tau=0.5, k_min=2, scoring="sigmoid"),
    dict(strategy="dynamic_k", num_null=1),
    dict(strategy="expert_choice", capacity_factor=2.0),
    dict(strategy="top_k", capacity=(1.0, "position")),
], ids=lambda kw: kw["strategy"] + "-" + str(len(kw)))
def test_route_k_equals_s(kw):
    """K = S (every expert can take a slot): compiled == reference; for top_k every token
    holds a permutation of all S experts."""
    E = 5
    S = E + kw.get("num_null", 0) + kw.get("num_copy", 0) + kw.get("num_const", 0)
    T = 40
    kpt = None
    if kw["strategy"] == "dynamic_k":
        kpt = np.random.default_rng(4).integers(-2, S + 3, T).astype(np.int32)
    logits = well_chosen(lambda seed: rand_logits(T, S, seed, amp=2.0), E, S, 3,
                         extra=None if kpt is None else {"k_per_token": kpt}, **kw)
    ids, w, dec = run_route(logits, E, S, k_per_token=kpt, **kw)
    if kw["strategy"] == "top_k" and "capacity" not in kw:
        assert np.all(np.sort(ids, axis=1) == np.arange(S))


@pytest.mark.parametrize("capacity", [None, (1.0, "score"), (0.25, "position")])
def test_route_all_tokens_on_one_expert(capacity):
    """A router where expert 3 wins for every token (scoring none, logit + 20): the
    compiled route picks it first everywhere (capacity then keeps exactly C of those
    slots, the rest compact)."""
    T, E, K = 64, 6, 2
    kw = {"scoring": "none"} if capacity is None else {"capacity": capacity, "scoring": "none"}

    def make(seed):
        logits = rand_logits(T, E, seed, amp=3.0)
        logits[:, 3] += 20.0
        return logits
    logits = well_chosen(make, E, K, 7, **kw)
    ids, w, dec = run_route(logits, E, K, **kw)
    if capacity is None:
        assert np.all(ids[:, 0] == 3)
    else:
        C = ref.capacity_limit(capacity[0], T, K, E)
        assert int(np.sum(ids == 3)) == C


@pytest.mark.parametrize("gated,capacity", [(True, None), (False, (1.0, "position")),
                                            (True, (0.5, "score"))])
def test_layer_all_tokens_on_one_expert(gated, capacity):
    """A layer whose router bias makes compute expert 2 win for every token (scoring
    none, b_router[2] = 10; all first-choice rows of the dispatch belong to one expert):
    compiled == reference."""
    H, F, E, K, T = 12, 16, 4, 2, 80
    rng = np.random.default_rng(21)
    ex = ref.ExpertSpace(E, 1)
    b_router = np.zeros(ex.S, np.float32)
    b_router[2] = 10.0
    ops = dict(x=rng.standard_normal((T, H)).astype(np.float32),
               w_router=(3 * rng.standard_normal((H, ex.S)) / np.sqrt(H)).astype(np.float32),
               w_up=(rng.standard_normal((E, H, F)) / 4).astype(np.float32),
               w_down=(rng.standard_normal((E, F, H)) / 4).astype(np.float32),
               b_router=b_router)
    if gated:
        ops["w_gate"] = (rng.standard_normal((E, H, F)) / 4).astype(np.float32)
    kw = {} if capacity is None else {"capacity": capacity}
    g = moe_mlir.compile_layer(H, F, E, K, num_null=1, gated=gated, scoring="none", **kw)
    y = g(**ops)
    tr = ref.layer_trace(**ops, experts=ex, k=K, gated=gated, scoring="none",
                         capacity=None if capacity is None else ref.Capacity(*capacity))
    if capacity is None:
        assert np.all(tr.ids[:, 0] == 2)
    else:
        assert np.sum(tr.ids == 2) == ref.capacity_limit(capacity[0], T, K, E)
    rest = {k: v for k, v in ops.items() if k not in ("x", "w_router", "w_up", "w_down")}
    conf.assert_layer_conforms(y, ops["x"], ops["w_router"], ops["w_up"], ops["w_down"], ex, K,
                               gated=gated, scoring="none",
                               capacity=None if capacity is None else ref.Capacity(*capacity),
                               **rest)


@pytest.mark.parametrize("scoring", ["softmax", "sigmoid", "none"])
@pytest.mark.parametrize("strategy", ["top_k", "top_p", "adaptive", "threshold"])
def test_route_exact_ties(scoring, strategy):
    """Many exactly equal logits (values from {-1, 0, 1, 2}, and an all-equal row): ties
    go to the lower index (section 2.2 step 4); exact ties are never ambiguous, so every
    token is compared."""
    T, E, K = 60, 8, 3
    rng = np.random.default_rng(13)
    logits = rng.integers(-1, 3, (T, E)).astype(np.float32)
    logits[0] = 0.0
    logits[1] = [2, 2, 2, 2, 2, 2, 2, 2]
    logits[2] = [0, 1, 1, 0, 1, 1, 0, 1]
    kw = {"top_k": {}, "top_p": {"p": 0.6}, "adaptive": {"tau": 0.0},
          "threshold": {"tau": 0.25 if scoring != "none" else 0.5, "k_min": 1}}[strategy]
    ids, w, dec = run_route(logits, E, K, scoring=scoring, strategy=strategy,
                            normalize="selected", **kw)
    assert not dec.ambiguous.any()
    # an all-equal row picks the lowest indices (top_k); row 2 picks 1, 2, 4
    if strategy == "top_k":
        assert list(ids[0]) == [0, 1, 2] and list(ids[1]) == [0, 1, 2]
        assert list(ids[2]) == [1, 2, 4]


def test_route_signed_zero_ties():
    """-0 equals +0 (section 2.2 step 4): with scoring none, a row of signed zeros is an
    exact tie broken by index, whatever the signs."""
    logits = np.array([[-0.0, 0.0, -0.0, 0.0], [0.0, -0.0, -1.0, -0.0],
                       [-1.0, -0.0, -0.0, 0.0]], np.float32)
    ids, w, dec = run_route(logits, 4, 2, scoring="none")
    assert ids.tolist() == [[0, 1], [0, 1], [1, 2]]


# --------------------------------------------------------------------------------------
# NaN and infinities
# --------------------------------------------------------------------------------------
def nan_inf_logits(S, seed):
    """12 tokens: finite entries are a random permutation of well-spaced values (gap >= 0.6)
    with NaN / +-inf planted in rows 0..9."""
    rng = np.random.default_rng(seed)
    logits = np.stack([rng.permutation(np.arange(S) * 1.0) + rng.uniform(0, 0.4, S) - S / 2
                       for _ in range(12)]).astype(np.float32)
    logits[0, 2] = NAN                       # one NaN
    logits[1, :] = NAN                       # all NaN
    logits[2, 0] = NAN
    logits[2, S - 1] = NAN                   # two NaNs
    logits[3, 1] = INF                       # +inf
    logits[4, 1] = -INF                      # one -inf
    logits[5, :] = -INF                      # all -inf
    logits[6, 0], logits[6, 3] = INF, -INF   # both
    logits[7, 2], logits[7, 4] = INF, INF    # two +inf
    logits[8, 1], logits[8, 3] = NAN, INF    # NaN and +inf
    logits[9, 0] = NAN
    logits[9, 1] = -INF
    return logits


@pytest.mark.parametrize("scoring", ["softmax", "sigmoid", "none"])
@pytest.mark.parametrize("strategy,kw", [
    ("top_k", {}), ("top_p", {"p": 0.7}), ("adaptive", {"tau": 0.2}),
    ("threshold", {"tau": 0.1, "k_min": 1}), ("dynamic_k", {}),
])
@pytest.mark.parametrize("normalize", ["none", "selected", "non_null"])
def test_route_nan_and_inf_logits(scoring, strategy, kw, normalize):
    """NaN and +-inf logits (a NaN anywhere in a softmax row makes every score NaN;
    sigmoid/none keep it in its entry; NaN keys sort last, ties by index; +inf in softmax
    gives a NaN row): the compiled route matches the reference, NaN for NaN."""
    E, null = 6, 1
    S = E + null
    kpt = np.array([2, 3, 1, 0, 2, 3, 9, -1, 2, 3, 1, 2], np.int32) if strategy == "dynamic_k" else None
    args = dict(num_null=null, scoring=scoring, strategy=strategy, normalize=normalize, **kw)
    logits = well_chosen(lambda seed: nan_inf_logits(S, seed), E, 3, 17,
                         extra=None if kpt is None else {"k_per_token": kpt}, **args)
    ids, w, dec = run_route(logits, E, 3, k_per_token=kpt, **args)
    if scoring == "softmax" and strategy == "top_k":
        # all-NaN scores: the order is the index order
        assert list(ids[1]) == [0, 1, 2] and list(ids[0]) == [0, 1, 2]


@pytest.mark.parametrize("scoring", ["softmax", "sigmoid", "none"])
def test_route_nan_inf_with_capacity_and_expert_choice(scoring):
    """NaN/inf logits through capacity (score priority: NaN raw weights last) and through
    expert_choice (NaN scores last in each expert's token ranking)."""
    E = 6
    for kw in (dict(capacity=(0.5, "score"), normalize="selected"),
               dict(capacity=(0.5, "position")),
               dict(strategy="expert_choice", capacity_factor=1.0)):
        logits = well_chosen(lambda seed: nan_inf_logits(E, seed), E, 2, 23, scoring=scoring,
                             **kw)
        run_route(logits, E, 2, scoring=scoring, **kw)


def test_route_nan_logits_with_groups_and_bias():
    """NaN keys in grouped routing (NaN counts as -inf in a group's score) and with a
    selection bias."""
    E = 8
    bias = (0.1 * np.random.default_rng(3).standard_normal(E)).astype(np.float32)
    logits = well_chosen(lambda seed: nan_inf_logits(E, seed), E, 2, 29, scoring="sigmoid",
                         groups=(4, 2), extra={"selection_bias": bias})
    run_route(logits, E, 2, scoring="sigmoid", groups=(4, 2), selection_bias=bias)
    logits = well_chosen(lambda seed: nan_inf_logits(E, seed), E, 2, 29, scoring="none",
                         groups=(2, 1))
    run_route(logits, E, 2, scoring="none", groups=(2, 1))


def test_layer_nan_and_inf_in_x():
    """NaN/inf in x of a layer (null and copy experts): NaN propagates through the router
    and the FFNs as IEEE says; the compiled layer matches the reference (NaN for NaN)."""
    H, F, E, T = 8, 8, 4, 10
    rng = np.random.default_rng(31)
    ex = ref.ExpertSpace(E, 1, 1)
    ops = dict(x=rng.standard_normal((T, H)).astype(np.float32),
               w_router=(rng.standard_normal((H, ex.S))).astype(np.float32),
               w_up=(rng.standard_normal((E, H, F)) / 3).astype(np.float32),
               w_down=(rng.standard_normal((E, F, H)) / 3).astype(np.float32),
               w_gate=(rng.standard_normal((E, H, F)) / 3).astype(np.float32))
    ops["x"][0, 3] = NAN
    ops["x"][4, 0] = INF
    g = moe_mlir.compile_layer(H, F, E, 2, num_null=1, num_copy=1, normalize="selected")
    y = g(**ops)
    conf.assert_layer_conforms(y, ops["x"], ops["w_router"], ops["w_up"], ops["w_down"], ex, 2,
                               normalize="selected", w_gate=ops["w_gate"])


# --------------------------------------------------------------------------------------
# k_per_token out of range, capacity of one, expert_choice with T < E
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_route_k_per_token_out_of_range(dtype):
    """k_per_token far outside [0, K] (negative, huge, INT32_MIN/MAX, and, as int64,
    beyond the i32 range) is clamped to [0, K] (section 2.2 step 5)."""
    if dtype == np.int32:
        kpt = np.array([-3, -1, 0, 1, 2, 3, 4, 7, 1000, I32_MAX, I32_MIN, -1000], np.int32)
    else:
        kpt = np.array([2**40, -2**40, 2**63 - 1, -2**63, 2**31, -2**31 - 1, 2**32 + 1,
                        -(2**32) + 2, 3, 0, 2, -1], np.int64)
    K = 3
    logits = rand_logits(len(kpt), 8, 41)
    ids, w, dec = run_route(logits, 6, K, num_null=2, strategy="dynamic_k", k_per_token=kpt,
                            normalize="selected")
    n = np.clip(kpt.astype(object), 0, K).astype(np.int64)
    assert np.array_equal((ids >= 0).sum(axis=1), n)


@pytest.mark.parametrize("priority", ["score", "position"])
@pytest.mark.parametrize("K", [1, 3])
def test_route_capacity_keeps_one_slot_per_expert(priority, K):
    """A capacity factor so small that C = 1: each compute expert keeps exactly one slot
    (the best raw weight, or the first (j, t) in position order); the rest are dropped and
    each token's kept slots are compacted to the front."""
    T, E = 50, 5
    cf = 1e-6
    assert ref.capacity_limit(cf, T, K, E) == 1
    logits = rand_logits(T, E + 1, 43)
    ids, w, dec = run_route(logits, E, K, num_null=1, capacity=(cf, priority),
                            normalize="selected")
    for e in range(E):
        assert int(np.sum(ids == e)) <= 1
    if priority == "position":
        # token 0's first choice always survives (slot 0, token 0 ranks first)
        assert ids[0, 0] == dec.ids[0, 0] and ids[0, 0] >= 0


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("cf", [0.5, 1.0, 4.0])
def test_route_expert_choice_fewer_tokens_than_experts(T, cf):
    """expert_choice with T < E: C = min(T, ceil(cf*T/E)) >= 1, so a token can be picked
    by many experts (truncated to K); matches the reference."""
    E, K = 8, 3
    for seed in range(3):
        run_route(rand_logits(T, E, 50 + seed), E, K, strategy="expert_choice",
                  capacity_factor=cf, normalize="selected")


# --------------------------------------------------------------------------------------
# direct moe.compile of the data-movement and matmul ops with adversarial inputs
# --------------------------------------------------------------------------------------
H_, E_, K_, N_ = 8, 4, 3, 6


def dispatch_text(E=E_, H=H_, K=K_, r_max=None):
    rows = "?" if r_max is None else str(r_max)
    return f"""
func.func @f(%x: tensor<?x{H}xf32>, %ids: tensor<?x{K}xi32>)
    -> (tensor<{rows}x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>) {{
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = {E}
      : tensor<?x{H}xf32>, tensor<?x{K}xi32>
      -> tensor<{rows}x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>
  return %rows, %offsets, %slot_rows
      : tensor<{rows}x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>
}}
"""


GMM_TEXT = f"""
func.func @f(%lhs: tensor<?x{H_}xf32>, %rhs: tensor<{E_}x{H_}x{N_}xf32>,
             %offsets: tensor<{E_ + 1}xi32>) -> tensor<?x{N_}xf32> {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %lhs, %c0 : tensor<?x{H_}xf32>
  %init = tensor.empty(%r) : tensor<?x{N_}xf32>
  %0 = moe.grouped_matmul %lhs, %rhs, %offsets into(%init)
      : tensor<?x{H_}xf32>, tensor<{E_}x{H_}x{N_}xf32>, tensor<{E_ + 1}xi32> into tensor<?x{N_}xf32>
  return %0 : tensor<?x{N_}xf32>
}}
"""

FFN_GATED_TEXT = f"""
func.func @f(%rows: tensor<?x{H_}xf32>, %offsets: tensor<{E_ + 1}xi32>,
             %wu: tensor<{E_}x{H_}x{N_}xf32>, %wg: tensor<{E_}x{H_}x{N_}xf32>,
             %wd: tensor<{E_}x{N_}x{H_}xf32>) -> tensor<?x{H_}xf32> {{
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %rows, %init_0_c0 : tensor<?x{H_}xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x{H_}xf32>
  %0 = moe.expert_ffn %rows, %offsets up(%wu : tensor<{E_}x{H_}x{N_}xf32>)
      gate(%wg : tensor<{E_}x{H_}x{N_}xf32>) down(%wd : tensor<{E_}x{N_}x{H_}xf32>)
      activation = silu gated into(%init_0) : tensor<?x{H_}xf32>, tensor<{E_ + 1}xi32> into tensor<?x{H_}xf32>
  return %0 : tensor<?x{H_}xf32>
}}
"""

FFN_PLAIN_TEXT = f"""
func.func @f(%rows: tensor<?x{H_}xf32>, %offsets: tensor<{E_ + 1}xi32>,
             %wu: tensor<{E_}x{H_}x{N_}xf32>, %wd: tensor<{E_}x{N_}x{H_}xf32>,
             %bu: tensor<{E_}x{N_}xf32>, %bd: tensor<{E_}x{H_}xf32>) -> tensor<?x{H_}xf32> {{
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %rows, %init_0_c0 : tensor<?x{H_}xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x{H_}xf32>
  %0 = moe.expert_ffn %rows, %offsets up(%wu : tensor<{E_}x{H_}x{N_}xf32>)
      down(%wd : tensor<{E_}x{N_}x{H_}xf32>) up_bias(%bu : tensor<{E_}x{N_}xf32>)
      down_bias(%bd : tensor<{E_}x{H_}xf32>) activation = gelu into(%init_0)
      : tensor<?x{H_}xf32>, tensor<{E_ + 1}xi32> into tensor<?x{H_}xf32>
  return %0 : tensor<?x{H_}xf32>
}}
"""

# S = 4 compute + 1 null + 1 copy + 2 const = 8
COMBINE_TEXT = f"""
func.func @f(%y: tensor<?x{H_}xf32>, %slot_rows: tensor<?x{K_}xi32>, %ids: tensor<?x{K_}xi32>,
             %weights: tensor<?x{K_}xf32>, %x: tensor<?x{H_}xf32>,
             %wc: tensor<2x{H_}x2xf32>, %v: tensor<2x{H_}xf32>) -> tensor<?x{H_}xf32> {{
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x{H_}xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x{H_}xf32>
  %0 = moe.combine %y, %slot_rows, %ids, %weights, %x
      const_proj(%wc : tensor<2x{H_}x2xf32>) const_values(%v : tensor<2x{H_}xf32>)
      experts = <compute = {E_}, null = 1, copy = 1, const = 2> into(%init_0)
      : tensor<?x{H_}xf32>, tensor<?x{K_}xi32>, tensor<?x{K_}xi32>, tensor<?x{K_}xf32>,
        tensor<?x{H_}xf32> into tensor<?x{H_}xf32>
  return %0 : tensor<?x{H_}xf32>
}}
"""
COMBINE_EX = ref.ExpertSpace(E_, 1, 1, 2)

_FUNCS = {}


def fn(text):
    if text not in _FUNCS:
        _FUNCS[text] = moe_mlir.compile(text, "f")
    return _FUNCS[text]


GARBAGE_IDS = [-1, -2, I32_MIN, I32_MAX, E_, E_ + 1, 7, 8, 1000, -1000]


def adversarial_ids(T, seed, K=K_):
    """ids mixing valid compute ids, empty slots and garbage (>= E, >= S, < -1,
    INT32_MIN/MAX)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, E_, (T, K)).astype(np.int64)
    garbage = rng.random((T, K)) < 0.4
    ids[garbage] = rng.choice(GARBAGE_IDS, int(garbage.sum()))
    return ids.astype(np.int32)


@pytest.mark.parametrize("T", [0, 1, 5, 37])
def test_dispatch_adversarial_ids(T):
    """moe.dispatch with garbage ids dispatches only 0 <= id < E, in (expert, token, slot)
    order: rows, offsets and slot_rows equal the reference exactly."""
    x = np.random.default_rng(T).standard_normal((T, H_)).astype(np.float32)
    ids = adversarial_ids(T, 100 + T)
    rows, offsets, slot_rows = fn(dispatch_text())(x, ids)
    r_rows, r_off, r_sr = ref.dispatch(x, ids, E_)
    assert np.array_equal(offsets, r_off)
    assert np.array_equal(slot_rows, r_sr)
    assert rows.shape == r_rows.shape and np.array_equal(rows, r_rows)


def test_dispatch_all_garbage_and_all_one_expert():
    """Only garbage ids: R = 0, offsets all 0, slot_rows all -1. All slots on one expert:
    one group holding every (token, slot)."""
    T = 9
    x = np.arange(T * H_, dtype=np.float32).reshape(T, H_)
    ids = np.array(GARBAGE_IDS[:K_] * T, np.int32).reshape(T, K_)
    rows, offsets, slot_rows = fn(dispatch_text())(x, ids)
    assert rows.shape == (0, H_)
    assert np.all(offsets == 0) and np.all(slot_rows == -1)
    ids = np.full((T, K_), 2, np.int32)
    rows, offsets, slot_rows = fn(dispatch_text())(x, ids)
    r_rows, r_off, r_sr = ref.dispatch(x, ids, E_)
    assert np.array_equal(offsets, r_off) and np.array_equal(slot_rows, r_sr)
    assert np.array_equal(rows, r_rows)
    assert offsets.tolist() == [0, 0, 0, T * K_, T * K_]


@pytest.mark.parametrize("r_max", [0, 1, 7, 64])
def test_dispatch_padded_form(r_max):
    """The padded form (static R_max): slots that do not fit get slot_rows = -1, offsets
    are clamped to R_max, and rows [0, offsets[E]) equal the reference; rows past
    offsets[E] are unspecified and not compared."""
    T = 13
    x = np.random.default_rng(8).standard_normal((T, H_)).astype(np.float32)
    ids = adversarial_ids(T, 9)
    rows, offsets, slot_rows = fn(dispatch_text(r_max=r_max))(x, ids)
    r_rows, r_off, r_sr = ref.dispatch(x, ids, E_, r_max=r_max)
    assert rows.shape == (r_max, H_)
    assert np.array_equal(offsets, r_off) and np.array_equal(slot_rows, r_sr)
    n = int(r_off[E_])
    assert np.array_equal(rows[:n], r_rows[:n])


DISPATCH_PADDED_MISMATCH_TEXT = f"""
func.func @f(%x: tensor<?x{H_}xf32>, %ids: tensor<?x{K_}xi32>, %rows: tensor<8x{H_}xf32>)
    -> (tensor<8x{H_}xf32>, tensor<{E_ + 1}xi32>) {{
  %c0 = arith.constant 0 : index
  %t = tensor.dim %ids, %c0 : tensor<?x{K_}xi32>
  %o0 = tensor.empty() : tensor<{E_ + 1}xi32>
  %s0 = tensor.empty(%t) : tensor<?x{K_}xi32>
  %r, %o, %s = moe.dispatch_padded %x, %ids num_experts = {E_} into(%rows, %o0, %s0)
      : tensor<?x{H_}xf32>, tensor<?x{K_}xi32> into tensor<8x{H_}xf32>, tensor<{E_ + 1}xi32>,
        tensor<?x{K_}xi32>
  return %r, %o : tensor<8x{H_}xf32>, tensor<{E_ + 1}xi32>
}}
"""


def test_dispatch_padded_size_mismatch():
    """x and ids disagree on T: the call raises (the op's error code), and
    with matching sizes the rows past offsets[E] keep rows_init's values."""
    f = fn(DISPATCH_PADDED_MISMATCH_TEXT)
    init = np.full((8, H_), 7.0, np.float32)
    with pytest.raises(ValueError, match="moe.dispatch"):
        f(np.ones((3, H_), np.float32), np.zeros((4, K_), np.int32), init)
    x = np.random.default_rng(4).standard_normal((2, H_)).astype(np.float32)
    ids = np.zeros((2, K_), np.int32)
    ids[:, 1:] = -1
    rows, offsets = f(x, ids, init)
    assert offsets[E_] == 2
    assert np.array_equal(rows[:2], x) and np.all(rows[2:] == 7.0)


GARBAGE_OFFSETS = [
    [0, 3, 7, 10, 14],                    # valid
    [0, 10, 3, 12, 2],                    # decreasing
    [-5, -1, 4, -3, 9],                   # negative
    [0, 2, 100, 200, 300],                # > R
    [I32_MAX, I32_MAX, 1, I32_MAX, I32_MAX],
    [I32_MIN, 5, I32_MIN, 8, I32_MAX],
    [7, 7, 7, 7, 7],                      # nonzero first offset (sanitised to 0)
    [0, 0, 0, 0, 0],                      # every group empty
]


@pytest.mark.parametrize("offsets", GARBAGE_OFFSETS, ids=lambda o: ",".join(map(str, o)))
@pytest.mark.parametrize("R", [0, 14])
def test_grouped_matmul_garbage_offsets(offsets, R):
    """moe.grouped_matmul sanitises offsets (o[0] = 0, o[e+1] = clamp(o[e+1], o[e], R)):
    garbage offsets neither crash nor read out of bounds, and the result equals the
    reference (rows past the sanitised o[E] exactly 0)."""
    rng = np.random.default_rng(60 + R)
    lhs = rng.standard_normal((R, H_)).astype(np.float32)
    rhs = rng.standard_normal((E_, H_, N_)).astype(np.float32)
    off = np.array(offsets, np.int32)
    out = fn(GMM_TEXT)(lhs, rhs, off)
    expect = ref.grouped_matmul(lhs, rhs, off)
    close_rows(out, expect)
    o = np.zeros(E_ + 1, np.int64)
    for e in range(E_):
        o[e + 1] = min(max(offsets[e + 1], o[e]), R)
    assert np.all(out[o[E_]:] == 0)


@pytest.mark.parametrize("offsets", GARBAGE_OFFSETS, ids=lambda o: ",".join(map(str, o)))
@pytest.mark.parametrize("gated", [True, False])
def test_expert_ffn_garbage_offsets(offsets, gated):
    """moe.expert_ffn with garbage offsets matches the reference (gated SwiGLU and
    non-gated GELU with biases; rows past the sanitised offsets[E] are 0, without b_down)."""
    R = 14
    rng = np.random.default_rng(70)
    rows = rng.standard_normal((R, H_)).astype(np.float32)
    wu = (rng.standard_normal((E_, H_, N_)) / 3).astype(np.float32)
    wg = (rng.standard_normal((E_, H_, N_)) / 3).astype(np.float32)
    wd = (rng.standard_normal((E_, N_, H_)) / 3).astype(np.float32)
    bu = rng.standard_normal((E_, N_)).astype(np.float32)
    bd = rng.standard_normal((E_, H_)).astype(np.float32)
    off = np.array(offsets, np.int32)
    if gated:
        out = fn(FFN_GATED_TEXT)(rows, off, wu, wg, wd)
        expect = ref.expert_ffn(rows, off, wu, wd, w_gate=wg, activation="silu", gated=True)
    else:
        out = fn(FFN_PLAIN_TEXT)(rows, off, wu, wd, bu, bd)
        expect = ref.expert_ffn(rows, off, wu, wd, b_up=bu, b_down=bd, activation="gelu",
                                gated=False)
    close_rows(out, expect)


@pytest.mark.parametrize("T", [0, 1, 6, 40])
def test_combine_adversarial_ids_and_slot_rows(T):
    """moe.combine with garbage ids (>= S, < -1, INT32_MIN/MAX), null/copy/const slots,
    compute slots whose slot_rows lie outside [0, R) (incl. INT32_MIN/MAX), and NaN
    weights on every skipped slot: no crash, result equal to the reference, no NaN."""
    R = 11
    rng = np.random.default_rng(80 + T)
    y = rng.standard_normal((R, H_)).astype(np.float32)
    x = rng.standard_normal((T, H_)).astype(np.float32)
    wc = rng.standard_normal((2, H_, 2)).astype(np.float32)
    v = rng.standard_normal((2, H_)).astype(np.float32)
    ids = rng.integers(-1, COMBINE_EX.S, (T, K_)).astype(np.int64)
    garbage = rng.random((T, K_)) < 0.25
    ids[garbage] = rng.choice([8, 9, -2, I32_MIN, I32_MAX, 12345], int(garbage.sum()))
    ids = ids.astype(np.int32)
    slot_rows = rng.integers(0, R, (T, K_)).astype(np.int64)
    bad_rows = rng.random((T, K_)) < 0.25
    slot_rows[bad_rows] = rng.choice([-1, -7, R, R + 5, I32_MAX, I32_MIN], int(bad_rows.sum()))
    slot_rows = slot_rows.astype(np.int32)
    weights = rng.standard_normal((T, K_)).astype(np.float32)
    compute = (ids >= 0) & (ids < E_)
    skipped = (~compute & ~COMBINE_EX.is_copy(ids) & ~COMBINE_EX.is_const(ids)) | \
        (compute & ((slot_rows < 0) | (slot_rows >= R)))
    weights[skipped] = NAN
    out = fn(COMBINE_TEXT)(y, slot_rows, ids, weights, x, wc, v)
    expect = ref.combine(y, slot_rows, ids, weights, x, COMBINE_EX, wc=wc, v=v)
    assert out.shape == (T, H_)
    assert not np.isnan(out).any()
    close_rows(out, expect)


def test_dispatch_ffn_combine_chain_with_garbage_ids():
    """dispatch -> expert_ffn -> combine in one compiled function, fed route-like ids
    with garbage: equals the reference ops composed the same way."""
    text = f"""
func.func @f(%x: tensor<?x{H_}xf32>, %ids: tensor<?x{K_}xi32>, %w: tensor<?x{K_}xf32>,
             %wu: tensor<{E_}x{H_}x{N_}xf32>, %wg: tensor<{E_}x{H_}x{N_}xf32>,
             %wd: tensor<{E_}x{N_}x{H_}xf32>, %wc: tensor<2x{H_}x2xf32>,
             %v: tensor<2x{H_}xf32>) -> tensor<?x{H_}xf32> {{
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = {E_}
      : tensor<?x{H_}xf32>, tensor<?x{K_}xi32>
      -> tensor<?x{H_}xf32>, tensor<{E_ + 1}xi32>, tensor<?x{K_}xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x{H_}xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H_}xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<{E_}x{H_}x{N_}xf32>)
      gate(%wg : tensor<{E_}x{H_}x{N_}xf32>) down(%wd : tensor<{E_}x{N_}x{H_}xf32>)
      activation = gelu_tanh gated into(%init_y) : tensor<?x{H_}xf32>, tensor<{E_ + 1}xi32> into tensor<?x{H_}xf32>
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x{H_}xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x{H_}xf32>
  %out = moe.combine %y, %slot_rows, %ids, %w, %x
      const_proj(%wc : tensor<2x{H_}x2xf32>) const_values(%v : tensor<2x{H_}xf32>)
      experts = <compute = {E_}, null = 1, copy = 1, const = 2> into(%init_out)
      : tensor<?x{H_}xf32>, tensor<?x{K_}xi32>, tensor<?x{K_}xi32>, tensor<?x{K_}xf32>,
        tensor<?x{H_}xf32> into tensor<?x{H_}xf32>
  return %out : tensor<?x{H_}xf32>
}}
"""
    T = 30
    rng = np.random.default_rng(90)
    x = rng.standard_normal((T, H_)).astype(np.float32)
    ids = adversarial_ids(T, 91)
    ids[::5, 1] = 5   # copy expert
    ids[::7, 2] = 6   # first constant expert
    w = rng.random((T, K_)).astype(np.float32)
    wu = (rng.standard_normal((E_, H_, N_)) / 3).astype(np.float32)
    wg = (rng.standard_normal((E_, H_, N_)) / 3).astype(np.float32)
    wd = (rng.standard_normal((E_, N_, H_)) / 3).astype(np.float32)
    wc = rng.standard_normal((2, H_, 2)).astype(np.float32)
    v = rng.standard_normal((2, H_)).astype(np.float32)
    out = fn(text)(x, ids, w, wu, wg, wd, wc, v)
    rows, off, sr = ref.dispatch(x, ids, E_)
    yr = ref.expert_ffn(rows, off, wu, wd, w_gate=wg, activation="gelu_tanh", gated=True)
    expect = ref.combine(yr, sr, ids, w, x, COMBINE_EX, wc=wc, v=v)
    close_rows(out, expect)


# --------------------------------------------------------------------------------------
# degenerate parameters and extreme values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(strategy="adaptive", tau=float("inf")),          # every member passes: n = K
    dict(strategy="adaptive", tau=0.0, scoring="none"),   # only exact ties with o_1
    dict(strategy="top_p", p=1e-30),                      # the first member reaches p
    dict(strategy="top_p", p=1.0, scoring="sigmoid"),     # p == 1: n = K
    dict(strategy="threshold", tau=-1e30, k_min=0),       # everything passes
    dict(strategy="threshold", tau=1e30, k_min=0),        # nothing passes: all empty
    dict(strategy="threshold", tau=1e30, k_min=2),        # k_min fills the first two
    dict(strategy="top_k", capacity=(float("inf"), "score")),  # unbounded capacity
    dict(strategy="expert_choice", capacity_factor=float("inf")),  # C = T
    dict(strategy="expert_choice", capacity_factor=1e-9),  # C = 1
], ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_route_degenerate_parameters(kw):
    """Strategy parameters at their limits (tau = inf, p tiny or 1, thresholds beyond every
    score, infinite capacity factors): compiled == reference."""
    E, K, T = 6, 3, 50
    logits = well_chosen(lambda seed: rand_logits(T, E, seed), E, K, 61, **kw)
    ids, w, dec = run_route(logits, E, K, normalize="selected", **kw)
    if kw.get("tau") == 1e30 and kw.get("k_min") == 0:
        assert np.all(ids == -1) and np.all(w == 0)


@pytest.mark.parametrize("scale", [float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 1e-45])
@pytest.mark.parametrize("normalize", ["none", "non_null"])
def test_route_nonfinite_and_zero_scale(scale, normalize):
    """scale = +-inf / NaN / +-0 / subnormal multiplies the valid slots only: empty slots
    keep weight +0 (docs/Reference.md choice 8) and the rest follow IEEE, as the reference."""
    E, null, K, T = 5, 2, 3, 30
    kpt = np.random.default_rng(62).integers(0, K + 1, T).astype(np.int32)
    logits = well_chosen(lambda seed: rand_logits(T, E + null, seed), E, K, 63,
                         extra={"k_per_token": kpt}, num_null=null, strategy="dynamic_k",
                         normalize=normalize, scale=scale)
    ids, w, dec = run_route(logits, E, K, num_null=null, strategy="dynamic_k",
                            normalize=normalize, scale=scale, k_per_token=kpt)
    assert np.all(w[ids == -1] == 0)


def test_route_zero_denominator():
    """Normalisation with a zero denominator (scoring none, selected raw weights summing
    to exactly 0) or an empty set (non_null with only null slots) gives all-zero weights."""
    logits = np.array([[2.0, -2.0, -5.0, -6.0, 0.0],     # top-2 = 2, 0(null) -> non_null: only 2
                       [1.5, -3.0, -1.5, -9.0, 1.5],     # ties: ids 0 and 4
                       [0.75, -0.75, -4.0, -3.0, -9.0],  # 0.75 + -0.75 = 0
                       [-9.0, -8.0, -7.0, -6.0, 5.0]],   # null first
                      np.float32)
    for normalize in ("selected", "non_null"):
        ids, w, dec = run_route(logits, 4, 2, num_null=1, scoring="none", normalize=normalize)
        assert np.all(w[2] == 0)


@pytest.mark.parametrize("scoring", ["softmax", "sigmoid", "none"])
def test_route_extreme_magnitudes(scoring):
    """Huge (+-1e30, +-3e38), subnormal and signed-zero logits: no overflow to a wrong
    order; compiled == reference."""
    base = np.array([3e38, -3e38, 1e30, -1e30, 1e-40, -1e-40, 0.0, -0.0], np.float32)
    rng = np.random.default_rng(64)
    logits = np.stack([rng.permutation(base) for _ in range(20)]).astype(np.float32)
    # K = 2: the decisions stay away from subnormal-vs-zero orders, which section 5
    # (absolute margin 1e-5) rightly calls ambiguous
    run_route(logits, 8, 2, scoring=scoring, normalize="selected")
    run_route(logits, 8, 2, scoring=scoring, strategy="top_p", p=0.5)
    # every score below the largest is an exact tie or far apart under sigmoid/softmax
    if scoring != "none":
        run_route(logits, 8, 4, scoring=scoring, strategy="adaptive", tau=0.3)


def test_route_many_tokens():
    """A large T (20000 tokens, capacity with position priority): compiled == reference."""
    T, E = 20000, 8
    logits = rand_logits(T, E, 65)
    run_route(logits, E, 2, capacity=(1.0, "position"), normalize="selected")


AUX_TEXT = """
func.func @f(%s: tensor<?x6xf32>, %ids: tensor<?x2xi32>) -> tensor<f32> {
  %init_0 = tensor.empty() : tensor<f32>
  %0 = moe.aux_loss %s, %ids into(%init_0) : tensor<?x6xf32>, tensor<?x2xi32> into tensor<f32>
  return %0 : tensor<f32>
}
"""


@pytest.mark.parametrize("T", [0, 1, 7, 300])
def test_aux_loss_adversarial_ids(T):
    """moe.aux_loss counts only 0 <= id < S (empty -1 and garbage ids, INT32_MIN/MAX, are
    neither counted nor read out of bounds); T = 0 gives 0; a rank-0 result comes back as
    a 0-d array. Tolerance as docs/Reference.md suggests: 1e-4 |ref| + 1e-5."""
    rng = np.random.default_rng(110 + T)
    s = rng.random((T, 6)).astype(np.float32)
    ids = rng.integers(-1, 6, (T, 2)).astype(np.int64)
    bad = rng.random((T, 2)) < 0.3
    ids[bad] = rng.choice([6, 7, -2, I32_MIN, I32_MAX], int(bad.sum()))
    ids = ids.astype(np.int32)
    out = fn(AUX_TEXT)(s, ids)
    expect = ref.aux_loss(s, ids)
    assert np.ndim(out) == 0
    assert abs(float(out) - float(expect)) <= 1e-4 * abs(float(expect)) + 1e-5
    if T == 0:
        assert float(out) == 0.0


@pytest.mark.parametrize("target", ["cpu", "gpu-emulated"])
def test_expert_choice_select_with_ties_and_nan(target):
    """Expert choice's per-expert selection (a radix select over the expert's column, then
    the ties at the cut in token order) on scores with many exact ties, -0 and +0, infinities
    and NaN: ids and weights equal the reference's exactly (exact ties are decided by the tie
    rules, so no token is ambiguous), from C = 1 to C = T, on the CPU and with the GPU
    kernels (one thread per expert)."""
    E, K = 8, 3
    values = np.array([-1.0, -0.0, 0.0, 0.5, 0.5, 1.0, INF, -INF, NAN], np.float32)
    rng = np.random.default_rng(41)
    for cf in (1e-6, 0.4, 1.0, 2.5, 1e9):
        f = moe_mlir.compile_route(E, K, scoring="none", strategy="expert_choice",
                                   capacity_factor=cf, target=target)
        for T in (1, 7, 64, 300):
            logits = values[rng.integers(0, len(values), size=(T, E))]
            ids, w = f(logits)
            rids, rw = ref.route(logits, ref.ExpertSpace(E), K, scoring="none",
                                 strategy=ref.ExpertChoice(cf))
            assert np.array_equal(ids, rids), (cf, T)
            assert np.array_equal(w.view(np.uint32), rw.view(np.uint32)), (cf, T)


@pytest.mark.parametrize("target", ["cpu", "gpu-emulated"])
@pytest.mark.parametrize("priority", ["position", "score"])
def test_capacity_across_chunks(target, priority):
    """Capacity over many slots: the GPU kernels count each expert's slots per chunk of 256
    (slot-major for position priority, token-major for score priority), scan the counts per
    expert, then drop by rank chunk by chunk (position) or keep each expert's best by an
    exact radix select over its list of slots (score), so T*K spans several chunks here (up
    to 2400 slots), with null experts (never limited) and capacities from 1 to above every
    expert's load."""
    E, K = 8, 3
    rng = np.random.default_rng(43)
    for cf, null in ((1e-9, 0), (0.3, 2), (1.0, 0), (4.0, 2)):
        kw = dict(num_null=null, capacity=(cf, priority), normalize="selected")
        for T in (90, 300, 800):
            logits = rng.standard_normal((T, E + null)).astype(np.float32)
            run_route(logits, E, K, target=target, **kw)


@pytest.mark.parametrize("target", ["cpu", "gpu-emulated"])
def test_capacity_score_ties_and_nan(target):
    """Score priority on raw weights with many exact ties, -0/+0, infinities and NaN (NaN
    last; ties to the lower token, then the lower slot) over several chunks: ids and
    weights equal the reference's exactly."""
    E, K = 6, 3
    values = np.array([-1.0, -0.0, 0.0, 0.5, 0.5, 1.0, INF, -INF, NAN], np.float32)
    rng = np.random.default_rng(47)
    for cf in (0.2, 0.7, 1.5):
        f = moe_mlir.compile_route(E, K, scoring="none", capacity=(cf, "score"),
                                   target=target)
        for T in (5, 120, 400):
            logits = values[rng.integers(0, len(values), size=(T, E))]
            ids, w = f(logits)
            rids, rw = ref.route(logits, ref.ExpertSpace(E), K, scoring="none",
                                 capacity=ref.Capacity(cf, "score"))
            assert np.array_equal(ids, rids), (cf, T)
            assert np.array_equal(w.view(np.uint32), rw.view(np.uint32)), (cf, T)
