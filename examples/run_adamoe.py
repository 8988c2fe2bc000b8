#!/usr/bin/env python3
"""Compiles examples/adamoe.mlir to native code, runs it, and checks it.

The model: 2 AdaMoE layers (hidden 256, FFN 512, 8 compute + 4 null experts,
top-4 over all 12 experts, weights renormalised over the real experts) with
residual connections. Weights come from a fixed seed. The module is compiled
with the CPU pipeline (moe-cpu-pipeline) and JIT-executed; the output is
compared with the NumPy reference (contract section 5), and the routing is
summarised: compute slots used against a dense top-4 layer, the per-token k
distribution, and the FLOPs this saves (section 6: a compute slot costs
2*H*F*3 FLOPs for a gated FFN).
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import moe_mlir  # noqa: E402
from moe_mlir import conformance  # noqa: E402
from moe_mlir import reference as ref  # noqa: E402

H, F, E, N_NULL, K, LAYERS = 256, 512, 8, 4, 4, 2


def make_weights(rng):
    layers = []
    for _ in range(LAYERS):
        layers.append([
            rng.standard_normal((H, E + N_NULL), dtype=np.float32) / np.sqrt(H),  # router
            rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),        # up
            rng.standard_normal((E, H, F), dtype=np.float32) / np.sqrt(H),        # gate
            rng.standard_normal((E, F, H), dtype=np.float32) / np.sqrt(F),        # down
        ])
    return layers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    weights = make_weights(rng)
    x = rng.standard_normal((args.tokens, H), dtype=np.float32)

    start = time.perf_counter()
    model = moe_mlir.compile(open(os.path.join(HERE, "adamoe.mlir")).read(), "adamoe_model")
    compile_s = time.perf_counter() - start
    flat = [w for layer in weights for w in layer]
    model(x, *flat)  # warm-up
    start = time.perf_counter()
    y = model(x, *flat)
    run_ms = 1e3 * (time.perf_counter() - start)
    print(f"compiled adamoe_model in {compile_s:.2f} s; ran T={args.tokens} in {run_ms:.2f} ms")

    # The reference, layer by layer, with the routing statistics.
    experts = ref.ExpertSpace(compute=E, null=N_NULL)
    flops_per_slot = 2 * H * F * 3
    h = x
    used_total = 0
    for i, (w_router, w_up, w_gate, w_down) in enumerate(weights):
        trace = ref.layer_trace(h, w_router, w_up, w_down, experts, K, w_gate=w_gate,
                                normalize="non_null", activation="silu", gated=True)
        compute = (trace.ids >= 0) & (trace.ids < E)
        per_token = compute.sum(axis=1)
        used = int(per_token.sum())
        used_total += used
        print(f"layer {i}: {used} compute slots of {args.tokens * K} dense top-{K} slots "
              f"({100.0 * (1 - used / (args.tokens * K)):.1f}% fewer expert FLOPs); "
              f"experts per token (k = 0..{K}): {np.bincount(per_token, minlength=K + 1).tolist()}")
        h = h + trace.out
    dense = LAYERS * args.tokens * K
    print(f"model: {used_total * flops_per_slot / 1e6:.1f} MFLOP in the experts vs "
          f"{dense * flops_per_slot / 1e6:.1f} MFLOP for dense top-{K} "
          f"(ratio {used_total / dense:.3f})")

    result = conformance.compare_rows(y, h)
    error = float(np.max(np.abs(y - h))) if y.size else 0.0
    print(f"native vs NumPy reference: max |diff| {error:.2e}, "
          f"{'conforms' if result.ok else 'DOES NOT CONFORM'} (contract section 5)")
    if not result.ok:
        print(result.report())
        sys.exit(1)


if __name__ == "__main__":
    main()
