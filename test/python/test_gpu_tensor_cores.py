"""The tensor-core expert kernels (TensorCoreTiles.cpp: mma.sync m16n8k16,
bf16 operands, f32 sums) through their host emulation: per warp, 32 lanes
in lockstep, every lane loading the fragment elements that PTX's m16n8k16
definition assigns it, the MMA reading each element back from that lane and
register. With bf16 rows and weights the sums run in depth order with fused
multiply-adds, as the CPU kernels do, so the emulated GPU layer must equal
the CPU pipeline's bit for bit (which the CPU tests hold to the reference).
Shapes cover partial 16-row tiles, 32-column tiles cut at N, depths that are
not multiples of 16, experts with no rows, zero tokens, zero-computation
experts and plain FFNs with biases.

What the emulation cannot catch: the hardware's own accumulation order and
rounding inside mma.sync, the NVVM lowering, and timing; the first device
run compares the kernels with these results (scripts/gpu-test-matrix.py)."""

import numpy as np
import pytest

from moe_mlir import compiler

# name: (H, F, E, num_null, K, T, gated)
SHAPES = {
    "top2_ragged": (40, 72, 8, 0, 2, 37, True),
    "adamoe_null": (64, 96, 8, 4, 4, 50, True),
    "one_expert_hot": (32, 48, 4, 0, 1, 29, True),
    "plain_biases": (48, 40, 4, 0, 2, 21, False),
    "zero_tokens": (32, 32, 4, 0, 2, 0, True),
    "wide_experts": (64, 64, 16, 0, 4, 70, True),
    # 600 rows over 4 experts (>= 128 per expert): the sm_90a path takes
    # its 128-row tiles (two warpgroups per block).
    "many_rows": (48, 80, 4, 0, 2, 300, True),
}


def _bf16_bits(a):
    bits = np.asarray(a, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _ffn_weights(H, F, E, gated):
    """The bf16 expert weights as function arguments, their operand groups
    and the activation (gated SiLU, or GELU with biases)."""
    args = [f"%wu: tensor<{E}x{H}x{F}xbf16>"]
    ops = f"up(%wu : tensor<{E}x{H}x{F}xbf16>)"
    if gated:
        args.append(f"%wg: tensor<{E}x{H}x{F}xbf16>")
        ops += f" gate(%wg : tensor<{E}x{H}x{F}xbf16>)"
    args.append(f"%wd: tensor<{E}x{F}x{H}xbf16>")
    ops += f" down(%wd : tensor<{E}x{F}x{H}xbf16>)"
    if not gated:
        args += [f"%bu: tensor<{E}x{F}xbf16>", f"%bd: tensor<{E}x{H}xbf16>"]
        ops += f" up_bias(%bu : tensor<{E}x{F}xbf16>) down_bias(%bd : tensor<{E}x{H}xbf16>)"
    return args, ops, "silu gated" if gated else "gelu"


def _layer(H, F, E, N, K, gated, rows="bf16"):
    S = E + N
    space = f"<compute = {E}" + (f", null = {N}>" if N else ">")
    normalize = "non_null" if N else "selected"
    weights, ops, activation = _ffn_weights(H, F, E, gated)
    args = [f"%x: tensor<?x{H}x{rows}>", f"%wr: tensor<{H}x{S}xbf16>"] + weights
    return f"""
func.func @layer({', '.join(args)}) -> tensor<?x{H}x{rows}> {{
  %y = moe.layer %x router(%wr : tensor<{H}x{S}xbf16>) {ops}
      experts = {space} k = {K} strategy = top_k normalize = {normalize}
      activation = {activation} : tensor<?x{H}x{rows}> -> tensor<?x{H}x{rows}>
  return %y : tensor<?x{H}x{rows}>
}}"""


def _arguments(name):
    H, F, E, N, K, T, gated = SHAPES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    router = rng.standard_normal((H, E + N)) / np.sqrt(H)
    if name == "one_expert_hot":
        router[:, 0] += 5.0   # (almost) every token to expert 0: others empty
    args = [_bf16_bits(rng.standard_normal((T, H))), _bf16_bits(router),
            _bf16_bits(rng.standard_normal((E, H, F)) / np.sqrt(H))]
    if gated:
        args.append(_bf16_bits(rng.standard_normal((E, H, F)) / np.sqrt(H)))
    args.append(_bf16_bits(rng.standard_normal((E, F, H)) / np.sqrt(F)))
    if not gated:
        args += [_bf16_bits(rng.standard_normal((E, F))), _bf16_bits(rng.standard_normal((E, H)))]
    return args


@pytest.mark.parametrize("name", list(SHAPES))
def test_emulated_tensor_cores_equal_cpu(name):
    H, F, E, N, K, T, gated = SHAPES[name]
    text = _layer(H, F, E, N, K, gated)
    args = _arguments(name)
    cpu = compiler.compile(text, "layer")(*args)
    gpu = compiler.compile(text, "layer", target="gpu-emulated")(*args)
    assert gpu.shape == (T, H)
    assert np.array_equal(cpu, gpu), np.abs(cpu - gpu).max()
    if T:
        assert np.abs(gpu).max() > 0


@pytest.mark.parametrize("name", list(SHAPES))
def test_emulated_wgmma_equals_cpu(name):
    """The sm_90a kernels (WgmmaTiles.cpp) through their emulation: the
    threads stage the tiles in a host buffer with the 128-byte swizzle,
    and each wgmma m64n64k16 is emulated from its shared-memory matrix
    descriptors (start address, stride, swizzle mode decoded as PTX defines
    them) and PTX's accumulator fragment layout. The sums run in depth
    order with fused multiply-adds from zero, as the CPU kernels' do, so
    without biases the layer equals the CPU pipeline's bit for bit; the
    biases are added after the sums (the CPU starts from them), so with
    biases the two differ by rounding only."""
    H, F, E, N, K, T, gated = SHAPES[name]
    text = _layer(H, F, E, N, K, gated)
    args = _arguments(name)
    cpu = compiler.compile(text, "layer")(*args)
    wgmma = compiler.compile(text, "layer",
                             pipeline="moe-test-gpu-emulation-pipeline{wgmma=1}")(*args)
    assert wgmma.shape == (T, H)
    if gated:
        assert np.array_equal(cpu, wgmma), np.abs(cpu - wgmma).max()
    else:
        # bf16 outputs: at most one bf16 ulp apart (2^-7 relative).
        assert np.allclose(wgmma, cpu, rtol=2.0 ** -7, atol=1e-6), np.abs(cpu - wgmma).max()
    if T:
        assert np.abs(wgmma).max() > 0


def _as_f16(name):
    """The case's arguments as f16 (the bf16 values, which f16 holds
    exactly at these magnitudes, rounded to nearest)."""
    return [np.asarray(compiler._bf16_bits_to_float(a), np.float16) for a in _arguments(name)]


@pytest.mark.parametrize("wgmma", [False, True], ids=["mma_sync", "wgmma"])
@pytest.mark.parametrize("name", ["top2_ragged", "adamoe_null", "zero_tokens"])
def test_emulated_f16_tensor_cores_equal_cpu(name, wgmma):
    """f16 rows and f16 weights run on the tensor cores too (f16 operands,
    f32 sums: mma.sync m16n8k16 and wgmma m64n64k16 with f16 types), with
    the FFN's intermediates rounded to f16 as the op's semantics says; the
    emulated layer equals the CPU pipeline's bit for bit."""
    H, F, E, N, K, T, gated = SHAPES[name]
    text = _layer(H, F, E, N, K, gated).replace("bf16", "f16")
    args = _as_f16(name)
    cpu = compiler.compile(text, "layer")(*args)
    pipeline = "moe-test-gpu-emulation-pipeline" + ("{wgmma=1}" if wgmma else "")
    gpu = compiler.compile(text, "layer", pipeline=pipeline)(*args)
    assert gpu.dtype == np.float16 and gpu.shape == (T, H)
    assert np.array_equal(cpu, gpu), np.abs(cpu.astype(np.float32) - gpu).max()
    if T:
        assert np.abs(gpu).max() > 0
    lowered = compiler.lower(text, "moe-decompose-layer,convert-moe-to-gpu"
                                   + ("{wgmma=1}" if wgmma else ""))
    assert ("A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]" in lowered) if wgmma else \
        ("(vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct" in lowered)


def test_emulation_uses_the_tensor_core_kernels():
    """The emulation pipeline lowers bf16 expert matmuls through the warp
    emulation (a 32-lane register file), not the SIMT tiles."""
    text = _layer(40, 72, 8, 0, 2, True)
    lowered = compiler.lower(text, "moe-decompose-layer,convert-moe-to-gpu{emulate=1}")
    assert "memref<32x8xbf16>" in lowered      # A fragments: 32 lanes x 8
    assert "memref<32x32xf32>" in lowered      # accumulators: 2 products x 4 n8 x 4
    simt = compiler.lower(text, "moe-decompose-layer,"
                                "convert-moe-to-gpu{emulate=1 tensor-cores=0}")
    assert "memref<32x8xbf16>" not in simt


def _emulation_pipeline(bf16_rows: bool) -> str:
    return "moe-test-gpu-emulation-pipeline" + ("{bf16-rows=1}" if bf16_rows else "")


def _ffn(H, F, E, gated, rows):
    """moe.expert_ffn alone on `rows` rows (the bf16-rows rule is about the
    FFN: moe.combine then sums its f32 outputs as they are)."""
    weights, ops, activation = _ffn_weights(H, F, E, gated)
    args = [f"%rows: tensor<?x{H}x{rows}>", f"%off: tensor<{E + 1}xi32>"] + weights
    return f"""
func.func @ffn({', '.join(args)}) -> tensor<?x{H}x{rows}> {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x{H}x{rows}>
  %init = tensor.empty(%r) : tensor<?x{H}x{rows}>
  %y = moe.expert_ffn %rows, %off {ops} activation = {activation} into(%init)
      : tensor<?x{H}x{rows}>, tensor<{E + 1}xi32> into tensor<?x{H}x{rows}>
  return %y : tensor<?x{H}x{rows}>
}}"""


@pytest.mark.parametrize("gated", [True, False])
def test_f32_rows_on_tensor_cores_with_bf16_rows(gated):
    """bf16-rows: f32 rows with bf16 weights on tensor cores, the rows and
    the FFN's intermediates rounded to bf16. The f32 output is the FFN of
    the bf16-rounded rows before its final rounding: rounded to bf16 it
    equals the CPU pipeline's FFN on bf16 rows bit for bit. Without the
    option the same module keeps f32 semantics (SIMT tiles)."""
    H, F, E, R = 40, 72, 6, 45
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((R, H)).astype(np.float32)
    offsets = np.array([0, 7, 7, 20, 21, 40, 45], np.int32)   # an empty expert
    weights = [_bf16_bits(rng.standard_normal((E, H, F)) / np.sqrt(H))]
    if gated:
        weights.append(_bf16_bits(rng.standard_normal((E, H, F)) / np.sqrt(H)))
    weights.append(_bf16_bits(rng.standard_normal((E, F, H)) / np.sqrt(F)))
    if not gated:
        weights += [_bf16_bits(rng.standard_normal((E, F))),
                    _bf16_bits(rng.standard_normal((E, H)))]
    f32_text = _ffn(H, F, E, gated, "f32")
    rounded = compiler.compile(f32_text, "ffn", pipeline=_emulation_pipeline(True))(
        rows, offsets, *weights)
    cpu_bf16 = compiler.compile(_ffn(H, F, E, gated, "bf16"), "ffn")(
        _bf16_bits(rows), offsets, *weights)
    assert rounded.dtype == np.float32
    assert np.array_equal(_bf16_bits(rounded), _bf16_bits(cpu_bf16))
    # Without the option: f32 semantics, as the CPU pipeline's f32 rows.
    exact = compiler.compile(f32_text, "ffn", pipeline=_emulation_pipeline(False))(
        rows, offsets, *weights)
    cpu_f32 = compiler.compile(f32_text, "ffn")(rows, offsets, *weights)
    assert np.allclose(exact, cpu_f32, rtol=1e-5, atol=1e-6)
    # What the rounding costs against f32 semantics here (docs/GPU.md).
    error = np.abs(rounded - cpu_f32).max() / np.abs(cpu_f32).max()
    assert 0 < error <= 2.0 ** -6, error
