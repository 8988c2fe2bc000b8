"""Expert parallelism on this machine (loopback MPI): time per layer, bytes
exchanged per rank, exchange time against compute time, and the bytes the
null experts save, for S1, S1-Ada, S2 (and S1-Top4: S1-Ada's model with
top-4 over the 8 compute experts and no null experts, the baseline of the
saving) at T in {8, 512, 2048} tokens in all, on 1 and 2 ranks; the
measured loopback exchange bandwidth (32 MiB from every rank to every
other, through the runtime) in the same run.
4 ranks on 2 cores oversubscribe: the tests check them for correctness only.

    /usr/bin/python3 bench/ep_layer.py [--ranks 1 2] [--tokens 8 512 2048]
        [--rounds 5] [--out bench/results/ep_layer]

Each configuration is one `mpirun -np R` of this file with --worker; rank 0
prints one JSON line per row. Needs mpirun (scripts/setup.sh installs
OpenMPI) and a build (PYTHONPATH=build/python_packages).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from cpu_layer import cpu_flags, cpu_name  # noqa: E402 (bench/ is on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: hidden, ffn, compute experts, null experts, k, normalize
SHAPES = {
    "S1": (1024, 2816, 8, 0, 2, "selected"),
    "S1-Ada": (1024, 2816, 8, 4, 4, "non_null"),
    "S1-Top4": (1024, 2816, 8, 0, 4, "selected"),
    "S2": (1024, 512, 64, 0, 8, "selected"),
}


def layer_text(shape):
    H, F, E, N, K, normalize = SHAPES[shape]
    S = E + N
    space = f"<compute = {E}" + (f", null = {N}>" if N else ">")
    return f"""
func.func @layer(%x: tensor<?x{H}xf32>, %wr: tensor<{H}x{S}xf32>,
                 %wu: tensor<{E}x{H}x{F}xf32>, %wg: tensor<{E}x{H}x{F}xf32>,
                 %wd: tensor<{E}x{F}x{H}xf32>) -> tensor<?x{H}xf32> {{
  %y = moe.layer %x router(%wr : tensor<{H}x{S}xf32>) up(%wu : tensor<{E}x{H}x{F}xf32>)
      gate(%wg : tensor<{E}x{H}x{F}xf32>) down(%wd : tensor<{E}x{F}x{H}xf32>)
      experts = {space} k = {K} strategy = top_k normalize = {normalize}
      activation = silu gated : tensor<?x{H}xf32> -> tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}"""


def worker(args):
    from moe_mlir import ep
    rank, size = ep.init()
    # The transport's loopback rate (all-to-all of 32 MiB per pair), the
    # limit of the exchange on this machine.
    loopback = ep.exchange_bandwidth(32 * 2**20)
    for shape in args.shapes:
        H, F, E, N, K, _ = SHAPES[shape]
        rng = np.random.default_rng(1)
        wr = rng.standard_normal((H, E + N)).astype(np.float32) * 0.05
        first, count = ep.local_experts(E)
        wu = (rng.standard_normal((count, H, F)) * 0.02).astype(np.float32)
        wg = (rng.standard_normal((count, H, F)) * 0.02).astype(np.float32)
        wd = (rng.standard_normal((count, F, H)) * 0.02).astype(np.float32)
        f = ep.compile(layer_text(shape), "layer")
        for tokens in args.tokens:
            t0, n = ep.split_tokens(tokens)
            x = np.random.default_rng(2).standard_normal((tokens, H)).astype(np.float32)[t0:t0 + n]
            f(x, wr, wu, wg, wd)
            times = []
            ep.reset_counters()
            for _ in range(args.rounds):
                ep.allgather(b"s")  # start together
                start = time.perf_counter()
                f(x, wr, wu, wg, wd)
                times.append(time.perf_counter() - start)
            c = ep.counters()
            r = args.rounds
            mine = np.array([np.median(times), c["exchange_ns"] / r / 1e9, c["plan_ns"] / r / 1e9,
                             (c["dispatch_row_bytes_remote"] + c["dispatch_meta_bytes_remote"]) / r,
                             c["combine_row_bytes_remote"] / r, c["compute_slots"] / r,
                             (c["dispatch_rows_remote"] + c["dispatch_rows_self"]) / r],
                            np.float64)
            everyone = [np.frombuffer(b, np.float64) for b in ep.allgather(mine.tobytes())]
            if rank == 0:
                layer = max(e[0] for e in everyone)
                row = {"shape": shape, "T": tokens, "ranks": size,
                       "layer_ms": 1e3 * layer,
                       "exchange_ms": 1e3 * max(e[1] for e in everyone),
                       "plan_ms": 1e3 * max(e[2] for e in everyone),
                       "dispatch_bytes_per_rank": max(e[3] for e in everyone),
                       "combine_bytes_per_rank": max(e[4] for e in everyone),
                       "compute_slots": sum(e[5] for e in everyone),
                       "dispatch_rows": sum(e[6] for e in everyone),
                       "loopback_GBps": loopback}
                row["compute_ms"] = row["layer_ms"] - row["exchange_ms"] - row["plan_ms"]
                print("ROW " + json.dumps(row), flush=True)


def isa() -> str:
    """The vector ISA features of this CPU that the kernels use."""
    flags = cpu_flags()
    return ", ".join(name for name in ("avx512f", "avx2", "fma") if name in flags) or "unknown"


def table(rows):
    lines = ["| shape | T | ranks | layer ms | exchange ms | transfer bound ms | plan+pack ms | "
             "compute ms (rest) | dispatch MiB/rank | combine MiB/rank | compute slots | "
             "rows sent | loopback GB/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        moved = r["dispatch_bytes_per_rank"] + r["combine_bytes_per_rank"]
        bound = "-" if r["ranks"] == 1 else f"{1e3 * moved / (r['loopback_GBps'] * 1e9):.2f}"
        lines.append(f"| {r['shape']} | {r['T']} | {r['ranks']} | {r['layer_ms']:.2f} | "
                     f"{r['exchange_ms']:.2f} | {bound} | {r['plan_ms']:.2f} | "
                     f"{r['compute_ms']:.2f} | "
                     f"{r['dispatch_bytes_per_rank'] / 2**20:.3f} | "
                     f"{r['combine_bytes_per_rank'] / 2**20:.3f} | {r['compute_slots']:.0f} | "
                     f"{r['dispatch_rows']:.0f} | "
                     + ("-" if r['ranks'] == 1 else f"{r['loopback_GBps']:.2f}") + " |")
    saved = []
    for r in rows:
        if r["shape"] != "S1-Ada" or r["ranks"] < 2:
            continue
        base = next((b for b in rows if b["shape"] == "S1-Top4" and b["T"] == r["T"]
                     and b["ranks"] == r["ranks"]), None)
        if base:
            bytes_ada = r["dispatch_bytes_per_rank"] + r["combine_bytes_per_rank"]
            bytes_top4 = base["dispatch_bytes_per_rank"] + base["combine_bytes_per_rank"]
            saved.append(f"- T={r['T']}, {r['ranks']} ranks: S1-Ada exchanged "
                         f"{bytes_ada / 2**20:.3f} MiB per rank against {bytes_top4 / 2**20:.3f} "
                         f"for top-4 without null experts (saved "
                         f"{100 * (1 - bytes_ada / bytes_top4):.1f}%); compute slots "
                         f"{r['compute_slots']:.0f} vs {base['compute_slots']:.0f}")
    return "\n".join(lines + [""] + saved)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tokens", type=int, nargs="+", default=[8, 512, 2048])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    parser.add_argument("--table-from", metavar="JSON",
                        help="print (and with --out rewrite) the table of a saved run")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        text = saved["header"] + "\n\n" + table(saved["rows"])
        print(text)
        if args.out:
            with open(args.out + ".md", "w") as f:
                f.write(text + "\n")
        return 0
    sys.path.insert(0, os.path.join(ROOT, "build", "python_packages"))
    from moe_mlir import ep
    try:
        launcher = ep.mpirun_command
        ep.mpirun_command(1)
    except ep.EPError as error:
        print(f"skipped: {error}")
        return 0
    rows = []
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "build", "python_packages"),
               OMP_NUM_THREADS="1")
    for ranks in args.ranks:
        command = launcher(ranks) + [sys.executable, os.path.abspath(__file__), "--worker", "--rounds",
                    str(args.rounds), "--tokens", *map(str, args.tokens), "--shapes", *args.shapes]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        rows += [json.loads(line[4:]) for line in done.stdout.splitlines()
                 if line.startswith("ROW ")]
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({cpu_name()}): "
              f"{os.cpu_count()} cores, ISA {isa()}; MPI loopback (OpenMPI, one process per "
              f"rank, one thread each); f32, top-k, balanced placement; max over ranks per "
              f"row; {args.rounds} rounds (median).")
    text = header + "\n\n" + table(rows)
    print(text)
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write(text + "\n")
        with open(args.out + ".json", "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
