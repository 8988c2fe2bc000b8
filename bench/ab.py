#!/usr/bin/env python3
"""A/B benchmark of two builds of moe-mlir on the CPU layer: a change against
the build before it, side by side in the same rounds.

For each round, one child process per build (alternating which goes first)
compiles the bound layer (`compile_layer(...).bind(...)`, f32 weights in
packed panels) of every shape with that build's package and compiler, and
times it at every T (the median of the calls of at least 0.3 s, after a
warm-up; weights cold for T <= 8, as in bench/cpu_layer.py). The speed ratio
of a row is the median over rounds of t_old / t_new, so both sides of a
ratio saw the same state of the machine (this VM's speed drifts over
minutes). GFLOP/s count the compute slots (2*H*F*3 per slot).

Usage: python3 bench/ab.py --old OLD_BUILD_DIR --new NEW_BUILD_DIR
       [--shapes S1 S1-Ada S2] [--tokens 1 64 512] [--threads 1] [--rounds 5]
(each build dir holds python_packages/ with its moe_mlir and extension).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_layer  # noqa: E402  (shapes, weights, cache flush, CPU name)


def isa():
    """The widest x86 vector ISA of this CPU, from /proc/cpuinfo."""
    flags = cpu_layer.cpu_flags()
    for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx")):
        if flag in flags:
            return name + (" + AVX512-BF16" if "avx512_bf16" in flags else "")
    return "no AVX"


def child(args):
    """Times every (shape, T) with the build on PYTHONPATH; one JSON line each."""
    from moe_mlir import reference as ref
    from moe_mlir.routing import compile_layer

    flush = cpu_layer.CacheFlush()
    for shape in args.shapes:
        H, F, E, N, K, normalize = cpu_layer.SHAPES[shape]
        w_router, w_up, w_gate, w_down = cpu_layer.make_weights(shape, 1)
        layer = compile_layer(H, F, E, K, num_null=N, normalize=normalize)
        bound = layer.bind(w_router, w_up, w_down, w_gate)
        for T in args.tokens:
            x = np.random.default_rng(1000 + T).standard_normal((T, H), dtype=np.float32)
            ids, _ = ref.route(x @ w_router, ref.ExpertSpace(compute=E, null=N), K,
                               normalize=normalize)
            slots = int(((ids >= 0) & (ids < E)).sum())
            bound(x)
            times = []
            start = time.perf_counter()
            while len(times) < 3 or time.perf_counter() - start < 0.3:
                if T <= 8:
                    flush()
                t0 = time.perf_counter()
                bound(x)
                times.append(time.perf_counter() - t0)
            print(json.dumps({"shape": shape, "T": T, "slots": slots,
                              "seconds": statistics.median(times)}), flush=True)


def run(build, args):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(build), "python_packages"),
               OMP_NUM_THREADS=str(args.threads), MOE_MLIR_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    command = [sys.executable, os.path.abspath(__file__), "--child", "--shapes", *args.shapes,
               "--tokens", *map(str, args.tokens)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"the child of {build} failed:\n{result.stderr}")
    return {(r["shape"], r["T"]): r for r in map(json.loads, result.stdout.splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", help="build directory of the baseline")
    parser.add_argument("--new", help="build directory of the change")
    parser.add_argument("--shapes", nargs="+", default=["S1", "S1-Ada", "S2"],
                        choices=list(cpu_layer.SHAPES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[1, 64, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not args.old or not args.new:
        parser.error("--old and --new are required")

    print(f"{cpu_layer.cpu_name()} ({isa()}), {os.cpu_count()} cores, "
          f"{args.threads} thread(s), {args.rounds} rounds")
    rounds = []
    for r in range(args.rounds):
        order = [("old", args.old), ("new", args.new)]
        if r % 2:
            order.reverse()
        measured = {name: run(build, args) for name, build in order}
        rounds.append(measured)
        print(f"  round {r + 1}: " + ", ".join(
            f"{s} T={t} old {measured['old'][(s, t)]['seconds'] * 1e3:.2f} ms new "
            f"{measured['new'][(s, t)]['seconds'] * 1e3:.2f} ms"
            for s in args.shapes for t in args.tokens), flush=True)

    print("\n| shape | T | old ms | new ms | new GFLOP/s | speed new/old (median of rounds) |")
    print("|---|---|---|---|---|---|")
    worst = float("inf")
    for shape in args.shapes:
        H, F = cpu_layer.SHAPES[shape][:2]
        for T in args.tokens:
            old = [m["old"][(shape, T)]["seconds"] for m in rounds]
            new = [m["new"][(shape, T)]["seconds"] for m in rounds]
            ratio = statistics.median(o / n for o, n in zip(old, new))
            worst = min(worst, ratio)
            slots = rounds[0]["new"][(shape, T)]["slots"]
            gflops = 2 * H * F * 3 * slots / statistics.median(new) / 1e9
            print(f"| {shape} | {T} | {statistics.median(old) * 1e3:.2f} | "
                  f"{statistics.median(new) * 1e3:.2f} | {gflops:.1f} | {ratio:.3f} |")
    print(f"\nlowest speed ratio new/old: {worst:.3f}")


if __name__ == "__main__":
    sys.exit(main())
