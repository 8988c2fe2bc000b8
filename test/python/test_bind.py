"""Weights bound once: compile_layer(...).bind(...) packs the expert weights
into the kernels' 32-column panels (the `packed` layout) and returns a
callable on x. Packing changes the schedule only: bound and unbound calls
give the same bits, for widths that are and are not multiples of 32, gated
or not, with biases and with a per-token k. bf16 storage is checked against
the reference run on the bf16-rounded weights, and documented as an error
against f32 weights. Parallel code gives the same bits on 1 and 2 threads."""
import os

import numpy as np
import pytest

import moe_mlir
from moe_mlir import compiler, conformance
from moe_mlir import reference as ref
from moe_mlir.routing import compile_layer, pack_panels


def _weights(rng, H, F, E, S, gated=True, biases=False):
    w = dict(w_router=rng.standard_normal((H, S), dtype=np.float32) / np.sqrt(H),
             w_up=rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),
             w_down=rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F))
    if gated:
        w["w_gate"] = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    if biases:
        w["b_up"] = rng.standard_normal((E, F), dtype=np.float32)
        w["b_down"] = rng.standard_normal((E, H), dtype=np.float32)
    return w


def test_pack_panels_layout():
    w = np.arange(2 * 3 * 40, dtype=np.float32).reshape(2, 3, 40)
    p = pack_panels(w)
    assert p.shape == (2, 2, 3, 32)
    for e in range(2):
        for d in range(3):
            for j in range(40):
                assert p[e, j // 32, d, j % 32] == w[e, d, j]
    assert not p[:, 1, :, 8:].any()  # padding


@pytest.mark.parametrize("H,F", [(64, 96), (40, 100), (33, 17), (16, 256)])
@pytest.mark.parametrize("T", [0, 1, 5, 37])
def test_bound_equals_unbound(H, F, T):
    E, K = 4, 2
    layer = compile_layer(H, F, E, K, num_null=2, normalize="non_null")
    rng = np.random.default_rng(H * 1000 + F + T)
    w = _weights(rng, H, F, E, E + 2)
    x = rng.standard_normal((T, H), dtype=np.float32)
    unbound = layer(x, **w)
    bound = layer.bind(**w)
    assert bound(x).tobytes() == unbound.tobytes()
    # And it is the layer of the contract.
    conformance.assert_layer_conforms(bound(x), x, w["w_router"], w["w_up"], w["w_down"],
                                      ref.ExpertSpace(compute=E, null=2), K,
                                      w_gate=w["w_gate"], normalize="non_null")


def test_bound_not_gated_with_biases():
    H, F, E, K = 48, 70, 3, 2
    layer = compile_layer(H, F, E, K, activation="gelu", gated=False, normalize="selected")
    rng = np.random.default_rng(3)
    w = _weights(rng, H, F, E, E, gated=False, biases=True)
    x = rng.standard_normal((19, H), dtype=np.float32)
    assert layer.bind(**w)(x).tobytes() == layer(x, **w).tobytes()


def test_bound_dynamic_k():
    H, F, E, K = 32, 64, 4, 3
    layer = compile_layer(H, F, E, K, strategy="dynamic_k", normalize="selected")
    rng = np.random.default_rng(4)
    w = _weights(rng, H, F, E, E)
    x = rng.standard_normal((11, H), dtype=np.float32)
    k = rng.integers(0, 4, size=11).astype(np.int32)
    bound = layer.bind(**w)
    assert bound(x, k_per_token=k).tobytes() == layer(x, k_per_token=k, **w).tobytes()
    with pytest.raises(ValueError, match="k_per_token"):
        bound(x)


def test_bf16_storage():
    """bf16 weights, f32 compute: equal to the reference on the rounded
    weights under the conformance rule; against the f32 weights the error is
    the rounding of the weights (documented bound: 1e-2 of the row's max)."""
    H, F, E, K = 64, 96, 4, 2
    layer = compile_layer(H, F, E, K, normalize="selected")
    rng = np.random.default_rng(5)
    w = _weights(rng, H, F, E, E)
    x = rng.standard_normal((23, H), dtype=np.float32)
    got = layer.bind(**w, weight_dtype="bf16")(x)
    rounded = {n: (compiler._bf16_bits_to_float(compiler._float_to_bf16_bits(a))
                   if n in ("w_up", "w_gate", "w_down") else a) for n, a in w.items()}
    conformance.assert_layer_conforms(got, x, rounded["w_router"], rounded["w_up"],
                                      rounded["w_down"], ref.ExpertSpace(compute=E), K,
                                      w_gate=rounded["w_gate"], normalize="selected")
    exact = layer(x, **w)
    scale = np.abs(exact).max(axis=1, keepdims=True)
    assert (np.abs(got - exact) <= 1e-2 * scale + 1e-5).all()


def test_bind_rejects_bad_weights():
    layer = compile_layer(32, 64, 4, 2)
    rng = np.random.default_rng(6)
    w = _weights(rng, 32, 64, 4, 4)
    with pytest.raises(ValueError, match="'w_up' must have shape"):
        layer.bind(**dict(w, w_up=w["w_up"][:, :, :60]))
    with pytest.raises(ValueError, match="weight_dtype"):
        layer.bind(**w, weight_dtype="f16")
    with pytest.raises(ValueError, match="'w_gate' is required"):
        layer.bind(**{n: a for n, a in w.items() if n != "w_gate"})
    bound = layer.bind(**w)
    with pytest.raises(ValueError, match="'x' must have shape"):
        bound(np.zeros((3, 31), np.float32))


@pytest.mark.skipif(compiler.openmp_runtime() is None, reason="no OpenMP runtime")
def test_threads_give_the_same_bits():
    H, F, E, K = 64, 128, 8, 2
    layer = compile_layer(H, F, E, K, normalize="selected")
    rng = np.random.default_rng(7)
    w = _weights(rng, H, F, E, E)
    x = rng.standard_normal((300, H), dtype=np.float32)
    bound = layer.bind(**w)
    try:
        moe_mlir.set_num_threads(1)
        one = bound(x)
        moe_mlir.set_num_threads(2)
        two = bound(x)
    finally:
        moe_mlir.set_num_threads(os.cpu_count() or 1)
    assert one.tobytes() == two.tobytes()
    with pytest.raises(ValueError):
        moe_mlir.set_num_threads(0)


def test_packed_ffn_every_register_block():
    """The packed expert FFN on experts with 0..19 rows each: every register
    block of the kernel (8 and 4 rows panel by panel with prefetch; 2 and 1
    rows across a group of 4 panels; the lone panel and the masked last
    panel) against the reference, and against the unpacked weights bit for
    bit (the blocking never changes a value)."""
    H, F = 160, 200  # up: a group of 4 panels, 2 panels, a masked one
    counts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 19]
    E = len(counts)
    rng = np.random.default_rng(8)
    w_up = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    w_gate = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    w_down = rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    rows = rng.standard_normal((int(offsets[-1]), H), dtype=np.float32)

    def text(packed):
        up = f"{E}x{-(-F // 32)}x{H}x32xf32" if packed else f"{E}x{H}x{F}xf32"
        down = f"{E}x{-(-H // 32)}x{F}x32xf32" if packed else f"{E}x{F}x{H}xf32"
        return f"""
func.func @ffn(%rows: tensor<?x{H}xf32>, %offsets: tensor<{E + 1}xi32>,
               %wu: tensor<{up}>, %wg: tensor<{up}>, %wd: tensor<{down}>) -> tensor<?x{H}xf32> {{
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x{H}xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H}xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<{up}>) gate(%wg : tensor<{up}>)
      down(%wd : tensor<{down}>) activation = silu gated {"packed" if packed else ""} into(%init_y)
      : tensor<?x{H}xf32>, tensor<{E + 1}xi32> into tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}"""
    packed = moe_mlir.compile(text(True), "ffn")(
        rows, offsets, pack_panels(w_up), pack_panels(w_gate), pack_panels(w_down))
    plain = moe_mlir.compile(text(False), "ffn")(rows, offsets, w_up, w_gate, w_down)
    want = ref.expert_ffn(rows, offsets, w_up, w_down, w_gate=w_gate, activation="silu")
    conformance.assert_close_rows(packed, want)
    assert packed.tobytes() == plain.tobytes()
