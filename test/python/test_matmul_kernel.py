"""The register-blocked router matmul (lib/Conversion/MoEToLoops/
MatmulKernel.cpp): every token count around its 4-row blocks and every width
around its 32/16-column blocks and masked tail, bias, bf16 weights, weights
whose innermost stride is not 1 (copied at run time), all against the
reference gate under the conformance rule; and the fused route_dispatch
tile reproduces moe.gate's values bit for bit."""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance
from moe_mlir import reference as ref

H = 24


def _gate(S, bias=False, wtype="f32"):
    b_arg = f", %b: tensor<{S}xf32>" if bias else ""
    b_op = f" bias(%b : tensor<{S}xf32>)" if bias else ""
    return moe_mlir.compile(f"""
func.func @f(%x: tensor<?x{H}xf32>, %w: tensor<{H}x{S}x{wtype}>{b_arg}) -> tensor<?x{S}xf32> {{
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x{H}xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x{S}xf32>
  %l = moe.gate %x, %w{b_op} into(%init_l) : tensor<?x{H}xf32>, tensor<{H}x{S}x{wtype}> into tensor<?x{S}xf32>
  return %l : tensor<?x{S}xf32>
}}""", "f")


@pytest.mark.parametrize("S", [1, 4, 15, 16, 17, 31, 32, 33, 48, 63, 100])
@pytest.mark.parametrize("T", [0, 1, 3, 4, 5, 9])
def test_gate_shapes(S, T):
    rng = np.random.default_rng(S * 100 + T)
    x = rng.standard_normal((T, H), dtype=np.float32)
    w = rng.standard_normal((H, S), dtype=np.float32)
    b = rng.standard_normal(S, dtype=np.float32)
    got = _gate(S, bias=True)(x, w, b)
    assert got.shape == (T, S)
    conformance.assert_close_rows(got, ref.gate(x, w, b))
    got = _gate(S)(x, w)
    conformance.assert_close_rows(got, ref.gate(x, w))


def test_gate_bf16_weights():
    S = 37
    rng = np.random.default_rng(7)
    x = rng.standard_normal((11, H), dtype=np.float32)
    w = rng.standard_normal((H, S), dtype=np.float32)
    # bf16 arguments take float32 arrays and round them to nearest even.
    w_rounded = moe_mlir.compiler._bf16_bits_to_float(moe_mlir.compiler._float_to_bf16_bits(w))
    got = _gate(S, wtype="bf16")(x, w)
    conformance.assert_close_rows(got, ref.gate(x, w_rounded))


def test_gate_strided_weights_are_copied():
    # A weight whose innermost stride is 2: the kernel's vector loads need a
    # unit stride, so the lowering copies it (checked at run time).
    S = 20
    f = moe_mlir.compile(f"""
func.func @f(%x: tensor<?x{H}xf32>, %w: tensor<{H}x{2 * S}xf32>) -> tensor<?x{S}xf32> {{
  %ws = tensor.extract_slice %w[0, 0] [{H}, {S}] [1, 2] : tensor<{H}x{2 * S}xf32> to tensor<{H}x{S}xf32>
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x{H}xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x{S}xf32>
  %l = moe.gate %x, %ws into(%init_l) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>
  return %l : tensor<?x{S}xf32>
}}""", "f")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, H), dtype=np.float32)
    w = rng.standard_normal((H, 2 * S), dtype=np.float32)
    conformance.assert_close_rows(f(x, w), ref.gate(x, w[:, ::2]))


@pytest.mark.parametrize("S", [5, 16, 40, 70])
@pytest.mark.parametrize("T", [1, 4, 33, 70])
def test_fused_tile_equals_gate_bits(S, T):
    # route_dispatch's tiles (32 tokens, 4-row blocks inside) against
    # moe.gate over all T: the routing decisions and raw weights of top_k
    # with scoring = none are the logits themselves, so equal weights mean
    # equal logits, bit for bit.
    K = min(3, S)
    text = f"""
func.func @f(%x: tensor<?x{H}xf32>, %w: tensor<{H}x{S}xf32>) -> (tensor<?x{K}xi32>, tensor<?x{K}xf32>) {{
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x{H}xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x{S}xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x{S}xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x{K}xi32>
  %init_wts_c0 = arith.constant 0 : index
  %init_wts_d0 = tensor.dim %l, %init_wts_c0 : tensor<?x{S}xf32>
  %init_wts = tensor.empty(%init_wts_d0) : tensor<?x{K}xf32>
  %ids, %wts = moe.route %l experts = <compute = {S}> k = {K} scoring = none strategy = top_k into(%init_ids, %init_wts)
      : tensor<?x{S}xf32> into tensor<?x{K}xi32>, tensor<?x{K}xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = {S}
      : tensor<?x{H}xf32>, tensor<?x{K}xi32> -> tensor<?x{H}xf32>, tensor<{S + 1}xi32>, tensor<?x{K}xi32>
  return %ids, %wts : tensor<?x{K}xi32>, tensor<?x{K}xf32>
}}"""
    fused = moe_mlir.compile(text, "f")
    unfused = moe_mlir.compile(text, "f", pipeline="moe-cpu-pipeline{fuse=false}")
    rng = np.random.default_rng(S + T)
    x = rng.standard_normal((T, H), dtype=np.float32)
    w = rng.standard_normal((H, S), dtype=np.float32)
    ids_f, w_f = fused(x, w)
    ids_u, w_u = unfused(x, w)
    np.testing.assert_array_equal(ids_f, ids_u)
    assert w_f.tobytes() == w_u.tobytes()
