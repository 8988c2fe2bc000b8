"""The kernels on every x86-64 ISA: a layer (f32 and q4_0 weights) built
ahead of time for SSE (x86-64), AVX2 (x86-64-v3) and AVX-512 (x86-64-v4),
each with the schedule chosen for it (moe-cpu-target). Every variant this
machine can execute runs: it conforms to the reference, and the FMA ones
give the JIT's bits (the multiply-add chains are the same; x86-64 has no FMA
unit, so its multiply-adds round twice and only conform). A variant the
machine cannot execute is still built, its code checked for the ISA's
registers, and then reported as skipped with the missing flag."""
import os
import subprocess

import numpy as np
import pytest

import moe_mlir
from moe_mlir import aot, conformance, quant
from moe_mlir import reference as ref
from moe_mlir.routing import compile_layer, pack_panels

# (LLVM CPU, flags /proc/cpuinfo must show to run it, a register its FMAs
# or multiplies use, a register it must not use)
ISAS = {
    "x86-64": (["sse2"], "xmm", "ymm"),
    "x86-64-v3": (["avx2", "fma"], "ymm", "zmm"),
    "x86-64-v4": (["avx512f", "avx512bw", "avx512dq", "avx512vl"], "zmm", None),
}
FMA_ISAS = ("x86-64-v3", "x86-64-v4")
H, F, E, K = 64, 96, 8, 2


def _flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(11)
    return dict(w_router=rng.standard_normal((H, E)).astype(np.float32),
                w_up=rng.standard_normal((E, H, F)).astype(np.float32) / 8,
                w_gate=rng.standard_normal((E, H, F)).astype(np.float32) / 8,
                w_down=rng.standard_normal((E, F, H)).astype(np.float32) / 10,
                x=rng.standard_normal((37, H)).astype(np.float32))


def _arguments(names, w, dtype):
    args = []
    for name in names:
        array = w[name]
        if name in ("w_up", "w_gate", "w_down"):
            array = quant.quantize_weights(array, dtype) if dtype in quant.FORMATS \
                else pack_panels(array)
        args.append(array)
    return args


@pytest.mark.parametrize("dtype", ["f32", "q4_0"])
@pytest.mark.parametrize("cpu", sorted(ISAS))
def test_isa_variant(cpu, dtype, weights, tmp_path):
    layer = compile_layer(H, F, E, K)
    text, entry, names = layer.module_text(packed=True, weight_dtype=dtype)
    library = str(tmp_path / f"lib{cpu}.so")
    aot.build_shared_library(text, library, cpu=cpu, parallel=False)
    needed, register, forbidden = ISAS[cpu]
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", library],
                          capture_output=True, text=True, check=True).stdout
    arithmetic = [line for line in code.splitlines()
                  if "vfmadd" in line or "mulps" in line or "addps" in line]
    assert any(f"%{register}" in line for line in arithmetic), f"no {register} arithmetic"
    if forbidden:
        assert f"%{forbidden}" not in code, f"{cpu} code uses {forbidden} registers"
    if cpu not in FMA_ISAS:
        assert not any("vfmadd" in line for line in arithmetic)
    missing = [flag for flag in needed if flag not in _flags()]
    if missing:
        pytest.skip(f"skipped: no {missing[0]} (the {cpu} code was built and checked, not run)")
    args = _arguments(names, weights, dtype)
    got = aot.load(library)[entry](*args)
    deq = {n: (quant.dequantize_tiles(quant.quantize_weights(weights[n], dtype), dtype,
                                      weights[n].shape[2]) if dtype in quant.FORMATS
               else weights[n]) for n in ("w_up", "w_gate", "w_down")}
    want = ref.layer(weights["x"], weights["w_router"], deq["w_up"], deq["w_down"],
                     ref.ExpertSpace(compute=E), K, w_gate=deq["w_gate"])
    conformance.assert_close_rows(got, want)
    # (The sanitizer runs build every module for generic x86-64 instead of
    # JIT-compiling it: no FMA, so only the JIT is comparable bit for bit.)
    if cpu in FMA_ISAS and {"fma"} <= _flags() and not os.environ.get("MOE_MLIR_SANITIZE"):
        jit = layer.bind(weights["w_router"], weights["w_up"], weights["w_down"],
                         weights["w_gate"], weight_dtype=dtype)(weights["x"])
        assert got.tobytes() == jit.tobytes()
