#!/usr/bin/env python3
"""llama.cpp's MoE kernel (ggml's MUL_MAT_ID on the CPU) side by side with
our compiled layer, in the same rounds.

For each shape, weight type, token count T and thread count, one process
times, one call each per round (rotating order, after a warm-up call each):

* ours: the compiled layer with bound weights (`compile_layer(H, F, E, K)
  .bind(..., weight_dtype=TYPE)`): router, routing, dispatch, expert FFN,
  combine;
* ffn: our compiled moe.expert_ffn alone on the dispatched rows, with the
  same packed weights (panels for f32/bf16, tiles for q8_0/q4_0): the like
  for like of ggml's part;
* ggml: the expert FFN as llama.cpp's build_moe_ffn runs it on ggml's CPU
  backend (bench/baselines/GgmlMoE.c): up and gate as ggml_mul_mat_id(
  [H, F, E] weights, x viewed [H, 1, T], ids [K, T]), ggml_swiglu_split
  (silu(gate) * up), down as ggml_mul_mat_id([F, H, E], [F, K, T], ids),
  on exactly the experts our reference routing picks (moe_mlir.reference
  .route on x @ w_router). Weights quantized by ggml's own quantizer from
  the same f32 weights, and placed as llama.cpp places them: in the CPU
  backend's repacking buffer where it takes the type (q4_0 on AVX2/AVX-512:
  interleaved 8x8 blocks), else a plain CPU buffer (--no-repack: always
  plain). The routing weights and the sum over slots are not in ggml's
  timed graph (ours includes them, and the router);
* limits: an FMA loop (GFLOP/s) and a stream triad (GB/s) with the same
  thread count (bench/baselines, libmoe_bench_baselines.so).

Rows with T <= 8 run cold: a buffer of twice the last-level cache is
written before every timed call of every side. Times are medians over
rounds; every ratio is the median of per-round ratios (this VM's speed
drifts over minutes). GFLOP/s count the compute slots (2*H*F*3 each); cold
rows also report GB/s over the distinct expert bytes the routing reads,
against the triad.

ggml: --ggml DIR is a checkout of ggml-org/ggml. The script builds it
CPU-only with CMake (Release, GGML_NATIVE=ON, static, position-independent,
OpenMP and CPU_REPACK as in llama.cpp's defaults) into --ggml-build
(default DIR/build-moe-bench) and compiles the harness into a shared
library there; nothing from ggml enters this tree. Without --ggml, or when
DIR is not a ggml checkout or does not build, it says "skipped: ..." and
measures our side alone.

Checks, once per shape and type at the first T: our expert FFN and ggml's
down rows against the NumPy reference FFN on the same (dequantised)
weights, and ggml's quantizer against ours on one expert (bytes); at every
row, ggml's rows combined with the routing weights against our layer.
ggml rounds activations to its dot type (q8_0 blocks for q8_0 / q4_0,
bf16 for bf16), so it differs from ours by about 1e-2 (q8_0, q4_0).

Threads: the process runs with OMP_WAIT_POLICY=PASSIVE (as
bench/cpu_layer.py); ggml's library is loaded with RTLD_DEEPBIND, so it
runs on its own OpenMP runtime (libgomp, as a GCC build of llama.cpp)
while our code runs on LLVM's libomp. Types: f32, q8_0, q4_0 (default)
and bf16.

Shapes (E, K, H, F), SwiGLU, top-K with normalized weights:
qwen3-30b-a3b (128, 8, 2048, 768), gpt-oss-20b (32, 4, 2880, 2880; f32
SwiGLU here, not its MXFP4 / clamped activation / biases), S1 (8, 2, 1024,
2816), S2 (64, 8, 1024, 512); S1-Ada (S1 with 4 null experts, K=4) on
request, ours only (ggml cannot express null slots). One child process per
shape (its weights are freed before the next shape).

Usage: PYTHONPATH=build/python_packages /usr/bin/python3 bench/llama_cpp.py
       --ggml DIR [--threads 1 2] [--tokens 1 8 64 512] [--shapes ...]
       [--types f32 q8_0 q4_0] [--repeat N] [--quick]
"""

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cpu_layer  # noqa: E402  (CacheFlush, interleaved_times, cpu_flags, cpu_name)

# name: E, K, H, F, null experts, normalize
SHAPES = {
    "qwen3-30b-a3b": (128, 8, 2048, 768, 0, "selected"),
    "gpt-oss-20b": (32, 4, 2880, 2880, 0, "selected"),
    "S1": (8, 2, 1024, 2816, 0, "selected"),
    "S2": (64, 8, 1024, 512, 0, "selected"),
    "S1-Ada": (8, 4, 1024, 2816, 4, "non_null"),
}
DEFAULT_SHAPES = ["qwen3-30b-a3b", "gpt-oss-20b", "S1", "S2"]
TYPES = ("f32", "bf16", "q8_0", "q4_0")
# Bytes per weight as stored (both sides: ggml's blocks and our tiles hold
# the same bytes per value).
BYTES_PER_WEIGHT = {"f32": 4.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# Largest relative difference (max |a - b| / max |b|) accepted between
# ggml's combined output and ours, and between ggml's slot outputs and the
# NumPy reference on the same (dequantised) weights: ggml rounds the
# activations to the weights' dot type (q8_0 blocks for q8_0 / q4_0, bf16
# for bf16), we keep them f32.
TOLERANCE = {"f32": 1e-4, "bf16": 2e-2, "q8_0": 5e-2, "q4_0": 5e-2}
# Ours against the reference on the same weights: f32 arithmetic on both.
OURS_TOLERANCE = 1e-4
KEYS = ("ours", "ffn", "ggml")
HARNESS = os.path.join(HERE, "baselines", "GgmlMoE.c")


def isa_flags():
    flags = set(cpu_layer.cpu_flags())
    names = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx2", "fma")
    return {name: name in flags for name in names}


# --------------------------------------------------------------------------
# Building ggml and the harness
# --------------------------------------------------------------------------

def is_ggml_checkout(path):
    return (os.path.isfile(os.path.join(path, "include", "ggml.h"))
            and os.path.isfile(os.path.join(path, "include", "ggml-cpu.h"))
            and os.path.isdir(os.path.join(path, "src", "ggml-cpu"))
            and os.path.isfile(os.path.join(path, "CMakeLists.txt")))


def build_ggml(source, build, verbose=False):
    """Builds ggml (CPU only) into `build` and the harness against it.
    Returns (path of the harness library, None) or (None, reason)."""
    if not source:
        return None, "no --ggml DIR given"
    source = os.path.abspath(source)
    if not os.path.isdir(source):
        return None, f"{source} does not exist"
    if not is_ggml_checkout(source):
        return None, (f"{source} is not a ggml checkout (no include/ggml.h, "
                      f"include/ggml-cpu.h, src/ggml-cpu)")
    if os.path.realpath(build).startswith(os.path.realpath(ROOT) + os.sep):
        return None, f"the ggml build folder {build} must be outside the moe-mlir tree"
    cmake = shutil.which("cmake")
    if not cmake:
        return None, "cmake not found"
    os.makedirs(build, exist_ok=True)
    log_path = os.path.join(build, "moe-bench-build.log")
    cache = os.path.join(build, "CMakeCache.txt")
    # A configured folder keeps its generator; the options are set again
    # (a folder configured otherwise, e.g. GGML_NATIVE=OFF, is reconfigured).
    generator = ["-G", "Ninja"] if shutil.which("ninja") and not os.path.exists(cache) else []
    configure = [cmake, "-S", source, "-B", build, *generator,
                 "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF",
                 "-DCMAKE_POSITION_INDEPENDENT_CODE=ON", "-DGGML_BUILD_TESTS=OFF",
                 "-DGGML_BUILD_EXAMPLES=OFF", "-DGGML_OPENMP=ON", "-DGGML_CPU_REPACK=ON",
                 "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF", "-DGGML_METAL=OFF", "-DGGML_BLAS=OFF"]
    compile_ = [cmake, "--build", build, "--target", "ggml", "ggml-cpu", "ggml-base",
                "-j", str(os.cpu_count() or 1)]
    # SOURCE_DATE_EPOCH would turn GGML_NATIVE's default off; it is set
    # explicitly anyway.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    with open(log_path, "a") as log:
        for step in (configure, compile_):
            print(f"  ggml: {' '.join(step)}", file=sys.stderr, flush=True)
            log.write("$ " + " ".join(step) + "\n")
            log.flush()
            result = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, env=env)
            if result.returncode:
                return None, f"building ggml failed (see {log_path})"
    with open(cache) as f:
        settings = dict(line.strip().split("=", 1) for line in f
                        if "=" in line and not line.startswith(("#", "//")))
    if settings.get("GGML_NATIVE:BOOL") != "ON" or settings.get("CMAKE_BUILD_TYPE:STRING") \
            != "Release":
        return None, f"{build} is not a Release build with GGML_NATIVE=ON (see {cache})"
    libs = [os.path.join(build, "src", name)
            for name in ("libggml.a", "libggml-cpu.a", "libggml-base.a")]
    missing = [p for p in libs if not os.path.exists(p)]
    if missing:
        return None, f"the ggml build has no {', '.join(missing)} (see {log_path})"
    harness = os.path.join(build, "libmoe_ggml_bench.so")
    newest_input = max(os.path.getmtime(p) for p in libs + [HARNESS])
    if not os.path.exists(harness) or os.path.getmtime(harness) < newest_input:
        cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
        command = [cc, "-O2", "-fPIC", "-shared", "-fopenmp", "-Wall", "-Wextra",
                   "-I", os.path.join(source, "include"), HARNESS, "-o", harness,
                   "-Wl,--no-undefined", *libs, "-lstdc++", "-lm", "-lpthread", "-ldl"]
        print(f"  ggml: {' '.join(command)}", file=sys.stderr, flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            with open(log_path, "a") as log:
                log.write(result.stdout + result.stderr)
            return None, f"compiling the harness failed (see {log_path}):\n{result.stderr[-2000:]}"
    return harness, None


class Ggml:
    """The harness library (bench/baselines/GgmlMoE.c) through ctypes."""

    def __init__(self, path):
        # RTLD_DEEPBIND: ggml's OpenMP calls go to its own runtime (libgomp,
        # as in a GCC build of llama.cpp), not to the LLVM libomp that our
        # compiled code has loaded globally.
        mode = ctypes.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0)
        lib = self.lib = ctypes.CDLL(path, mode=mode)
        p, i = ctypes.c_void_p, ctypes.c_int
        lib.moe_ggml_setup.restype = p
        lib.moe_ggml_setup.argtypes = [i, i, i, i, i, i, i]
        lib.moe_ggml_teardown.argtypes = [p]
        lib.moe_ggml_set_weight.argtypes = [p, i, p]
        lib.moe_ggml_prepare.argtypes = [p, i]
        lib.moe_ggml_set_input.argtypes = [p, p, p]
        lib.moe_ggml_set_threads.argtypes = [p, i]
        lib.moe_ggml_run.argtypes = [p]
        lib.moe_ggml_output.argtypes = [p, p]
        lib.moe_ggml_repacked.argtypes = [p]
        lib.moe_ggml_buffer_type.argtypes = [p]
        lib.moe_ggml_buffer_type.restype = ctypes.c_char_p
        lib.moe_ggml_last_error.restype = ctypes.c_char_p
        lib.moe_ggml_type.argtypes = [ctypes.c_char_p]
        lib.moe_ggml_quantize.argtypes = [i, p, p, ctypes.c_long, ctypes.c_long]
        lib.moe_ggml_quantize.restype = ctypes.c_size_t

    def info(self):
        buffer = ctypes.create_string_buffer(1024)
        self.lib.moe_ggml_info(buffer, len(buffer))
        return buffer.value.decode()

    def check(self, status, what):
        if status:
            raise RuntimeError(f"ggml harness: {what}: {self.lib.moe_ggml_last_error().decode()}")

    def type_id(self, name):
        t = self.lib.moe_ggml_type(name.encode())
        if t < 0:
            raise RuntimeError(f"ggml has no type {name!r}")
        return t

    def quantize_rows(self, type_name, rows):
        """ggml's quantizer on rows [n, k] f32 -> bytes (GGUF blocks)."""
        rows = np.ascontiguousarray(rows, np.float32)
        out = np.empty(rows.size * 4 + 1024, np.uint8)
        size = self.lib.moe_ggml_quantize(self.type_id(type_name), rows.ctypes.data,
                                          out.ctypes.data, rows.shape[0], rows.shape[1])
        return out[:size]


class GgmlFFN:
    """One ggml MoE FFN: weights set once, a graph per token count."""

    def __init__(self, ggml, E, K, H, F, type_name, repack, threads, w_up, w_gate, w_down):
        self.ggml, self.lib = ggml, ggml.lib
        self.H, self.K = H, K
        self.handle = self.lib.moe_ggml_setup(H, F, E, K, ggml.type_id(type_name), int(repack),
                                              threads)
        if not self.handle:
            raise RuntimeError(f"ggml harness: setup: {self.lib.moe_ggml_last_error().decode()}")
        for which, w in enumerate((w_up, w_gate, w_down)):
            w = np.ascontiguousarray(w, np.float32)
            ggml.check(self.lib.moe_ggml_set_weight(self.handle, which, w.ctypes.data),
                       "set_weight")
        self.buffer_type = self.lib.moe_ggml_buffer_type(self.handle).decode()
        self.T = None

    def prepare(self, x, ids):
        T = x.shape[0]
        self.x = np.ascontiguousarray(x, np.float32)
        self.ids = np.ascontiguousarray(ids, np.int32)
        self.ggml.check(self.lib.moe_ggml_prepare(self.handle, T), "prepare")
        self.ggml.check(self.lib.moe_ggml_set_input(self.handle, self.x.ctypes.data,
                                                    self.ids.ctypes.data), "set_input")
        self.T = T

    def threads(self, n):
        self.lib.moe_ggml_set_threads(self.handle, n)

    def __call__(self):
        self.ggml.check(self.lib.moe_ggml_run(self.handle), "run")

    def output(self):
        out = np.empty((self.T, self.K, self.H), np.float32)
        self.ggml.check(self.lib.moe_ggml_output(self.handle, out.ctypes.data), "output")
        return out

    def close(self):
        if self.handle:
            self.lib.moe_ggml_teardown(self.handle)
            self.handle = None


# --------------------------------------------------------------------------
# Child: one shape, every type, thread count and T
# --------------------------------------------------------------------------

def ffn_text(E, H, F, dtype):
    """moe.expert_ffn on dispatched rows with the bound layer's packed
    weights (panels of f32/bf16, or q8_0/q4_0 tiles)."""
    from moe_mlir import quant
    if dtype in quant.FORMATS:
        up = f"tensor<{E}x{F // 32}x{H // 32}x{quant.TILE_BYTES[dtype]}xi8>"
        down = f"tensor<{E}x{H // 32}x{F // 32}x{quant.TILE_BYTES[dtype]}xi8>"
        layout = f"packed quant = {dtype}"
    else:
        up = f"tensor<{E}x{-(-F // 32)}x{H}x32x{dtype}>"
        down = f"tensor<{E}x{-(-H // 32)}x{F}x32x{dtype}>"
        layout = "packed"
    row = f"tensor<?x{H}xf32>"
    return f"""
func.func @ffn(%rows: {row}, %offsets: tensor<{E + 1}xi32>, %wu: {up}, %wg: {up},
               %wd: {down}) -> {row} {{
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : {row}
  %init = tensor.empty(%r) : {row}
  %y = moe.expert_ffn %rows, %offsets up(%wu : {up}) gate(%wg : {up}) down(%wd : {down})
      activation = silu gated {layout} into(%init) : {row}, tensor<{E + 1}xi32> into {row}
  return %y : {row}
}}"""


def make_weights(E, N, H, F, seed):
    """Gaussian weights scaled by 1/sqrt(fan-in), generated in place (no
    float64 or scaled temporaries: gpt-oss-like f32 experts are 3.2 GB)."""
    rng = np.random.default_rng(seed)

    def gaussian(shape, scale):
        w = np.empty(shape, np.float32)
        rng.standard_normal(out=w, dtype=np.float32)
        w *= np.float32(scale)
        return w
    w_router = gaussian((H, E + N), 1 / np.sqrt(H))
    w_up = gaussian((E, H, F), 1 / np.sqrt(H))
    w_gate = gaussian((E, H, F), 1 / np.sqrt(H))
    w_down = gaussian((E, F, H), 1 / np.sqrt(F))
    return w_router, w_up, w_gate, w_down


def chunked_quantization(quant):
    """quant.quantize_weights one expert at a time: the same bytes (every
    block is quantized on its own), without the whole-tensor float64
    temporaries (gigabytes for the gpt-oss-like shape). Installed in the
    child before bind() quantizes."""
    whole = quant.quantize_weights

    def per_expert(w, fmt):
        w = np.asarray(w, np.float32)
        if w.ndim != 3:
            return whole(w, fmt)
        out = np.empty(quant.tile_shape(w.shape[0], w.shape[1], w.shape[2], fmt), np.int8)
        for e in range(w.shape[0]):
            out[e] = whole(w[e:e + 1], fmt)[0]
        return out
    quant.quantize_weights = per_expert
    return whole


def relative(a, b):
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def reference_rows(bound, dtype, x, ids, E, H, F, originals):
    """The NumPy reference FFN on the weights both sides compute with (the
    dequantised tiles; for bf16 the rounded weights), on the experts this
    input uses: (rows out [R, H] in dispatch order, slot_rows [T, K])."""
    from moe_mlir import quant
    from moe_mlir import reference as ref
    compute = (ids >= 0) & (ids < E)
    used = np.unique(ids[compute])
    # Compacting the ids keeps the experts' order: the rows of dispatch(x, ids, E).
    compact = np.where(compute, np.searchsorted(used, ids), -1).astype(np.int32)
    rows, offsets, slot_rows = ref.dispatch(x, compact, len(used))
    if dtype in quant.FORMATS:
        wu, wg, wd = (quant.dequantize_tiles(np.asarray(bound.weights[name])[used], dtype, n)
                      for name, n in (("w_up", F), ("w_gate", F), ("w_down", H)))
    else:
        wu, wg, wd = (np.asarray(w[used]) for w in originals)
        if dtype == "bf16":
            wu, wg, wd = (ref.round_to_bf16(w) for w in (wu, wg, wd))
    return ref.expert_ffn(rows, offsets, wu, wd, w_gate=wg), slot_rows


def quantizer_check(ggml, dtype, w_up):
    """ggml's quantizer and ours on one expert of w_up: differing bytes."""
    from moe_mlir import quant
    if dtype not in quant.FORMATS:
        return None
    rows = np.ascontiguousarray(w_up[0].T)  # [F, H]: one GGUF row per output
    theirs = ggml.quantize_rows(dtype, rows)
    ours = quant.quantize_blocks(rows, dtype).reshape(-1)
    if theirs.size != ours.size:
        return {"bytes": int(ours.size), "differing": int(ours.size)}
    return {"bytes": int(ours.size), "differing": int((theirs != ours).sum())}


def child(args):
    import moe_mlir
    from moe_mlir import quant
    from moe_mlir import reference as ref
    from moe_mlir.routing import compile_layer

    shape = args.child
    E, K, H, F, N, normalize = SHAPES[shape]
    threads_list = args.threads
    # Load our OpenMP runtime (and set its threads) before ggml's library.
    moe_mlir.set_num_threads(max(threads_list))
    base = ctypes.CDLL(os.path.join(args.build, "lib", "libmoe_bench_baselines.so"))
    base.moe_fma_peak.restype = ctypes.c_double
    base.moe_triad.restype = ctypes.c_double
    base.moe_triad.argtypes = [ctypes.c_int, ctypes.c_long]
    ggml = Ggml(args.ggml_lib) if args.ggml_lib and N == 0 else None
    emit = lambda record: print(json.dumps(record), flush=True)
    if ggml:
        emit({"ggml_info": ggml.info()})
    chunked_quantization(quant)

    w_router, w_up, w_gate, w_down = make_weights(E, N, H, F, seed=1)
    experts = ref.ExpertSpace(compute=E, null=N)
    layer = compile_layer(H, F, E, K, num_null=N, normalize=normalize)
    flush = cpu_layer.CacheFlush()
    for dtype in args.types:
        if dtype in quant.FORMATS and (H % 32 or F % 32):
            continue
        progress = lambda text: print(f"  {shape} {dtype}: {text}", file=sys.stderr, flush=True)
        progress("binding")
        bound = layer.bind(w_router, w_up, w_down, w_gate, weight_dtype=dtype)
        ffn = moe_mlir.compile(ffn_text(E, H, F, dtype), "ffn")
        packed = [bound.weights[name] for name in ("w_up", "w_gate", "w_down")]
        g = None
        info = {}
        if ggml:
            progress("ggml weights")
            g = GgmlFFN(ggml, E, K, H, F, dtype, not args.no_repack, max(threads_list),
                        w_up, w_gate, w_down)
            info["ggml_buffer"] = g.buffer_type
            info["quantizer_check"] = quantizer_check(ggml, dtype, w_up)
        checked_reference = False
        for threads in threads_list:
            moe_mlir.set_num_threads(threads)
            if g:
                g.threads(threads)
            for T in args.tokens:
                cold = T <= 8
                x = np.random.default_rng(1000 + T).standard_normal((T, H), dtype=np.float32)
                logits = x @ w_router
                ids, weights = ref.route(logits, experts, K, normalize=normalize)
                rows, offsets, _ = ref.dispatch(x, ids, E)
                compute = experts.is_compute(ids)
                slots = int(compute.sum())
                experts_read = int(len(np.unique(ids[compute])))
                candidates = {
                    "ours": lambda f=bound, x=x: f(x),
                    "ffn": lambda f=ffn, r=rows, o=offsets, p=packed: f(r, o, *p),
                }
                record = {"shape": shape, "type": dtype, "T": T, "threads": threads,
                          "cold": cold, "slots": slots, "experts_read": experts_read,
                          "E": E, "K": K, "H": H, "F": F, "null": N,
                          "flops": 2.0 * H * F * 3 * slots,
                          "weight_bytes": BYTES_PER_WEIGHT[dtype] * 3 * H * F * experts_read,
                          **info}
                ours_out = bound(x)
                if not checked_reference:
                    # Once per type, at the first T: our expert FFN alone (and
                    # ggml's slots below) against the NumPy reference.
                    y_ref, slot_rows = reference_rows(bound, dtype, x, ids, E, H, F,
                                                      (w_up, w_gate, w_down))
                    record["ffn_vs_reference"] = relative(np.asarray(ffn(rows, offsets, *packed)),
                                                          y_ref)
                if g:
                    g.prepare(x, ids)
                    g()
                    out = g.output()  # [T, K, H]
                    record["ggml_vs_ours"] = relative(np.einsum("tk,tkh->th", weights, out),
                                                      ours_out)
                    if not checked_reference:
                        record["ggml_vs_reference"] = relative(out, y_ref[slot_rows])
                    candidates["ggml"] = g
                checked_reference = True
                fma_rounds, triad_rounds = [], []

                def limits():
                    fma_rounds.append(base.moe_fma_peak(threads))
                    triad_rounds.append(base.moe_triad(threads, 40_000_000))
                candidates["limits"] = limits
                progress(f"T={T} threads={threads}")
                times = cpu_layer.interleaved_times(candidates, args.repeat,
                                                    before=flush if cold else None)
                # The warm-up call probed once too: keep the timed rounds.
                fma_rounds, triad_rounds = fma_rounds[1:], triad_rounds[1:]
                record.update({"fma_rounds": fma_rounds, "triad_rounds": triad_rounds,
                               "fma": statistics.median(fma_rounds),
                               "triad": statistics.median(triad_rounds),
                               "rounds": {k: times[k] for k in KEYS if k in times}})
                for key in KEYS:
                    record[key] = statistics.median(times[key]) if key in times else None
                emit(record)
        if g:
            g.close()
        # Free this type's weights before the next type binds its own.
        del bound, ffn, packed, candidates, g
        gc.collect()
    return 0


# --------------------------------------------------------------------------
# Parent: one child per shape, then the table and the chart
# --------------------------------------------------------------------------

def run_child(shape, args, ggml_lib):
    threads = max(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MOE_MLIR_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, os.path.abspath(__file__), "--child", shape,
               "--build", args.build, "--repeat", str(args.repeat),
               "--threads", *map(str, args.threads), "--tokens", *map(str, args.tokens),
               "--types", *args.types] + (["--ggml-lib", ggml_lib] if ggml_lib else []) \
        + (["--no-repack"] if args.no_repack else [])
    records = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            records.append(json.loads(line))
    if process.returncode:
        raise SystemExit(f"benchmark child ({shape}) failed")
    return records


def paired(numerator, denominator):
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def render(records, meta):
    rows = [r for r in records if "shape" in r]
    lines = [f"Measured {meta['date']} on {meta['host']}: {meta['cpu']}, {meta['cores']} cores; "
             f"ISA flags: " + ", ".join(f"{k} {'yes' if v else 'no'}"
                                        for k, v in meta["isa"].items()) + "."]
    if meta.get("ggml_source"):
        info = f" ({meta['ggml_info']})" if meta.get("ggml_info") else ""
        lines.append(f"ggml: {meta['ggml_source']}{info}, built by the script "
                     f"(Release, GGML_NATIVE=ON, OpenMP, CPU_REPACK) in {meta['ggml_build']}.")
    else:
        lines.append(f"ggml skipped: {meta['ggml_skipped']}; our side only.")
    nulls = sorted({r["shape"] for r in rows if r["null"]})
    if nulls and meta.get("ggml_source"):
        lines.append(f"{', '.join(nulls)}: ours only (ggml_mul_mat_id has no null or empty "
                     f"slots).")
    buffers = sorted({(r["type"], r["ggml_buffer"]) for r in rows if r.get("ggml_buffer")})
    if buffers:
        lines.append("ggml weights: " + ", ".join(f"{t} in {b}" for t, b in buffers)
                     + (" (--no-repack)" if meta.get("no_repack") else
                        " (the buffer llama.cpp picks: CPU_REPACK where it takes the type)") + ".")
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        fma, triad = [r["fma"] for r in mine], [r["triad"] for r in mine]
        lines.append(f"Limits with {threads} thread(s), measured in the rounds of every row: "
                     f"FMA peak {min(fma):.0f}-{max(fma):.0f} GFLOP/s, "
                     f"triad {min(triad):.1f}-{max(triad):.1f} GB/s.")
    lines.append("")
    lines.append("ours = the whole bound layer (router, routing, dispatch, expert FFN, combine); "
                 "ffn = our expert FFN alone on the dispatched rows; ggml = llama.cpp's three "
                 "ggml_mul_mat_id and the SwiGLU on the same routed experts. Speed ratios > 1: "
                 "ours faster (median of per-round ratios). GB/s (cold rows, T <= 8): distinct "
                 "expert weight bytes over time, % of the triad of the same round.")
    lines.append("")
    header = ("| shape | type | T | thr | rounds | slots | ours ms | ffn ms | ggml ms "
              "| ours / ggml | ffn / ggml | ours GF/s | ffn GF/s | ggml GF/s "
              "| ours GB/s (% triad) | ffn GB/s (% triad) | ggml GB/s (% triad) | diff vs ours |")
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))

    def ms(t):
        return f"{t * 1e3:.2f}" if t else "-"

    for r in rows:
        rounds = r["rounds"]
        has = lambda key: key in rounds

        def gbs(key):
            if not (r["cold"] and has(key)):
                return "-"
            pct = 100 * statistics.median(r["weight_bytes"] / t / 1e9 / b
                                          for t, b in zip(rounds[key], r["triad_rounds"]))
            return f"{r['weight_bytes'] / r[key] / 1e9:.1f} ({pct:.0f}%)"
        gf = lambda key: f"{r['flops'] / r[key] / 1e9:.1f}" if has(key) else "-"
        ratio = lambda key: f"{paired(rounds['ggml'], rounds[key]):.2f}x" \
            if has("ggml") and has(key) else "-"
        diff = f"{r['ggml_vs_ours']:.1e}" if "ggml_vs_ours" in r else "-"
        lines.append(
            f"| {r['shape']} | {r['type']} | {r['T']} | {r['threads']} | {len(rounds['ours'])} "
            f"| {r['slots']} | {ms(r['ours'])} | {ms(r['ffn'])} | {ms(r.get('ggml'))} "
            f"| {ratio('ours')} | {ratio('ffn')} | {gf('ours')} | {gf('ffn')} | {gf('ggml')} "
            f"| {gbs('ours')} | {gbs('ffn')} | {gbs('ggml')} | {diff} |")
    lines.append("")
    checks = []
    for r in rows:
        if "ffn_vs_reference" not in r:
            continue
        tolerance = TOLERANCE[r["type"]]
        measured = [r[k] for k in ("ggml_vs_reference", "ggml_vs_ours") if k in r]
        verdict = "ok" if max(measured, default=0) <= tolerance and \
            r["ffn_vs_reference"] <= OURS_TOLERANCE else "**ABOVE TOLERANCE**"
        text = (f"- check {r['shape']} {r['type']} (T={r['T']}), max |diff| / max |value|: "
                f"our expert FFN vs the NumPy reference FFN on the same weights "
                f"{r['ffn_vs_reference']:.1e}")
        if "ggml_vs_reference" in r:
            text += (f"; ggml's down rows vs the same reference {r['ggml_vs_reference']:.1e}; "
                     f"ggml's rows combined with the routing weights vs our layer "
                     f"{r['ggml_vs_ours']:.1e}")
        text += (f" (tolerance {OURS_TOLERANCE:.0e} for ours"
                 + (f", {tolerance:.0e} for ggml" if measured else "") + f": {verdict})")
        q = r.get("quantizer_check")
        if q:
            text += (f"; ggml's quantizer vs ours on expert 0 of w_up: {q['differing']} of "
                     f"{q['bytes']} bytes differ")
        checks.append(text)
    lines += checks
    worst = [r for r in rows if "ggml_vs_ours" in r and r["ggml_vs_ours"] > TOLERANCE[r["type"]]]
    if worst:
        lines.append(f"- **{len(worst)} row(s) where ggml and ours differ beyond the tolerance**: "
                     + ", ".join(f"{r['shape']} {r['type']} T={r['T']}" for r in worst))
    lines.append("- cold rows (T <= 8): a buffer of 2x the last-level cache written before every "
                 "timed call of every side")
    if meta.get("quick"):
        lines.append("- --quick run (smoke test): not a measurement to quote")
    return "\n".join(lines) + "\n"


def chart(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in records if "shape" in r]
    shapes = [s for s in SHAPES if any(r["shape"] == s for r in rows)]
    types = [t for t in TYPES if any(r["type"] == t for r in rows)]
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(len(types), len(shapes),
                             figsize=(4.2 * len(shapes), 3.4 * len(types)), squeeze=False)
    styles = ["-", "--", ":", "-."]
    colors = {"ours": "C0", "ffn": "C1", "ggml": "C3"}
    labels = {"ours": "moe-mlir layer", "ffn": "moe-mlir expert FFN", "ggml": "ggml MUL_MAT_ID"}
    for i, dtype in enumerate(types):
        for j, shape in enumerate(shapes):
            ax = axes[i][j]
            for n, th in enumerate(threads):
                sel = sorted((r for r in rows if r["shape"] == shape and r["type"] == dtype
                              and r["threads"] == th), key=lambda r: r["T"])
                for key in KEYS:
                    pts = [(r["T"], r["flops"] / r[key] / 1e9) for r in sel if r.get(key)]
                    if pts:
                        ax.plot(*zip(*pts), marker="o", color=colors[key],
                                linestyle=styles[n % len(styles)],
                                label=f"{labels[key]}, {th} thr")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{shape}, {dtype}")
            ax.set_xlabel("tokens T")
            ax.set_ylabel("GFLOP/s (compute slots)")
            ax.grid(True, alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ggml", help="a checkout of ggml-org/ggml (built CPU-only by the script)")
    parser.add_argument("--ggml-build", help="its build folder (default DIR/build-moe-bench)")
    parser.add_argument("--no-repack", action="store_true",
                        help="ggml weights in a plain CPU buffer even where llama.cpp repacks them")
    parser.add_argument("--threads", type=int, nargs="+")
    parser.add_argument("--tokens", type=int, nargs="+")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES))
    parser.add_argument("--types", nargs="+", choices=TYPES)
    parser.add_argument("--repeat", type=int, default=5, help="rounds per row (at least)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: S2, T in {8, 512}, 1 thread, q8_0 and q4_0 "
                             "(to llama_cpp_quick.*)")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"),
                        help="moe-mlir build folder (lib/libmoe_bench_baselines.so)")
    parser.add_argument("--out", default=None, help="output prefix (default "
                        "bench/results/llama_cpp, or llama_cpp_quick with --quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ggml-lib", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    quick = {"shapes": ["S2"], "tokens": [8, 512], "threads": [1], "types": ["q8_0", "q4_0"]}
    full = {"shapes": DEFAULT_SHAPES, "tokens": [1, 8, 64, 512], "threads": [1, 2],
            "types": ["f32", "q8_0", "q4_0"]}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = os.path.join(ROOT, "bench", "results",
                                "llama_cpp_quick" if args.quick else "llama_cpp")
    baselines = os.path.join(args.build, "lib", "libmoe_bench_baselines.so")
    if not os.path.exists(baselines):
        raise SystemExit(f"{baselines} is missing (build moe-mlir with OpenBLAS installed)")

    meta = {"date": str(datetime.date.today()), "host": platform.node() or "this machine",
            "cpu": cpu_layer.cpu_name(), "cores": os.cpu_count(), "isa": isa_flags(),
            "quick": args.quick, "no_repack": args.no_repack, "args": vars(args)}
    print(f"CPU: {meta['cpu']}, {meta['cores']} cores; ISA: "
          + ", ".join(k for k, v in meta["isa"].items() if v))
    build_dir = args.ggml_build or (os.path.join(os.path.abspath(args.ggml), "build-moe-bench")
                                    if args.ggml else None)
    ggml_lib, reason = build_ggml(args.ggml, build_dir)
    if ggml_lib:
        meta.update(ggml_source=os.path.abspath(args.ggml), ggml_build=build_dir)
        print(f"ggml: harness {ggml_lib}")
    else:
        meta["ggml_skipped"] = reason
        print(f"skipped: ggml ({reason}); measuring our layer alone", flush=True)

    records = []
    start = time.perf_counter()
    for shape in args.shapes:
        records += run_child(shape, args, ggml_lib)
    for r in records:
        if "ggml_info" in r:
            meta["ggml_info"] = r["ggml_info"]
    meta["seconds"] = time.perf_counter() - start
    text = render(records, meta)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".md", "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "records": [r for r in records if "shape" in r]}, f, indent=1)
    chart(records, args.out + ".png")
    print(f"wrote {args.out}.md, {args.out}.json, {args.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
