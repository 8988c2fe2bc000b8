#!/usr/bin/env python3
"""Per-rank exchange volumes of expert parallelism for a DeepSeek-V3-like layer.

Model: H=7168, 256 routed experts, K=8 routed experts per token (all of them
compute experts; the 1 shared expert runs where the token lives and is never
exchanged). 64 ranks over 8 nodes of 8 GPUs, 4 contiguous experts per rank.
Tokens per rank: decode 128, prefill 4096.

Our exchange (docs/Distributed.md): dispatch sends a token's row once per
(token, destination rank) pair holding >= 1 of its experts, plus K int32
expert ids; combine returns one bf16 row per remote (token, expert) slot so
that the source sums slots in slot order (bit-exact with one process).
Compared with a DeepEP-like combine that first reduces the slots of one
(token, rank) pair in the destination (one row per pair), and with DeepEP's
normal kernels whose RDMA traffic is one row per (token, remote node).

Cases: uniform routing (formula and Monte-Carlo), Zipf-skewed popularity
(p_e ~ 1/rank^s, s in {0.5, 1.0, 1.2}, K distinct experts drawn without
replacement proportionally to p, via Gumbel top-k; Monte-Carlo only) and
node-limited routing (M=4 nodes chosen uniformly, then K experts uniformly
among those nodes' experts). Zipf popularity ranks map to expert ids through
a seeded random permutation ("shuffled"); the imbalance table also shows the
worst contiguous placement ("sorted": the 4 hottest experts on rank 0) and
the busiest rank after EPLB-like replication with 64 redundant experts.

Bytes are 1e6 per MB, bandwidths 1e9 B/s per GB/s. Times are bandwidth
bounds (no latency, no congestion): intra-node bytes over NVLink and
inter-node bytes over InfiniBand run concurrently, so the bound is the larger.

Usage: python3 bench/ep_volumes.py [--json PATH] [--seed S] [--tokens-mc N]
(numpy only; /usr/bin/python3 has Debian's numpy). Deterministic for a seed;
about 25 s on one core. Importable: run() returns the results, report()
formats them.
"""

import argparse
import json
from math import comb

import numpy as np

H, E, K = 7168, 256, 8          # hidden, routed experts, routed experts/token
N, NODES = 64, 8                # ranks, nodes
RPN, G = N // NODES, E // N     # ranks per node (8), experts per rank (4)
M_NODES = 4                     # node limit of DeepSeek-V3 routing
REDUNDANT = 64                  # EPLB-like redundant experts (1 per rank)
PHASES = {"decode": 128, "prefill": 4096}
ZIPF = (0.5, 1.0, 1.2)
NVLINK_GBS = 450.0  # per GPU, one direction: NVLink4 900 GB/s bidirectional
IB_GBS = 50.0       # per GPU: one 400 Gb/s NIC
META = 4 * K        # K int32 expert ids per dispatched row
ROW = {"bf16": 2 * H + META,                       # 14368 B
       "fp8": H + 4 * -(-H // 128) + META}         # 7168 + 224 scales + 32
COMBINE_ROW = 2 * H                                # bf16, 14336 B


def hit(pool, group, k=K):
    """P(a fixed set of `group` experts in a pool of `pool` gets >= 1 of k
    distinct uniform draws) = 1 - C(pool-group, k) / C(pool, k)."""
    return 1.0 - comb(pool - group, k) / comb(pool, k)


def formula(case):
    """Per-token expectations for 'uniform' or 'node-limited' routing:
    slots and (token, rank) pairs split into self / intra-node / inter-node,
    and distinct remote nodes (DeepEP normal-kernel RDMA rows)."""
    if case == "uniform":
        pool, sel = E, 1.0                   # every node can be chosen
    else:
        pool, sel = M_NODES * E // NODES, M_NODES / NODES
    h = sel * hit(pool, G)                   # P(a given rank is a destination)
    s = K * G / E                            # slots per rank (same in both)
    return {"slots_self": s, "slots_intra": (RPN - 1) * s,
            "slots_inter": (N - RPN) * s, "pairs_self": h,
            "pairs_intra": (RPN - 1) * h, "pairs_inter": (N - RPN) * h,
            "remote_nodes": (NODES - 1) * sel * hit(pool, E // NODES)}


def zipf_logp(s):
    """log p_e for popularity rank e+1, p ~ 1/rank^s, normalised."""
    p = np.arange(1, E + 1, dtype=np.float64) ** -s
    return np.log(p / p.sum())


def sample(rng, case, n):
    """(n, K) popularity indices (0 = hottest) for n tokens."""
    if case == "node-limited":
        nodes = np.argpartition(rng.random((n, NODES)), M_NODES, 1)[:, :M_NODES]
        per = E // NODES
        i = np.argpartition(rng.random((n, M_NODES * per)), K, 1)[:, :K]
        return np.take_along_axis(nodes, i // per, 1) * per + i % per
    logp = np.zeros(E) if case == "uniform" else zipf_logp(float(case[5:]))
    keys = logp + rng.gumbel(size=(n, E))           # Gumbel top-k = sampling
    return np.argpartition(-keys, K, 1)[:, :K]      # without replacement


def matrices(src, experts):
    """Count matrices for tokens on ranks `src` routed to `experts` (n, K):
    slots[s, d] (token, expert) slots, pairs[s, d] distinct (token, rank)
    pairs, nodes[s, m] distinct (token, node) pairs."""
    ranks = np.sort(experts // G, axis=1)
    first = np.ones_like(ranks, dtype=bool)
    first[:, 1:] = ranks[:, 1:] != ranks[:, :-1]
    nd = np.sort(ranks // RPN, axis=1)
    nfirst = np.ones_like(nd, dtype=bool)
    nfirst[:, 1:] = nd[:, 1:] != nd[:, :-1]
    s2 = np.repeat(src, K).reshape(-1, K)
    count = lambda a, b, w: np.bincount(a * w + b, minlength=N * w).reshape(N, w)
    return (count(s2.ravel(), ranks.ravel(), N),
            count(s2[first], ranks[first], N),
            count(s2[nfirst], nd[nfirst], NODES))


def split(m):
    """(self, intra-node, inter-node) totals of an N x N count matrix."""
    node = np.arange(N) // RPN
    same = node[:, None] == node[None, :]
    d = np.trace(m)
    return d, m[same].sum() - d, m[~same].sum()


def eplb_like(history, load, extra):
    """Busiest rank's slot load / mean for expert loads `load`, placed by the
    greedy steps of EPLB's global policy run on `history` (an independent
    sample: EPLB plans from past statistics): give each of `extra` replicas
    to the expert with the largest load per replica, then pack replicas
    heaviest first onto the least loaded rank with a free slot, (E + extra)
    / N slots per rank. A token's slots split evenly among the replicas."""
    reps = np.ones(E, dtype=int)
    for _ in range(extra):
        reps[np.argmax(history / reps)] += 1
    items = np.repeat(np.arange(E), reps)
    planned, free = np.zeros(N), np.full(N, (E + extra) // N)
    rank = np.zeros(N)
    for e in items[np.argsort(-(history / reps)[items], kind="stable")]:
        r = np.argmin(np.where(free > 0, planned, np.inf))
        planned[r] += history[e] / reps[e]
        rank[r] += load[e] / reps[e]
        free[r] -= 1
    return rank.max() / rank.mean()


def monte_carlo(case, T, perm, rng, tokens_mc):
    """Simulate floor(tokens_mc / (N*T)) whole batches (at least one) of N
    ranks x T tokens. Returns per-token means and the mean over batches of
    the busiest rank's receive (rows / mean, bandwidth bound in us), of the
    hottest expert's load / mean, and of the redundant experts needed so that
    no replica carries more than the mean expert load (sum of ceil(l/mean)-1:
    a lower bound for EPLB-style replication)."""
    batches = max(1, tokens_mc // (N * T))
    acc = {k: 0.0 for k in formula("uniform")}
    hot = {"recv_pairs": [], "recv_slots": [], "t_disp_fp8": [],
           "t_comb_slot": [], "expert_load": [], "replicas": []}
    node = np.arange(N) // RPN
    same = node[:, None] == node[None, :]
    history = np.bincount(perm[sample(rng, case, tokens_mc)].ravel(),
                          minlength=E).astype(float)
    for _ in range(batches):
        slots = pairs = nodes = 0
        eload = np.zeros(E)
        for lo in range(0, N * T, 8192):            # chunks bound the memory
            idx = np.arange(lo, min(lo + 8192, N * T))
            ex = perm[sample(rng, case, len(idx))]
            a, b, c = matrices(idx // T, ex)
            slots, pairs, nodes = slots + a, pairs + b, nodes + c
            eload += np.bincount(ex.ravel(), minlength=E)
        for key, m in (("slots", slots), ("pairs", pairs)):
            for part, v in zip(("self", "intra", "inter"), split(m)):
                acc[f"{key}_{part}"] += v / (N * T * batches)
        own = nodes[np.arange(N), node].sum()
        acc["remote_nodes"] += (nodes.sum() - own) / (N * T * batches)
        off = ~np.eye(N, dtype=bool)
        for key, m in (("recv_pairs", pairs), ("recv_slots", slots)):
            r = (m * off).sum(0)
            hot[key].append(r.max() / r.mean())
        # Busiest receiver of dispatch (FP8 rows) / sender of combine (slots).
        for key, m, rb in (("t_disp_fp8", pairs, ROW["fp8"]),
                           ("t_comb_slot", slots, COMBINE_ROW)):
            intra = (m * (same & off)).sum(0) * rb / NVLINK_GBS / 1e3
            inter = (m * ~same).sum(0) * rb / IB_GBS / 1e3
            hot[key].append(np.maximum(intra, inter).max())
        hot["expert_load"].append(eload.max() / eload.mean())
        hot["replicas"].append(eplb_like(history, eload, REDUNDANT))
    return acc, {k: float(np.mean(v)) for k, v in hot.items()}


def volumes(st, T):
    """Mean per-rank sent bytes per layer (MB) and bandwidth bounds (us)."""
    rp = st["pairs_intra"] + st["pairs_inter"]
    rs = st["slots_intra"] + st["slots_inter"]
    out = {"disp_bf16_MB": T * rp * ROW["bf16"] / 1e6,
           "disp_fp8_MB": T * rp * ROW["fp8"] / 1e6,
           "comb_slot_MB": T * rs * COMBINE_ROW / 1e6,
           "comb_pair_MB": T * rp * COMBINE_ROW / 1e6,
           "inter_frac": st["pairs_inter"] / rp,
           "ib_fwd_fp8_MB": T * st["remote_nodes"] * ROW["fp8"] / 1e6,
           "ib_comb_node_MB": T * st["remote_nodes"] * COMBINE_ROW / 1e6}
    for name, intra, inter, rb in (
            ("disp_bf16", st["pairs_intra"], st["pairs_inter"], ROW["bf16"]),
            ("disp_fp8", st["pairs_intra"], st["pairs_inter"], ROW["fp8"]),
            ("comb_slot", st["slots_intra"], st["slots_inter"], COMBINE_ROW),
            ("comb_pair", st["pairs_intra"], st["pairs_inter"], COMBINE_ROW)):
        out[f"t_{name}_us"] = max(T * intra * rb / NVLINK_GBS / 1e3,
                                  T * inter * rb / IB_GBS / 1e3)
    for name in ("ib_fwd_fp8", "ib_comb_node"):
        out[f"t_{name}_us"] = out[f"{name}_MB"] * 1e3 / IB_GBS
    return out


def table(head, rows):
    """Markdown table from a header list and rows of cells."""
    def fmt(c):
        if not isinstance(c, float):
            return str(c)
        return f"{c:,.0f}" if abs(c) >= 100 else f"{c:.3g}"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(fmt(c) for c in r) + " |"
                              for r in rows])


def run(seed=0, tokens_mc=32768):
    """All cases and phases; returns a JSON-able dict."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(E)
    cases = ["uniform"] + [f"zipf {s}" for s in ZIPF] + ["node-limited"]
    res = {"params": {"H": H, "E": E, "K": K, "ranks": N, "nodes": NODES,
                      "experts_per_rank": G, "M": M_NODES, "row_bytes": ROW,
                      "combine_row_bytes": COMBINE_ROW, "nvlink_GBps": NVLINK_GBS,
                      "ib_GBps": IB_GBS, "seed": seed, "tokens_mc": tokens_mc},
           "cases": {}}
    for case in cases:
        r = res["cases"][case] = {"formula": None, "mc": {}, "hot": {}}
        if case in ("uniform", "node-limited"):
            r["formula"] = formula(case)
        for ph, T in PHASES.items():
            perms = {"contiguous": np.arange(E)}    # ids are node-structured
            if case.startswith("zipf"):
                perms = {"shuffled": shuffled, "sorted": np.arange(E)}
            for pl, perm in perms.items():
                st, hot = monte_carlo(case, T, perm, rng, tokens_mc)
                if pl != "sorted":
                    r["mc"][ph] = st
                    r["hot"][ph] = hot
                r["hot"][f"{ph} {pl}"] = hot
            best = r["formula"] or r["mc"][ph]
            r[ph] = volumes(best, T)
            r[ph]["source"] = "formula" if r["formula"] else "monte-carlo"
    return res


def report(res):
    """The Markdown tables, as one string."""
    out = []
    rows = []
    for case, r in res["cases"].items():
        srcs = ([("formula", r["formula"])] if r["formula"] else []) + \
            [(f"MC {ph}", r["mc"][ph]) for ph in PHASES]
        for src, st in srcs:
            pairs = st["pairs_self"] + st["pairs_intra"] + st["pairs_inter"]
            rows.append([case, src, pairs, st["pairs_self"], st["pairs_intra"],
                         st["pairs_inter"], st["slots_intra"] + st["slots_inter"],
                         st["remote_nodes"]])
    out.append("#### Per token: destinations (K=8 slots)\n\n" + table(
        ["case", "source", "(token,rank) pairs", "self", "intra-node",
         "inter-node", "remote slots", "remote nodes"], rows))
    rows = []
    for case, r in res["cases"].items():
        for ph, T in PHASES.items():
            v = r[ph]
            rows.append([case, f"{ph} T={T}", v["disp_bf16_MB"], v["disp_fp8_MB"],
                         v["comb_slot_MB"], v["comb_pair_MB"],
                         f"{100 * (1 - v['inter_frac']):.1f}/{100 * v['inter_frac']:.1f}",
                         v["ib_fwd_fp8_MB"], v["ib_comb_node_MB"]])
    out.append("#### Mean per-rank bytes sent per layer (MB; received is the "
               "same on average)\n\n" + table(
                   ["case", "phase", "dispatch bf16", "dispatch FP8",
                    "combine per slot (ours)", "combine per pair (reduced)",
                    "intra/inter %", "IB dispatch FP8, node-forwarded",
                    "IB combine, node-reduced"], rows))
    rows = []
    for case, r in res["cases"].items():
        for ph in PHASES:
            v, hs = r[ph], r["hot"][ph]
            rows.append([case, ph, v["t_disp_bf16_us"], v["t_disp_fp8_us"],
                         v["t_ib_fwd_fp8_us"], v["t_comb_slot_us"],
                         v["t_comb_pair_us"], v["t_ib_comb_node_us"],
                         hs["t_disp_fp8"], hs["t_comb_slot"]])
    out.append(f"#### Bandwidth bound per layer (us; NVLink {NVLINK_GBS:.0f} GB/s,"
               f" IB {IB_GBS:.0f} GB/s per GPU)\n\n" + table(
                   ["case", "phase", "dispatch bf16", "dispatch FP8",
                    "FP8 IB node-fwd", "combine per slot", "combine per pair",
                    "combine IB node-reduced",
                    "busiest rank: dispatch FP8", "busiest rank: combine/slot"],
                   rows))
    rows = []
    for case, r in res["cases"].items():
        for key, hs in r["hot"].items():
            if key in PHASES:
                continue
            rows.append([case, key, hs["expert_load"], hs["recv_pairs"],
                         hs["recv_slots"], hs["replicas"]])
    out.append("#### Hot ranks: max / mean over ranks (mean of batches)\n\n" +
               table(["case", "phase, placement", "expert load",
                      "received rows (dispatch)", "received slots (combine)",
                      f"slot load, {REDUNDANT} redundant (EPLB-like)"],
                     rows))
    return "\n\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens-mc", type=int, default=32768,
                    help="Monte-Carlo tokens per case and phase (>= 1 batch)")
    a = ap.parse_args()
    res = run(a.seed, a.tokens_mc)
    p = res["params"]
    print(f"EP volumes: H={H}, {E} routed experts, K={K}, {N} ranks over "
          f"{NODES} nodes, {G} experts/rank; rows: bf16 {ROW['bf16']} B, FP8 "
          f"{ROW['fp8']} B (incl. {META} B ids), combine {COMBINE_ROW} B; seed "
          f"{p['seed']}, >= {p['tokens_mc']} MC tokens per case and phase\n")
    print(report(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, default=float)


if __name__ == "__main__":
    main()
