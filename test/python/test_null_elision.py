"""Null experts are realised: the expert FFN does work only for compute slots.

With the instrumented pipeline (instrument_ffn), every moe.expert_ffn counts,
per expert, the rows it processes and the multiply-adds its inner loops
execute. These tests show the counts equal the compute slots that the route
produced, exactly: null, copy, constant and empty slots cost nothing.
"""
import numpy as np
import pytest

import moe_mlir

H, F, E = 16, 24, 6


def _module(null, copy, strategy, extra=""):
    S = E + null + copy
    space = f"<compute = {E}" + (f", null = {null}" if null else "") + \
        (f", copy = {copy}" if copy else "") + ">"
    return S, f"""
func.func @moe(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{S}xf32>, %wu: tensor<{E}x{H}x{F}xf32>,
               %wg: tensor<{E}x{H}x{F}xf32>, %wd: tensor<{E}x{F}x{H}xf32>{extra})
    -> (tensor<?x{H}xf32>, tensor<?x4xi32>) {{
  %init_logits_c0 = arith.constant 0 : index
  %init_logits_d0 = tensor.dim %x, %init_logits_c0 : tensor<?x{H}xf32>
  %init_logits = tensor.empty(%init_logits_d0) : tensor<?x{S}xf32>
  %logits = moe.gate %x, %wr into(%init_logits) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %logits, %init_ids_c0 : tensor<?x{S}xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %logits, %init_w_c0 : tensor<?x{S}xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %ids, %w = moe.route %logits{" k_per_token(%kpt : tensor<?xi32>)" if extra else ""}
      experts = {space} k = 4 strategy = {strategy} normalize = non_null into(%init_ids, %init_w)
      : tensor<?x{S}xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  %rows, %offsets, %slots = moe.dispatch %x, %ids num_experts = {E}
      : tensor<?x{H}xf32>, tensor<?x4xi32> -> tensor<?x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x4xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x{H}xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H}xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<{E}x{H}x{F}xf32>)
      gate(%wg : tensor<{E}x{H}x{F}xf32>) down(%wd : tensor<{E}x{F}x{H}xf32>)
      activation = silu gated into(%init_y) : tensor<?x{H}xf32>, tensor<{E + 1}xi32> into tensor<?x{H}xf32>
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x{H}xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x{H}xf32>
  %out = moe.combine %y, %slots, %ids, %w, %x experts = {space} into(%init_out)
      : tensor<?x{H}xf32>, tensor<?x4xi32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x{H}xf32> into tensor<?x{H}xf32>
  return %out, %ids : tensor<?x{H}xf32>, tensor<?x4xi32>
}}
"""


def _weights(rng, S, router_bias_to=None):
    wr = rng.standard_normal((H, S), dtype=np.float32)
    if router_bias_to is not None:
        wr[:, router_bias_to] += 0.8   # make some experts (null ones) popular
    return [wr, rng.standard_normal((E, H, F), dtype=np.float32) / 4,
            rng.standard_normal((E, H, F), dtype=np.float32) / 4,
            rng.standard_normal((E, F, H), dtype=np.float32) / 5]


@pytest.mark.parametrize("null,copy,strategy", [
    (0, 0, "top_k"),                      # dense top-4: every slot is a compute slot
    (4, 0, "top_k"),                      # AdaMoE: null experts take slots
    (3, 2, "top_k"),                      # MoE++: zero and copy experts
    (0, 0, "top_p<p = 0.5>"),             # variable k: empty slots
    (2, 0, "dynamic_k"),                  # per-token k, incl. 0 and out of range
])
def test_ffn_work_equals_compute_slots(null, copy, strategy):
    """Rows processed per expert == compute slots routed to it, and
    multiply-adds == rows * 3 * H * F (gated FFN), exactly."""
    extra = ", %kpt: tensor<?xi32>" if strategy == "dynamic_k" else ""
    S, text = _module(null, copy, strategy, extra)
    f = moe_mlir.compile(text, "moe", instrument_ffn=True)
    counters = f.module.counters(0)
    rng = np.random.default_rng(null * 10 + copy)
    weights = _weights(rng, S, router_bias_to=list(range(E, S)) or None)
    totals = np.zeros((E, 2), np.int64)
    for tokens in (0, 1, 37, 200):
        x = rng.standard_normal((tokens, H), dtype=np.float32)
        args = [x] + weights
        if extra:
            args.append(rng.integers(-2, 7, tokens))
        counters[:] = 0
        _, ids = f(*args)
        slots = np.array([(ids == e).sum() for e in range(E)], np.int64)
        np.testing.assert_array_equal(counters[:, 0], slots)
        np.testing.assert_array_equal(counters[:, 1], slots * 3 * H * F)
        totals += counters
    if null or copy or strategy != "top_k":
        # Fewer compute slots than a dense top-4 layer would run.
        assert totals[:, 0].sum() < (1 + 37 + 200) * 4
    else:
        assert totals[:, 0].sum() == (1 + 37 + 200) * 4


def test_empty_expert_reads_no_weights():
    """An expert that no token chooses does not run: its counters stay 0,
    and poisoning its weights with NaN does not change the output."""
    S, text = _module(2, 0, "top_k")
    f = moe_mlir.compile(text, "moe", instrument_ffn=True)
    counters = f.module.counters(0)
    rng = np.random.default_rng(5)
    wr, wu, wg, wd = _weights(rng, S)
    x = np.abs(rng.standard_normal((50, H), dtype=np.float32)) + 0.1
    wr[:, 0] = -100.0        # positive x: expert 0's logit is far below the rest
    counters[:] = 0
    y, ids = f(x, wr, wu, wg, wd)
    assert not (ids == 0).any()
    assert counters[0].tolist() == [0, 0]
    for w in (wu, wg, wd):
        w[0] = np.nan
    y2, _ = f(x, wr, wu, wg, wd)
    np.testing.assert_array_equal(y, y2)
