#!/usr/bin/env python3
"""Runs the GPU test matrix built by scripts/gpu-test-matrix.py, on a machine
with an NVIDIA GPU and only Python + NumPy (no MLIR): every case's library is
loaded with ctypes, called on its inputs, and its output checked against the
NumPy reference with the semantics contract's conformance rule (section 5),
in three forms: host arguments, device arguments, and the capturable form
(the caller's stream and workspace), which is also captured in a CUDA graph
and replayed (the result region is overwritten with NaN before the replay,
so the replay must recompute it).

  python3 run_cases.py            # execute and check every case (needs a GPU)
  python3 run_cases.py --dry-run  # load every library, check the files; run nothing
  ./run.sh                        # both runs: plain and under compute-sanitizer

Exit status: 0 all passed, 1 a case failed, 2 no usable GPU (without --dry-run)."""
import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from moe_mlir import aot, cuda, gpu_cases  # noqa: E402


def runtime():
    lib = ctypes.CDLL(os.path.join(HERE, "cases", "libmoe_cuda_runtime.so"))
    lib.moeCudaLastError.restype = ctypes.c_char_p
    lib.moeCudaDeviceName.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib


def capture_and_replay(dev, path, entry, on_device, name, inputs, repeat):
    """The capturable form: a call on a stream, then the same call captured
    in a CUDA graph (global capture mode: an allocation or a synchronisation
    inside fails it) and replayed; both results are checked. Returns the
    best replay time in ms."""
    f = cuda.CapturableFunction(dev, path, entry)
    need = f.workspace_size(*on_device)
    workspace = dev.alloc((max(need, 1),), np.uint8)
    stream = dev.stream()
    graph = None
    try:
        (y,) = f(*on_device, workspace=workspace, stream=stream)
        dev.synchronize(stream)
        gpu_cases.check(name, dev.to_host(y), inputs)
        dev.begin_capture(stream)
        (y,) = f(*on_device, workspace=workspace, stream=stream)
        graph = dev.end_capture(stream)
        dev.fill32(y, 0x7FC00000, stream)  # NaN: the replay must write every element
        dev.launch_graph(graph, stream)
        dev.synchronize(stream)
        gpu_cases.check(name, dev.to_host(y), inputs)
        return dev.best_replay_ms(graph, stream, repeat)
    finally:
        if graph:
            dev.destroy_graph(graph)
        dev.destroy_stream(stream)
        dev.free(workspace)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--repeat", type=int, default=3, help="calls per case (timed)")
    args = parser.parse_args()
    with open(os.path.join(HERE, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "moe_mlir.gpu_matrix/1":
        sys.exit("manifest.json is not a moe_mlir GPU test matrix")
    os.environ.setdefault("MOE_CUDA_RUNTIME_QUIET", "1" if args.dry_run else "0")
    rt = runtime()
    devices = rt.moeCudaDeviceCount()
    if devices > 0:
        name = ctypes.create_string_buffer(256)
        rt.moeCudaDeviceName(name, 256)
        major, minor = ctypes.c_int(), ctypes.c_int()
        rt.moeCudaComputeCapability(ctypes.byref(major), ctypes.byref(minor))
        print(f"device: {name.value.decode()} (sm_{major.value}{minor.value}), "
              f"chips in the fatbins: {', '.join(manifest['chips'])}")
    elif not args.dry_run:
        error = rt.moeCudaLastError()
        print(f"no usable CUDA device ({error.decode() if error else 'none found'}); "
              f"use --dry-run to only check the package")
        return 2
    only = set(args.only.split(",")) if args.only else None
    failures = 0
    for case in manifest["cases"]:
        name = case["name"]
        if only and name not in only:
            continue
        data = np.load(os.path.join(HERE, case["inputs"]))
        arrays = [data[n] for n in case["arguments"]]
        inputs = {n: data[n] for n in case["arguments"]}
        library = aot.load(os.path.join(HERE, case["library"]))
        function = library.function(case["entry"], case["arguments"])
        resident_path = os.path.join(HERE, case["resident_library"])
        capturable_path = os.path.join(HERE, case["capturable_library"])
        if args.dry_run:
            ctypes.CDLL(resident_path)
            # The workspace query reads shapes only: it runs without a GPU.
            dev = cuda.Runtime(os.path.join(HERE, "cases", "libmoe_cuda_runtime.so"))
            captured = cuda.CapturableFunction(dev, capturable_path, case["entry"])
            fake = [cuda.DeviceArray(0x1000, a.shape, a.dtype) for a in arrays]
            need = captured.workspace_size(*fake)
            # The package is complete and its expected output is the contract's.
            gpu_cases.check(name, data["expected"], inputs)
            print(f"  {name:24s} loadable, {len(arrays)} inputs, expected output conforms, "
                  f"capturable workspace {need} bytes")
            continue
        try:
            times = []
            for _ in range(max(1, args.repeat)):
                start = time.perf_counter()
                y = function(*arrays)
                times.append(time.perf_counter() - start)
                error = rt.moeCudaLastError()
                if error:
                    raise RuntimeError(f"CUDA runtime: {error.decode()}")
            gpu_cases.check(name, y, inputs)
            # Device-resident: arguments copied once, result read back.
            dev = cuda.Runtime(os.path.join(HERE, "cases", "libmoe_cuda_runtime.so"))
            resident = cuda.DeviceFunction(dev, resident_path, case["entry"])
            on_device = [dev.to_device(a) for a in arrays]
            resident_times = []
            for _ in range(max(1, args.repeat)):
                start = time.perf_counter()
                (out,) = resident(*on_device)
                resident_times.append(time.perf_counter() - start)
                y_resident = dev.to_host(out)
                dev.free(out)
            gpu_cases.check(name, y_resident, inputs)
            replay_ms = capture_and_replay(dev, capturable_path, case["entry"], on_device,
                                           name, inputs, args.repeat)
            for a in on_device:
                dev.free(a)
            print(f"  {name:24s} PASS  {1e3 * min(times):8.3f} ms host to host, "
                  f"{1e3 * min(resident_times):8.3f} ms device resident, "
                  f"{replay_ms:8.3f} ms graph replay (best of {len(times)})")
        except Exception as error:  # report every case, then fail
            failures += 1
            rt.moeCudaClearError()
            print(f"  {name:24s} FAIL  {error}")
    if args.dry_run:
        print(f"dry run: {len(manifest['cases'])} case(s) packaged and loadable; "
              f"nothing executed")
        return 0
    print(f"{failures} failure(s)" if failures else "all cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
