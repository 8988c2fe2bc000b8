#!/usr/bin/env python3
"""Checks the PTX of an MLIR file's gpu.binary ops (moe-opt --moe-gpu-pipeline
with fatbin=0, which keeps each chip's PTX as text) with the toolkit's ptxas:
every kernel of every chip must assemble with no spill stores or loads and
without ptxas's C7517/C7519 notes (wgmma serialised by inserted waits).
Prints one line per (binary, chip): registers, spills and how many
tensor-core instructions the PTX holds, then "ok" or the problems; exits 1
on any problem.

    scripts/ptx-check.py model.gpu.mlir [--ptxas PATH] [--keep DIR]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

BINARY = re.compile(r'gpu\.binary @(\w+)')
OBJECT = re.compile(r'#gpu\.object<#nvvm\.target<[^>]*chip = "(\w+)"[^>]*>\s*,\s*'
                    r'(?:properties = \{[^}]*\}\s*,\s*)?assembly = "((?:[^"\\]|\\.)*)"', re.S)
TENSOR_CORE = {"mma.sync": re.compile(r"\bmma\.sync\.aligned\b"),
               "wgmma": re.compile(r"\bwgmma\.mma_async\b"),
               "cp.async.bulk.tensor": re.compile(r"\bcp\.async\.bulk\.tensor\b")}


def unescape(text: str) -> str:
    """MLIR string escapes (\\\\, \\", \\n, \\t, \\XX hex) to text."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = text[i + 1]
        simple = {"\\": b"\\", '"': b'"', "n": b"\n", "t": b"\t"}
        if n in simple:
            out += simple[n]
            i += 2
        else:
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
    return out.decode()


def objects(text: str):
    """(binary, chip, ptx) for every PTX object in the module."""
    starts = [(m.start(), m.group(1)) for m in BINARY.finditer(text)]
    for index, (start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        for m in OBJECT.finditer(text, start, end):
            yield name, m.group(1), unescape(m.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mlir")
    parser.add_argument("--ptxas", default=os.path.join(
        os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ptxas"))
    parser.add_argument("--keep", help="write each PTX file into this directory")
    args = parser.parse_args()
    with open(args.mlir) as f:
        text = f.read()
    found = list(objects(text))
    if not found:
        print(f"{args.mlir}: no gpu.binary with PTX (compile with fatbin=0)")
        return 1
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or scratch
        os.makedirs(directory, exist_ok=True)
        for name, chip, ptx in found:
            path = os.path.join(directory, f"{name}.{chip}.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            done = subprocess.run([args.ptxas, f"-arch={chip}", "-v", path, "-o", os.devnull],
                                  capture_output=True, text=True)
            log = done.stdout + done.stderr
            spills = [int(a) + int(b) for a, b in
                      re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)]
            registers = [int(r) for r in re.findall(r"Used (\d+) registers", log)]
            counts = {k: len(p.findall(ptx)) for k, p in TENSOR_CORE.items()}
            problems = []
            if done.returncode != 0:
                problems.append("ptxas failed: " + log.strip().splitlines()[-1])
            if any(spills):
                problems.append(f"spills ({sum(spills)} bytes)")
            for note in ("C7517", "C7519"):
                if note in log:
                    problems.append(f"ptxas note {note} (serialised wgmma)")
            tensor = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "no tensor-core ops"
            print(f"{name} {chip}: {len(registers)} kernel(s), max {max(registers, default=0)} "
                  f"registers, {sum(spills)} spill bytes, {tensor}: "
                  + ("ok" if not problems else "; ".join(problems)))
            failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
