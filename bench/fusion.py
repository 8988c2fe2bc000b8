#!/usr/bin/env python3
"""Fused against unfused gating + routing + dispatch, side by side in one run.

The CPU pipeline fuses moe.gate + moe.route + moe.dispatch into
moe.route_dispatch (moe-fuse-gating-dispatch), which walks the tokens in
tiles and never materialises the [T, S] logits. This benchmark compiles the
same module twice, with ``moe-cpu-pipeline`` (fused, the default) and with
``moe-cpu-pipeline{fuse=false}``, checks that both give identical outputs,
and times them alternately on routing-heavy shapes (many experts, small H,
large T), for the routing stage alone and for a whole layer.

Reported per row: median milliseconds of each path, the speedup
(unfused / fused), the router's GFLOP/s (2*T*H*S multiply-adds counted once)
and the effective bandwidth of the fused path over the bytes it must touch
at least (x, the router weights, the dispatched rows, ids, weights, slot
rows), against a copy bandwidth measured in the same run.

Large buffers are served from glibc's heap (MALLOC_MMAP_THRESHOLD_, set by
re-executing unless already set) so that both paths reuse memory from call
to call; set MALLOC_MMAP_THRESHOLD_ yourself to measure another policy.

Usage: PYTHONPATH=build/python_packages python3 bench/fusion.py [--tokens T]
       [--repeat N] [--quick]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import moe_mlir
from moe_mlir.routing import RoutingConfig

FUSED = "moe-cpu-pipeline"
UNFUSED = "moe-cpu-pipeline{fuse=false}"

# name, E, null, K, H, F, extra routing parameters
SHAPES = [
    ("top_k E=128 K=2", 128, 0, 2, 64, 32, dict()),
    ("top_k E=256 K=4", 256, 0, 4, 64, 32, dict()),
    ("AdaMoE E=128+64 null K=4", 128, 64, 4, 64, 32, dict(normalize="non_null")),
    ("top_p(0.6) E=128 K=4", 128, 0, 4, 64, 32, dict(strategy="top_p", p=0.6)),
    ("sigmoid groups(8,4) E=256 K=8", 256, 0, 8, 64, 32,
     dict(scoring="sigmoid", groups=(8, 4), normalize="selected")),
]


def routing_module(cfg: RoutingConfig, H: int) -> str:
    S, K, E = cfg.S, cfg.k, cfg.E
    return (
        f"func.func @routing(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{S}xf32>)\n"
        f"    -> (tensor<?x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>, tensor<?x{K}xf32>) {{\n"
        f"  %c0 = arith.constant 0 : index\n"
        f"  %t = tensor.dim %x, %c0 : tensor<?x{H}xf32>\n"
        f"  %l0 = tensor.empty(%t) : tensor<?x{S}xf32>\n"
        f"  %l = moe.gate %x, %wr into(%l0) : tensor<?x{H}xf32>, tensor<{H}x{S}xf32> into tensor<?x{S}xf32>\n"
        f"  %ids0 = tensor.empty(%t) : tensor<?x{K}xi32>\n"
        f"  %w0 = tensor.empty(%t) : tensor<?x{K}xf32>\n"
        f"  %ids, %w = moe.route %l {cfg.attributes()} into(%ids0, %w0)\n"
        f"      : tensor<?x{S}xf32> into tensor<?x{K}xi32>, tensor<?x{K}xf32>\n"
        f"  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = {E}\n"
        f"      : tensor<?x{H}xf32>, tensor<?x{K}xi32>\n"
        f"      -> tensor<?x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>\n"
        f"  return %rows, %off, %slots, %w\n"
        f"      : tensor<?x{H}xf32>, tensor<{E + 1}xi32>, tensor<?x{K}xi32>, tensor<?x{K}xf32>\n"
        f"}}\n")


def layer_module(cfg: RoutingConfig, H: int, F: int) -> str:
    S, E = cfg.S, cfg.E
    return (
        f"func.func @layer(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{S}xf32>,\n"
        f"                 %wu: tensor<{E}x{H}x{F}xf32>, %wg: tensor<{E}x{H}x{F}xf32>,\n"
        f"                 %wd: tensor<{E}x{F}x{H}xf32>) -> tensor<?x{H}xf32> {{\n"
        f"  %y = moe.layer %x router(%wr : tensor<{H}x{S}xf32>)\n"
        f"      up(%wu : tensor<{E}x{H}x{F}xf32>) gate(%wg : tensor<{E}x{H}x{F}xf32>)\n"
        f"      down(%wd : tensor<{E}x{F}x{H}xf32>)\n"
        f"      {cfg.attributes()} activation = silu gated\n"
        f"      : tensor<?x{H}xf32> -> tensor<?x{H}xf32>\n"
        f"  return %y : tensor<?x{H}xf32>\n"
        f"}}\n")


def copy_bandwidth(megabytes: int = 256, repeat: int = 5) -> float:
    """GB/s of np.copyto over a buffer far larger than the caches (one read
    and one write per element)."""
    n = megabytes * (1 << 20) // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def time_pair(fused, unfused, args, repeat: int):
    """Alternates the two (ABBA order, so that neither always runs first)
    and returns the median times (s), the median of the per-round ratios
    unfused / fused, and the fraction of rounds in which fused was faster."""
    for _ in range(2):
        fused(*args)
        unfused(*args)
    tf, tu = [], []
    for r in range(repeat):
        order = ((fused, tf), (unfused, tu)) if r % 2 == 0 else ((unfused, tu), (fused, tf))
        for function, times in order:
            start = time.perf_counter()
            function(*args)
            times.append(time.perf_counter() - start)
    ratios = [u / f for f, u in zip(tf, tu)]
    wins = sum(r > 1.0 for r in ratios) / len(ratios)
    return statistics.median(tf), statistics.median(tu), statistics.median(ratios), wins


def same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b))
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def measure(index: int, stage: str, T: int, repeat: int, bandwidth: float) -> bool:
    """One row (shape `index`, `stage`); run in a process of its own so that
    no row inherits another's heap."""
    name, E, null, K, H, F, extra = SHAPES[index]
    cfg = RoutingConfig(E, K, num_null=null, **extra)
    S = cfg.S
    rng = np.random.default_rng(index)
    x = rng.standard_normal((T, H), dtype=np.float32)
    wr = (rng.standard_normal((H, S), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
    if stage == "routing":
        text, entry, args = routing_module(cfg, H), "routing", (x, wr)
    else:
        wu = (rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
        wg = (rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
        wd = (rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F)).astype(np.float32)
        text, entry, args = layer_module(cfg, H, F), "layer", (x, wr, wu, wg, wd)
    fused = moe_mlir.compile(text, entry, pipeline=FUSED)
    unfused = moe_mlir.compile(text, entry, pipeline=UNFUSED)
    out_f, out_u = fused(*args), unfused(*args)
    ok = same(out_f, out_u)
    if not ok:
        print(f"{name}: fused and unfused outputs differ ({stage})", file=sys.stderr)
    tf, tu, ratio, wins = time_pair(fused, unfused, args, repeat)
    router_flops = 2.0 * T * H * S
    line = (f"{name:32} {stage:8} {tf * 1e3:9.2f} {tu * 1e3:10.2f} {ratio:7.3f}x "
            f"{100 * wins:4.0f}% {router_flops / tf / 1e9:11.2f} ")
    if stage == "routing":
        # Bytes the fused routing stage must touch: x and W_router read, the
        # dispatched rows written, ids/weights/slot rows written.
        R = out_f[0].shape[0]
        gbs = 4.0 * (T * H + H * S + R * H + 3 * T * K) / tf / 1e9
        line += f"{gbs:10.2f} {100 * gbs / bandwidth:8.1f}% "
    else:
        line += f"{'-':>10} {'-':>9} "
    print(line + f"{4.0 * T * S / 1e6:8.1f}", flush=True)
    return ok


def main(argv=None) -> int:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and argv is None:
        # Large buffers from the heap, reused from call to call, as a serving
        # runtime's caching allocator would: otherwise glibc maps fresh pages
        # for every large result, and the page faults (whose cost depends on
        # what the previous call freed) swamp the difference being measured.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 32),
                   MALLOC_TRIM_THRESHOLD_=str(1 << 32))
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="first two shapes, fewer tokens")
    parser.add_argument("--only", default="", help="run the shapes whose name contains this")
    parser.add_argument("--row", nargs=3, metavar=("INDEX", "STAGE", "GBS"),
                        help=argparse.SUPPRESS)  # one row, in a child process
    opts = parser.parse_args(argv)
    T = 2048 if opts.quick else opts.tokens
    if opts.row:
        return 0 if measure(int(opts.row[0]), opts.row[1], T, opts.repeat,
                            float(opts.row[2])) else 1

    indices = range(2) if opts.quick else range(len(SHAPES))
    indices = [i for i in indices if opts.only in SHAPES[i][0]]
    bandwidth = copy_bandwidth()
    print(f"# fused vs unfused gating+dispatch, T = {T}, 1 thread, median of {opts.repeat}")
    print(f"# copy bandwidth measured now: {bandwidth:.1f} GB/s")
    header = (f"{'shape':32} {'stage':8} {'fused ms':>9} {'unfused ms':>10} {'speedup':>8} {'wins':>5} "
              f"{'router GF/s':>11} {'fused GB/s':>10} {'% copy bw':>9} {'[T,S] MB':>8}")
    print(header)
    print("-" * len(header), flush=True)
    ok = True
    for index in indices:
        for stage in ("routing", "layer"):
            command = [sys.executable, os.path.abspath(__file__), "--row", str(index), stage,
                       str(bandwidth), "--tokens", str(opts.tokens), "--repeat", str(opts.repeat)]
            if opts.quick:
                command.append("--quick")
            ok &= subprocess.run(command).returncode == 0
    print("# speedup = median over rounds of unfused / fused time; wins = rounds where fused")
    print("# was faster (rounds alternate which runs first); each row runs in a fresh process;")
    print("# router GF/s counts 2*T*H*S for the stage's time; fused GB/s = minimum bytes of the")
    print("# routing stage / fused time; [T,S] MB is the logits tensor the unfused path writes")
    print("# and reads back (the fused path never does).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
