#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tools/fuzzers/corpus/.

IR targets (verify, cpu-pipeline, gpu-pipeline): every module of the
project's own tests and examples, split at `// -----` as lit's
-split-input-file does. Execution target (exec): one input per variant and a
few token counts, bytes from a fixed-seed generator. File names are content
hashes, as libFuzzer names the inputs it adds, so running this again adds
nothing twice. The corpora grow from these seeds by fuzzing (scripts/fuzz.sh)
and are committed minimised (at most a few MB)."""

import glob
import hashlib
import os
import random

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
CORPUS = os.path.join(ROOT, "tools", "fuzzers", "corpus")
IR_TARGETS = ("verify", "cpu-pipeline", "gpu-pipeline")
EXEC_VARIANTS = 19


def write(target: str, data: bytes) -> bool:
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha1(data).hexdigest())
    if os.path.exists(path):
        return False
    with open(path, "wb") as f:
        f.write(data)
    return True


def ir_seeds():
    sources = sorted(glob.glob(os.path.join(ROOT, "test", "**", "*.mlir"), recursive=True))
    sources += sorted(glob.glob(os.path.join(ROOT, "examples", "*.mlir")))
    sources += [os.path.join(ROOT, "tools", "fuzzers", "exec-variants.mlir")]
    for source in sources:
        with open(source, "rb") as f:
            text = f.read()
        for chunk in text.split(b"\n// -----\n"):
            # Only the IR: lit's RUN and CHECK lines are comments anyway,
            # but they take bytes the mutator would have to carry along.
            lines = [line for line in chunk.split(b"\n")
                     if not line.lstrip().startswith(b"//")]
            body = b"\n".join(lines).strip()
            if body:
                yield body + b"\n"


def exec_seeds():
    rng = random.Random(1)
    for variant in range(EXEC_VARIANTS):
        for tokens in (0, 1, 5, 17, 241):
            payload = bytes(rng.randrange(256) for _ in range(3500))
            yield bytes([variant, tokens, 1]) + payload


def main():
    added = {}
    for seed in ir_seeds():
        for target in IR_TARGETS:
            added[target] = added.get(target, 0) + write(target, seed)
    for seed in exec_seeds():
        added["exec"] = added.get("exec", 0) + write("exec", seed)
    for target, count in sorted(added.items()):
        print(f"{target}: {count} new seed(s)")


if __name__ == "__main__":
    main()
