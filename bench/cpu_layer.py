#!/usr/bin/env python3
"""CPU benchmark of a compiled MoE layer against its baselines and against
the machine's limits, all measured in the same run.

Shapes (f32, SwiGLU): S1 Mixtral-like H=1024 F=2816 E=8 K=2; S1-Ada the same
with AdaMoE routing (8 compute + 4 null experts, K=4, normalize non_null);
S2 fine-grained H=1024 F=512 E=64 K=8. Tokens T in {1, 8, 64, 512, 2048};
threads 1 and 2. For each row, in one process whose thread counts are pinned
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, torch.set_num_threads,
OMP_WAIT_POLICY=PASSIVE):

* ours: the compiled layer with weights bound once (`compile_layer(...)
  .bind(...)`: packed panels);
  `ours bf16`: the same with bf16 weight storage (f32 compute);
* ffn: our compiled moe.expert_ffn alone on the dispatched rows (the same
  work as the OpenBLAS loop);
* OpenBLAS: a per-expert loop in C++ (sgemm, sgemv for one row) on exactly
  the dispatched rows (bench/baselines/Baselines.cpp). OpenBLAS 0.3.21
  falls back to its SSE3 kernels on CPU models it does not know (this VM's):
  unless OPENBLAS_CORETYPE is set, the benchmark sets it from the CPU flags
  (PyTorch uses the same OpenBLAS) and reports the kernels used;
* torch: PyTorch eager running a Mixtral-style block (per-expert index
  select, three matmuls, index_add);
* limits: an FMA loop with 12 independent chains (GFLOP/s) and a stream
  triad (GB/s), with the same thread count;
* ours on 1 thread, in the rounds of the multi-thread child: the thread
  scaling.

This VM's speed drifts by 2-5x over minutes, so the rows are measured in
rounds: for one T and thread count, every shape, every implementation and
the two limit probes are called once per round (rotating order, after one
warm-up call each), for at least --repeat rounds and 2 s. Times are medians
over rounds; every ratio and percentage is the median of the per-round
ratios, so that both sides of a comparison saw the same machine.

GFLOP/s are counted on the compute slots actually executed (2*H*F*3 per
slot, as moe-cost-report counts them). Bandwidth-bound rows (T <= 8) report
GB/s over the distinct expert weight bytes the routing reads.

Writes the table (Markdown) and a chart of GFLOP/s against T per
implementation next to --out (default bench/results/cpu_layer.{md,png}).

Usage: PYTHONPATH=build/python_packages python3 bench/cpu_layer.py
       [--threads 1 2] [--tokens 1 8 64 512 2048] [--shapes S1 S1-Ada S2]
       [--repeat N] [--quick]
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: hidden, ffn, compute experts, null experts, k, normalize
SHAPES = {
    "S1": (1024, 2816, 8, 0, 2, "selected"),
    "S1-Ada": (1024, 2816, 8, 4, 4, "non_null"),
    "S2": (1024, 512, 64, 0, 8, "selected"),
}


# Implementations timed per row (ours_1t: the layer on one thread, in the
# rounds of the multi-thread child).
KEYS = ("ours", "ours_bf16", "ours_1t", "ffn", "blas", "torch")

# OpenBLAS cores that are generic fallbacks: OpenBLAS 0.3.21 (Debian 12)
# does not know recent CPU models and picks its SSE3 "Prescott" kernels,
# 3x slower than its AVX-512 ones here (32 vs 99 GFLOP/s for one sgemm).
GENERIC_OPENBLAS_CORES = {"prescott", "core2", "nehalem", "katmai", "coppermine",
                          "northwood", "banias", "atom", "generic"}


def cpu_flags():
    """The CPU's feature flags (/proc/cpuinfo), or none where it is absent."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return []


def openblas_core():
    """The kernel set the process's OpenBLAS uses (PyTorch and the C++ loop
    share it)."""
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_get_corename.restype = ctypes.c_char_p
        return blas.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def openblas_environment():
    """OPENBLAS_CORETYPE for the children: unchanged when the user set it or
    OpenBLAS recognises the CPU; otherwise the best kernels the CPU's flags
    allow, so that neither baseline runs on a generic fallback."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return {}, None
    detected = subprocess.run([sys.executable, "-c",
                               "import ctypes; b = ctypes.CDLL('libopenblas.so.0'); "
                               "b.openblas_get_corename.restype = ctypes.c_char_p; "
                               "print(b.openblas_get_corename().decode())"],
                              capture_output=True, text=True).stdout.strip()
    if detected.lower() not in GENERIC_OPENBLAS_CORES:
        return {}, None
    flags = cpu_flags()
    for flag, core in (("avx512_bf16", "Cooperlake"), ("avx512f", "SkylakeX"),
                       ("avx2", "Haswell")):
        if flag in flags:
            return {"OPENBLAS_CORETYPE": core}, detected
    return {}, None


# --------------------------------------------------------------------------
# Child: one thread count
# --------------------------------------------------------------------------

def interleaved_times(candidates, repeat, min_seconds=2.0, max_rounds=30, before=None):
    """Times every candidate (name -> callable) in rounds: each round calls
    each candidate once, in an order rotated from round to round, after one
    warm-up call each. Returns name -> list of seconds, one per round.

    This VM's speed drifts by 2-5x over minutes; measuring the candidates of
    a comparison in the same rounds exposes them to the same drift, and the
    ratios are taken per round (see `paired`). `before` (not timed) runs
    ahead of every timed call (the cache flush of cold rows)."""
    names = list(candidates)
    for name in names:
        candidates[name]()
    times = {name: [] for name in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeat or (time.perf_counter() - start < min_seconds and rounds < max_rounds):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            if before:
                before()
            t0 = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return times


def last_level_cache_bytes():
    """The largest cache the OS reports (bytes), or 256 MiB if unknown."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in os.listdir(base):
            with open(os.path.join(base, index, "size")) as f:
                text = f.read().strip()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            best = max(best, int(text.rstrip("KMG")) * scale)
    except (OSError, ValueError):
        pass
    return best or 256 << 20


class CacheFlush:
    """Writes a buffer twice the last-level cache so that the next call reads
    its weights from DRAM (cold), as a decode step does for expert weights
    larger than the cache."""

    def __init__(self):
        self.buffer = np.ones(2 * last_level_cache_bytes() // 4, np.float32)

    def __call__(self):
        self.buffer += 1.0


def make_weights(shape, seed):
    H, F, E, N, K, _ = SHAPES[shape]
    rng = np.random.default_rng(seed)
    S = E + N
    w_router = (rng.standard_normal((H, S), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
    # With AdaMoE (top-4 over 8 + 4 null), about a third of the slots land
    # on null experts; the compute slots are counted, not assumed.
    w_up = (rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
    w_gate = (rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
    w_down = (rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F)).astype(np.float32)
    return w_router, w_up, w_gate, w_down


def torch_block(torch, shape, w_router, w_up, w_gate, w_down):
    """A Mixtral-style eager block: router, softmax, top-k, per expert index
    select, three matmuls, index_add."""
    H, F, E, N, K, normalize = SHAPES[shape]
    wr = torch.from_numpy(w_router)
    w1 = [torch.from_numpy(np.ascontiguousarray(w_gate[e])) for e in range(E)]
    w3 = [torch.from_numpy(np.ascontiguousarray(w_up[e])) for e in range(E)]
    w2 = [torch.from_numpy(np.ascontiguousarray(w_down[e])) for e in range(E)]

    def run(x):
        with torch.no_grad():
            probs = torch.softmax(x @ wr, dim=-1)
            weights, ids = torch.topk(probs, K, dim=-1)
            if normalize == "non_null":
                real = ids < E
                total = (weights * real).sum(-1, keepdim=True)
                weights = torch.where(real, weights / torch.where(total > 0, total,
                                                                  torch.ones_like(total)),
                                      torch.zeros_like(weights))
            else:
                weights = weights / weights.sum(-1, keepdim=True)
            out = torch.zeros_like(x)
            for e in range(E):
                token, slot = torch.where(ids == e)
                if token.numel() == 0:
                    continue
                rows = x.index_select(0, token)
                h = torch.nn.functional.silu(rows @ w1[e]) * (rows @ w3[e])
                out.index_add_(0, token, (h @ w2[e]) * weights[token, slot, None])
            return out
    return run


def child(args):
    threads = args.child
    import torch  # after the thread variables are set (parent's env)
    torch.set_num_threads(threads)
    import moe_mlir
    from moe_mlir import reference as ref
    from moe_mlir.routing import compile_layer, pack_panels

    lib = ctypes.CDLL(os.path.join(args.build, "lib", "libmoe_bench_baselines.so"))
    lib.moe_fma_peak.restype = ctypes.c_double
    lib.moe_triad.restype = ctypes.c_double
    lib.moe_triad.argtypes = [ctypes.c_int, ctypes.c_long]
    lib.moe_blas_threads(threads)
    pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    print(json.dumps({"openblas_core": openblas_core()}), flush=True)

    # Every shape is compiled and bound up front, so that the rows of one T
    # (all shapes, all implementations, the machine's limits) are measured
    # in the same rounds.
    setups = {}
    for shape in args.shapes:
        H, F, E, N, K, normalize = SHAPES[shape]
        w_router, w_up, w_gate, w_down = make_weights(shape, 1)
        layer = compile_layer(H, F, E, K, num_null=N, normalize=normalize)
        ffn_text = f"""
func.func @ffn(%rows: tensor<?x{H}xf32>, %offsets: tensor<{E + 1}xi32>,
               %wu: tensor<{E}x{-(-F // 32)}x{H}x32xf32>, %wg: tensor<{E}x{-(-F // 32)}x{H}x32xf32>,
               %wd: tensor<{E}x{-(-H // 32)}x{F}x32xf32>) -> tensor<?x{H}xf32> {{
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x{H}xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x{H}xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<{E}x{-(-F // 32)}x{H}x32xf32>)
      gate(%wg : tensor<{E}x{-(-F // 32)}x{H}x32xf32>) down(%wd : tensor<{E}x{-(-H // 32)}x{F}x32xf32>)
      activation = silu gated packed into(%init_y) : tensor<?x{H}xf32>, tensor<{E + 1}xi32> into tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}"""
        setups[shape] = {
            "weights": (w_router, w_up, w_gate, w_down),
            "ours": layer.bind(w_router, w_up, w_down, w_gate),
            "ours_bf16": layer.bind(w_router, w_up, w_down, w_gate, weight_dtype="bf16"),
            "ffn": moe_mlir.compile(ffn_text, "ffn"),
            "packed": [pack_panels(w) for w in (w_up, w_gate, w_down)],
            "torch": torch_block(torch, shape, w_router, w_up, w_gate, w_down),
            "contiguous": [np.ascontiguousarray(w) for w in (w_up, w_gate, w_down)],
            "experts": ref.ExpertSpace(compute=E, null=N),
        }

    flush = CacheFlush()
    for T in args.tokens:
        # Bandwidth-bound rows run with cold weights (flushed caches).
        cold = T <= 8
        candidates = {}
        rows_info = {}
        for shape, setup in setups.items():
            H, F, E, N, K, normalize = SHAPES[shape]
            w_router = setup["weights"][0]
            rng = np.random.default_rng(1000 + T)
            x = rng.standard_normal((T, H), dtype=np.float32)
            # The routing, from the reference, to dispatch the rows of the
            # FFN-only measurements (ours and OpenBLAS) and count slots.
            logits = x.astype(np.float32) @ w_router
            ids, _ = ref.route(logits, setup["experts"], K, normalize=normalize)
            compute = (ids >= 0) & (ids < E)
            order = np.argsort(np.where(compute, ids, E).ravel(), kind="stable")
            slots = int(compute.sum())
            rows = np.ascontiguousarray(x[order[:slots] // K])
            counts = np.bincount(ids[compute].ravel(), minlength=E)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            experts_read = int((counts > 0).sum())
            out = np.empty((max(slots, 1), H), np.float32)
            scratch = np.empty(2 * max(slots, 1) * F, np.float32)
            wu_c, wg_c, wd_c = setup["contiguous"]
            xt = torch.from_numpy(x)

            def blas(rows=rows, offsets=offsets, E=E, H=H, F=F, wu=wu_c, wg=wg_c, wd=wd_c,
                     out=out, scratch=scratch, slots=slots):
                lib.moe_expert_loop(pointer(rows), pointer(offsets), E, H, F, pointer(wu),
                                    pointer(wg), pointer(wd), pointer(out), pointer(scratch),
                                    ctypes.c_long(max(slots, 1)))

            candidates[(shape, "ours")] = lambda f=setup["ours"], x=x: f(x)
            if threads > 1:
                # Thread scaling from the same rounds: the layer on one thread.
                def one_thread(f=setup["ours"], x=x):
                    moe_mlir.set_num_threads(1)
                    try:
                        f(x)
                    finally:
                        moe_mlir.set_num_threads(threads)
                candidates[(shape, "ours_1t")] = one_thread
            if T <= 64:
                candidates[(shape, "ours_bf16")] = lambda f=setup["ours_bf16"], x=x: f(x)
            candidates[(shape, "ffn")] = \
                lambda f=setup["ffn"], r=rows, o=offsets, p=setup["packed"]: f(r, o, *p)
            candidates[(shape, "blas")] = blas
            candidates[(shape, "torch")] = lambda f=setup["torch"], xt=xt: f(xt)
            # The outputs agree (a benchmark of wrong code measures nothing).
            want = setup["torch"](xt).numpy()
            error = float(np.abs(setup["ours"](x) - want).max() / max(np.abs(want).max(), 1e-30))
            rows_info[shape] = {"slots": slots, "experts_read": experts_read,
                                "flops": 2.0 * H * F * 3 * slots,
                                "weight_bytes": 4.0 * 3 * H * F * experts_read,
                                "error_vs_torch": error}
        # The machine's limits, measured in the same rounds.
        fma_rounds, triad_rounds = [], []

        def limits_probe():
            fma_rounds.append(lib.moe_fma_peak(threads))
            triad_rounds.append(lib.moe_triad(threads, 40_000_000))
        candidates[("limits", "fma")] = limits_probe
        times = interleaved_times(candidates, args.repeat, before=flush if cold else None)
        # The warm-up call appended one probe too: keep the timed rounds.
        fma_rounds, triad_rounds = fma_rounds[1:], triad_rounds[1:]
        for shape, info in rows_info.items():
            record = {"threads": threads, "shape": shape, "T": T, "cold": cold, **info,
                      "fma": statistics.median(fma_rounds),
                      "triad": statistics.median(triad_rounds),
                      "fma_rounds": fma_rounds, "triad_rounds": triad_rounds,
                      "rounds": {key: times[(shape, key)]
                                 for key in KEYS if (shape, key) in times}}
            for key in KEYS:
                record[key] = statistics.median(times[(shape, key)]) \
                    if (shape, key) in times else None
            print(json.dumps(record), flush=True)
    return 0


# --------------------------------------------------------------------------
# Parent: one child per thread count, then the table and the chart
# --------------------------------------------------------------------------

def compile_times():
    """Seconds to compile (CPU pipeline + LLVM, JIT) an exported Mixtral-style
    model with 1 and with 32 decoder layers (layers outlined per shape)."""
    sys.path.insert(0, os.path.join(ROOT, "test", "python"))
    import moe_mlir
    from fixtures import moe_models as mm
    from moe_mlir.export import export
    result = {}
    for layers in (1, 32):
        model = mm.make_mixtral_model(seed=0, num_layers=layers, hidden_size=128,
                                      intermediate_size=256, num_experts=8, top_k=2)
        exported = export(model, verify=False)
        start = time.perf_counter()
        moe_mlir.compile(exported.mlir, "forward")
        result[layers] = time.perf_counter() - start
    return result


def run_child(threads, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_WAIT_POLICY="PASSIVE", MOE_MLIR_NUM_THREADS=str(threads),
               **args.blas_env)
    command = [sys.executable, os.path.abspath(__file__), "--child", str(threads),
               "--build", args.build, "--repeat", str(args.repeat), "--shapes", *args.shapes,
               "--tokens", *map(str, args.tokens)]
    results = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            record = json.loads(line)
            results.append(record)
            if "shape" in record:
                print(f"  measured {record['shape']} T={record['T']} threads={threads}",
                      file=sys.stderr, flush=True)
    if process.returncode:
        raise SystemExit(f"benchmark child (threads={threads}) failed")
    return results


def paired(numerator, denominator):
    """Median over rounds of numerator[i] / denominator[i]: a ratio of two
    things measured in the same round, robust to the VM's drift."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def render(records, args, compile_seconds=None):
    rows = [r for r in records if "shape" in r]
    by_key = {(r["shape"], r["T"], r["threads"]): r for r in rows}
    lines = []
    lines.append(f"Measured {datetime.date.today()} on {platform.node() or 'this machine'}: "
                 f"{cpu_name()}, {os.cpu_count()} cores.")
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        fma = [r["fma"] for r in mine]
        triad = [r["triad"] for r in mine]
        lines.append(f"Limits with {threads} thread(s), measured in the rounds of every T: "
                     f"FMA peak {min(fma):.0f}-{max(fma):.0f} GFLOP/s, "
                     f"triad {min(triad):.1f}-{max(triad):.1f} GB/s.")
    cores = sorted({r["openblas_core"] for r in records if "openblas_core" in r})
    forced = getattr(args, "blas_detected", None)
    lines.append(f"OpenBLAS kernels (the C++ loop and PyTorch share them): {', '.join(cores)}"
                 + (f" (OPENBLAS_CORETYPE set by the benchmark: OpenBLAS's own detection "
                    f"picks the generic {forced} kernels on this CPU model)" if forced else "")
                 + ".")
    lines.append("")
    lines.append("Every row of one T and thread count (all shapes, all implementations, the FMA and "
                 "triad probes) is measured in the same rounds, one call each per round in a "
                 "rotating order; times are medians over rounds, ratios and percentages are "
                 "medians of per-round ratios.")
    lines.append("")
    header = ("| shape | T | thr | rounds | slots | ours ms | ours GF/s | % peak | ffn GF/s "
              "| OpenBLAS GF/s | ffn / BLAS | torch ms | ours / torch | weights GB/s | % triad "
              "| bf16 speedup | rel. diff vs torch |")
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        rounds = r["rounds"]
        gf = lambda t: r["flops"] / t / 1e9
        gbs = r["weight_bytes"] / r["ours"] / 1e9
        peak = 100 * statistics.median(r["flops"] / t / 1e9 / f
                                       for t, f in zip(rounds["ours"], r["fma_rounds"]))
        triad = 100 * statistics.median(r["weight_bytes"] / t / 1e9 / b
                                        for t, b in zip(rounds["ours"], r["triad_rounds"]))
        bf16 = f"{paired(rounds['ours'], rounds['ours_bf16']):.2f}x" \
            if "ours_bf16" in rounds else "-"
        lines.append(
            f"| {r['shape']} | {r['T']} | {r['threads']} | {len(rounds['ours'])} | {r['slots']} "
            f"| {r['ours'] * 1e3:.2f} | {gf(r['ours']):.1f} | {peak:.0f}% "
            f"| {gf(r['ffn']):.1f} | {gf(r['blas']):.1f} "
            f"| {paired(rounds['blas'], rounds['ffn']):.2f}x "
            f"| {r['torch'] * 1e3:.2f} | {paired(rounds['torch'], rounds['ours']):.2f}x "
            f"| {gbs:.1f} | {triad:.0f}% | {bf16} | {r['error_vs_torch']:.1e} |")
    # Threads scaling and null experts.
    lines.append("")
    for (shape, T, threads), r in sorted(by_key.items()):
        if "ours_1t" in r["rounds"]:
            lines.append(f"- {shape} T={T}: {threads} threads "
                         f"{paired(r['rounds']['ours_1t'], r['rounds']['ours']):.2f}x one thread "
                         f"(same rounds)")
    for T in sorted({r["T"] for r in rows}):
        for threads in sorted({r["threads"] for r in rows}):
            a, b = by_key.get(("S1-Ada", T, threads)), by_key.get(("S1", T, threads))
            if a and b:
                time_ratio = paired(a["rounds"]["ours"], b["rounds"]["ours"])
                ffn_ratio = paired(a["rounds"]["ffn"], b["rounds"]["ffn"])
                lines.append(
                    f"- null experts, T={T}, {threads} thread(s): S1-Ada/S1 layer time "
                    f"{time_ratio:.2f}, expert FFN time {ffn_ratio:.2f}; compute slots "
                    f"{a['slots'] / b['slots']:.2f}, distinct expert bytes "
                    f"{a['weight_bytes'] / b['weight_bytes']:.2f}")
    if compile_seconds:
        lines.append(f"- compile time (CPU pipeline + LLVM, JIT) of an exported Mixtral-style model: "
                     f"1 layer {compile_seconds[1]:.2f} s, 32 layers {compile_seconds[32]:.2f} s")
    lines.append("- cold rows (T <= 8): weights flushed from the caches before every timed call")
    return "\n".join(lines) + "\n"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def chart(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in records if "shape" in r]
    shapes = sorted({r["shape"] for r in rows}, key=list(SHAPES).index)
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(len(threads), len(shapes), figsize=(4.2 * len(shapes), 3.4 * len(threads)),
                             squeeze=False)
    for i, th in enumerate(threads):
        for j, shape in enumerate(shapes):
            ax = axes[i][j]
            sel = sorted((r for r in rows if r["shape"] == shape and r["threads"] == th),
                         key=lambda r: r["T"])
            Ts = [r["T"] for r in sel]
            for key, label in (("ours", "moe-mlir layer"), ("ffn", "moe-mlir expert FFN"),
                               ("blas", "OpenBLAS loop"), ("torch", "PyTorch eager")):
                ax.plot(Ts, [r["flops"] / r[key] / 1e9 for r in sel], marker="o", label=label)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{shape}, {th} thread(s)")
            ax.set_xlabel("tokens T")
            ax.set_ylabel("GFLOP/s (compute slots)")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 64, 512, 2048])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="S1 only, T in {1, 64}, 1 thread")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out", default=None,
                        help="output prefix (default bench/results/cpu_layer, or "
                             "bench/results/cpu_layer_quick with --quick)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.shapes, args.tokens, args.threads = ["S1"], [1, 64], [1]
    if args.out is None:
        # A quick run never overwrites the full results the README shows.
        args.out = os.path.join(ROOT, "bench", "results",
                                "cpu_layer_quick" if args.quick else "cpu_layer")
    args.blas_env, args.blas_detected = openblas_environment()
    records = []
    for threads in args.threads:
        records += run_child(threads, args)
    compile_seconds = None if args.quick else compile_times()
    text = render(records, args, compile_seconds)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".md", "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump(records, f, indent=1)
    chart(records, args.out + ".png")
    print(f"wrote {args.out}.md, {args.out}.json, {args.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
