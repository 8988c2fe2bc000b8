#!/usr/bin/env python3
"""Builds the GPU test matrix: for every case of moe_mlir.gpu_cases, a shared
library compiled with the GPU pipeline (sm_80 and sm_90a cubins plus PTX in
one fatbin) in three forms (host arguments, device arguments, capturable:
stream and workspace), its inputs (.npz) and the reference's expected output, plus the
CUDA runtime (libmoe_cuda_runtime.so), the pure-Python moe_mlir files and
the runner. Copy the folder (or its .tar.gz) to a GPU machine and run
`python3 run_cases.py` there (NumPy only; no MLIR, no lit).

Before packaging, each case also runs here with the GPU kernels emulated on
the host (target "gpu-emulated") and is checked against the reference.

  PYTHONPATH=build/python_packages /usr/bin/python3 scripts/gpu-test-matrix.py \
      --out build/gpu-matrix [--dry-run]

--dry-run then runs the runner here in its dry mode: every library loads and
every case's files are there, nothing executes (no GPU)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "gpu-matrix"))
    parser.add_argument("--chips", default="sm_80,sm_90a")
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--dry-run", action="store_true",
                        help="then run the runner here in dry mode")
    args = parser.parse_args()

    from moe_mlir import aot, compiler, gpu_cases
    from moe_mlir.routing import compile_layer
    from moe_mlir.targets import gpu_emulation_pipeline, gpu_pipeline

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "cases"))
    chips = tuple(args.chips.split(","))
    names = args.only.split(",") if args.only else list(gpu_cases.CASES)
    manifest = {"format": "moe_mlir.gpu_matrix/1", "chips": list(chips), "cases": []}
    for name in names:
        H, F, E, K, T, kw, _ = gpu_cases.CASES[name]
        inputs = gpu_cases.inputs(name)
        opts = gpu_cases.options(name)
        layer = compile_layer(H, F, E, K, target="gpu-emulated", **kw)
        text, entry, arg_names = layer.module_text(gpu_cases.optional_names(name),
                                                   weight_dtype=opts["weight_dtype"])
        emulation = gpu_emulation_pipeline() + ("{bf16-rows=1}" if opts["bf16_rows"] else "")
        emulated = compiler.compile(text, entry, pipeline=emulation)(
            *[inputs[n] for n in arg_names])
        gpu_cases.check(name, emulated, inputs)
        wgmma = ""
        if opts["bf16_rows"] and "sm_90a" in chips:
            # The tensor-core case also through the sm_90a kernels' emulation
            # (the device picks them on an H100/H200).
            wgmma_emulated = compiler.compile(
                text, entry, pipeline=gpu_emulation_pipeline() + "{bf16-rows=1 wgmma=1}")(
                *[inputs[n] for n in arg_names])
            gpu_cases.check(name, wgmma_emulated, inputs)
            wgmma = ", sm_90a kernels too"
        forms = {"": dict(), "_resident": dict(device_arguments=True),
                 # The capturable form: the caller's stream and workspace.
                 "_capturable": dict(capturable=True)}
        for suffix, form in forms.items():
            pipeline = gpu_pipeline(chips, bf16_rows=opts["bf16_rows"], **form)
            aot.build_shared_library(text, os.path.join(out, "cases", f"lib{name}{suffix}.so"),
                                     target="gpu", cpu="x86-64", pipeline=pipeline)
        np.savez(os.path.join(out, "cases", f"{name}.npz"),
                 **{n: inputs[n] for n in arg_names}, expected=emulated)
        manifest["cases"].append({"name": name, "library": f"cases/lib{name}.so",
                                  "resident_library": f"cases/lib{name}_resident.so",
                                  "capturable_library": f"cases/lib{name}_capturable.so",
                                  "entry": entry, "arguments": list(arg_names),
                                  "inputs": f"cases/{name}.npz"})
        print(f"  built {name}: T={T} H={H} F={F} E={E} K={K} (emulated kernels conform{wgmma})")

    shutil.copy(aot.cuda_runtime_library(), os.path.join(out, "cases"))
    package = os.path.join(out, "moe_mlir")
    os.makedirs(package)
    source = os.path.join(ROOT, "python", "moe_mlir")
    # The package's top-level modules (not the exporters): the runner needs
    # the ctypes calling convention and the reference, not the compiler.
    for file in sorted(os.listdir(source)):
        if file.endswith(".py"):
            shutil.copy(os.path.join(source, file), package)
    for file in ("run_cases.py", "run.sh"):
        shutil.copy(os.path.join(ROOT, "tools", "gpu-runner", file), out)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    archive = out + ".tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out, arcname=os.path.basename(out))
    size = os.path.getsize(archive) / 2**20
    print(f"wrote {out} and {archive} ({size:.1f} MiB, {len(names)} cases)")
    sys.stdout.flush()
    if args.dry_run:
        env = dict(os.environ, PYTHONPATH=out)
        subprocess.run([sys.executable, os.path.join(out, "run_cases.py"), "--dry-run"],
                       check=True, env=env, cwd=out)


if __name__ == "__main__":
    main()
