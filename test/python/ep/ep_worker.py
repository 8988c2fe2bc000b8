"""One rank of the expert-parallel tests (run under mpirun by
test_expert_parallel.py, or alone as one rank). Every case compiles a layer
twice: in one process (the reference: all ranks' tokens, or the rank's own
tokens where the routing depends on the batch) and expert-parallel; the
rank's output must be bit-equal, and the exchange counters must add up.
Prints one line per case; exits nonzero on the first mismatch."""

import sys

import numpy as np

from moe_mlir import compiler, ep

H, F = 32, 48

LAYERS = {
    # name: (expert space, E, k, strategy text, extra operands, batch-coupled)
    "top_k_null": ("<compute = 8, null = 4>", 8, 4, "strategy = top_k normalize = non_null", "", False),
    "moepp_top_p": ("<compute = 8, null = 1, copy = 1, const = 2>", 8, 3,
                    "strategy = top_p<p = 0.7> normalize = selected", "const", False),
    "adaptive": ("<compute = 6, copy = 2>", 6, 2, "scoring = none strategy = adaptive<tau = 0.1>", "", False),
    "threshold": ("<compute = 8>", 8, 4, "strategy = threshold<tau = 0.05, k_min = 0>", "", False),
    "dynamic_k": ("<compute = 8, null = 2>", 8, 3, "strategy = dynamic_k normalize = selected", "kpt", False),
    "expert_choice": ("<compute = 8>", 8, 2, "strategy = expert_choice<capacity_factor = 1.25> normalize = selected", "", True),
    "capacity": ("<compute = 8>", 8, 2, "strategy = top_k capacity = <factor = 1.0, priority = position>", "", True),
}


def module(name):
    space, e, k, strategy, extra, _ = LAYERS[name]
    s = e + sum(int(p.split("=")[1]) for p in space.strip("<>").split(",")[1:])
    args = [f"%x: tensor<?x{H}xf32>", f"%wr: tensor<{H}x{s}xf32>"]
    kpt = const = ""
    if extra == "kpt":
        args.append("%kpt: tensor<?xi32>")
        kpt = " k_per_token(%kpt : tensor<?xi32>)"
    args += [f"%wu: tensor<{e}x{H}x{F}xf32>", f"%wg: tensor<{e}x{H}x{F}xf32>",
             f"%wd: tensor<{e}x{F}x{H}xf32>"]
    if extra == "const":
        args += [f"%wc: tensor<2x{H}x2xf32>", f"%v: tensor<2x{H}xf32>"]
        const = f" const_proj(%wc : tensor<2x{H}x2xf32>) const_values(%v : tensor<2x{H}xf32>)"
    return f"""
func.func @forward({', '.join(args)}) -> tensor<?x{H}xf32> {{
  %y = moe.layer %x router(%wr : tensor<{H}x{s}xf32>){kpt}
      up(%wu : tensor<{e}x{H}x{F}xf32>) gate(%wg : tensor<{e}x{H}x{F}xf32>)
      down(%wd : tensor<{e}x{F}x{H}xf32>){const}
      experts = {space} k = {k} {strategy} activation = silu gated
      : tensor<?x{H}xf32> -> tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}"""


def weights(name, rng, skew):
    space, e, k, _, extra, _ = LAYERS[name]
    s = e + sum(int(p.split("=")[1]) for p in space.strip("<>").split(",")[1:])
    wr = rng.standard_normal((H, s)).astype(np.float32)
    if skew:  # every token prefers experts 0 and 1 (one rank holds them)
        wr[:, 2:] -= 50.0
    out = {"wr": wr}
    out["wu"] = (rng.standard_normal((e, H, F)) * 0.2).astype(np.float32)
    out["wg"] = (rng.standard_normal((e, H, F)) * 0.2).astype(np.float32)
    out["wd"] = (rng.standard_normal((e, F, H)) * 0.2).astype(np.float32)
    if extra == "const":
        out["wc"] = rng.standard_normal((2, H, 2)).astype(np.float32)
        out["v"] = rng.standard_normal((2, H)).astype(np.float32)
    return out


def arguments(name, x, w, kpt):
    extra = LAYERS[name][4]
    args = [x, w["wr"]]
    if extra == "kpt":
        args.append(kpt)
    args += [w["wu"], w["wg"], w["wd"]]
    if extra == "const":
        args += [w["wc"], w["v"]]
    return args


def main():
    rank, size = ep.init()
    placements = ["balanced"]
    if size == 2:
        placements.append("0,3,8")
    if size == 4:
        placements.append("0,1,1,5,8")  # rank 1 holds no expert
    # Token layouts: counts per rank.
    layouts = {"even": [7] * size, "uneven": [11, 0] + [3] * (size - 2),
               "empty": [0] * size}
    failures = 0
    for name in LAYERS:
        text = module(name)
        single = compiler.compile(text, "forward")
        for placement in placements:
            e = LAYERS[name][1]
            if placement != "balanced" and int(placement.split(",")[-1]) != e:
                continue
            parallel = ep.compile(text, "forward", placement=placement)
            for layout, counts in layouts.items():
                for skew in (False, True):
                    if skew and layout != "even":
                        continue
                    rng = np.random.default_rng(7)
                    w = weights(name, rng, skew)
                    total = sum(counts)
                    x = rng.standard_normal((total, H)).astype(np.float32)
                    kpt = rng.integers(0, LAYERS[name][2] + 1, size=total).astype(np.int32)
                    first = sum(counts[:rank])
                    mine = slice(first, first + counts[rank])
                    if LAYERS[name][5]:  # routing decided per batch: the rank's batch
                        ref = single(*arguments(name, x[mine], w, kpt[mine]))
                    else:
                        ref = single(*arguments(name, x, w, kpt))[mine]
                    ep.reset_counters()
                    got = parallel(*arguments(name, x[mine], w, kpt[mine]))
                    c = ep.counters()
                    ok = got.shape == ref.shape and np.array_equal(got, ref)
                    returned = c["combine_rows_remote"] + c["combine_rows_self"]
                    sent = c["dispatch_rows_remote"] + c["dispatch_rows_self"]
                    # Sums over all ranks: every slot row returned once.
                    totals = [np.frombuffer(b, np.int64) for b in ep.allgather(
                        np.array([c["compute_slots"], returned, sent], np.int64).tobytes())]
                    all_slots = sum(int(t[0]) for t in totals)
                    all_returned = sum(int(t[1]) for t in totals)
                    counters_ok = (
                        c["dispatch_row_bytes_remote"] == c["dispatch_rows_remote"] * H * 4
                        and c["dispatch_row_bytes_self"] == c["dispatch_rows_self"] * H * 4
                        and c["combine_row_bytes_remote"] == c["combine_rows_remote"] * H * 4
                        and c["dispatch_meta_bytes_remote"] == c["dispatch_rows_remote"] * 4 * LAYERS[name][2]
                        and all_returned == all_slots
                        and sent <= c["compute_slots"]
                        and (sent > 0) == (c["compute_slots"] > 0))
                    status = "ok" if ok and counters_ok else "FAIL"
                    print(f"rank {rank}/{size} {name} placement={placement} {layout}"
                          f"{' skew' if skew else ''}: T={counts[rank]} slots={c['compute_slots']} "
                          f"sent={sent} returned={returned} {status}", flush=True)
                    if status != "ok":
                        failures += 1
                        if not ok:
                            print(f"  max|diff| {np.abs(got - ref).max() if got.shape == ref.shape else got.shape}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
