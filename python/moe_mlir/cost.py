"""What routing costs, measured: expert loads, per-token k, FFN work.

``routing_stats(ids, experts)`` summarises a route's ids (compute slots per
expert, slots of each zero-computation kind, the distribution of compute
slots per token, the saving against dense top-K). ``ffn_counters(function)``
reads the FFN counters of a function compiled with ``instrument_ffn=True``
(rows and multiply-adds each expert executed). ``render(stats, path)`` draws
the expert load histogram and the per-token k distribution to an image
(matplotlib), which is how a user sees what null experts save.

The static side of the report is the ``moe-cost-report`` pass (FLOPs per
compute slot, bounds on compute slots per token, expert weight bytes).
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["RoutingStats", "routing_stats", "ffn_counters", "render"]


@dataclass
class RoutingStats:
    num_tokens: int
    k: int
    expert_load: np.ndarray          # [E] compute slots per compute expert
    kind_slots: dict                 # {"null": n, "copy": n, "const": n, "empty": n}
    tokens_per_k: np.ndarray         # [K+1] tokens with 0..K compute slots
    slot_flops: Optional[int] = None

    @property
    def compute_slots(self) -> int:
        return int(self.expert_load.sum())

    @property
    def dense_slots(self) -> int:
        return self.num_tokens * self.k

    @property
    def saved_fraction(self) -> float:
        return 1.0 - self.compute_slots / self.dense_slots if self.dense_slots else 0.0

    def summary(self) -> str:
        text = (f"{self.num_tokens} tokens, {self.compute_slots} compute slots of "
                f"{self.dense_slots} dense top-{self.k} slots "
                f"({100 * self.saved_fraction:.1f}% saved); other slots: "
                + ", ".join(f"{k} {v}" for k, v in self.kind_slots.items()))
        if self.slot_flops:
            text += (f"; expert FLOPs {self.compute_slots * self.slot_flops:.4g} vs dense "
                     f"{self.dense_slots * self.slot_flops:.4g}")
        return text


def routing_stats(ids, num_experts: int, num_null: int = 0, num_copy: int = 0,
                  num_const: int = 0, slot_flops: Optional[int] = None) -> RoutingStats:
    """Statistics of a route's ``ids`` [T, K] over an expert space."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"'ids' must be [T, K], got shape {ids.shape}")
    E = int(num_experts)
    compute = (ids >= 0) & (ids < E)
    load = np.bincount(ids[compute].ravel(), minlength=E)[:E]
    null_end = E + num_null
    copy_end = null_end + num_copy
    const_end = copy_end + num_const
    kinds = {"null": int(((ids >= E) & (ids < null_end)).sum()),
             "copy": int(((ids >= null_end) & (ids < copy_end)).sum()),
             "const": int(((ids >= copy_end) & (ids < const_end)).sum()),
             "empty": int((ids == -1).sum())}
    per_token = compute.sum(axis=1)
    return RoutingStats(ids.shape[0], ids.shape[1], load, kinds,
                        np.bincount(per_token, minlength=ids.shape[1] + 1), slot_flops)


def ffn_counters(function) -> List[np.ndarray]:
    """The [E, 2] (rows, multiply-adds) counters of every moe.expert_ffn of a
    function compiled with ``instrument_ffn=True`` (live views: reset them
    with ``counters[:] = 0`` between runs)."""
    module = getattr(function, "module", None)
    if module is None:
        raise ValueError("the function was not compiled by moe_mlir.compile")
    counters = []
    while True:
        try:
            counters.append(module.counters(len(counters)))
        except KeyError:
            break
    if not counters:
        raise ValueError("no FFN counters: compile with instrument_ffn=True")
    return counters


def render(stats: RoutingStats, path: str, title: str = "routing") -> str:
    """Draws the expert load and the per-token compute-slot distribution to
    ``path`` (PNG, SVG, ... by extension). Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    experts = np.arange(len(stats.expert_load))
    left.bar(experts, stats.expert_load, color="#3b75af", label="compute slots")
    mean = stats.expert_load.mean() if len(stats.expert_load) else 0
    left.axhline(mean, color="#999999", linestyle="--", linewidth=1, label="mean")
    left.set_xlabel("compute expert")
    left.set_ylabel("slots (rows)")
    left.set_title("expert load")
    zero_kinds = {k: v for k, v in stats.kind_slots.items() if v}
    if zero_kinds:
        left.text(0.98, 0.95, "\n".join(f"{k}: {v} slots" for k, v in zero_kinds.items()),
                  transform=left.transAxes, ha="right", va="top", fontsize=8)
    left.legend(loc="lower right", fontsize=8)
    ks = np.arange(len(stats.tokens_per_k))
    right.bar(ks, stats.tokens_per_k, color="#e6862a")
    right.set_xlabel("compute slots per token (k)")
    right.set_ylabel("tokens")
    right.set_xticks(ks)
    right.set_title(f"per-token k: {stats.compute_slots} of {stats.dense_slots} slots "
                    f"({100 * stats.saved_fraction:.0f}% saved)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
