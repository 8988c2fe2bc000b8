"""Regression tests for what fuzzing found (issue 11): every hostile input of
the classes the fuzzers hit gets a documented error type naming the file,
key or parameter, never a crash, an out-of-bounds access, uninitialised
memory, or a silently wrong result. The compiled cases run under ASan in
scripts/sanitize.sh like every other compiled test."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import moe_mlir
from moe_mlir import aot
from moe_mlir import reference as ref
from moe_mlir.export import ExportError, export_checkpoint, safetensors

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))


# ---------------------------------------------------------------------------
# Static result sizes are checked against dynamic operand sizes at run time
# ---------------------------------------------------------------------------
_STATIC_RESULTS = {
    # name: (module, good arguments(T), the T the static result types say)
    "gate": ("""
func.func @f(%x: tensor<?x8xf32>, %w: tensor<8x6xf32>) -> tensor<4x6xf32> {
  %init_0 = tensor.empty() : tensor<4x6xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x8xf32>, tensor<8x6xf32> into tensor<4x6xf32>
  return %0 : tensor<4x6xf32>
}""", lambda T: [np.ones((T, 8), np.float32), np.ones((8, 6), np.float32)]),
    "route": ("""
func.func @f(%l: tensor<?x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %init_i = tensor.empty() : tensor<4x2xi32>
  %init_w = tensor.empty() : tensor<4x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x8xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}""", lambda T: [np.arange(T * 8, dtype=np.float32).reshape(T, 8)]),
    "dispatch": ("""
func.func @f(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<16x8xf32>, tensor<5xi32>, tensor<4x2xi32>) {
  %r, %o, %s = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<16x8xf32>, tensor<5xi32>, tensor<4x2xi32>
  return %r, %o, %s : tensor<16x8xf32>, tensor<5xi32>, tensor<4x2xi32>
}""", lambda T: [np.ones((T, 8), np.float32), np.zeros((T, 2), np.int32)]),
    "grouped_matmul": ("""
func.func @f(%l: tensor<?x8xf32>, %r: tensor<2x8x3xf32>, %o: tensor<3xi32>) -> tensor<4x3xf32> {
  %init = tensor.empty() : tensor<4x3xf32>
  %0 = moe.grouped_matmul %l, %r, %o into(%init)
      : tensor<?x8xf32>, tensor<2x8x3xf32>, tensor<3xi32> into tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}""", lambda T: [np.ones((T, 8), np.float32), np.ones((2, 8, 3), np.float32),
                  np.array([0, T // 2, T], np.int32)]),
    "expert_ffn": ("""
func.func @f(%r: tensor<?x8xf32>, %o: tensor<3xi32>, %u: tensor<2x8x5xf32>,
             %d: tensor<2x5x8xf32>) -> tensor<4x8xf32> {
  %init_y = tensor.empty() : tensor<4x8xf32>
  %y = moe.expert_ffn %r, %o up(%u : tensor<2x8x5xf32>) down(%d : tensor<2x5x8xf32>)
      activation = relu into(%init_y) : tensor<?x8xf32>, tensor<3xi32> into tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}""", lambda T: [np.ones((T, 8), np.float32), np.array([0, T // 2, T], np.int32),
                  np.ones((2, 8, 5), np.float32), np.ones((2, 5, 8), np.float32)]),
    "combine": ("""
func.func @f(%y: tensor<?x8xf32>, %s: tensor<?x2xi32>, %ids: tensor<?x2xi32>,
             %w: tensor<?x2xf32>, %x: tensor<?x8xf32>) -> tensor<4x8xf32> {
  %init_0 = tensor.empty() : tensor<4x8xf32>
  %0 = moe.combine %y, %s, %ids, %w, %x experts = <compute = 4, copy = 1> into(%init_0)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> into tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}""", lambda T: [np.ones((3, 8), np.float32), np.zeros((T, 2), np.int32),
                  np.full((T, 2), 4, np.int32), np.ones((T, 2), np.float32),
                  np.ones((T, 8), np.float32)]),
    "layer": ("""
func.func @f(%x: tensor<?x8xf32>, %wr: tensor<8x4xf32>, %wu: tensor<4x8x6xf32>,
             %wd: tensor<4x6x8xf32>) -> tensor<4x8xf32> {
  %y = moe.layer %x router(%wr : tensor<8x4xf32>) up(%wu : tensor<4x8x6xf32>)
      down(%wd : tensor<4x6x8xf32>) experts = <compute = 4> k = 2 strategy = top_k
      activation = relu : tensor<?x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}""", lambda T: [np.linspace(-1, 1, T * 8, dtype=np.float32).reshape(T, 8),
                  np.ones((8, 4), np.float32), np.ones((4, 8, 6), np.float32),
                  np.ones((4, 6, 8), np.float32)]),
}


@pytest.mark.parametrize("pipeline", ["moe-cpu-pipeline",
                                      "moe-test-gpu-emulation-pipeline"],
                         ids=["cpu", "gpu-emulated"])
@pytest.mark.parametrize("op", sorted(_STATIC_RESULTS))
def test_static_result_size_checked_at_run_time(op, pipeline):
    """A static result size (T = 4) that a dynamic operand size decides is
    compared at run time, by the CPU kernels and by the GPU kernels (run on
    the host): a smaller T used to write past the result, a larger one
    returned uninitialised rows. Now both raise ValueError and the op does
    not run; T = 4 runs."""
    text, arguments = _STATIC_RESULTS[op]
    f = moe_mlir.compile(text, "f", pipeline=pipeline)
    results = f(*arguments(4))
    for r in results if isinstance(results, tuple) else [results]:
        assert np.all(np.isfinite(np.asarray(r, np.float64)))
    for T in (2, 6, 300):
        with pytest.raises(ValueError, match="static sizes of its results"):
            f(*arguments(T))
    again = f(*arguments(4))
    for a, b in zip(results if isinstance(results, tuple) else [results],
                    again if isinstance(again, tuple) else [again]):
        np.testing.assert_array_equal(a, b)


def test_static_result_larger_than_memory():
    """A static result size no machine can hold (2^40 tokens, 8 TB of ids)
    against a real T: the check fails, and the results the failed op
    returns are not allocated (malloc returns null) rather than zeroed
    through a null pointer."""
    text = """
func.func @f(%l: tensor<?x8xf32>) -> (tensor<1099511627776x2xi32>, tensor<1099511627776x2xf32>) {
  %init_i = tensor.empty() : tensor<1099511627776x2xi32>
  %init_w = tensor.empty() : tensor<1099511627776x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x8xf32> into tensor<1099511627776x2xi32>, tensor<1099511627776x2xf32>
  return %i, %w : tensor<1099511627776x2xi32>, tensor<1099511627776x2xf32>
}"""
    f = moe_mlir.compile(text, "f")
    for T in (0, 4):
        with pytest.raises(ValueError, match="static sizes of its results"):
            f(np.ones((T, 8), np.float32))


def test_fused_routing_with_the_largest_tile():
    """The tile buffer of moe.route_dispatch holds min(tile, T) rows: the
    largest tile allowed works for a few tokens and equals the unfused ops
    (tile = 2^31 used to write through a null pointer), and its static
    results are checked like any other."""
    unfused = """
func.func @f(%x: tensor<?x8xf32>, %wr: tensor<8x6xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<7xi32>, tensor<?x2xi32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x8xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x6xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x8xf32>, tensor<8x6xf32> into tensor<?x6xf32>
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x6xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x6xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 6> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x6xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %r, %o, %s = moe.dispatch %x, %i num_experts = 6
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<7xi32>, tensor<?x2xi32>
  return %i, %w, %r, %o, %s : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<7xi32>, tensor<?x2xi32>
}"""
    fused = """
func.func @f(%x: tensor<?x8xf32>, %wr: tensor<8x6xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<7xi32>, tensor<IDSxi32>) {
  %0:5 = moe.route_dispatch %x router(%wr : tensor<8x6xf32>) experts = <compute = 6> k = 2
      strategy = top_k tile = 65536
      : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<7xi32>,
        tensor<IDSxi32>
  return %0#0, %0#1, %0#2, %0#3, %0#4 : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32>, tensor<7xi32>, tensor<IDSxi32>
}"""
    rng = np.random.default_rng(3)
    wr = rng.standard_normal((8, 6), dtype=np.float32)
    want_f = moe_mlir.compile(unfused, "f", pipeline="moe-cpu-pipeline{fuse=false}")
    got_f = moe_mlir.compile(fused.replace("IDS", "?x2"), "f")
    for T in (0, 1, 3, 40):
        x = rng.standard_normal((T, 8), dtype=np.float32)
        for a, b in zip(want_f(x, wr), got_f(x, wr)):
            np.testing.assert_array_equal(a, b)
    static = moe_mlir.compile(fused.replace("IDS", "3x2"), "f")
    static(rng.standard_normal((3, 8), dtype=np.float32), wr)
    with pytest.raises(ValueError, match="static sizes of its results"):
        static(rng.standard_normal((5, 8), dtype=np.float32), wr)


# ---------------------------------------------------------------------------
# Scalar and dtype checks of compiled functions
# ---------------------------------------------------------------------------
_SCALAR = """
func.func @f(%a: tensor<?xf32>, %n: i32, %s: f32) -> (tensor<?xf32>, i32, f32) {
  return %a, %n, %s : tensor<?xf32>, i32, f32
}"""


def test_scalar_integer_arguments_never_wrap_or_truncate():
    f = moe_mlir.compile(_SCALAR, "f")
    a = np.ones(2, np.float32)
    assert f(a, 7, 0.5)[1:] == (7, 0.5)
    assert f(a, np.int64(-2**31), 1)[1] == -2**31
    with pytest.raises(ValueError, match=r"argument '#1' must lie in \[-2147483648, 2147483647\]"):
        f(a, 2**40, 0.5)
    with pytest.raises(ValueError, match=r"argument '#1' must be an integer \(i32\), got 1.5"):
        f(a, 1.5, 0.5)
    for bad in ("3", None, True, [1]):
        with pytest.raises(ValueError, match="argument '#1' must be an integer"):
            f(a, bad, 0.5)
    for bad in ("x", None, 1j):
        with pytest.raises(ValueError, match="argument '#2' must be a real number"):
            f(a, 1, bad)


@pytest.mark.parametrize("array", [np.ones(3, np.complex64), np.array(["a", "b"]),
                                   np.array(["2020-01-01"], dtype="datetime64[D]"),
                                   np.array([1, "x"], dtype=object)],
                         ids=["complex", "string", "datetime", "object"])
def test_non_real_tensor_arguments_are_rejected(array):
    """Complex values used to be accepted with the imaginary part dropped."""
    f = moe_mlir.compile(_SCALAR, "f")
    with pytest.raises(ValueError, match=r"argument '#0' must hold real numbers \(f32\)"):
        f(array, 1, 1.0)


@pytest.mark.parametrize("level", [-1, 4, 100, 2.0, "3", True])
def test_opt_level_is_checked(level):
    with pytest.raises(ValueError, match="'opt_level' must be an integer in \\[0, 3\\]"):
        moe_mlir.compile(_SCALAR, "f", opt_level=level)


# ---------------------------------------------------------------------------
# compile_route parameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw, name", [
    (dict(strategy="top_p", p="0.5"), "p"), (dict(strategy="adaptive", tau=None), "tau"),
    (dict(strategy="adaptive", tau="1"), "tau"), (dict(scale=None), "scale"),
    (dict(scale="2"), "scale"), (dict(capacity=("a", "score")), "capacity factor"),
    (dict(capacity=(None, "score")), "capacity factor"),
    (dict(strategy="expert_choice", capacity_factor="1"), "capacity_factor"),
    (dict(strategy="threshold", tau=0.1, k_min=1.5), "k_min"),
    (dict(groups=("a", 1)), "groups n"), (dict(strategy="top_p", p=[0.5]), "p"),
])
def test_route_parameters_of_the_wrong_type_name_the_parameter(kw, name):
    with pytest.raises(ValueError, match=f"'?{name}'?"):
        moe_mlir.compile_route(num_experts=8, k=2, **kw)


def test_huge_capacity_factor_is_no_limit():
    """The reference used to raise OverflowError for factors >= 1e19; such a
    capacity cannot bind, in the reference and in compiled code."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((9, 8), dtype=np.float32)
    experts = ref.ExpertSpace(8)
    for cf in (1e19, 1e300):
        for priority in ("score", "position"):
            want = ref.route(logits, experts, 2)
            got = ref.route_decisions(logits, experts, 2, capacity=ref.Capacity(cf, priority))
            np.testing.assert_array_equal(got.ids, want[0])
            route = moe_mlir.compile_route(num_experts=8, k=2, capacity=(cf, priority))
            ids, _ = route(logits)
            np.testing.assert_array_equal(ids, want[0])
        got = ref.route_decisions(logits, experts, 2, strategy=ref.ExpertChoice(cf))
        assert (got.ids >= 0).sum() == 9 * 2


# ---------------------------------------------------------------------------
# Bound weights are owned
# ---------------------------------------------------------------------------
def test_bind_owns_every_weight():
    """bind() used to keep a reference to the caller's w_router: changing the
    array after binding changed later results."""
    rng = np.random.default_rng(2)
    H, F, E = 16, 8, 4
    layer = moe_mlir.compile_layer(hidden=H, ffn=F, num_experts=E, k=2, gated=False,
                                   activation="relu")
    w = dict(w_router=rng.standard_normal((H, E), dtype=np.float32),
             w_up=rng.standard_normal((E, H, F), dtype=np.float32),
             w_down=rng.standard_normal((E, F, H), dtype=np.float32),
             b_router=rng.standard_normal(E, dtype=np.float32),
             b_up=rng.standard_normal((E, F), dtype=np.float32),
             b_down=rng.standard_normal((E, H), dtype=np.float32))
    x = rng.standard_normal((5, H), dtype=np.float32)
    f = layer.bind(**w)
    before = f(x)
    for array in w.values():
        array *= -3.0
    np.testing.assert_array_equal(f(x), before)
    for array in f.weights.values():
        assert not array.flags.writeable


# ---------------------------------------------------------------------------
# bf16 rounding keeps subnormals
# ---------------------------------------------------------------------------
def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def test_bf16_truncation_keeps_subnormals():
    """f32 -> bf16 in compiled code rounds to nearest even with subnormals
    kept, on every CPU (AVX512-BF16's vcvtneps2bf16 flushes them to zero)."""
    text = """
func.func @t(%a: tensor<?xf32>) -> tensor<?xbf16> {
  %0 = arith.truncf %a : tensor<?xf32> to tensor<?xbf16>
  return %0 : tensor<?xbf16>
}"""
    f = moe_mlir.compile(text, "t")
    tiny = np.float32(2.0 ** -126)
    x = np.array([1e-40, -1e-40, tiny * 0.999, 9.2e-41, 1e-45, 3e-45, tiny, 1.0 + 2**-8,
                  3.0, np.inf, -np.inf, 3.4e38, 0.0, -0.0], np.float32)
    np.testing.assert_array_equal(_bits(f(x)), _bits(ref.round_to_bf16(x)))
    assert np.count_nonzero(f(x)[:4]) == 4


def test_bf16_expert_ffn_keeps_subnormal_intermediates():
    """The FFN's intermediates are rounded to the rows' type: bf16 rows whose
    products are subnormal conform to the reference (which keeps them)."""
    E, H, F, R = 2, 32, 32, 6
    rng = np.random.default_rng(5)
    rows = ref.round_to_bf16(rng.standard_normal((R, H)).astype(np.float32) * 1e-20)
    w_up = ref.round_to_bf16(rng.standard_normal((E, H, F)).astype(np.float32) * 1e-19)
    w_down = ref.round_to_bf16(rng.standard_normal((E, F, H)).astype(np.float32) * 1e19)
    offsets = np.array([0, 3, R], np.int32)
    text = f"""
func.func @f(%r: tensor<?x{H}xbf16>, %o: tensor<3xi32>, %u: tensor<{E}x{H}x{F}xbf16>,
             %d: tensor<{E}x{F}x{H}xbf16>) -> tensor<?x{H}xbf16> {{
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %r, %init_y_c0 : tensor<?x{H}xbf16>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H}xbf16>
  %y = moe.expert_ffn %r, %o up(%u : tensor<{E}x{H}x{F}xbf16>) down(%d : tensor<{E}x{F}x{H}xbf16>)
      activation = relu into(%init_y) : tensor<?x{H}xbf16>, tensor<3xi32> into tensor<?x{H}xbf16>
  return %y : tensor<?x{H}xbf16>
}}"""
    got = moe_mlir.compile(text, "f")(rows, offsets, w_up, w_down)
    want = ref.expert_ffn(rows, offsets, w_up, w_down, activation="relu", gated=False,
                          elem_type="bf16")
    assert np.count_nonzero(want) > 0
    np.testing.assert_array_equal(_bits(got), _bits(want))


# ---------------------------------------------------------------------------
# Readers raise their documented error types
# ---------------------------------------------------------------------------
def _safetensors_file(tmp_path, header, data=b"\0" * 16, name="t.safetensors"):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return str(path)


_BAD_SAFETENSORS = {
    "offsets_int": {"a": {"dtype": "F32", "shape": [1], "data_offsets": 5}},
    "offsets_str": {"a": {"dtype": "F32", "shape": [1], "data_offsets": "0,4"}},
    "offsets_empty": {"a": {"dtype": "F32", "shape": [1], "data_offsets": []}},
    "offsets_float": {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}},
    "dtype_list": {"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}},
    "dtype_null": {"a": {"dtype": None, "shape": [1], "data_offsets": [0, 4]}},
    "shape_overflow": {"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}},
    "shape_huge_dim": {"a": {"dtype": "F32", "shape": [2**70], "data_offsets": [0, 4]}},
    "shape_zero_huge": {"a": {"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}},
    "shape_bool": {"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}},
    "shape_str": {"a": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}},
    "entry_str": {"a": "F32"},
    "header_list": [1, 2],
    "nested": b"[" * 100000 + b"]" * 100000,
    "not_utf8": b"\xff\xfe{}",
    "outside": {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}},
}


@pytest.mark.parametrize("case", sorted(_BAD_SAFETENSORS))
def test_safetensors_reader_raises_its_error(tmp_path, case):
    path = _safetensors_file(tmp_path, _BAD_SAFETENSORS[case])
    with pytest.raises(safetensors.SafetensorsError, match=str(path)):
        safetensors.load(path)
    try:
        safetensors.metadata(path)
    except safetensors.SafetensorsError:
        pass


def test_safetensors_reader_unreadable_and_truncated(tmp_path):
    with pytest.raises(safetensors.SafetensorsError, match="cannot read"):
        safetensors.load(str(tmp_path / "missing.safetensors"))
    with pytest.raises(safetensors.SafetensorsError, match="cannot read"):
        safetensors.metadata(str(tmp_path))
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\1\0")
    for reader in (safetensors.load, safetensors.metadata):
        with pytest.raises(safetensors.SafetensorsError, match="truncated"):
            reader(str(short))


def _checkpoint(tmp_path, **moe):
    config = {"format": "moe-mlir-checkpoint/1", "hidden_size": 8, "num_layers": 1,
              "moe": {"ffn_size": 4, "num_experts": 2, "top_k": 1, **moe}}
    return config


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c.update(hidden_size=None), "'hidden_size'"),
    (lambda c: c.update(hidden_size=[8]), "'hidden_size'"),
    (lambda c: c.update(num_layers=True), "'num_layers'"),
    (lambda c: c["moe"].update(ffn_size=0), "'ffn_size' in 'moe' must be >= 1"),
    (lambda c: c["moe"].update(ffn_size=-4), "'ffn_size' in 'moe' must be >= 1"),
    (lambda c: c["moe"].update(num_experts=None), "'num_experts'"),
    (lambda c: c["moe"].update(top_k=[1]), "'top_k'"),
    (lambda c: c["moe"].update(num_null_experts=-1), "'num_null_experts'"),
    (lambda c: c["moe"].update(scale=None), "scale"),
    (lambda c: c["moe"].update(scale=True), "'scale'"),
    (lambda c: c["moe"].update(capacity={"factor": "1", "priority": "score"}),
     "capacity factor"),
    (lambda c: c["moe"].update(capacity={"factor": 1.0, "priority": 3}), "'capacity'"),
    (lambda c: c["moe"].update(groups={"n": "2", "top": 1}), "'groups'"),
    (lambda c: c.update(hidden_size=2**40), "'hidden_size' must be < 2\\^31"),
])
def test_checkpoint_config_values_are_checked(tmp_path, mutate, needle):
    config = _checkpoint(tmp_path)
    mutate(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    weights = _safetensors_file(tmp_path, {})
    with pytest.raises(ExportError, match=needle):
        export_checkpoint(str(path), weights)


@pytest.mark.parametrize("content", [b"[" * 100000, b"\xff\xfe{}", b"{"])
def test_checkpoint_config_bad_json(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ExportError, match="not valid JSON"):
        export_checkpoint(str(path), str(tmp_path / "w.safetensors"))


_GOOD_LIB = """
func.func @f(%a: tensor<?xf32>) -> tensor<?xf32> {
  return %a : tensor<?xf32>
}"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("aot") / "libf.so")
    aot.build_shared_library(_GOOD_LIB, path)
    return path


@pytest.mark.parametrize("content", [
    b"", b"\xff", b"[" * 100000, b"[]", b'{"format": "other"}',
    b'{"format": "moe_mlir.aot/1", "abi": 2}', b'{"format": "moe_mlir.aot/1", "abi": 3}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": []}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": {"f": 3}}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": {"f": [["tensor<?xf32>"], [1], true]}}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": {"f": [["tensor<?xf32>"], [], "yes"]}}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": {"f": [["tensor<?xf32>"], [], true, [1]]}}',
    b'{"format": "moe_mlir.aot/1", "abi": 2, "functions": {"f": [[], [], true, ["a"]]}}',
])
def test_aot_load_rejects_malformed_signatures(library, tmp_path, content):
    copy = tmp_path / "libf.so"
    copy.write_bytes(open(library, "rb").read())
    (tmp_path / "libf.so.json").write_bytes(content)
    with pytest.raises(ValueError, match="not a valid moe_mlir AOT signature file"):
        aot.load(str(copy))


def test_aot_load_recognises_a_library_of_the_old_abi(library, tmp_path):
    # A signature file without "abi" was written before the status argument
    # (ABI 1: errors in the library's global moe_runtime_error).
    copy = tmp_path / "libf.so"
    copy.write_bytes(open(library, "rb").read())
    meta = json.load(open(library + ".json"))
    assert meta["abi"] == aot.ABI_VERSION == 2
    del meta["abi"]
    (tmp_path / "libf.so.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="built by an older moe_mlir with ABI 1 .*rebuild"):
        aot.load(str(copy))


def test_aot_signature_naming_a_missing_symbol(library, tmp_path):
    copy = tmp_path / "libf.so"
    copy.write_bytes(open(library, "rb").read())
    (tmp_path / "libf.so.json").write_text(json.dumps(
        {"format": "moe_mlir.aot/1", "abi": 2,
         "functions": {"g": [["tensor<?xf32>"], [], True]}}))
    with pytest.raises(ValueError, match="no symbol _mlir_ciface_g"):
        aot.load(str(copy))["g"]


# ---------------------------------------------------------------------------
# moe-run
# ---------------------------------------------------------------------------
def _moe_run(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-m", "moe_mlir.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_moe_run_reports_bad_files_and_arguments(tmp_path):
    (tmp_path / "bin.mlir").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "unranked.mlir").write_text(
        "func.func @forward(%a: tensor<*xf32>) -> tensor<*xf32> {\n"
        "  return %a : tensor<*xf32>\n}\n")
    (tmp_path / "ok.mlir").write_text(
        "func.func @forward(%a: tensor<?xf32>) -> tensor<?xf32> {\n"
        "  return %a : tensor<?xf32>\n}\n")
    np.save(tmp_path / "x.npy", np.arange(3, dtype=np.float32))
    np.save(tmp_path / "c.npy", np.ones(3, np.complex64))
    (tmp_path / "dir").mkdir()
    cases = [
        (["bin.mlir"], "is not MLIR text (not UTF-8"),
        (["unranked.mlir", "-i", "x.npy"], "cannot be called: argument #0: unsupported type"),
        (["ok.mlir", "-i", "c.npy"], "must hold real numbers (f32), got dtype complex64"),
        (["ok.mlir", "-i", "x.npy", "-o", "dir"], "cannot write dir"),
        (["ok.mlir", "-i", "x.npy", "-o", "no/such/dir/y.npy"], "cannot write no/such/dir/y.npy"),
    ]
    for args, needle in cases:
        run = _moe_run(*args, cwd=tmp_path)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert needle in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr
    # -o writes exactly the file it names (np.save would append .npy).
    run = _moe_run("ok.mlir", "-i", "x.npy", "-o", "y_no_suffix", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "wrote y_no_suffix float32 [3]" in run.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "y_no_suffix"), np.arange(3))
    assert not (tmp_path / "y_no_suffix.npy").exists()
