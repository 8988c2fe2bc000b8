#!/usr/bin/env python3
"""Evaluates examples/adamoe.mlir's model with the NumPy reference.

The model: 2 AdaMoE layers (hidden 256, FFN 512, 8 compute + 4 null experts,
top-4 over all 12 experts, weights renormalised over the real experts) with
residual connections, as in examples/adamoe.mlir. Weights come from a fixed
seed. Prints, per layer, how many compute slots the tokens used against a
dense top-4 layer, the per-token k distribution, and the FLOPs this saves
(contract section 6: a compute slot costs 2*H*F*3 FLOPs for a gated FFN).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from moe_mlir import reference as ref  # noqa: E402

H, F, E, N_NULL, K, LAYERS = 256, 512, 8, 4, 4, 2


def make_weights(rng):
    layers = []
    for _ in range(LAYERS):
        layers.append(dict(
            w_router=rng.standard_normal((H, E + N_NULL), dtype=np.float32) / np.sqrt(H),
            w_up=rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),
            w_gate=rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),
            w_down=rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F),
        ))
    return layers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    weights = make_weights(rng)
    x = rng.standard_normal((args.tokens, H), dtype=np.float32)
    experts = ref.ExpertSpace(compute=E, null=N_NULL)
    flops_per_slot = 2 * H * F * 3

    h = x
    total_used = total_dense = 0
    for i, w in enumerate(weights):
        trace = ref.layer_trace(h, w["w_router"], w["w_up"], w["w_down"], experts, K,
                                w_gate=w["w_gate"], strategy=ref.TopK(),
                                normalize="non_null", activation="silu", gated=True)
        compute = (trace.ids >= 0) & (trace.ids < E)
        per_token = compute.sum(axis=1)
        used, dense = int(per_token.sum()), args.tokens * K
        total_used += used
        total_dense += dense
        hist = np.bincount(per_token, minlength=K + 1)
        load = np.diff(trace.offsets)
        print(f"layer {i}: compute slots {used} of {dense} dense top-{K} slots "
              f"({100.0 * (1 - used / dense):.1f}% fewer expert FLOPs)")
        print(f"  experts per token (k = 0..{K}): {hist.tolist()}")
        print(f"  rows per expert: {load.tolist()}")
        h = h + trace.out
    print(f"model: {total_used * flops_per_slot / 1e6:.1f} MFLOP in the experts vs "
          f"{total_dense * flops_per_slot / 1e6:.1f} MFLOP for dense top-{K} "
          f"(ratio {total_used / total_dense:.3f})")
    print(f"output: shape {h.shape}, mean {h.mean():+.6f}, std {h.std():.6f}, "
          f"finite {bool(np.isfinite(h).all())}")


if __name__ == "__main__":
    main()
