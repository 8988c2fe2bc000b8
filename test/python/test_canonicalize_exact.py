"""Each canonicalization of a routing configuration is exact: the compiled
(rewritten) route equals the reference of the ORIGINAL configuration bit for
bit in ids and within the route tolerance in weights, on inputs with NaN
rows, NaN and infinite entries, ties and -0. (The rewrites themselves are
checked by test/Dialect/MoE/canonicalize.mlir.)"""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance
from moe_mlir import reference as ref

NAN, INF = np.float32(np.nan), np.float32(np.inf)


def _nasty_logits(tokens, width, seed):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((tokens, width)) * 3).astype(np.float32)
    logits[1, :] = NAN                      # a NaN row
    logits[2, 3] = NAN                      # one NaN entry
    logits[3, 1] = INF
    logits[4, :] = 0.5                      # all tied
    logits[5, :2] = (-0.0, 0.0)             # -0 and +0
    logits[6, 2] = -INF
    return logits


def _route_text(tokens, width, k, attrs, extra_arg="", extra_operand=""):
    return (f"func.func @f(%l: tensor<{tokens}x{width}xf32>{extra_arg}) "
            f"-> (tensor<{tokens}x{k}xi32>, tensor<{tokens}x{k}xf32>) {{\n"
            f"  %i0 = tensor.empty() : tensor<{tokens}x{k}xi32>\n"
            f"  %w0 = tensor.empty() : tensor<{tokens}x{k}xf32>\n"
            f"  %i, %w = moe.route %l{extra_operand} {attrs} into(%i0, %w0)\n"
            f"      : tensor<{tokens}x{width}xf32> into tensor<{tokens}x{k}xi32>, tensor<{tokens}x{k}xf32>\n"
            f"  return %i, %w : tensor<{tokens}x{k}xi32>, tensor<{tokens}x{k}xf32>\n}}\n")


CASES = [
    # (attributes, reference arguments, experts, k)
    ("experts = <compute = 8> k = 3 strategy = top_p<p = 1.0> normalize = selected",
     dict(strategy=ref.TopP(1.0), normalize="selected"), ref.ExpertSpace(8), 3),
    ("experts = <compute = 8> k = 1 scoring = sigmoid strategy = top_p<p = 0.3> scale = 2.0",
     dict(scoring="sigmoid", strategy=ref.TopP(0.3), scale=2.0), ref.ExpertSpace(8), 1),
    ("experts = <compute = 6, null = 2> k = 3 scoring = none strategy = threshold<tau = 0.5, k_min = 3> normalize = non_null",
     dict(scoring="none", strategy=ref.Threshold(0.5, 3), normalize="non_null"),
     ref.ExpertSpace(6, 2), 3),
    ("experts = <compute = 8> k = 2 strategy = top_k capacity = <factor = 4.0, priority = score>",
     dict(capacity=ref.Capacity(4.0, "score")), ref.ExpertSpace(8), 2),
    ("experts = <compute = 8> k = 2 strategy = top_k normalize = selected groups = <n = 4, top = 4>",
     dict(groups=ref.Groups(4, 4), normalize="selected"), ref.ExpertSpace(8), 2),
    ("experts = <compute = 6, copy = 2> k = 3 strategy = top_k normalize = non_null scale = 0.5",
     dict(normalize="non_null", scale=0.5), ref.ExpertSpace(6, copy=2), 3),
]


@pytest.mark.parametrize("attrs,kwargs,experts,k", CASES)
def test_rewritten_route_equals_original_semantics(attrs, kwargs, experts, k):
    tokens = 16
    f = moe_mlir.compile(_route_text(tokens, experts.S, k, attrs), "f")
    for seed in range(3):
        logits = _nasty_logits(tokens, experts.S, seed)
        ids, weights = f(logits)
        rids, rweights = ref.route(logits, experts, k, **kwargs)
        np.testing.assert_array_equal(ids, rids)
        np.testing.assert_allclose(weights, rweights, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_constant_k_per_token_rewrite_is_exact():
    """dynamic_k with a constant k_per_token >= K (folded to top_k)."""
    tokens, width, k = 16, 8, 2
    text = _route_text(tokens, width, k, "experts = <compute = 8> k = 2 strategy = dynamic_k",
                       extra_operand=" k_per_token(%kpt : tensor<16xi32>)")
    text = text.replace("{\n  %i", "{\n  %kpt = arith.constant dense<"
                        + str([2, 3, 100, 2] * 4) + "> : tensor<16xi32>\n  %i")
    f = moe_mlir.compile(text, "f")
    assert "dynamic_k" not in moe_mlir.lower(text)
    logits = _nasty_logits(tokens, width, 7)
    ids, weights = f(logits)
    rids, rweights = ref.route(logits, ref.ExpertSpace(8), k, strategy=ref.DynamicK(),
                               k_per_token=np.array([2, 3, 100, 2] * 4))
    np.testing.assert_array_equal(ids, rids)
    np.testing.assert_allclose(weights, rweights, rtol=1e-6, atol=1e-7, equal_nan=True)
