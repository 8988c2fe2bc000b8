"""Gating-dispatch fusion changes nothing but the schedule: fused and
unfused pipelines give identical ids, weights and layer outputs, equal to the
reference under the conformance rule, for every fusable strategy; routes that
cannot be fused still compile and run unfused."""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance
from moe_mlir import reference as ref

H, F, E, N_NULL, K = 16, 24, 6, 2, 3


def _module(strategy, extra_args="", extra_operands="", attrs=""):
    S = E + N_NULL
    return f"""
func.func @f(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{S}xf32>, %wu: tensor<{E}x{H}x{F}xf32>,
             %wg: tensor<{E}x{H}x{F}xf32>, %wd: tensor<{E}x{F}x{H}xf32>{extra_args})
    -> (tensor<?x{H}xf32>, tensor<?x{K}xi32>, tensor<?x{K}xf32>) {{
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x{H}xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x{S}xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x{S}xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x{K}xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x{S}xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x{K}xf32>
  %ids, %w = moe.route %l{extra_operands} experts = <compute = {E}, null = {N_NULL}> k = {K}
      strategy = {strategy} normalize = non_null{attrs} into(%init_ids, %init_w)
      : tensor<?x{S}xf32> into tensor<?x{K}xi32>, tensor<?x{K}xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = {E}
      : tensor<?x{H}xf32>, tensor<?x{K}xi32> -> tensor<?x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x{H}xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H}xf32>
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<{E}x{H}x{F}xf32>) gate(%wg : tensor<{E}x{H}x{F}xf32>)
      down(%wd : tensor<{E}x{F}x{H}xf32>) activation = silu gated into(%init_y)
      : tensor<?x{H}xf32>, tensor<{E + 1}xi32> into tensor<?x{H}xf32>
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x{H}xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x{H}xf32>
  %out = moe.combine %y, %slots, %ids, %w, %x experts = <compute = {E}, null = {N_NULL}> into(%init_out)
      : tensor<?x{H}xf32>, tensor<?x{K}xi32>, tensor<?x{K}xi32>, tensor<?x{K}xf32>,
        tensor<?x{H}xf32> into tensor<?x{H}xf32>
  return %out, %ids, %w : tensor<?x{H}xf32>, tensor<?x{K}xi32>, tensor<?x{K}xf32>
}}
"""


def _module_with(strategy, extra):
    """The module of `strategy` with the optional routing operand `extra`
    ("k": k_per_token, "bias": a selection bias, None)."""
    S = E + N_NULL
    extra_args = extra_operands = ""
    if extra == "k":
        extra_args, extra_operands = ", %kpt: tensor<?xi32>", " k_per_token(%kpt : tensor<?xi32>)"
    if extra == "bias":
        extra_args, extra_operands = f", %sb: tensor<{S}xf32>", f" bias(%sb : tensor<{S}xf32>)"
    return _module(strategy, extra_args, extra_operands)


def _arguments(rng, tokens, extra):
    """x, the weights, every argument of the module, and the reference's
    routing keyword arguments."""
    S = E + N_NULL
    x = rng.standard_normal((tokens, H), dtype=np.float32)
    weights = [rng.standard_normal((H, S), dtype=np.float32) * 0.5,
               rng.standard_normal((E, H, F), dtype=np.float32) / 4,
               rng.standard_normal((E, H, F), dtype=np.float32) / 4,
               rng.standard_normal((E, F, H), dtype=np.float32) / 5]
    args = [x] + weights
    route_kwargs = {}
    if extra == "k":
        kpt = rng.integers(-1, K + 2, tokens).astype(np.int32)
        args.append(kpt)
        route_kwargs["k_per_token"] = kpt
    if extra == "bias":
        bias = (rng.standard_normal(S) * 0.3).astype(np.float32)
        args.append(bias)
        route_kwargs["selection_bias"] = bias
    return x, weights, args, route_kwargs


def _assert_fused_equals_unfused(fused, unfused, rng, tokens, extra, ref_strategy):
    """Runs both on the same random arguments: ids, weights and the layer
    output equal bit for bit, and the routing conforms to the reference."""
    x, weights, args, route_kwargs = _arguments(rng, tokens, extra)
    out_f, ids_f, w_f = fused(*args)
    out_u, ids_u, w_u = unfused(*args)
    np.testing.assert_array_equal(ids_f, ids_u)
    np.testing.assert_array_equal(w_f, w_u)
    np.testing.assert_array_equal(out_f, out_u)
    logits = (x @ weights[0]).astype(np.float32)
    conformance.assert_route_conforms(ids_f, w_f, logits, experts=ref.ExpertSpace(E, N_NULL),
                                      k=K, strategy=ref_strategy, normalize="non_null",
                                      **route_kwargs)


CASES = [
    ("top_k", None, ref.TopK()),
    ("top_p<p = 0.6>", None, ref.TopP(0.6)),
    ("adaptive<tau = 0.2>", None, ref.Adaptive(0.2)),
    ("threshold<tau = 0.1, k_min = 1>", None, ref.Threshold(0.1, 1)),
    ("dynamic_k", "k", ref.DynamicK()),
    ("top_k", "bias", ref.TopK()),
]


@pytest.mark.parametrize("strategy,extra,ref_strategy", CASES)
def test_fused_equals_unfused_and_reference(strategy, extra, ref_strategy):
    text = _module_with(strategy, extra)
    assert "moe.route_dispatch" in moe_mlir.lower(text, "moe-decompose-layer,canonicalize,"
                                                  "moe-fuse-gating-dispatch")
    fused = moe_mlir.compile(text, "f")                       # fusion is on by default
    unfused = moe_mlir.compile(text, "f", pipeline="moe-cpu-pipeline{fuse=false}")
    rng = np.random.default_rng(0)
    for tokens in (0, 1, 31, 32, 33, 100):                  # around the tile size 32
        _assert_fused_equals_unfused(fused, unfused, rng, tokens, extra, ref_strategy)


def test_unfusable_routes_still_run():
    """expert_choice (with S = E) and capacity are left unfused and match the
    reference."""
    text = _module("top_k", attrs=" capacity = <factor = 0.75, priority = score>")
    f = moe_mlir.compile(text, "f")
    assert "moe.route_dispatch" not in moe_mlir.lower(
        text, "moe-decompose-layer,canonicalize,moe-fuse-gating-dispatch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, H), dtype=np.float32)
    weights = [rng.standard_normal((H, E + N_NULL), dtype=np.float32) * 0.5,
               rng.standard_normal((E, H, F), dtype=np.float32) / 4,
               rng.standard_normal((E, H, F), dtype=np.float32) / 4,
               rng.standard_normal((E, F, H), dtype=np.float32) / 5]
    out, ids, w = f(x, *weights)
    logits = (x @ weights[0]).astype(np.float32)
    conformance.assert_route_conforms(ids, w, logits, experts=ref.ExpertSpace(E, N_NULL), k=K,
                                      normalize="non_null",
                                      capacity=ref.Capacity(0.75, "score"))


@pytest.mark.parametrize("groups,ref_groups", [
    ("<n = 3, top = 2>", ref.Groups(3, 2)),
    ("<n = 3, top = 2, score = max>", ref.Groups(3, 2, "max")),
    ("<n = 6, top = 3, score = max>", ref.Groups(6, 3, "max")),   # one expert per group
])
def test_fused_groups_equal_unfused_and_reference(groups, ref_groups):
    """Group-limited routing (both group scores, contract v1.1) in the fused
    moe.route_dispatch and in the unfused moe.route: same bits, and both
    conform to the reference."""
    text = _module("top_k", attrs=f" groups = {groups}").replace(
        f"null = {N_NULL}>", "null = 0>").replace(f"x{E + N_NULL}xf32", f"x{E}xf32")
    assert "moe.route_dispatch" in moe_mlir.lower(text, "moe-decompose-layer,canonicalize,"
                                                  "moe-fuse-gating-dispatch")
    fused = moe_mlir.compile(text, "f")
    unfused = moe_mlir.compile(text, "f", pipeline="moe-cpu-pipeline{fuse=false}")
    rng = np.random.default_rng(5)
    for tokens in (0, 1, 33, 100):
        x = rng.standard_normal((tokens, H), dtype=np.float32)
        weights = [rng.standard_normal((H, E), dtype=np.float32) * 0.5,
                   rng.standard_normal((E, H, F), dtype=np.float32) / 4,
                   rng.standard_normal((E, H, F), dtype=np.float32) / 4,
                   rng.standard_normal((E, F, H), dtype=np.float32) / 5]
        out_f, ids_f, w_f = fused(x, *weights)
        out_u, ids_u, w_u = unfused(x, *weights)
        np.testing.assert_array_equal(ids_f, ids_u)
        np.testing.assert_array_equal(w_f, w_u)
        np.testing.assert_array_equal(out_f, out_u)
        logits = (x @ weights[0]).astype(np.float32)
        conformance.assert_route_conforms(ids_f, w_f, logits, experts=ref.ExpertSpace(E), k=K,
                                          normalize="non_null", groups=ref_groups)


@pytest.mark.parametrize("strategy,extra,ref_strategy", CASES)
def test_fused_on_the_gpu_equals_unfused(strategy, extra, ref_strategy):
    """moe.route_dispatch through the GPU kernels (emulated): each token's thread computes
    its logits with moe.gate's dot product and routes from them (no [T, S] logits buffer),
    then the dispatch kernels run on the ids; ids, weights and the layer output equal the
    unfused GPU kernels' bit for bit, and conform to the reference."""
    text = _module_with(strategy, extra)
    fused_pipeline = "moe-fuse-gating-dispatch,moe-test-gpu-emulation-pipeline"
    assert "moe.route_dispatch" in moe_mlir.lower(text, "moe-fuse-gating-dispatch")
    fused = moe_mlir.compile(text, "f", pipeline=fused_pipeline)
    unfused = moe_mlir.compile(text, "f", target="gpu-emulated")
    rng = np.random.default_rng(1)
    for tokens in (0, 1, 33, 100):
        _assert_fused_equals_unfused(fused, unfused, rng, tokens, extra, ref_strategy)
