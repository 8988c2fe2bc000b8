#!/usr/bin/env python3
"""Compiles exec-variants.mlir into the object moe-exec-fuzzer links.

moe-opt --moe-cpu-pipeline (serial), mlir-translate --mlir-to-llvmir, every
defined function marked ``sanitize_address``, clang -O1 with
-fsanitize=address,fuzzer-no-link (every load and store checked, branches
counted for the fuzzer), then the generated code's malloc and free renamed to
the fuzzer's hooks (which fill fresh buffers with a pattern, to catch results
that depend on uninitialised memory)."""

import argparse
import os
import re
import subprocess
import sys
import tempfile


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, **kwargs)
    if done.returncode != 0:
        sys.exit(f"build-exec-variants: {' '.join(command)} failed:\n"
                 f"{done.stderr.decode(errors='replace')}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-opt", required=True)
    parser.add_argument("--llvm-bin", required=True, help="mlir-translate, llvm-objcopy")
    parser.add_argument("--clang", required=True)
    parser.add_argument("source")
    parser.add_argument("output")
    args = parser.parse_args()
    lowered = run([args.moe_opt, args.source, "--moe-cpu-pipeline"])
    llvm_ir = run([os.path.join(args.llvm_bin, "mlir-translate"), "--mlir-to-llvmir"],
                  input=lowered).decode()
    llvm_ir = re.sub(r"^(define [^\n]*\)[^\n{]*)\{$", r"\1 sanitize_address {", llvm_ir,
                     flags=re.M)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "variants.ll")
        obj = os.path.join(tmp, "variants.o")
        with open(source, "w") as f:
            f.write(llvm_ir)
        run([args.clang, "-c", "-O1", "-fPIC", "-fsanitize=address,fuzzer-no-link",
             "-fno-omit-frame-pointer", "-Wno-override-module", source, "-o", obj])
        run([os.path.join(args.llvm_bin, "llvm-objcopy"),
             "--redefine-sym", "malloc=moe_fuzz_malloc",
             "--redefine-sym", "free=moe_fuzz_free",
             "--redefine-sym", "aligned_alloc=moe_fuzz_aligned_alloc", obj, args.output])


if __name__ == "__main__":
    main()
