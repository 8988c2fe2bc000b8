#!/usr/bin/env python3
"""Compares the IR that two builds of moe-opt print for the test inputs.

CI builds moe-opt twice: with gcc (build/) and with clang (build-sanitize/).
Every lowering must print the same IR whichever compiler built it (nothing
may depend on the evaluation order of function arguments, which gcc and
clang choose differently). For each `RUN: moe-opt %s ARGS ...` line of the
inputs under test/Integration, test/Conversion and test/Pipelines (lines
expecting diagnostics are skipped), both binaries run with ARGS and their
outputs must be byte-identical.

scripts/sanitize.sh runs it after the sanitizer build (the gcc build of
build/ against the clang build of build-sanitize/).

Usage: compare-builds.py MOE_OPT_A MOE_OPT_B [TEST_DIR...]
"""
import concurrent.futures
import difflib
import os
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIRS = ["test/Integration", "test/Conversion", "test/Pipelines"]
RUN = re.compile(r"//\s*RUN:\s*moe-opt\s+%s\s+(.*?)(?:\||$)")


# What legitimately differs between two runs: gpu-module-to-binary records
# how long the NVPTX back end took.
_TIMING = re.compile(r"(LLVMIRToISATimeInMs = )\d+")


def normalize(ir):
    return _TIMING.sub(r"\g<1>N", ir)


def commands(path):
    for line in path.read_text().splitlines():
        m = RUN.search(line)
        if not m or "verify-diagnostics" in line or "%" in m.group(1):
            continue
        yield shlex.split(m.group(1))


def run(binary, path, args):
    result = subprocess.run([binary, str(path), *args], capture_output=True,
                            text=True, timeout=600)
    return result.returncode, normalize(result.stdout)


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    a, b = argv[1], argv[2]
    dirs = argv[3:] or [str(ROOT / d) for d in DIRS]
    jobs = [(path, args) for directory in dirs
            for path in sorted(pathlib.Path(directory).rglob("*.mlir"))
            if "Inputs" not in path.parts for args in commands(path)]

    def compare(job):
        path, args = job
        codeA, outA = run(a, path, args)
        codeB, outB = run(b, path, args)
        return path, args, codeA, codeB, outA, outB

    differ = []
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for path, args, codeA, codeB, outA, outB in pool.map(compare, jobs):
            if codeA != codeB or outA != outB or codeA != 0:
                differ.append((path, args, codeA, codeB, outA, outB))
    compared = len(jobs)
    for path, args, codeA, codeB, outA, outB in differ:
        print(f"DIFFERENT: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
              f"{' '.join(args)} (exit {codeA} vs {codeB})")
        diff = difflib.unified_diff(outA.splitlines(), outB.splitlines(),
                                    a, b, lineterm="", n=1)
        for i, line in enumerate(diff):
            if i == 40:
                print("  ...")
                break
            print("  " + line)
    print(f"compare-builds: {compared} outputs compared, {len(differ)} differ or failed")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
