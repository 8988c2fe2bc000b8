"""The Python API contract of the compiled entry points (``moe_mlir.compile``,
``compile_route``, ``compile_layer``): input conversion, non-contiguous inputs, shape and
parameter errors, compile errors with the verifier's diagnostic, runtime result shapes,
tuples for several results, and the rule that the wrappers never use the NumPy reference.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance as conf
from moe_mlir import reference as ref


def logits_case(T=40, S=8, seed=0):
    return (3 * np.random.default_rng(seed).standard_normal((T, S))).astype(np.float32)


def same(a, b):
    """Results (arrays or tuples of arrays) are identical, bit for bit (NaN == NaN)."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@pytest.fixture(scope="module")
def route_topp():
    return moe_mlir.compile_route(6, 3, num_null=2, strategy="top_p", p=0.7,
                                  normalize="non_null")


@pytest.fixture(scope="module")
def route_dyn():
    return moe_mlir.compile_route(6, 3, num_null=2, strategy="dynamic_k", normalize="selected")


H, F, E = 8, 12, 4


@pytest.fixture(scope="module")
def layer_fn():
    return moe_mlir.compile_layer(H, F, E, 2, num_null=1, num_copy=1, normalize="selected",
                                  activation="gelu", gated=False)


def layer_ops(T=24, seed=1):
    rng = np.random.default_rng(seed)
    S = E + 2
    return dict(x=rng.standard_normal((T, H)).astype(np.float32),
                w_router=(3 / np.sqrt(H) * rng.standard_normal((H, S))).astype(np.float32),
                w_up=(rng.standard_normal((E, H, F)) / 3).astype(np.float32),
                w_down=(rng.standard_normal((E, F, H)) / 3).astype(np.float32),
                b_up=rng.standard_normal((E, F)).astype(np.float32),
                b_down=rng.standard_normal((E, H)).astype(np.float32))


# --------------------------------------------------------------------------------------
# dtype conversion
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int8, np.uint8,
                                   np.int64, np.bool_])
def test_route_converts_logits_to_float32(route_topp, dtype):
    """Logits of any float/int dtype are converted to float32: the result equals the call
    with ``logits.astype(float32)`` exactly, and it conforms to the reference."""
    raw = logits_case(S=8)
    if np.dtype(dtype).kind == "f":
        given = raw.astype(dtype)
    elif dtype is np.bool_:
        given = raw > 0
    else:
        info = np.iinfo(dtype)
        given = np.clip(np.round(raw), info.min, info.max).astype(dtype)
    f32 = given.astype(np.float32)
    out = route_topp(given)
    same(out, route_topp(f32))
    if dtype is not np.bool_ and dtype is not np.uint8:
        res = conf.compare_route(*out, f32, ref.ExpertSpace(6, 2), 3, strategy=ref.TopP(0.7),
                                 normalize="non_null", max_ambiguous_fraction=1.0)
        assert res.failures == [], res.report()
    # float64 values that are not float32-representable are rounded, not truncated
    if dtype is np.float64:
        nudged = raw.astype(np.float64) + 1e-12
        same(route_topp(nudged), route_topp(nudged.astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint16, np.uint8,
                                   np.uint32, np.uint64])
def test_route_converts_k_per_token(route_dyn, dtype):
    """Integer k_per_token of any dtype is accepted and gives the same result as int32
    (values beyond i32 behave like any value > K: clamped)."""
    logits = logits_case(T=12, S=8, seed=2)
    info = np.iinfo(dtype)
    values = np.array([0, 1, 2, 3, 4, 5, 100, 2, 1, 0, 3, 2], np.int64)
    values[6] = min(info.max, 100)
    kpt = values.astype(dtype)
    if info.min < 0:
        kpt[9] = -3
    expect = route_dyn(logits, k_per_token=np.clip(kpt.astype(np.int64), -2**31, 2**31 - 1)
                       .astype(np.int32))
    same(route_dyn(logits, k_per_token=kpt), expect)
    n = np.clip(kpt.astype(np.int64), 0, 3)
    assert np.array_equal((expect[0] >= 0).sum(axis=1), n)


def test_route_rejects_float_k_per_token(route_dyn):
    """A float k_per_token is not silently truncated: ValueError naming the argument."""
    with pytest.raises(ValueError, match="k_per_token"):
        route_dyn(logits_case(T=3, S=8), k_per_token=np.array([1.0, 2.0, 1.5]))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_layer_converts_inputs_to_float32(layer_fn, dtype):
    """Layer operands of other dtypes (float64, float16, int) are converted to float32:
    same result as the float32 copies."""
    ops = layer_ops()
    if np.dtype(dtype).kind == "f":
        given = {k: v.astype(dtype) for k, v in ops.items()}
    else:
        given = {k: np.round(v * 4).astype(dtype) for k, v in ops.items()}
    as32 = {k: v.astype(np.float32) for k, v in given.items()}
    same(layer_fn(**given), layer_fn(**as32))


# --------------------------------------------------------------------------------------
# non-contiguous inputs
# --------------------------------------------------------------------------------------
def test_route_non_contiguous_logits(route_topp, route_dyn):
    """Transposed views, step slices and negative strides give the same result as the
    contiguous copies (for logits, selection_bias and k_per_token)."""
    base = logits_case(T=60, S=8, seed=3)
    views = [np.ascontiguousarray(base.T).T,                         # transposed (F order)
             np.repeat(np.repeat(base, 2, axis=0), 3, axis=1)[::2, ::3],  # step slices
             np.ascontiguousarray(base[::-1])[::-1]]                  # negative strides
    for v in views:
        assert not v.flags.c_contiguous
        assert np.array_equal(v, base)
        same(route_topp(v), route_topp(base))
    bias = np.linspace(-0.05, 0.05, 16).astype(np.float32)
    same(route_topp(base, selection_bias=bias[::2]),
         route_topp(base, selection_bias=np.ascontiguousarray(bias[::2])))
    kpt = np.arange(120, dtype=np.int32) % 5 - 1
    same(route_dyn(views[1], k_per_token=kpt[::2]),
         route_dyn(base, k_per_token=np.ascontiguousarray(kpt[::2])))


def test_layer_non_contiguous_weights(layer_fn):
    """Layer weights given as transposed views (w_up stored [E,F,H] and transposed, a
    Fortran-order w_router) and x as a step slice: same result as contiguous copies."""
    ops = layer_ops(T=30, seed=4)
    nc = dict(ops)
    nc["w_up"] = np.ascontiguousarray(ops["w_up"].transpose(0, 2, 1)).transpose(0, 2, 1)
    nc["w_down"] = np.asfortranarray(ops["w_down"])
    nc["w_router"] = np.asfortranarray(ops["w_router"])
    nc["x"] = np.repeat(ops["x"], 2, axis=0)[::2]
    nc["b_up"] = np.ascontiguousarray(ops["b_up"].T).T
    for k in ("w_up", "w_router", "x", "b_up"):
        assert not nc[k].flags.c_contiguous
    same(layer_fn(**nc), layer_fn(**ops))


def test_compile_non_contiguous_arguments():
    """``moe_mlir.compile`` functions accept non-contiguous arrays too."""
    text = """
func.func @f(%x: tensor<?x8xf32>, %w: tensor<8x6xf32>) -> tensor<?x6xf32> {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x8xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x6xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x8xf32>, tensor<8x6xf32> into tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}
"""
    f = moe_mlir.compile(text, "f")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 8)).astype(np.float32)
    w = rng.standard_normal((8, 6)).astype(np.float32)
    same(f(np.asfortranarray(x), np.ascontiguousarray(w.T).T), f(x, w))
    conf.assert_close_rows(f(x, w), ref.gate(x, w))


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def test_route_wrong_shapes(route_topp, route_dyn):
    """A wrong shape is a ValueError naming the argument and the expected shape."""
    with pytest.raises(ValueError, match=r"'logits'.*\[T, 8\]"):
        route_topp(np.zeros((3, 7), np.float32))
    with pytest.raises(ValueError, match=r"'logits'.*\[T, 8\]"):
        route_topp(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match=r"'logits'.*\[T, 8\]"):
        route_topp(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"'selection_bias'.*\[8\]"):
        route_topp(np.zeros((3, 8), np.float32), selection_bias=np.zeros(6, np.float32))
    with pytest.raises(ValueError, match=r"'k_per_token'.*\[T\]"):
        route_dyn(np.zeros((3, 8), np.float32), k_per_token=np.zeros((3, 1), np.int32))
    with pytest.raises(ValueError, match=r"'k_per_token' has 4"):
        route_dyn(np.zeros((3, 8), np.float32), k_per_token=np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="target"):
        moe_mlir.compile_route(8, 2, target="gpu")


def test_layer_wrong_shapes(layer_fn):
    """Layer operands with a wrong shape raise ValueError naming the argument and its
    expected shape (with the concrete H, F, E, S)."""
    ops = layer_ops(T=5)
    cases = {"w_up": (np.zeros((E, H, F + 1)), r"'w_up'.*\[4, 8, 12\]"),
             "w_down": (np.zeros((E, F, H, 1)), r"'w_down'.*\[4, 12, 8\]"),
             "w_router": (np.zeros((H, 5)), r"'w_router'.*\[8, 6\]"),
             "x": (np.zeros((5, H + 1)), r"'x'.*\[T, 8\]"),
             "b_up": (np.zeros(F), r"'b_up'.*\[4, 12\]"),
             "b_down": (np.zeros((E + 1, H)), r"'b_down'.*\[4, 8\]")}
    for name, (bad, pattern) in cases.items():
        with pytest.raises(ValueError, match=pattern):
            layer_fn(**dict(ops, **{name: bad}))


@pytest.mark.parametrize("kw,pattern", [
    (dict(strategy="top_k", p=0.5), r"does not use 'p'"),
    (dict(strategy="top_p", p=0.5, tau=0.1), r"does not use 'tau'"),
    (dict(strategy="top_k", capacity_factor=1.0), r"does not use 'capacity_factor'"),
    (dict(strategy="adaptive", tau=0.1, k_min=1), r"does not use 'k_min'"),
    (dict(strategy="dynamic_k", tau=0.1), r"does not use 'tau'"),
    (dict(strategy="expert_choice", capacity_factor=1.0, p=0.5), r"does not use 'p'"),
    (dict(strategy="top_p"), r"requires 'p'"),
    (dict(strategy="adaptive"), r"requires 'tau'"),
    (dict(strategy="threshold", k_min=1), r"requires 'tau'"),
    (dict(strategy="expert_choice"), r"requires 'capacity_factor'"),
])
def test_unused_or_missing_parameters(kw, pattern):
    """A parameter the strategy does not use, or a missing required one, is a ValueError
    (for compile_route and compile_layer alike)."""
    with pytest.raises(ValueError, match=pattern):
        moe_mlir.compile_route(8, 2, **kw)
    with pytest.raises(ValueError, match=pattern):
        moe_mlir.compile_layer(8, 8, 8, 2, **kw)


@pytest.mark.parametrize("kw", [
    dict(k=9), dict(k=0), dict(strategy="top_p", p=1.5), dict(strategy="top_p", p=0.0),
    dict(strategy="adaptive", tau=-0.1), dict(strategy="threshold", tau=float("inf")),
    dict(strategy="threshold", tau=0.1, k_min=3), dict(capacity=(0.0, "score")),
    dict(capacity=(1.0, "random")), dict(strategy="expert_choice", capacity_factor=-1.0),
    dict(strategy="expert_choice", capacity_factor=1.0, capacity=(1.0, "score")),
    dict(scoring="relu"), dict(normalize="all"), dict(strategy="top_q"),
    dict(groups=(3, 1)), dict(groups=(2, 3)), dict(groups=(8, 1)), dict(k=5, groups=(4, 2)),
    dict(groups=(2, 1), num_null=2), dict(strategy="expert_choice", capacity_factor=1.0,
                                         num_null=1),
    dict(strategy="expert_choice", capacity_factor=1.0, groups=(2, 1)),
])
def test_invalid_configurations(kw):
    """Configurations the contract forbids are rejected with ValueError or CompileError
    (never a crash or a silently wrong function)."""
    args = dict(k=2)
    args.update(kw)
    k = args.pop("k")
    with pytest.raises((ValueError, moe_mlir.CompileError)):
        moe_mlir.compile_route(8, k, **args)


def test_call_time_argument_rules(route_topp, route_dyn):
    """k_per_token is required by (and only by) dynamic_k; expert_choice refuses a
    selection bias; a layer needs w_gate iff gated."""
    logits = logits_case(T=4, S=8)
    with pytest.raises(ValueError, match="k_per_token"):
        route_dyn(logits)
    with pytest.raises(ValueError, match="k_per_token"):
        route_topp(logits, k_per_token=np.ones(4, np.int32))
    ec = moe_mlir.compile_route(8, 2, strategy="expert_choice", capacity_factor=1.0)
    with pytest.raises(ValueError, match="selection_bias"):
        ec(logits, selection_bias=np.zeros(8, np.float32))
    gl = moe_mlir.compile_layer(H, F, E, 2)
    ops = layer_ops(T=3)
    with pytest.raises(ValueError, match="w_gate"):
        gl(ops["x"], np.zeros((H, E), np.float32), ops["w_up"], ops["w_down"])


ROUTE_IR = """
func.func @f(%l: tensor<?x8xf32>{ARGS}) -> (tensor<?x{K}xi32>, tensor<?x{K}xf32>) {{
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x{K}xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x{K}xf32>
  %ids, %w = moe.route %l{OPERANDS} experts = <compute = 8> k = {K} strategy = {STRATEGY} into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x{K}xi32>, tensor<?x{K}xf32>
  return %ids, %w : tensor<?x{K}xi32>, tensor<?x{K}xf32>
}}
"""


@pytest.mark.parametrize("args,operands,k,strategy,needles", [
    (", %b: tensor<8xf32>", " bias(%b : tensor<8xf32>)", 2,
     "expert_choice<capacity_factor = 1.0>", ["moe.route", "selection_bias", "expert_choice"]),
    ("", "", 9, "top_k", ["moe.route", "'k'", "9"]),
    ("", "", 2, "top_p<p = 1.5>", ["moe.route", "p"]),
    ("", "", 2, "dynamic_k", ["moe.route", "k_per_token"]),
])
def test_compile_error_carries_verifier_diagnostic(args, operands, k, strategy, needles):
    """Invalid IR given to moe_mlir.compile raises CompileError whose text contains the
    verifier's diagnostic (the op name and the offending operand/attribute)."""
    text = ROUTE_IR.format(ARGS=args, OPERANDS=operands, K=k, STRATEGY=strategy)
    with pytest.raises(moe_mlir.CompileError) as info:
        moe_mlir.compile(text, "f")
    message = str(info.value)
    assert "error" in message
    for needle in needles:
        assert needle in message, message
    assert isinstance(info.value, RuntimeError)


def test_compile_error_on_syntax_error():
    """Unparsable text is a CompileError with the parser's location."""
    with pytest.raises(moe_mlir.CompileError, match=r"1:\d+"):
        moe_mlir.compile("func.func @f( {", "f")


def test_bad_entry_name():
    """An entry that is not in the module is a KeyError."""
    text = ROUTE_IR.format(ARGS="", OPERANDS="", K=2, STRATEGY="top_k")
    with pytest.raises(KeyError, match="nope"):
        moe_mlir.compile(text, "nope")


def test_wrong_argument_count_and_shape_in_compile():
    """A compiled function checks the number of arguments (TypeError) and the static
    sizes (ValueError naming the expected shape with '?' for dynamic sizes)."""
    f = moe_mlir.compile(ROUTE_IR.format(ARGS="", OPERANDS="", K=2, STRATEGY="top_k"), "f")
    with pytest.raises(TypeError):
        f()
    with pytest.raises(ValueError, match=r"\[\?, 8\]"):
        f(np.zeros((3, 9), np.float32))


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
def test_dynamic_result_shapes_and_tuples():
    """Results with dynamic sizes come back with their runtime shapes (dispatch rows: R =
    number of compute slots; slot_rows: T), several results are a tuple in result order,
    a single result is a bare array."""
    text = """
func.func @f(%x: tensor<?x4xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<?x4xf32>, tensor<4xi32>, tensor<?x2xi32>) {
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 3
      : tensor<?x4xf32>, tensor<?x2xi32> -> tensor<?x4xf32>, tensor<4xi32>, tensor<?x2xi32>
  return %rows, %offsets, %slot_rows : tensor<?x4xf32>, tensor<4xi32>, tensor<?x2xi32>
}
func.func @g(%x: tensor<?x4xf32>, %ids: tensor<?x2xi32>) -> tensor<?x4xf32> {
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 3
      : tensor<?x4xf32>, tensor<?x2xi32> -> tensor<?x4xf32>, tensor<4xi32>, tensor<?x2xi32>
  return %rows : tensor<?x4xf32>
}
"""
    f = moe_mlir.compile(text, "f")
    g = moe_mlir.compile(text, "g")
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    for ids, R in [(np.array([[0, 1], [2, -1], [5, 0], [-1, -1], [1, 1]], np.int32), 6),
                   (np.full((5, 2), -1, np.int32), 0),
                   (np.zeros((5, 2), np.int32), 10)]:
        out = f(x, ids)
        assert isinstance(out, tuple) and len(out) == 3
        rows, offsets, slot_rows = out
        assert rows.shape == (R, 4) and offsets.shape == (4,) and slot_rows.shape == (5, 2)
        assert rows.dtype == np.float32 and offsets.dtype == np.int32
        assert offsets[-1] == R
        single = g(x, ids)
        assert isinstance(single, np.ndarray) and single.shape == (R, 4)
        assert np.array_equal(single, rows)
        r_rows, r_off, r_sr = ref.dispatch(x, ids, 3)
        assert np.array_equal(rows, r_rows) and np.array_equal(offsets, r_off)
        assert np.array_equal(slot_rows, r_sr)
    rows, offsets, slot_rows = f(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.int32))
    assert rows.shape == (0, 4) and slot_rows.shape == (0, 2) and offsets.tolist() == [0] * 4


def test_result_that_returns_an_argument():
    """A function returning one of its arguments next to a new value gives both back
    correctly (the argument's values, not a view of freed memory)."""
    text = """
func.func @f(%x: tensor<?x4xf32>, %w: tensor<4x3xf32>) -> (tensor<?x4xf32>, tensor<?x3xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x4xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x3xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x4xf32>, tensor<4x3xf32> into tensor<?x3xf32>
  return %x, %0 : tensor<?x4xf32>, tensor<?x3xf32>
}
"""
    f = moe_mlir.compile(text, "f")
    x = np.arange(1, 41, dtype=np.float32).reshape(10, 4)
    w = np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(4, 3)
    for _ in range(3):
        same_x, logits = f(x, w)
        assert np.array_equal(same_x, x)
        conf.assert_close_rows(logits, ref.gate(x, w))


def test_same_value_returned_twice():
    """``return %0, %0``: both results hold the gate's values (results that alias one
    buffer must all be copied before the buffer is freed)."""
    text = """
func.func @f(%x: tensor<?x4xf32>, %w: tensor<4x3xf32>) -> (tensor<?x3xf32>, tensor<?x3xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x4xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x3xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x4xf32>, tensor<4x3xf32> into tensor<?x3xf32>
  return %0, %0 : tensor<?x3xf32>, tensor<?x3xf32>
}
"""
    f = moe_mlir.compile(text, "f")
    x = np.arange(1, 41, dtype=np.float32).reshape(10, 4)
    w = np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(4, 3)
    expect = ref.gate(x, w)
    for _ in range(3):
        a, b = f(x, w)
        conf.assert_close_rows(a, expect)
        conf.assert_close_rows(b, expect)


def test_route_results_are_fresh_arrays(route_topp):
    """Each call returns new, writable, owned arrays: mutating one result does not change
    the next call's result, and the results survive the inputs being freed."""
    logits = logits_case(T=10, S=8, seed=6)
    ids1, w1 = route_topp(logits.copy())
    ids1[:] = 99
    w1[:] = -5
    ids2, w2 = route_topp(logits)
    assert not np.any(ids2 == 99) and not np.any(w2 == -5)
    assert ids2.flags.writeable and w2.flags.writeable


# --------------------------------------------------------------------------------------
# the wrappers run without the reference
# --------------------------------------------------------------------------------------
NO_REFERENCE_SCRIPT = textwrap.dedent(r"""
    import sys
    sys.modules["moe_mlir.reference"] = None   # any import of it raises ImportError
    import numpy as np
    import moe_mlir

    try:
        from moe_mlir import reference  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")

    # route, scoring none, selected: weights are raw / sum, ids by descending logit
    f = moe_mlir.compile_route(4, 2, scoring="none", normalize="selected")
    ids, w = f(np.array([[4, 3, 2, 1], [1, 2, 3, 4], [0, 0, 5, 0], [1, 1, 1, 1]], np.float32))
    assert ids.tolist() == [[0, 1], [3, 2], [2, 0], [0, 1]], ids
    assert np.allclose(w, [[4 / 7, 3 / 7], [4 / 7, 3 / 7], [1, 0], [0.5, 0.5]], atol=1e-6), w

    # softmax top_p with a null expert, compared with a NumPy softmax
    g = moe_mlir.compile_route(3, 3, num_null=1, strategy="top_p", p=0.95, normalize="none")
    logits = np.array([[3.0, 0.0, 0.0, -2.0], [0.0, 0.5, 1.0, 4.0]], np.float32)
    ids, w = g(logits)
    s = np.exp(logits - logits.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    # row 0: running sums 0.904, 0.949, 0.994 (ties 1/2 by index); row 1: 0.911, 0.956
    assert ids.tolist() == [[0, 1, 2], [3, 2, -1]], ids
    assert np.allclose(w, [[s[0, 0], s[0, 1], s[0, 2]], [s[1, 3], s[1, 2], 0]], atol=1e-6), w

    # dynamic_k clamps k_per_token
    d = moe_mlir.compile_route(4, 2, strategy="dynamic_k", scoring="none")
    ids, w = d(np.array([[1, 2, 3, 4]] * 3, np.float32), k_per_token=np.array([-5, 1, 2**40]))
    assert ids.tolist() == [[-1, -1], [3, -1], [3, 2]], ids

    # layer: E = 2 (relu FFNs 2*relu(x) and -relu(x)), one copy expert, K = 1,
    # scoring none + selected -> weight 1 for the chosen expert
    H = 4
    layer = moe_mlir.compile_layer(H, H, 2, 1, num_copy=1, scoring="none", normalize="selected",
                                   activation="relu", gated=False)
    eye = np.eye(H, dtype=np.float32)
    w_router = np.zeros((H, 3), np.float32)
    w_router[0, 0] = w_router[1, 1] = w_router[2, 2] = 10.0
    x = np.array([[1.0, 0.1, -0.2, 0.3], [0.1, 1.0, -0.5, 0.5], [0.0, 0.2, 1.0, -0.7]],
                 np.float32)
    y = layer(x, w_router, np.stack([2 * eye, eye]), np.stack([eye, -eye]))
    expect = np.stack([2 * np.maximum(x[0], 0), -np.maximum(x[1], 0), x[2]])
    assert y.shape == (3, H) and np.allclose(y, expect, atol=1e-6), (y, expect)
    assert layer(np.zeros((0, H), np.float32), w_router, np.stack([2 * eye, eye]),
                 np.stack([eye, -eye])).shape == (0, H)

    assert sys.modules.get("moe_mlir.reference") is None
    assert "moe_mlir.conformance" not in sys.modules
    print("NO-REFERENCE-OK")
""")


def test_wrappers_run_without_the_reference(tmp_path):
    """In a fresh interpreter where ``moe_mlir.reference`` cannot be imported,
    compile_route and compile_layer still compile and run, and produce values fixed by
    the contract (checked against literals and plain NumPy math)."""
    script = tmp_path / "no_reference.py"
    script.write_text(NO_REFERENCE_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NO-REFERENCE-OK" in proc.stdout


def test_integer_values_outside_the_element_type_are_rejected():
    """An int64 value that does not fit the i32 ids of a compiled function is
    refused (it would otherwise wrap around and could become a valid expert
    id); in-range int64 values are converted."""
    text = """
func.func @f(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>) {
  %r, %o, %s = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  return %r, %o, %s : tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
}
"""
    f = moe_mlir.compile(text, "f")
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"argument '#1' holds values outside the range of i32"):
        f(x, np.array([[2**32 + 1, 0], [1, 2]], np.int64))
    rows, offsets, slots = f(x, np.array([[3, 0], [1, -7]], np.int64))
    assert offsets.tolist() == [0, 1, 2, 2, 3]
    assert slots.tolist() == [[2, 0], [1, -1]]


@pytest.mark.parametrize("case", ["combine", "route", "ffn"])
def test_runtime_size_mismatch_is_reported_not_out_of_bounds(case):
    """Dynamic sizes the contract ties together (T of ids and x, K of ids and
    weights, H of y and x, the width S of the logits) are checked at run time:
    a mismatch raises ValueError after the call instead of reading or writing
    out of bounds, and the next well-formed call works."""
    texts = {
        "combine": """
func.func @f(%y: tensor<?x?xf32>, %s: tensor<?x?xi32>, %ids: tensor<?x?xi32>,
             %w: tensor<?x?xf32>, %x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x?xf32>
  %init_0_c1 = arith.constant 1 : index
  %init_0_d1 = tensor.dim %x, %init_0_c1 : tensor<?x?xf32>
  %init_0 = tensor.empty(%init_0_d0, %init_0_d1) : tensor<?x?xf32>
  %0 = moe.combine %y, %s, %ids, %w, %x experts = <compute = 4, copy = 1> into(%init_0)
      : tensor<?x?xf32>, tensor<?x?xi32>, tensor<?x?xi32>, tensor<?x?xf32>, tensor<?x?xf32> into tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}""",
        "route": """
func.func @f(%l: tensor<?x?xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x?xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x?xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 6> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x?xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}""",
        "ffn": """
func.func @f(%r: tensor<?x?xf32>, %o: tensor<?xi32>, %u: tensor<?x?x?xf32>,
             %d: tensor<?x?x?xf32>) -> tensor<?x?xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %r, %init_y_c0 : tensor<?x?xf32>
  %init_y_c1 = arith.constant 1 : index
  %init_y_d1 = tensor.dim %r, %init_y_c1 : tensor<?x?xf32>
  %init_y = tensor.empty(%init_y_d0, %init_y_d1) : tensor<?x?xf32>
  %y = moe.expert_ffn %r, %o up(%u : tensor<?x?x?xf32>) down(%d : tensor<?x?x?xf32>)
      activation = relu into(%init_y) : tensor<?x?xf32>, tensor<?xi32> into tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}""",
    }
    f = moe_mlir.compile(texts[case], "f")
    rng = np.random.default_rng(0)
    if case == "combine":
        good = [np.ones((3, 8), np.float32), np.zeros((5, 2), np.int32),
                np.zeros((5, 2), np.int32), np.ones((5, 2), np.float32),
                np.ones((5, 8), np.float32)]
        bad = list(good)
        bad[4] = np.ones((500, 8), np.float32)     # x has more tokens than ids
        bad2 = list(good)
        bad2[3] = np.ones((5, 7), np.float32)      # weights K != ids K
    elif case == "route":
        good = [rng.standard_normal((4, 6), dtype=np.float32)]
        bad = [rng.standard_normal((4, 3), dtype=np.float32)]   # S = 3, not 6
        bad2 = [rng.standard_normal((4, 60), dtype=np.float32)]
    else:
        good = [np.ones((4, 8), np.float32), np.array([0, 2, 4], np.int32),
                np.ones((2, 8, 5), np.float32), np.ones((2, 5, 8), np.float32)]
        bad = list(good)
        bad[3] = np.ones((2, 5, 3), np.float32)    # w_down's H != rows' H
        bad2 = list(good)
        bad2[1] = np.array([0, 4], np.int32)       # offsets of E + 1 = 3 entries expected
    expected = f(*good)
    for args in (bad, bad2):
        with pytest.raises(ValueError, match="runtime sizes of the arguments"):
            f(*args)
    again = f(*good)
    for a, b in zip(expected if isinstance(expected, tuple) else [expected],
                    again if isinstance(again, tuple) else [again]):
        np.testing.assert_array_equal(a, b)


def test_runtime_errors_are_per_call_with_many_threads():
    """Each call reports its errors through its own status argument (no
    process-global flag): threads calling one compiled function at once,
    half of them with sizes that disagree, see exactly their own errors."""
    import threading
    from moe_mlir.compiler import CompiledModule
    text = """
func.func @f(%l: tensor<?x?xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x?xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x?xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 6> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x?xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}"""
    module = CompiledModule(text)
    assert "moe_runtime_error" not in module.lowered
    assert "{moe.status})" in module.lowered
    f = module["f"]
    rng = np.random.default_rng(1)
    good = rng.standard_normal((20000, 6), dtype=np.float32)
    bad = rng.standard_normal((20000, 5), dtype=np.float32)   # S = 5, not 6
    expected = f(good)
    failures = []

    def worker(index):
        for _ in range(20):
            if index % 2:
                try:
                    f(bad)
                    failures.append("a bad call did not raise")
                except ValueError as error:
                    if "moe.route" not in str(error):
                        failures.append(str(error))
            else:
                try:
                    ids, weights = f(good)
                except ValueError as error:
                    failures.append(f"a good call raised: {error}")
                    continue
                if not (np.array_equal(ids, expected[0]) and
                        np.array_equal(weights, expected[1])):
                    failures.append("a good call returned other values")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
