"""Schedules of the CPU matmul kernel (#moe.matmul_schedule overrides the
chosen one): for schedules far from the default (8 and 4 lanes, odd block
sizes, tails that need loops, chunks and depth blocks that divide nothing,
no depth blocking, tiny FFN work items), moe.gate, moe.grouped_matmul and
moe.expert_ffn (plain and packed weights, gated, bf16 rows) match the
reference under the conformance rule and the default schedule bit for bit:
a schedule never changes a value."""
import functools

import numpy as np
import pytest

import moe_mlir
from moe_mlir import conformance
from moe_mlir import reference as ref
from moe_mlir.routing import pack_panels

SCHEDULES = [
    "lanes = 8",
    "lanes = 4, rows = 3, tail_rows = 1",
    "rows = 16, tail_rows = 3, tail_panels = 1",
    "lanes = 8, rows = 5, tail_rows = 0, tail_panels = 3, chunk_rows = 7, depth_block = 5, "
    "prefetch = 3, prefetch_min_rows = 1, ffn_rows = 6",
    "depth_block = 0, ffn_rows = 1",
    "rows = 6, tail_rows = 2, chunk_rows = 13, depth_block = 16, prefetch = 0, ffn_rows = 3",
]


@functools.lru_cache(maxsize=None)
def _compile(text, entry):
    """The default schedule's modules are shared by the schedules' tests."""
    return moe_mlir.compile(text, entry)


def _attributes(schedule):
    if schedule is None:
        return ""
    return f" attributes {{moe.matmul_schedule = #moe.matmul_schedule<{schedule}>}}"


def _gate_text(H, S, schedule):
    return f"""
func.func @f(%x: tensor<?x{H}xf32>, %w: tensor<{H}x{S}xf32>, %b: tensor<{S}xf32>) -> tensor<?x{S}xf32>{_attributes(schedule)} {{
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x{H}xf32>
  %init = tensor.empty(%t) : tensor<?x{S}xf32>
  %l = moe.gate %x, %w bias(%b : tensor<{S}xf32>) into(%init) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>
  return %l : tensor<?x{S}xf32>
}}"""


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_gate(schedule):
    H = 37
    rng = np.random.default_rng(1)
    for S in (17, 40, 130):
        default = _compile(_gate_text(H, S, None), "f")
        scheduled = moe_mlir.compile(_gate_text(H, S, schedule), "f")
        w = rng.standard_normal((H, S), dtype=np.float32)
        b = rng.standard_normal(S, dtype=np.float32)
        for T in (0, 1, 5, 19, 40):
            x = rng.standard_normal((T, H), dtype=np.float32)
            got = scheduled(x, w, b)
            conformance.assert_close_rows(got, ref.gate(x, w, b))
            assert got.tobytes() == default(x, w, b).tobytes(), (S, T)


def _grouped_text(E, H, N, schedule):
    return f"""
func.func @f(%lhs: tensor<?x{H}xf32>, %rhs: tensor<{E}x{H}x{N}xf32>, %offsets: tensor<{E + 1}xi32>) -> tensor<?x{N}xf32>{_attributes(schedule)} {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %lhs, %c0 : tensor<?x{H}xf32>
  %init = tensor.empty(%r) : tensor<?x{N}xf32>
  %y = moe.grouped_matmul %lhs, %rhs, %offsets into(%init) : tensor<?x{H}xf32>, tensor<{E}x{H}x{N}xf32>, tensor<{E + 1}xi32> into tensor<?x{N}xf32>
  return %y : tensor<?x{N}xf32>
}}"""


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_grouped_matmul(schedule):
    E, H, N = 5, 21, 70
    counts = [0, 3, 9, 1, 20]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    rng = np.random.default_rng(2)
    lhs = rng.standard_normal((int(offsets[-1]) + 2, H), dtype=np.float32)  # 2 rows past offsets[E]
    rhs = rng.standard_normal((E, H, N), dtype=np.float32)
    got = moe_mlir.compile(_grouped_text(E, H, N, schedule), "f")(lhs, rhs, offsets)
    conformance.assert_close_rows(got, ref.grouped_matmul(lhs, rhs, offsets))
    default = _compile(_grouped_text(E, H, N, None), "f")(lhs, rhs, offsets)
    assert got.tobytes() == default.tobytes()


def _ffn_text(E, H, F, packed, element, schedule):
    up = f"{E}x{-(-F // 32)}x{H}x32xf32" if packed else f"{E}x{H}x{F}xf32"
    down = f"{E}x{-(-H // 32)}x{F}x32xf32" if packed else f"{E}x{F}x{H}xf32"
    row = f"tensor<?x{H}x{element}>"
    return f"""
func.func @ffn(%rows: {row}, %offsets: tensor<{E + 1}xi32>,
               %wu: tensor<{up}>, %wg: tensor<{up}>, %wd: tensor<{down}>) -> {row}{_attributes(schedule)} {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : {row}
  %init = tensor.empty(%r) : {row}
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<{up}>) gate(%wg : tensor<{up}>)
      down(%wd : tensor<{down}>) activation = silu gated {"packed" if packed else ""} into(%init)
      : {row}, tensor<{E + 1}xi32> into {row}
  return %y : {row}
}}"""


def _ffn_case(H, F, counts, seed):
    """Rows grouped by expert (counts[e] rows for expert e), their offsets,
    and gated FFN weights scaled to keep the activations O(1)."""
    E = len(counts)
    rng = np.random.default_rng(seed)
    w_up = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    w_gate = rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)
    w_down = rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    rows = rng.standard_normal((int(offsets[-1]), H), dtype=np.float32)
    return rows, offsets, w_up, w_gate, w_down


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_expert_ffn(schedule, packed):
    """Experts with 0..13 rows: every block size of every schedule, and
    (with H = 70, F = 140) full groups of panels, lone panels, whole single
    vectors and a masked tail."""
    H, F = 70, 140
    rows, offsets, w_up, w_gate, w_down = _ffn_case(H, F, [0, 1, 2, 3, 4, 5, 7, 8, 9, 13], 3)
    E = len(offsets) - 1
    weights = [pack_panels(w) for w in (w_up, w_gate, w_down)] if packed else [w_up, w_gate, w_down]
    got = moe_mlir.compile(_ffn_text(E, H, F, packed, "f32", schedule), "ffn")(rows, offsets, *weights)
    want = ref.expert_ffn(rows, offsets, w_up, w_down, w_gate=w_gate, activation="silu")
    conformance.assert_close_rows(got, want)
    default = _compile(_ffn_text(E, H, F, packed, "f32", None), "ffn")(rows, offsets, *weights)
    assert got.tobytes() == default.tobytes()


@pytest.mark.parametrize("schedule", [SCHEDULES[0], SCHEDULES[3]])
def test_expert_ffn_bf16_rows(schedule):
    """bf16 rows: the down projection writes bf16 and is not blocked over
    the depth whatever depth_block says; the values are the default's."""
    H, F = 40, 50
    rows, offsets, w_up, w_gate, w_down = _ffn_case(H, F, [2, 0, 11, 5], 4)
    E = len(offsets) - 1
    f = moe_mlir.compile(_ffn_text(E, H, F, False, "bf16", schedule), "ffn")
    default = _compile(_ffn_text(E, H, F, False, "bf16", None), "ffn")
    got = f(rows, offsets, w_up, w_gate, w_down)
    assert got.tobytes() == default(rows, offsets, w_up, w_gate, w_down).tobytes()
    # bf16 arguments are rounded to nearest even; the reference rounds every
    # intermediate to bf16 as the contract says.
    rounded = moe_mlir.compiler._bf16_bits_to_float(moe_mlir.compiler._float_to_bf16_bits(rows))
    want = ref.expert_ffn(rounded, offsets, w_up, w_down, w_gate=w_gate, activation="silu",
                          elem_type="bf16")
    conformance.assert_close_rows(np.asarray(got, dtype=np.float32), want)


def test_bad_schedule_is_a_compile_error():
    with pytest.raises(moe_mlir.CompileError, match=r"expects 1 <= rows <= 16, got rows = 40"):
        moe_mlir.compile(_gate_text(8, 8, "rows = 40"), "f")
