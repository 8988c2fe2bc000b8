"""Randomised differential test: compiled ``moe.route`` (``moe_mlir.compile_route``, CPU)
against the NumPy reference, under the section-5 comparison rule.

The configurations form a pairwise covering array (``covering.pairwise``) over

    strategy x scoring x normalize x expert kinds x capacity x groups x scale

restricted to what the contract allows (expert_choice: S = E, no capacity, no groups, no
selection bias; groups: S = E). Every row runs with three seeds: a tiny T (1..5), a large
T (64..200) and a medium T (6..63). The remaining parameters (E, K, p, tau, k_min,
capacity factor, groups n/top, scale value, selection bias, k_per_token in -3..K+3) are
drawn deterministically per row and seed, and each (row, seed) is compiled on its own. Inputs whose routing would be more than 5%
ambiguous (a badly chosen case, section 5) are regenerated with the next attempt seed
before the compiled code runs, so no row is ever skipped.
"""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance as conf
from moe_mlir import reference as ref

import covering

FACTORS = {
    "strategy": ["top_k", "top_p", "adaptive", "threshold", "dynamic_k", "expert_choice"],
    "scoring": ["softmax", "sigmoid", "none"],
    "normalize": ["none", "selected", "non_null"],
    "kinds": ["plain", "null", "null+copy", "null+copy+const"],
    "capacity": ["none", "score", "position"],
    "groups": ["none", "grouped"],
    "scale": ["one", "other"],
}


def valid(row):
    """The contract's restrictions on a complete row (section 2.2 / section 3)."""
    if row["strategy"] == "expert_choice":
        if row["kinds"] != "plain" or row["capacity"] != "none" or row["groups"] != "none":
            return False
    if row["groups"] != "none" and row["kinds"] != "plain":
        return False
    return True


ROWS = covering.pairwise(FACTORS, valid)
SEEDS = (0, 1, 2)
MAX_ATTEMPTS = 25


# --------------------------------------------------------------------------------------
# configuration of a row
# --------------------------------------------------------------------------------------
def make_config(index, row, seed):
    """Deterministic concrete parameters for covering-array row ``index`` and ``seed``
    (each seed draws its own E, K and strategy parameters: more variety per row)."""
    rng = np.random.default_rng([1234, index, seed])
    kinds = row["kinds"]
    grouped = row["groups"] == "grouped"
    if grouped:
        E = int(rng.choice([6, 8]))
    elif kinds == "plain":
        E = int(rng.integers(4, 9))
    else:
        E = int(rng.integers(4, 8))
    null = copy = const = 0
    if kinds != "plain":
        null = int(rng.integers(1, 3))
    if "copy" in kinds:
        copy = 1
    if "const" in kinds:
        const = int(rng.integers(1, 3))
    S = E + null + copy + const
    assert S <= 12
    ex = ref.ExpertSpace(E, null, copy, const)
    kmax = min(4, S)
    groups = None
    if grouped:
        # Half the grouped seeds score groups by their max (v1.1), which also
        # allows one expert per group; drawn from their own stream so the
        # other parameters of the row stay as they were.
        score = "max" if np.random.default_rng([4321, index, seed]).random() < 0.5 \
            else "top2_sum"
        sizes = (2, 3, 4, 8) if score == "max" else (2, 3, 4)
        n = int(rng.choice([d for d in sizes if E % d == 0 and E // d >= 1]))
        if score == "top2_sum" and E // n < 2:
            n = 2
        top = int(rng.integers(1, n + 1))
        kmax = min(kmax, top * (E // n))
        groups = (n, top, score)
    K = int(rng.integers(1, kmax + 1))
    scoring = row["scoring"]
    strategy = row["strategy"]
    params = {}
    if strategy == "top_p":
        params["p"] = float(rng.choice([0.3, 0.5, 0.7, 0.9, 1.0]))
        ref_strategy = ref.TopP(params["p"])
    elif strategy == "adaptive":
        choices = [0.0, 0.5, 1.5, 3.0] if scoring == "none" else [0.0, 0.05, 0.15, 0.3]
        params["tau"] = float(rng.choice(choices))
        ref_strategy = ref.Adaptive(params["tau"])
    elif strategy == "threshold":
        choices = {"softmax": [0.05, 0.1, 0.2], "sigmoid": [0.3, 0.6, 0.8],
                   "none": [-1.0, 0.5, 2.0]}[scoring]
        params["tau"] = float(rng.choice(choices))
        params["k_min"] = int(rng.integers(0, K + 1))
        ref_strategy = ref.Threshold(params["tau"], params["k_min"])
    elif strategy == "expert_choice":
        params["capacity_factor"] = float(rng.choice([0.5, 1.0, 1.25, 2.0, 3.0]))
        ref_strategy = ref.ExpertChoice(params["capacity_factor"])
    elif strategy == "dynamic_k":
        ref_strategy = ref.DynamicK()
    else:
        ref_strategy = ref.TopK()
    capacity = None
    if row["capacity"] != "none":
        capacity = (float(rng.choice([0.5, 1.0, 1.25, 2.0])), row["capacity"])
    scale = 1.0 if row["scale"] == "one" else float(rng.choice([2.5, 0.5, -1.25]))
    compile_args = dict(num_null=null, num_copy=copy, num_const=const, scoring=scoring,
                        strategy=strategy, normalize=row["normalize"], scale=scale,
                        capacity=capacity, groups=groups, **params)
    ref_args = dict(scoring=scoring, strategy=ref_strategy, normalize=row["normalize"],
                    scale=scale,
                    capacity=None if capacity is None else ref.Capacity(*capacity),
                    groups=None if groups is None else ref.Groups(*groups))
    return dict(E=E, S=S, K=K, ex=ex, compile_args=compile_args, ref_args=ref_args,
                strategy=strategy, scoring=scoring)


CONFIGS = {(i, s): make_config(i, row, s) for i, row in enumerate(ROWS) for s in SEEDS}


def compiled(index, seed):
    cfg = CONFIGS[index, seed]
    return moe_mlir.compile_route(cfg["E"], cfg["K"], **cfg["compile_args"])


def make_inputs(index, seed):
    """Deterministic inputs for (row, seed) whose routing is not badly chosen: returns
    (logits, extra route args, attempt, reference decisions)."""
    cfg = CONFIGS[index, seed]
    S, K = cfg["S"], cfg["K"]
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([99, index, seed, attempt])
        T = int({0: rng.integers(1, 6), 1: rng.integers(64, 201), 2: rng.integers(6, 64)}[seed])
        amp = rng.uniform(2.0, 4.0)
        logits = (amp * rng.standard_normal((T, S))).astype(np.float32)
        extra = {}
        if cfg["strategy"] == "dynamic_k":
            extra["k_per_token"] = rng.integers(-3, K + 4, size=T).astype(np.int32)
        if cfg["strategy"] != "expert_choice" and (index + seed) % 2 == 1:
            mag = 1.0 if cfg["scoring"] == "none" else 0.1
            extra["selection_bias"] = (mag * rng.standard_normal(S)).astype(np.float32)
        dec = ref.route_decisions(logits, cfg["ex"], K, **cfg["ref_args"], **extra)
        if dec.ambiguous_fraction <= conf.MAX_AMBIGUOUS_FRACTION:
            return logits, extra, attempt, dec
    raise AssertionError(f"row {index} seed {seed}: no well-chosen input in {MAX_ATTEMPTS} "
                         f"attempts (ambiguous fraction {dec.ambiguous_fraction:.2f})")


def _row_id(index):
    r = ROWS[index]
    return (f"r{index:02d}-{r['strategy']}-{r['scoring']}-{r['normalize']}-{r['kinds']}-"
            f"cap_{r['capacity']}-grp_{r['groups']}-scale_{r['scale']}")


CASES = [pytest.param(i, s, id=f"{_row_id(i)}-s{s}") for i in range(len(ROWS)) for s in SEEDS]


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------
def test_covering_array_covers_every_valid_pair():
    """The configuration rows are all valid and cover every valid pair of factor values,
    and the pairs the contract forbids are neither counted as valid nor generated."""
    needed = covering.valid_pairs(FACTORS, valid)
    got = covering.covered_pairs(ROWS, FACTORS)
    assert all(valid(r) for r in ROWS)
    assert needed <= got, f"uncovered pairs: {sorted(needed - got, key=str)[:10]}"
    # covered pairs are exactly the valid ones (no row contains a forbidden pair)
    assert got <= needed
    forbidden = [(("strategy", "expert_choice"), ("kinds", "null")),
                 (("strategy", "expert_choice"), ("capacity", "score")),
                 (("strategy", "expert_choice"), ("groups", "grouped")),
                 (("kinds", "null+copy+const"), ("groups", "grouped"))]
    for pair in forbidden:
        assert pair not in needed and pair not in got
    # every value of every factor appears, and the array is much smaller than the product
    for name, values in FACTORS.items():
        assert {r[name] for r in ROWS} == set(values)
    assert len(ROWS) < 40
    # the generator is deterministic
    assert covering.pairwise(FACTORS, valid) == ROWS


@pytest.mark.parametrize("index,seed", CASES)
def test_compiled_route_matches_reference(index, seed):
    """Compiled route == reference route on every non-ambiguous token: equal ids and
    weights within 1e-5 * max|ref row| + 1e-6 (section 5), for one covering-array row
    and one seed; also checks the result dtypes and shapes."""
    cfg = CONFIGS[index, seed]
    logits, extra, attempt, dec = make_inputs(index, seed)
    f = compiled(index, seed)
    ids, weights = f(logits, **extra)
    T = logits.shape[0]
    assert ids.dtype == np.int32 and ids.shape == (T, cfg["K"])
    assert weights.dtype == np.float32 and weights.shape == (T, cfg["K"])
    res = conf.compare_route(ids, weights, logits, cfg["ex"], cfg["K"], **cfg["ref_args"],
                             **extra)
    assert not res.badly_chosen, res.report()
    assert res.failures == [], (
        f"row {index} seed {seed} attempt {attempt} config {cfg['compile_args']} "
        f"E={cfg['E']} K={cfg['K']} T={T}\n{res.report()}")
    # empty slots are (-1, +0) and valid slots come first (section 2.2 step 6), on every
    # token including the ambiguous ones
    empty = ids == -1
    assert np.all(weights[empty] == 0)
    assert np.all(np.diff(empty.astype(np.int8), axis=1) >= 0)
    assert np.all((ids >= -1) & (ids < cfg["S"]))
