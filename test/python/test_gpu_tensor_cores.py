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
}


def _bf16_bits(a):
    bits = np.asarray(a, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _layer(H, F, E, N, K, gated, rows="bf16"):
    S = E + N
    space = f"<compute = {E}" + (f", null = {N}>" if N else ">")
    normalize = "non_null" if N else "selected"
    args = [f"%x: tensor<?x{H}x{rows}>", f"%wr: tensor<{H}x{S}xbf16>",
            f"%wu: tensor<{E}x{H}x{F}xbf16>"]
    ops = f"up(%wu : tensor<{E}x{H}x{F}xbf16>)"
    if gated:
        args.append(f"%wg: tensor<{E}x{H}x{F}xbf16>")
        ops += f" gate(%wg : tensor<{E}x{H}x{F}xbf16>)"
    args.append(f"%wd: tensor<{E}x{F}x{H}xbf16>")
    ops += f" down(%wd : tensor<{E}x{F}x{H}xbf16>)"
    if not gated:
        args += [f"%bu: tensor<{E}x{F}xbf16>", f"%bd: tensor<{E}x{H}xbf16>"]
        ops += f" up_bias(%bu : tensor<{E}x{F}xbf16>) down_bias(%bd : tensor<{E}x{H}xbf16>)"
    activation = "silu gated" if gated else "gelu"
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
