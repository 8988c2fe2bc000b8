#!/usr/bin/env python3
"""GPU benchmark of the compiled MoE layer, built here and run on a GPU machine.

Here (MLIR installed):
  PYTHONPATH=build/python_packages /usr/bin/python3 bench/gpu_layer.py build --out build/gpu-bench

builds, for each shape (S1 Mixtral-like H=1024 F=2816 E=8 K=2; S1-Ada with
4 null experts, K=4, normalize non_null; S2 H=1024 F=512 E=64 K=8; Qwen3 a
Qwen3-30B-A3B-like H=2048 F=768 E=128 K=8; SwiGLU), a device-resident GPU
library (bf16 expert weights, f32 activations rounded to bf16 for the
tensor cores: bf16-rows; sm_80 + sm_90a cubins + PTX) and its capturable
form, and packages them with the runtime, the pure-Python moe_mlir files
and this script (tar.gz).

There (NumPy; PyTorch with CUDA for the baselines, optional):
  python3 gpu_layer.py run [--tokens 1 16 512 4096 16384] [--dry-run]

times, in the same process, for each shape and T: our layer (weights and x
uploaded once; best-of/median wall time of a call, which ends with a stream
synchronisation), a Mixtral-style PyTorch eager block in bf16 (per-expert
index select, three matmuls, index_add), `torch._grouped_mm` on the same
dispatched rows where the installed torch has it, and the device's limits
measured on the spot (dense bf16 matmul rate, device-to-device copy
bandwidth), and for decode (T <= 16) the replay of a CUDA graph that
captured a call of the capturable form. It prints a table with ratios and percentages of the limits and
writes gpu_layer.{md,json} next to itself. GFLOP/s count the compute slots
executed (2 * 3 * H * F per slot)."""
import argparse
import json
import os
import shutil
import sys
import tarfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {
    "S1": (1024, 2816, 8, 0, 2, "selected"),
    "S1-Ada": (1024, 2816, 8, 4, 4, "non_null"),
    "S2": (1024, 512, 64, 0, 8, "selected"),
    "Qwen3": (2048, 768, 128, 0, 8, "selected"),
}
# Decode sizes: these also time a captured graph's replay.
GRAPH_TOKENS = 16


def build(args):
    from moe_mlir import aot
    from moe_mlir.routing import compile_layer
    from moe_mlir.targets import DEFAULT_CHIPS, gpu_pipeline

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "libs"))
    names = args.shapes.split(",") if args.shapes else list(SHAPES)
    for name in names:
        H, F, E, N, K, normalize = SHAPES[name]
        layer = compile_layer(H, F, E, K, num_null=N, normalize=normalize, target="gpu-emulated")
        text, entry, arg_names = layer.module_text((), packed=False, weight_dtype="bf16")
        library = os.path.join(out, "libs", f"lib{name}.so")
        for path, capturable in ((library, False), (library[:-3] + "_capturable.so", True)):
            pipeline = gpu_pipeline(DEFAULT_CHIPS, device_arguments=True, capturable=capturable,
                                    bf16_rows=True)
            aot.build_shared_library(text, path, target="gpu", cpu="x86-64", pipeline=pipeline)
        with open(library + ".args", "w") as f:
            json.dump({"entry": entry, "arguments": list(arg_names)}, f)
        print(f"  built {name}")
    shutil.copy(aot.cuda_runtime_library(), os.path.join(out, "libs"))
    package = os.path.join(out, "moe_mlir")
    os.makedirs(package)
    source = os.path.join(os.path.dirname(HERE), "python", "moe_mlir")
    for file in sorted(os.listdir(source)):  # the top-level modules, not export/
        if file.endswith(".py"):
            shutil.copy(os.path.join(source, file), package)
    shutil.copy(os.path.abspath(__file__), out)
    with tarfile.open(out + ".tar.gz", "w:gz") as tar:
        tar.add(out, arcname=os.path.basename(out))
    print(f"wrote {out}.tar.gz: copy it to a GPU machine, then `python3 gpu_layer.py run`")


def built_shapes():
    """The (name, shape) pairs whose libraries the package holds."""
    return [(name, shape) for name, shape in SHAPES.items()
            if os.path.exists(os.path.join(HERE, "libs", f"lib{name}.so"))]


def bf16_bits(a):
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def timed(fn, sync, repeat):
    fn()
    sync()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def run(args):
    sys.path.insert(0, HERE)
    from moe_mlir import cuda
    from moe_mlir import reference as ref

    rt = cuda.Runtime(os.path.join(HERE, "libs", "libmoe_cuda_runtime.so"))
    if args.dry_run:
        return dry_run(rt, args)
    if rt.device_count() == 0:
        error = rt.lib.moeCudaLastError()
        sys.exit(f"no CUDA device ({error.decode() if error else 'none found'}); use --dry-run "
                 f"to only check the package")
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        torch, have_torch = None, False
    limits = {}
    if have_torch:
        dev = torch.device("cuda")
        n = 8192
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        t = timed(lambda: a @ b, torch.cuda.synchronize, 10)
        limits["bf16_tflops"] = 2 * n ** 3 / t / 1e12
        src = torch.empty(1 << 28, device=dev, dtype=torch.uint8)
        dst = torch.empty_like(src)
        t = timed(lambda: dst.copy_(src), torch.cuda.synchronize, 10)
        limits["copy_gbs"] = 2 * src.numel() / t / 1e9
        print(f"limits: dense bf16 {limits['bf16_tflops']:.0f} TFLOP/s, "
              f"copy {limits['copy_gbs']:.0f} GB/s")
    rows = []
    for name, (H, F, E, N, K, normalize) in built_shapes():
        with open(os.path.join(HERE, "libs", f"lib{name}.so.args")) as f:
            meta = json.load(f)
        fn = cuda.DeviceFunction(rt, os.path.join(HERE, "libs", f"lib{name}.so"), meta["entry"])
        captured = cuda.CapturableFunction(
            rt, os.path.join(HERE, "libs", f"lib{name}_capturable.so"), meta["entry"])
        rng = np.random.default_rng(0)
        S = E + N
        w = dict(w_router=rng.standard_normal((H, S), dtype=np.float32) / 32,
                 w_up=rng.standard_normal((E, H, F), dtype=np.float32) / 32,
                 w_gate=rng.standard_normal((E, H, F), dtype=np.float32) / 32,
                 w_down=rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F))
        device = {k: rt.to_device(bf16_bits(v) if k != "w_router" else v) for k, v in w.items()}
        for T in args.tokens:
            x = rng.standard_normal((T, H), dtype=np.float32)
            xd = rt.to_device(x)
            argv = [xd if n_ == "x" else device[n_] for n_ in meta["arguments"]]

            def call():
                (y,) = fn(*argv)
                rt.free(y)
            t_ours = timed(call, lambda: None, args.repeat)
            # On an sm_90a device: the same library with the sm_80
            # (mma.sync) kernels, to compare the two tensor-core paths.
            t_sm80 = None
            if rt.has_wgmma():
                rt.use_wgmma(False)
                try:
                    t_sm80 = timed(call, lambda: None, args.repeat)
                finally:
                    rt.use_wgmma(True)
            graph_ms = replay_ms(rt, captured, argv, args.repeat) if T <= GRAPH_TOKENS else None
            # Compute slots from the routing of the reference.
            ids, _ = ref.route(ref.gate(x, w["w_router"]), ref.ExpertSpace(compute=E, null=N),
                               K, normalize=normalize)
            slots = int(((ids >= 0) & (ids < E)).sum())
            flops = 6.0 * H * F * slots
            distinct = len(set(ids[(ids >= 0) & (ids < E)].tolist()))
            weight_bytes = distinct * 3 * H * F * 2
            row = dict(shape=name, T=T, slots=slots, ours_ms=1e3 * t_ours,
                       ours_tflops=flops / t_ours / 1e12,
                       weights_gbs=weight_bytes / t_ours / 1e9)
            row["kernels"] = "wgmma" if rt.has_wgmma() else "mma.sync"
            if t_sm80 is not None:
                row["mma_sync_ms"] = 1e3 * t_sm80
            if graph_ms is not None:
                row.update(graph_ms=graph_ms, graph_weights_gbs=weight_bytes / graph_ms / 1e6)
            if have_torch:
                row.update(torch_baselines(torch, x, w, ids, E, K, args.repeat))
            rows.append(row)
            rt.free(xd)
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()))
        for v in device.values():
            rt.free(v)
    result = dict(limits=limits, rows=rows)
    with open(os.path.join(HERE, "gpu_layer.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(HERE, "gpu_layer.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))


def dry_run(rt, args):
    """Without a GPU: every library loads and sizes its workspace."""
    from moe_mlir import cuda
    for name, (H, F, E, N, K, normalize) in built_shapes():
        with open(os.path.join(HERE, "libs", f"lib{name}.so.args")) as f:
            meta = json.load(f)
        cuda.DeviceFunction(rt, os.path.join(HERE, "libs", f"lib{name}.so"), meta["entry"])
        captured = cuda.CapturableFunction(
            rt, os.path.join(HERE, "libs", f"lib{name}_capturable.so"), meta["entry"])
        shapes = {"x": None, "w_router": (H, E + N), "w_up": (E, H, F), "w_gate": (E, H, F),
                  "w_down": (E, F, H)}
        for T in args.tokens:
            fake = [cuda.DeviceArray(0x1000, shapes[n] or (T, H),
                                     np.float32 if n in ("x", "w_router") else np.uint16)
                    for n in meta["arguments"]]
            need = captured.workspace_size(*fake)
            print(f"  {name:7s} T={T:6d}: loadable, capturable workspace {need / 2**20:.1f} MiB")
    print("dry run: nothing executed")


def replay_ms(rt, captured, argv, repeat):
    """Best time of a replay of a CUDA graph that captured one call."""
    workspace = rt.alloc((max(captured.workspace_size(*argv), 1),), np.uint8)
    stream = rt.stream()
    rt.begin_capture(stream)
    captured(*argv, workspace=workspace, stream=stream)
    graph = rt.end_capture(stream)
    best = rt.best_replay_ms(graph, stream, repeat)
    rt.destroy_graph(graph)
    rt.destroy_stream(stream)
    rt.free(workspace)
    return best


def torch_baselines(torch, x, w, ids, E, K, repeat):
    dev = torch.device("cuda")
    xt = torch.tensor(x, device=dev, dtype=torch.bfloat16)
    wu = torch.tensor(w["w_up"], device=dev, dtype=torch.bfloat16)
    wg = torch.tensor(w["w_gate"], device=dev, dtype=torch.bfloat16)
    wd = torch.tensor(w["w_down"], device=dev, dtype=torch.bfloat16)
    it = torch.tensor(ids, device=dev, dtype=torch.long)

    def eager():
        out = torch.zeros_like(xt)
        for e in range(E):
            token, slot = torch.where(it == e)
            if token.numel() == 0:
                continue
            r = xt.index_select(0, token)
            h = torch.nn.functional.silu(r @ wg[e]) * (r @ wu[e])
            out.index_add_(0, token, h @ wd[e])
        return out
    res = {"torch_ms": 1e3 * timed(eager, torch.cuda.synchronize, repeat)}
    if hasattr(torch, "_grouped_mm"):
        flat = it.flatten()
        order = torch.argsort(torch.where(flat >= 0, flat, E), stable=True)
        valid = order[(flat[order] >= 0) & (flat[order] < E)]
        rows = xt.index_select(0, valid // K)
        counts = torch.bincount(flat[valid], minlength=E)
        offs = torch.cumsum(counts, 0).to(torch.int32)

        def grouped():
            g = torch._grouped_mm(rows, wg, offs=offs)
            u = torch._grouped_mm(rows, wu, offs=offs)
            return torch._grouped_mm(torch.nn.functional.silu(g) * u, wd, offs=offs)
        try:
            res["grouped_mm_ms"] = 1e3 * timed(grouped, torch.cuda.synchronize, repeat)
        except Exception as error:  # not supported on this device / dtype
            res["grouped_mm_error"] = str(error)[:80]
    return res


def markdown(result):
    lines = []
    limits = result["limits"]
    if limits:
        lines.append(f"Limits: dense bf16 {limits['bf16_tflops']:.0f} TFLOP/s, "
                     f"copy {limits['copy_gbs']:.0f} GB/s.\n")

    def pct(value, limit):
        return f"{100 * value / limits[limit]:.1f}%" if limits and value is not None else "-"

    def ms(value):
        return f"{value:.3f}" if value is not None else "-"

    def ratio(theirs, ours):
        return f"{theirs / ours:.2f}x" if theirs is not None else "-"

    lines.append("| shape | T | slots | kernels | ours ms | sm_80 kernels ms | TFLOP/s | % bf16 "
                 "| weights GB/s | % copy "
                 "| graph replay ms | replay % copy | torch eager ms | ours vs eager "
                 "| grouped_mm ms | ours vs grouped_mm |")
    lines.append("|---" * 16 + "|")
    for r in result["rows"]:
        lines.append(
            f"| {r['shape']} | {r['T']} | {r['slots']} | {r.get('kernels', '-')} | "
            f"{r['ours_ms']:.3f} | {ms(r.get('mma_sync_ms'))} | "
            f"{r['ours_tflops']:.2f} | {pct(r['ours_tflops'], 'bf16_tflops')} | "
            f"{r['weights_gbs']:.0f} | {pct(r['weights_gbs'], 'copy_gbs')} | "
            f"{ms(r.get('graph_ms'))} | {pct(r.get('graph_weights_gbs'), 'copy_gbs')} | "
            f"{ms(r.get('torch_ms'))} | {ratio(r.get('torch_ms'), r['ours_ms'])} | "
            f"{ms(r.get('grouped_mm_ms'))} | {ratio(r.get('grouped_mm_ms'), r['ours_ms'])} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "build", "gpu-bench"))
    b.add_argument("--shapes", help=f"comma-separated shapes (default: all of {', '.join(SHAPES)})")
    r = sub.add_parser("run")
    r.add_argument("--tokens", type=int, nargs="+", default=[1, 16, 512, 4096, 16384])
    r.add_argument("--repeat", type=int, default=10)
    r.add_argument("--dry-run", action="store_true",
                   help="no GPU: load the libraries and size their workspaces, run nothing")
    args = parser.parse_args()
    build(args) if args.command == "build" else run(args)


if __name__ == "__main__":
    main()
