"""The expert-parallel demo of scripts/run-example.sh: examples/adamoe.mlir
(two AdaMoE layers with residuals, 8 compute + 4 null experts, top-4) with
seeded random weights, run by moe-run in one process and under mpirun with
2 and 4 ranks (--expert-parallel balanced); `check` compares the outputs.

    python3 examples/expert_parallel.py prepare --out DIR   # DIR/{x,r0,...}.npy
    python3 examples/expert_parallel.py check --out DIR     # one.npy vs ranks*.npy
"""

import argparse
import os
import sys

import numpy as np

NAMES = ["x", "r0", "u0", "g0", "d0", "r1", "u1", "g1", "d1"]


def prepare(out: str, tokens: int):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    shapes = {"x": (tokens, 256), "r0": (256, 12), "u0": (8, 256, 512), "g0": (8, 256, 512),
              "d0": (8, 512, 256)}
    for layer in "01":
        for kind in "rugd":
            shape = shapes[kind + "0"]
            scale = 1.0 if kind == "r" else 0.05
            np.save(os.path.join(out, f"{kind}{layer}.npy"),
                    (rng.standard_normal(shape) * scale).astype(np.float32))
    np.save(os.path.join(out, "x.npy"), rng.standard_normal(shapes["x"]).astype(np.float32))
    print(" ".join(f"-i {os.path.join(out, n + '.npy')}" for n in NAMES))


def check(out: str) -> int:
    one = np.load(os.path.join(out, "one.npy"))
    status = 0
    for ranks in (2, 4):
        path = os.path.join(out, f"ranks{ranks}.npy")
        got = np.load(path)
        same = got.shape == one.shape and np.array_equal(got, one)
        print(f"{ranks} ranks vs one process: {'bit-equal' if same else 'DIFFERENT'} "
              f"({got.shape[0]} tokens, max |diff| = "
              f"{np.abs(got - one).max() if got.shape == one.shape else 'shape'})")
        status |= 0 if same else 1
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["prepare", "check"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.out, args.tokens)
        return 0
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
