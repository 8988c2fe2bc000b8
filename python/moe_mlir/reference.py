"""NumPy reference implementation of the ``moe`` dialect (semantics contract v1).

This module is the oracle that every lowering of the dialect is compared against. It
depends on NumPy only and never imports anything of the compiler. It follows
``docs/Semantics.md`` (the contract) rule by rule; where the contract is silent the
choice made here is written in ``docs/Reference.md`` ("Choices where the spec is silent").

Written for clarity first: per-rule steps, vectorised over tokens where that is easy, so
that ``T`` up to a few thousand tokens with ``S`` up to 64 runs in seconds.

Public API
----------
``ExpertSpace``, strategies ``TopK TopP Adaptive Threshold DynamicK ExpertChoice``,
``Capacity``, ``Groups``; ops ``gate route dispatch grouped_matmul expert_ffn combine layer
aux_loss``; ``route_decisions`` (ids/weights plus the per-token margins of section 5);
``layer_trace`` (every intermediate of ``layer``); ``round_to_bf16``; ``activation``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import ClassVar, Dict, List, Optional, Tuple

import numpy as np

from . import strategies as _strategy_list

__all__ = [
    "ExpertSpace", "TopK", "TopP", "Adaptive", "Threshold", "DynamicK", "ExpertChoice",
    "Capacity", "Groups", "RouteDecisions", "LayerTrace",
    "gate", "route", "route_decisions", "dispatch", "grouped_matmul", "expert_ffn",
    "combine", "layer", "layer_trace", "aux_loss", "round_to_bf16", "activation",
    "capacity_limit", "expert_choice_limit", "SCORINGS", "NORMALIZATIONS", "ACTIVATIONS",
    "ELEMENT_TYPES", "AMBIGUITY_EPS",
]

F32 = np.float32
F64 = np.float64

SCORINGS = ("softmax", "sigmoid", "none")
NORMALIZATIONS = ("none", "selected", "non_null")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")
ELEMENT_TYPES = ("f32", "f16", "bf16")
PRIORITIES = ("score", "position")
AMBIGUITY_EPS = 1e-5  # section 5: margin within 1e-5 * max(1, |operands|)


# --------------------------------------------------------------------------------------
# Section 1: the expert space
# --------------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class ExpertSpace:
    """``S = compute + null + copy + const`` experts, indexed in that order."""

    compute: int
    null: int = 0
    copy: int = 0
    const: int = 0

    def __post_init__(self):
        for name in ("compute", "null", "copy", "const"):
            v = getattr(self, name)
            if not _is_int(v) or v < (1 if name == "compute" else 0):
                raise ValueError(f"ExpertSpace: '{name}' must be an integer >= "
                                 f"{1 if name == 'compute' else 0}, got {v!r}")

    @property
    def E(self) -> int:
        return int(self.compute)

    @property
    def S(self) -> int:
        return int(self.compute + self.null + self.copy + self.const)

    # index ranges -------------------------------------------------------------------
    @property
    def null_begin(self) -> int:
        return self.E

    @property
    def copy_begin(self) -> int:
        return self.E + self.null

    @property
    def const_begin(self) -> int:
        return self.E + self.null + self.copy

    def kind(self, i) -> str:
        """'compute' | 'null' | 'copy' | 'const' for ``0 <= i < S``; 'empty' for -1;
        'invalid' for any other (out-of-range) value."""
        i = int(i)
        if i == -1:
            return "empty"
        if i < 0 or i >= self.S:
            return "invalid"
        if i < self.null_begin:
            return "compute"
        if i < self.copy_begin:
            return "null"
        if i < self.const_begin:
            return "copy"
        return "const"

    # vectorised masks over an id array ---------------------------------------------
    def is_compute(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= 0) & (ids < self.E)

    def is_null(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.null_begin) & (ids < self.copy_begin)

    def is_copy(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.copy_begin) & (ids < self.const_begin)

    def is_const(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.const_begin) & (ids < self.S)


# --------------------------------------------------------------------------------------
# Strategy / option attributes
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopK:
    """``n = K``."""

    name: ClassVar[str] = "top_k"


@dataclass(frozen=True)
class TopP:
    """Smallest prefix whose sequential f32 score sum reaches ``p`` (0 < p <= 1)."""

    name: ClassVar[str] = "top_p"

    p: float


@dataclass(frozen=True)
class Adaptive:
    """Prefix with ``s[o_1] - s[o_i] <= tau`` (tau >= 0)."""

    name: ClassVar[str] = "adaptive"

    tau: float


@dataclass(frozen=True)
class Threshold:
    """``n = max(k_min, prefix with s[o_i] >= tau)`` (tau finite, 0 <= k_min <= K)."""

    name: ClassVar[str] = "threshold"

    tau: float
    k_min: int = 0


@dataclass(frozen=True)
class DynamicK:
    """``n = clamp(k_per_token[t], 0, K)``."""

    name: ClassVar[str] = "dynamic_k"


@dataclass(frozen=True)
class ExpertChoice:
    """Each compute expert picks ``min(T, ceil(cf * T / E))`` tokens (section 2.2.1)."""

    name: ClassVar[str] = "expert_choice"

    capacity_factor: float


@dataclass(frozen=True)
class Capacity:
    """Each compute expert keeps at most ``ceil(cf * T * K / E)`` slots."""

    factor: float
    priority: str  # "score" | "position"


@dataclass(frozen=True)
class Groups:
    """``n`` contiguous expert groups, keep the ``top`` best; a group's score
    is the sum of its two largest keys (``"top2_sum"``) or its largest
    (``"max"``)."""

    n: int
    top: int
    score: str = "top2_sum"


_STRATEGIES = (TopK, TopP, Adaptive, Threshold, DynamicK, ExpertChoice)

# The strategies by the names of their attributes (``#moe.top_p<...>``); they
# must be the package's list (strategies.py), parameters (fields) included.
STRATEGIES: Dict[str, type] = {cls.name: cls for cls in _STRATEGIES}
if {name: tuple(f.name for f in fields(cls)) for name, cls in STRATEGIES.items()} \
        != _strategy_list.PARAMETERS:
    raise ImportError("moe_mlir.reference: the strategy classes disagree with "
                      "moe_mlir/strategies.py")


# --------------------------------------------------------------------------------------
# Element types
# --------------------------------------------------------------------------------------
def round_to_bf16(a) -> np.ndarray:
    """Round float32 values to bfloat16 (round to nearest, ties to even); the result is a
    float32 array holding bf16-representable values. NaN stays NaN (quiet, sign kept),
    +-inf stays +-inf, values beyond the bf16 range round to +-inf."""
    a = np.ascontiguousarray(np.asarray(a, dtype=F32))
    bits = a.view(np.uint32).astype(np.uint64)
    lsb = (bits >> np.uint64(16)) & np.uint64(1)
    rounded = ((bits + np.uint64(0x7FFF) + lsb) & np.uint64(0xFFFF0000)).astype(np.uint32)
    nan = np.isnan(a)
    qnan = ((a.view(np.uint32) & np.uint32(0x80000000)) | np.uint32(0x7FC00000)).astype(np.uint32)
    out = np.where(nan, qnan, rounded).astype(np.uint32)
    return out.view(F32).reshape(a.shape)


def _resolve_elem(elem_type, data) -> str:
    """The element type of an op's data operand (x, rows, lhs): ``elem_type`` if given,
    else f16 for a float16 array and f32 otherwise (bf16 must be named)."""
    if elem_type is None:
        return "f16" if np.asarray(data).dtype == np.float16 else "f32"
    if elem_type not in ELEMENT_TYPES:
        raise ValueError(f"element type must be one of {ELEMENT_TYPES}, got {elem_type!r}")
    return elem_type


def _round_elem(a, et: str) -> np.ndarray:
    """Round to the element type ``et`` (RNE); returned as float32."""
    a = np.asarray(a, dtype=F32)
    if et == "f32":
        return a
    if et == "f16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).astype(F32)
    return round_to_bf16(a)


def _as_out(a, et: str) -> np.ndarray:
    """Return ``a`` in the storage type of ``et`` (float16 for f16, float32 otherwise)."""
    a = _round_elem(a, et)
    return a.astype(np.float16) if et == "f16" else a


def _f32(a, name: str, op: str, ndim: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{op}: operand '{name}' must be a floating tensor, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{op}: operand '{name}' must have rank {ndim}, got shape {arr.shape}")
    return arr.astype(F32)


def _ints(a, name: str, op: str, ndim: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{op}: operand '{name}' must be an integer tensor, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{op}: operand '{name}' must have rank {ndim}, got shape {arr.shape}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------------------
# 2.1 gate
# --------------------------------------------------------------------------------------
def gate(x, w, b=None) -> np.ndarray:
    """``logits[T,S] = x @ w (+ b)``, accumulated in f32 (any input element type)."""
    x = _f32(x, "x", "gate", 2)
    w = _f32(w, "w", "gate", 2)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"gate: operand 'w' must have shape [H={x.shape[1]}, S], got {w.shape}")
    out = np.matmul(x, w).astype(F32)
    if b is not None:
        b = _f32(b, "b", "gate", 1)
        if b.shape != (w.shape[1],):
            raise ValueError(f"gate: operand 'b' must have shape [S={w.shape[1]}], got {b.shape}")
        out = (out + b[None, :]).astype(F32)
    return out


# --------------------------------------------------------------------------------------
# 2.2 route: helpers
# --------------------------------------------------------------------------------------
def _exact_ceil(cf: float, numerator: int, denominator: int, unbounded: int) -> int:
    """``ceil(cf * numerator / denominator)`` with ``cf`` taken as the exact f64 value;
    ``unbounded`` for ``cf = +inf``."""
    cf = float(cf)
    if math.isinf(cf) and cf > 0:
        return unbounded
    # A limit past `unbounded` cannot bind: clamping changes no decision and
    # keeps the value an int64 for any factor (1e300 included).
    return min(unbounded, int(math.ceil(Fraction(cf) * numerator / denominator)))


def capacity_limit(cf: float, T: int, K: int, E: int) -> int:
    """Step 7: ``C = ceil(cf * T * K / E)`` computed exactly. ``cf = +inf`` means no limit
    and gives ``T * K`` (more than any expert can receive)."""
    return _exact_ceil(cf, T * K, E, T * K)


def expert_choice_limit(cf: float, T: int, E: int) -> int:
    """Section 2.2.1: ``C = min(T, ceil(cf * T / E))`` computed exactly (``T`` for
    ``cf = +inf``)."""
    return min(T, _exact_ceil(cf, T, E, T))


def _order_desc(keys: np.ndarray, member: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices sorting each row of ``keys`` by the rules of step 4: descending, ties to the
    lower index, NaN below every non-NaN key (NaNs among themselves by index), -0 == +0.
    Entries with ``member`` False go after everything (also by index)."""
    keys = np.asarray(keys)
    nan = np.isnan(keys)
    cat = np.where(nan, 1, 0)
    if member is not None:
        cat = np.where(member, cat, 2)
    neg = np.where(nan, 0.0, -keys.astype(F64)) + 0.0  # + 0.0 turns -0 into +0
    return np.lexsort((neg, cat), axis=-1)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    """f32 softmax ``exp(l - max(l)) / sum`` per row; the sum runs sequentially over the
    entries in index order; a NaN anywhere makes the whole row NaN."""
    T, S = logits.shape
    with np.errstate(all="ignore"):
        m = logits.max(axis=1, keepdims=True) if T else np.zeros((0, 1), F32)
        e = np.exp((logits - m).astype(F32)).astype(F32)
        den = np.zeros(T, F32)
        for i in range(S):
            den = (den + e[:, i]).astype(F32)
        s = (e / den[:, None]).astype(F32)
    s[np.isnan(logits).any(axis=1)] = np.nan
    return s


def _scores(logits: np.ndarray, scoring: str) -> np.ndarray:
    if scoring == "softmax":
        return _softmax_rows(logits)
    if scoring == "sigmoid":
        with np.errstate(all="ignore"):
            return (F32(1) / (F32(1) + np.exp(-logits))).astype(F32)
    return logits.astype(F32, copy=True)


def _prefix_len(passes: np.ndarray) -> np.ndarray:
    """Length of the all-True prefix of each row."""
    if passes.shape[1] == 0:
        return np.zeros(passes.shape[0], np.int64)
    return np.where(passes.all(axis=1), passes.shape[1], np.argmin(passes, axis=1)).astype(np.int64)


@dataclass
class _Config:
    T: int
    S: int
    K: int
    experts: ExpertSpace
    scoring: str
    strategy: object
    normalize: str
    scale: np.float32
    capacity: Optional[Capacity]
    groups: Optional[Groups]
    k_per_token: Optional[np.ndarray]
    selection_bias: Optional[np.ndarray]


def _validate_route(logits, experts, k, scoring, strategy, normalize, scale, capacity, groups,
                    k_per_token, selection_bias) -> Tuple[np.ndarray, _Config]:
    op = "route"
    if not isinstance(experts, ExpertSpace):
        raise ValueError(f"{op}: 'experts' must be an ExpertSpace, got {type(experts).__name__}")
    logits = _f32(logits, "logits", op, 2)
    T, S = logits.shape
    E = experts.E
    if S != experts.S:
        raise ValueError(f"{op}: operand 'logits' must have shape [T, S={experts.S}] "
                         f"(the expert space), got {logits.shape}")
    if not _is_int(k) or not 1 <= k <= S:
        raise ValueError(f"{op}: attribute 'K' must be an integer in [1, S={S}], got {k!r}")
    K = int(k)
    if scoring not in SCORINGS:
        raise ValueError(f"{op}: attribute 'scoring' must be one of {SCORINGS}, got {scoring!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"{op}: attribute 'normalize' must be one of {NORMALIZATIONS}, "
                         f"got {normalize!r}")
    if not isinstance(strategy, _STRATEGIES):
        raise ValueError(f"{op}: attribute 'strategy' must be one of "
                         f"{[c.__name__ for c in _STRATEGIES]}, got {strategy!r}")
    if isinstance(strategy, TopP):
        p = F32(strategy.p)
        if not (p > 0 and p <= 1):
            raise ValueError(f"{op}: top_p parameter 'p' must satisfy 0 < p <= 1, got {strategy.p!r}")
    elif isinstance(strategy, Adaptive):
        if not F32(strategy.tau) >= 0:
            raise ValueError(f"{op}: adaptive parameter 'tau' must be >= 0, got {strategy.tau!r}")
    elif isinstance(strategy, Threshold):
        if not np.isfinite(F32(strategy.tau)):
            raise ValueError(f"{op}: threshold parameter 'tau' must be finite, got {strategy.tau!r}")
        if not _is_int(strategy.k_min) or not 0 <= strategy.k_min <= K:
            raise ValueError(f"{op}: threshold parameter 'k_min' must be an integer in "
                             f"[0, K={K}], got {strategy.k_min!r}")
    elif isinstance(strategy, ExpertChoice):
        cf = strategy.capacity_factor
        if not (isinstance(cf, (int, float, np.floating, np.integer)) and cf > 0):
            raise ValueError(f"{op}: expert_choice parameter 'capacity_factor' must be a number "
                             f"> 0, got {cf!r}")
        if S != E:
            raise ValueError(f"{op}: strategy 'expert_choice' requires S = E (no zero-computation "
                             f"experts), got S={S}, E={E}")
        if selection_bias is not None:
            raise ValueError(f"{op}: operand 'selection_bias' is not allowed with expert_choice")
        if capacity is not None:
            raise ValueError(f"{op}: attribute 'capacity' is not allowed with expert_choice")
        if groups is not None:
            raise ValueError(f"{op}: attribute 'groups' is not allowed with expert_choice")
    if isinstance(strategy, DynamicK):
        if k_per_token is None:
            raise ValueError(f"{op}: operand 'k_per_token' is required by strategy dynamic_k")
        k_per_token = _ints(k_per_token, "k_per_token", op, 1)
        if k_per_token.shape != (T,):
            raise ValueError(f"{op}: operand 'k_per_token' must have shape [T={T}], "
                             f"got {k_per_token.shape}")
    elif k_per_token is not None:
        raise ValueError(f"{op}: operand 'k_per_token' is only allowed with strategy dynamic_k")
    if selection_bias is not None:
        selection_bias = _f32(selection_bias, "selection_bias", op, 1)
        if selection_bias.shape != (S,):
            raise ValueError(f"{op}: operand 'selection_bias' must have shape [S={S}], "
                             f"got {selection_bias.shape}")
    if capacity is not None:
        if not isinstance(capacity, Capacity):
            raise ValueError(f"{op}: attribute 'capacity' must be a Capacity, got {capacity!r}")
        cf = capacity.factor
        if not (isinstance(cf, (int, float, np.floating, np.integer)) and cf > 0):
            raise ValueError(f"{op}: capacity factor 'cf' must be a number > 0, got {cf!r}")
        if capacity.priority not in PRIORITIES:
            raise ValueError(f"{op}: capacity 'priority' must be one of {PRIORITIES}, "
                             f"got {capacity.priority!r}")
    if groups is not None:
        if not isinstance(groups, Groups):
            raise ValueError(f"{op}: attribute 'groups' must be a Groups, got {groups!r}")
        n, top = groups.n, groups.top
        if groups.score not in ("top2_sum", "max"):
            raise ValueError(f"{op}: groups 'score' must be 'top2_sum' or 'max', got "
                             f"{groups.score!r}")
        if S != E:
            raise ValueError(f"{op}: attribute 'groups' requires S = E, got S={S}, E={E}")
        if not _is_int(n) or n < 1 or E % n != 0:
            raise ValueError(f"{op}: groups 'n' must be a positive divisor of E={E}, got {n!r}")
        if E // n < 2 and groups.score == "top2_sum":
            raise ValueError(f"{op}: groups require E / n >= 2 with score top2_sum, got "
                             f"E={E}, n={n}")
        if not _is_int(top) or not 1 <= top <= n:
            raise ValueError(f"{op}: groups 'top' must be in [1, n={n}], got {top!r}")
        if K > top * (E // n):
            raise ValueError(f"{op}: groups require K <= top * E / n = {top * (E // n)}, got K={K}")
    scale32 = F32(scale)
    cfg = _Config(T, S, K, experts, scoring, strategy, normalize, scale32, capacity, groups,
                  k_per_token, selection_bias)
    return logits, cfg


# --------------------------------------------------------------------------------------
# 2.2 route: the core (steps 1-8), keeping what the conformance analysis needs
# --------------------------------------------------------------------------------------
@dataclass
class _RouteState:
    cfg: _Config
    scores: np.ndarray            # f32 [T,S]
    keys: np.ndarray              # f32 [T,S]   u = s + bias
    order: np.ndarray             # [T,S] step-4 order (selectable first); EC: picked first
    L: np.ndarray                 # [T] number of entries in the order that can be chosen
    n: np.ndarray                 # [T] n_t after the strategy and the cap at K
    ids_pre: np.ndarray           # [T,K] before capacity
    raw_pre: np.ndarray
    ids: np.ndarray               # [T,K] after capacity (int32)
    raw: np.ndarray               # raw weights after capacity
    weights: np.ndarray           # final weights (f32)
    # strategy details for the section-5 analysis
    group_scores: Optional[np.ndarray] = None   # [T,n]
    group_order: Optional[np.ndarray] = None    # [T,n]
    test_values: Optional[np.ndarray] = None    # [T,L] value compared with the parameter
    test_pass: Optional[np.ndarray] = None      # [T,L]
    prefix: Optional[np.ndarray] = None         # threshold/adaptive prefix length
    cap_lists: Optional[list] = None            # per compute expert: (t, j, w) in priority order
    cap_C: int = 0
    ec_lists: Optional[list] = None             # per expert: token order
    ec_C: int = 0


def _route_core(logits: np.ndarray, cfg: _Config) -> _RouteState:
    T, S, K = cfg.T, cfg.S, cfg.K
    ex = cfg.experts
    E = ex.E
    strategy = cfg.strategy

    # Step 1: scores (f32)
    s = _scores(logits, cfg.scoring)
    # Step 2: selection key
    with np.errstate(all="ignore"):
        u = s if cfg.selection_bias is None else (s + cfg.selection_bias[None, :]).astype(F32)
    st = dict()

    if isinstance(strategy, ExpertChoice):
        return _route_expert_choice(cfg, s, u)

    # Step 3: groups
    selectable = np.ones((T, S), bool)
    L = np.full(T, S, np.int64)
    if cfg.groups is not None:
        n_g, top = cfg.groups.n, cfg.groups.top
        gs = E // n_g
        keyed = np.where(np.isnan(u), -np.inf, u).astype(F32).reshape(T, n_g, gs)
        best = -np.sort(-keyed, axis=2)
        if cfg.groups.score == "max":
            gscore = best[:, :, 0].astype(F32)
        else:
            with np.errstate(all="ignore"):
                gscore = (best[:, :, 0] + best[:, :, 1]).astype(F32)
        gorder = _order_desc(gscore)
        kept = np.zeros((T, n_g), bool)
        np.put_along_axis(kept, gorder[:, :top], True, axis=1)
        selectable = np.repeat(kept, gs, axis=1)
        L[:] = top * gs
        st.update(group_scores=gscore, group_order=gorder)

    # Step 4: order
    order = _order_desc(u, selectable)
    Lmax = int(L[0]) if T else (S if cfg.groups is None else cfg.groups.top * (E // cfg.groups.n))
    ss = np.take_along_axis(s, order[:, :Lmax], axis=1)  # scores in sort order

    # Step 5: count
    if isinstance(strategy, TopK):
        n = np.full(T, K, np.int64)
    elif isinstance(strategy, TopP):
        p = F32(strategy.p)
        run = np.zeros(T, F32)
        sums = np.empty((T, Lmax), F32)
        with np.errstate(all="ignore"):
            for m in range(Lmax):
                run = (run + ss[:, m]).astype(F32)
                sums[:, m] = run
        reach = sums >= p
        first = np.where(reach.any(axis=1), np.argmax(reach, axis=1) + 1, K)
        n = np.full(T, K, np.int64) if p == F32(1) else np.minimum(first, K).astype(np.int64)
        st.update(test_values=sums, test_pass=reach)
    elif isinstance(strategy, Adaptive):
        tau = F32(strategy.tau)
        with np.errstate(all="ignore"):
            gap = (ss[:, :1] - ss).astype(F32) if Lmax else np.zeros((T, 0), F32)
        passes = gap <= tau
        prefix = _prefix_len(passes)
        n = np.minimum(prefix, K)
        st.update(test_values=gap, test_pass=passes, prefix=prefix)
    elif isinstance(strategy, Threshold):
        tau = F32(strategy.tau)
        passes = ss >= tau
        prefix = _prefix_len(passes)
        n = np.minimum(np.maximum(prefix, strategy.k_min), K)
        st.update(test_values=ss, test_pass=passes, prefix=prefix)
    else:  # DynamicK
        n = np.clip(cfg.k_per_token, 0, K).astype(np.int64)

    # Step 6: slots
    ids_pre, raw_pre = _slots(order, n, s, K)

    # Step 7: capacity
    ids, raw = ids_pre, raw_pre
    if cfg.capacity is not None:
        ids, raw, lists, C = _apply_capacity(ids_pre, raw_pre, E, K, cfg.capacity)
        st.update(cap_lists=lists, cap_C=C)

    # Step 8: normalize and scale
    weights = _normalize(ids, raw, ex, cfg.normalize, cfg.scale)
    return _RouteState(cfg, s, u, order, L, n, ids_pre, raw_pre, ids.astype(np.int32), raw,
                       weights, **st)


def _slots(order: np.ndarray, n: np.ndarray, s: np.ndarray, K: int):
    """Step 6: slot j < n_t holds o_{j+1} and its raw weight; the rest are empty."""
    T = order.shape[0]
    j = np.arange(K)[None, :]
    valid = j < n[:, None]
    cand = order[:, :K]
    ids = np.where(valid, cand, -1).astype(np.int64)
    raw = np.where(valid, np.take_along_axis(s, cand, axis=1), F32(0)).astype(F32)
    return ids.reshape(T, K), raw.reshape(T, K)


def _compact(ids: np.ndarray, raw: np.ndarray, keep: np.ndarray):
    """Drop the slots where ``keep`` is False and move the rest to the front, in order."""
    T, K = ids.shape
    out_ids = np.full((T, K), -1, np.int64)
    out_raw = np.zeros((T, K), F32)
    pos = np.cumsum(keep, axis=1) - 1
    t, j = np.nonzero(keep)
    out_ids[t, pos[t, j]] = ids[t, j]
    out_raw[t, pos[t, j]] = raw[t, j]
    return out_ids, out_raw


def _apply_capacity(ids, raw, E, K, cap: Capacity):
    T = ids.shape[0]
    lists = []
    if T == 0:
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, F32))
        return ids, raw, [empty] * E, 0
    C = capacity_limit(cap.factor, T, K, E)
    t, j = np.nonzero((ids >= 0) & (ids < E))
    e = ids[t, j]
    w = raw[t, j]
    if cap.priority == "score":
        nan = np.isnan(w)
        neg = np.where(nan, 0.0, -w.astype(F64)) + 0.0
        srt = np.lexsort((j, t, neg, nan, e))
    else:
        srt = np.lexsort((t, j, e))
    t, j, e, w = t[srt], j[srt], e[srt], w[srt]
    start = np.searchsorted(e, e, side="left")
    rank = np.arange(e.size) - start
    drop = rank >= C
    keep = (ids != -1)
    keep[t[drop], j[drop]] = False
    for ex in range(E):
        sel = e == ex
        lists.append((t[sel], j[sel], w[sel]))
    new_ids, new_raw = _compact(ids, raw, keep)
    return new_ids, new_raw, lists, C


def _normalize(ids, raw, ex: ExpertSpace, mode: str, scale: np.float32) -> np.ndarray:
    """Step 8 (then scale). Sums run sequentially over the slots in slot order, in f32."""
    T, K = ids.shape
    valid = ids >= 0
    with np.errstate(all="ignore"):
        if mode == "none":
            w = raw.astype(F32, copy=True)
        else:
            members = valid if mode == "selected" else (valid & ~ex.is_null(ids))
            den = np.zeros(T, F32)
            for j in range(K):
                den = np.where(members[:, j], (den + raw[:, j]).astype(F32), den)
            zero = (den == 0) | ~members.any(axis=1)
            w = np.where(members, (raw / den[:, None]).astype(F32), F32(0)).astype(F32)
            w[zero] = 0
        w = np.where(valid, (w * scale).astype(F32), F32(0)).astype(F32)
    return w


def _route_expert_choice(cfg: _Config, s: np.ndarray, u: np.ndarray) -> _RouteState:
    T, K = cfg.T, cfg.K
    E = cfg.experts.E
    C = expert_choice_limit(cfg.strategy.capacity_factor, T, E) if T else 0
    picked = np.zeros((T, E), bool)
    lists = []
    for e in range(E):
        tok = _order_desc(s[:, e])
        picked[tok[:C], e] = True
        lists.append(tok)
    order = _order_desc(s, picked)
    cnt = picked.sum(axis=1).astype(np.int64)
    n = np.minimum(cnt, K)
    ids_pre, raw_pre = _slots(order, n, s, K)
    weights = _normalize(ids_pre, raw_pre, cfg.experts, cfg.normalize, cfg.scale)
    return _RouteState(cfg, s, u, order, cnt, n, ids_pre, raw_pre, ids_pre.astype(np.int32),
                       raw_pre, weights, ec_lists=lists, ec_C=C)


# --------------------------------------------------------------------------------------
# 2.2 route: public entry points
# --------------------------------------------------------------------------------------
def route(logits, experts: ExpertSpace, k: int, scoring: str = "softmax", strategy=TopK(),
          normalize: str = "none", scale: float = 1.0, capacity: Optional[Capacity] = None,
          groups: Optional[Groups] = None, k_per_token=None, selection_bias=None):
    """Section 2.2. Returns ``(ids int32 [T,K], weights float32 [T,K])``.

    Raises ``ValueError`` for a configuration the verifier rejects (section 3)."""
    logits, cfg = _validate_route(logits, experts, k, scoring, strategy, normalize, scale,
                                  capacity, groups, k_per_token, selection_bias)
    st = _route_core(logits, cfg)
    return st.ids, st.weights


@dataclass
class RouteDecisions:
    """The reference route plus what section 5 needs to judge another implementation.

    ``margin[t]`` is the smallest relative margin ``|a - b| / max(1, |operands|)`` over the
    decisions that formed token t's slots (key order, strategy tests, group/capacity/
    expert-choice cuts), ``inf`` when none. ``ambiguous[t]`` is ``margin[t] <= eps`` plus
    tokens whose capacity cut may move because of another ambiguous token. ``reasons`` maps
    every ambiguous token to readable explanations."""

    ids: np.ndarray
    weights: np.ndarray
    scores: np.ndarray
    keys: np.ndarray
    counts: np.ndarray
    margin: np.ndarray
    ambiguous: np.ndarray
    reasons: Dict[int, List[str]]
    eps: float = AMBIGUITY_EPS

    @property
    def ambiguous_tokens(self) -> np.ndarray:
        return np.nonzero(self.ambiguous)[0]

    @property
    def ambiguous_fraction(self) -> float:
        T = self.ambiguous.shape[0]
        return float(self.ambiguous.sum()) / T if T else 0.0


def route_decisions(logits, experts: ExpertSpace, k: int, scoring: str = "softmax",
                    strategy=TopK(), normalize: str = "none", scale: float = 1.0,
                    capacity: Optional[Capacity] = None, groups: Optional[Groups] = None,
                    k_per_token=None, selection_bias=None,
                    eps: float = AMBIGUITY_EPS) -> RouteDecisions:
    """Like ``route`` but also returns the section-5 margins and ambiguous tokens."""
    logits, cfg = _validate_route(logits, experts, k, scoring, strategy, normalize, scale,
                                  capacity, groups, k_per_token, selection_bias)
    st = _route_core(logits, cfg)
    margin, ambiguous, reasons = _analyse(st, eps)
    return RouteDecisions(st.ids, st.weights, st.scores, st.keys, st.n.copy(), margin,
                          ambiguous, reasons, eps)


# --------------------------------------------------------------------------------------
# Section 5 analysis: margins of every decision that formed a token's slots
# --------------------------------------------------------------------------------------
def _rel(a, b, *extra) -> np.ndarray:
    """``|a - b| / max(1, |a|, |b|, |extra|...)`` in f64; inf unless a and b are finite."""
    a = np.asarray(a, F64)
    b = np.asarray(b, F64)
    mag = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    for x in extra:
        mag = np.maximum(mag, np.abs(np.asarray(x, F64)))
    with np.errstate(all="ignore"):
        r = np.abs(a - b) / mag
    return np.where(np.isfinite(a) & np.isfinite(b) & np.isfinite(r), r, np.inf)


def _run_starts(vals: np.ndarray) -> np.ndarray:
    """True where a row's value differs from its left neighbour (NaN always differs)."""
    new = np.ones(vals.shape, bool)
    new[:, 1:] = vals[:, 1:] != vals[:, :-1]
    return new


def _next_distinct(vals: np.ndarray, length):
    """For each position i of rows sorted descending (NaN last), the first later position
    j < length whose value differs from vals[i] (the start of the next run of equal
    values), and that value; -1 / NaN if none."""
    M, L = vals.shape
    pos = np.arange(L)
    length = np.broadcast_to(np.asarray(length, np.int64), (M,))
    cand = np.where(_run_starts(vals), pos[None, :], L)
    after = np.full((M, L), L, np.int64)
    if L > 1:
        after[:, :-1] = np.minimum.accumulate(cand[:, ::-1], axis=1)[:, ::-1][:, 1:]
    idx = np.where(after < length[:, None], after, -1)
    val = np.where(idx >= 0, np.take_along_axis(vals, np.maximum(idx, 0), axis=1), np.nan)
    return val, idx


def _prev_distinct(vals: np.ndarray):
    """For each position i, the last earlier position whose value differs from vals[i]
    (one before the start of i's run of equal values), and that value; -1 / NaN if none."""
    M, L = vals.shape
    pos = np.arange(L)
    cand = np.where(_run_starts(vals), pos[None, :], -1)
    idx = np.maximum.accumulate(cand, axis=1) - 1 if L else np.zeros((M, 0), np.int64)
    val = np.where(idx >= 0, np.take_along_axis(vals, np.maximum(idx, 0), axis=1), np.nan)
    return val, idx


def _cut_margins(vals: np.ndarray, C: np.ndarray, length: np.ndarray):
    """Rows sorted descending (NaN last); positions [0, C) are kept, [C, length) dropped.
    Returns per position the margin to the nearest distinct value on the other side of the
    cut, and that value's position (-1 if none)."""
    M, L = vals.shape
    vals = vals.astype(F64)
    margin = np.full((M, L), np.inf)
    partner = np.full((M, L), -1, np.int64)
    if L == 0 or M == 0:
        return margin, partner
    C = np.broadcast_to(np.asarray(C, np.int64), (M,))
    length = np.broadcast_to(np.asarray(length, np.int64), (M,))
    rows = np.arange(M)
    nd_val, nd_idx = _next_distinct(vals, length)
    pd_val, pd_idx = _prev_distinct(vals)
    has_lo = C < length
    has_hi = (C >= 1) & (C <= length)
    ci = np.clip(C, 0, L - 1)
    hi = np.clip(C - 1, 0, L - 1)
    b_lo = np.where(has_lo, vals[rows, ci], np.nan)
    b_hi = np.where(has_hi, vals[rows, hi], np.nan)
    pos = np.arange(L)[None, :]
    kept = (pos < C[:, None]) & (pos < length[:, None]) & has_lo[:, None]
    dropped = (pos >= C[:, None]) & (pos < length[:, None]) & has_hi[:, None]
    # kept side: partner = first dropped value, or the first value below the tie block
    eq_lo = vals == b_lo[:, None]
    p_val_k = np.where(eq_lo, nd_val[rows, ci][:, None], b_lo[:, None])
    p_idx_k = np.where(eq_lo, nd_idx[rows, ci][:, None], ci[:, None])
    eq_hi = vals == b_hi[:, None]
    p_val_d = np.where(eq_hi, pd_val[rows, hi][:, None], b_hi[:, None])
    p_idx_d = np.where(eq_hi, pd_idx[rows, hi][:, None], hi[:, None])
    mk = _rel(vals, p_val_k)
    md = _rel(vals, p_val_d)
    margin = np.where(kept, mk, np.where(dropped, md, np.inf))
    partner = np.where(kept, p_idx_k, np.where(dropped, p_idx_d, -1))
    return margin, partner


def _analyse(st: _RouteState, eps: float):
    cfg = st.cfg
    T, K = cfg.T, cfg.K
    E = cfg.experts.E
    strategy = cfg.strategy
    margin = np.full(T, np.inf)
    reasons: Dict[int, List[str]] = {}
    touched: Dict[int, set] = {}  # ambiguous-before-capacity token -> experts it may change

    def note(t, text, m):
        reasons.setdefault(int(t), []).append(f"{text} (margin {m:.3g})")

    if T == 0:
        return margin, np.zeros(0, bool), reasons

    if isinstance(strategy, ExpertChoice):
        # expert side: each expert's cut between picked and not picked tokens
        C = st.ec_C
        for e, tok in enumerate(st.ec_lists):
            col = st.scores[tok, e].astype(F64)[None, :]
            m, partner = _cut_margins(col, np.array([C]), np.array([T]))
            m = m[0]
            np.minimum.at(margin, tok, m)
            for i in np.nonzero(m <= eps)[0]:
                note(tok[i], f"expert_choice cut of expert {e}: s={col[0, i]!r} vs token "
                     f"{tok[partner[0, i]]} s={col[0, partner[0, i]]!r}", m[i])
        # token side: order of the experts that picked the token
        _order_pairs(st, st.scores, st.L, st.n, margin, eps, note, None)
        return margin, margin <= eps, reasons

    L = int(st.L[0])
    # groups: the cut between kept and dropped groups
    group_amb = np.zeros(T, bool)
    if cfg.groups is not None:
        gsorted = np.take_along_axis(st.group_scores, st.group_order, axis=1).astype(F64)
        n_g = gsorted.shape[1]
        m, partner = _cut_margins(gsorted, np.full(T, cfg.groups.top), np.full(T, n_g))
        tm = m.min(axis=1)
        np.minimum(margin, tm, out=margin)
        group_amb = tm <= eps
        for t, i in zip(*np.nonzero(m <= eps)):
            note(t, f"group cut: group {st.group_order[t, i]} score {gsorted[t, i]!r} vs group "
                 f"{st.group_order[t, partner[t, i]]} score {gsorted[t, partner[t, i]]!r}",
                 m[t, i])

    # strategy tests (only those whose outcome changes n_t)
    n = st.n
    decisive = n.copy()
    if st.test_values is not None:
        vals = st.test_values.astype(F64)
        passes = st.test_pass
        pos = np.arange(L)[None, :]
        if isinstance(strategy, TopP):
            p = F32(strategy.p)
            tm = _rel(vals, F64(p))
            if p == F32(1):
                relevant = np.zeros_like(passes)
            else:
                R = np.where(passes.any(axis=1), np.argmax(passes, axis=1), L)
                after = passes & (pos > R[:, None])
                R2 = np.where(after.any(axis=1), np.argmax(after, axis=1), L)
                n_if_R2 = np.where(R2 < L, np.minimum(R2 + 1, K), K)
                relevant = ((pos < R[:, None]) & (np.minimum(pos + 1, K) != n[:, None])) | \
                           ((pos == R[:, None]) & (n_if_R2 != n)[:, None])
            label = "top_p running sum {v!r} vs p={r!r} at position {i}"
            ref = F64(p)
        else:
            prefix = st.prefix
            fails_after = ~passes & (pos > prefix[:, None])
            P2 = np.where(fails_after.any(axis=1), np.argmax(fails_after, axis=1), L)
            if isinstance(strategy, Adaptive):
                ref = F64(F32(strategy.tau))
                s_sorted = np.take_along_axis(st.scores, st.order[:, :L], axis=1).astype(F64)
                tm = _rel(vals, ref, s_sorted[:, :1], s_sorted)
                tm = np.where((pos == 0) | (s_sorted == s_sorted[:, :1]), np.inf, tm)
                f = lambda x: np.minimum(x, K)  # noqa: E731
                label = "adaptive gap {v!r} vs tau={r!r} at position {i}"
                decisive = np.where(n < K, np.minimum(n + 1, L), n)
            else:
                ref = F64(F32(strategy.tau))
                tm = _rel(vals, ref)
                kmin = strategy.k_min
                f = lambda x: np.minimum(np.maximum(x, kmin), K)  # noqa: E731
                label = "threshold score {v!r} vs tau={r!r} at position {i}"
                decisive = np.where(prefix < K, np.minimum(np.maximum(n, prefix + 1), L), n)
            relevant = ((pos < prefix[:, None]) & (f(pos) != n[:, None])) | \
                       ((pos == prefix[:, None]) & (prefix < L)[:, None] & (f(P2) != n)[:, None])
        # a test at or within eps of its parameter: equality counts (it is not a key tie)
        tm = np.where(relevant, tm, np.inf)
        np.minimum(margin, tm.min(axis=1) if L else np.inf, out=margin)
        for t, i in zip(*np.nonzero(tm <= eps)):
            note(t, label.format(v=vals[t, i], r=ref, i=int(i)), tm[t, i])
            touched.setdefault(int(t), set()).update(int(e) for e in st.order[t, :min(L, K + 1)])

    # key order: every pair whose order decided a slot
    _order_pairs(st, st.keys, st.L, decisive, margin, eps, note, touched)

    for t in np.nonzero(group_amb)[0]:
        touched.setdefault(int(t), set()).update(range(E))

    ambiguous = margin <= eps

    # capacity: the cut of each compute expert
    if cfg.capacity is not None and st.cap_lists is not None:
        C = st.cap_C
        extra = np.zeros(T, bool)
        for e, (tt, jj, ww) in enumerate(st.cap_lists):
            M = tt.size
            if cfg.capacity.priority == "score" and M:
                m, partner = _cut_margins(ww.astype(F64)[None, :], np.array([C]), np.array([M]))
                m = m[0]
                np.minimum.at(margin, tt, m)
                for i in np.nonzero(m <= eps)[0]:
                    note(tt[i], f"capacity cut of expert {e}: weight {ww[i]!r} vs token "
                         f"{tt[partner[0, i]]} weight {ww[partner[0, i]]!r}", m[i])
            a_e = sum(1 for t, exps in touched.items() if e in exps)
            if a_e and M:
                lo, hi = max(0, C - a_e), min(M, C + a_e)
                for i in range(lo, hi):
                    t = int(tt[i])
                    if not ambiguous[t]:
                        extra[t] = True
                        reasons.setdefault(t, []).append(
                            f"capacity cut of expert {e} may move: {a_e} ambiguous token(s) "
                            f"compete for it (rank {i}, C={C})")
        ambiguous = (margin <= eps) | extra
    return margin, ambiguous, reasons


def _order_pairs(st: _RouteState, keys, length, decisive, margin, eps, note, touched):
    """Order pairs: for each slot position i < decisive[t], the nearest distinct key later
    in the order (within the first length[t] entries)."""
    T, S = keys.shape
    ordered = np.take_along_axis(keys, st.order, axis=1).astype(F64)
    nd_val, nd_idx = _next_distinct(ordered, length)
    m = _rel(ordered, nd_val)
    pos = np.arange(S)[None, :]
    m = np.where(pos < np.minimum(decisive, length)[:, None], m, np.inf)
    np.minimum(margin, m.min(axis=1), out=margin)
    K = st.cfg.K
    for t, i in zip(*np.nonzero(m <= eps)):
        a, b = st.order[t, i], st.order[t, nd_idx[t, i]]
        note(t, f"order: key of expert {a} ({ordered[t, i]!r}) vs expert {b} "
             f"({ordered[t, nd_idx[t, i]]!r}) at position {int(i)}", m[t, i])
        if touched is not None:
            touched.setdefault(int(t), set()).update(
                [int(a), int(b)] + [int(e) for e in st.order[t, :min(int(length[t]), K + 1)]])


# --------------------------------------------------------------------------------------
# 2.3 dispatch
# --------------------------------------------------------------------------------------
def dispatch(x, ids, num_experts: int, r_max: Optional[int] = None):
    """Section 2.3. Returns ``(rows [R,H], offsets int32 [E+1], slot_rows int32 [T,K])``.

    With ``r_max`` (padded form) ``rows`` has ``r_max`` rows; slots whose row would be
    ``>= r_max`` are not dispatched (slot_rows -1) and ``offsets`` are clamped to ``r_max``
    so that ``offsets[E]`` is the number of rows holding data; rows past it are
    unspecified (zero here)."""
    op = "dispatch"
    xa = np.asarray(x)
    if xa.ndim != 2:
        raise ValueError(f"{op}: operand 'x' must have rank 2 [T,H], got shape {xa.shape}")
    ids = _ints(ids, "ids", op, 2)
    T, H = xa.shape
    if ids.shape[0] != T:
        raise ValueError(f"{op}: operand 'ids' must have shape [T={T}, K], got {ids.shape}")
    if not _is_int(num_experts) or num_experts < 0:
        raise ValueError(f"{op}: 'num_experts' must be an integer >= 0, got {num_experts!r}")
    if r_max is not None and (not _is_int(r_max) or r_max < 0):
        raise ValueError(f"{op}: 'r_max' must be an integer >= 0, got {r_max!r}")
    E = int(num_experts)
    K = ids.shape[1]
    comp = (ids >= 0) & (ids < E)
    t, j = np.nonzero(comp)                    # token-major, then slot
    e = ids[t, j]
    srt = np.lexsort((j, t, e))                # expert, then token, then slot (stable)
    t, j, e = t[srt], j[srt], e[srt]
    counts = np.bincount(e, minlength=E) if E else np.zeros(0, np.int64)
    offsets = np.zeros(E + 1, np.int64)
    offsets[1:] = np.cumsum(counts)
    R = int(offsets[E])
    row = np.arange(R)
    if r_max is not None:
        fits = row < r_max
        t, j, row = t[fits], j[fits], row[fits]
        offsets = np.minimum(offsets, r_max)
        nrows = int(r_max)
    else:
        nrows = R
    rows = np.zeros((nrows, H), dtype=xa.dtype if xa.dtype.kind == "f" else F32)
    rows[row] = xa[t]
    slot_rows = np.full((T, K), -1, np.int32)
    slot_rows[t, j] = row
    return rows, offsets.astype(np.int32), slot_rows


# --------------------------------------------------------------------------------------
# 2.4 grouped_matmul
# --------------------------------------------------------------------------------------
def _sanitise_offsets(offsets, E: int, R: int, op: str) -> np.ndarray:
    off = _ints(offsets, "offsets", op, 1)
    if off.shape != (E + 1,):
        raise ValueError(f"{op}: operand 'offsets' must have shape [E+1={E + 1}], got {off.shape}")
    o = np.zeros(E + 1, np.int64)
    for e in range(E):
        o[e + 1] = min(max(int(off[e + 1]), int(o[e])), R)
    return o


def grouped_matmul(lhs, rhs, offsets, elem_type: Optional[str] = None) -> np.ndarray:
    """Section 2.4: ``out[r] = lhs[r] @ rhs[e(r)]``; rows at or past ``offsets[E]`` are 0.
    Accumulates in f32; the result is rounded to the element type of ``lhs``."""
    op = "grouped_matmul"
    et = _resolve_elem(elem_type, lhs)
    a = _round_elem(_f32(lhs, "lhs", op, 2), et)
    b = _f32(rhs, "rhs", op, 3)
    R, Kd = a.shape
    E = b.shape[0]
    if b.shape[1] != Kd:
        raise ValueError(f"{op}: operand 'rhs' must have shape [E, Kd={Kd}, N], got {b.shape}")
    o = _sanitise_offsets(offsets, E, R, op)
    out = np.zeros((R, b.shape[2]), F32)
    for e in range(E):
        lo, hi = o[e], o[e + 1]
        if hi > lo:
            out[lo:hi] = np.matmul(a[lo:hi], b[e]).astype(F32)
    return _as_out(out, et)


# --------------------------------------------------------------------------------------
# 2.5 expert_ffn
# --------------------------------------------------------------------------------------
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_erf = np.frompyfunc(math.erf, 1, 1)


def activation(x, name: str) -> np.ndarray:
    """Public alias of the activation used by expert_ffn (see ``_activate``)."""
    return _activate(x, name)


def _activate(x, name: str) -> np.ndarray:
    """Activation evaluated in float64 from the f32 input and rounded once to f32.
    silu = x / (1 + exp(-x)); gelu = 0.5 x (1 + erf(x / sqrt 2)) with math.erf;
    gelu_tanh = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); relu = max(x, 0)
    with NaN propagating."""
    x = np.asarray(x, F32).astype(F64)
    with np.errstate(all="ignore"):
        if name == "silu":
            y = x / (1.0 + np.exp(-x))
        elif name == "gelu":
            y = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(F64)) if x.size else x
        elif name == "gelu_tanh":
            y = 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
        elif name == "relu":
            y = np.where(np.isnan(x), x, np.where(x > 0, x, 0.0))
        else:
            raise ValueError(f"expert_ffn: attribute 'activation' must be one of {ACTIVATIONS}, "
                             f"got {name!r}")
    return np.asarray(y, F64).astype(F32)


def expert_ffn(rows, offsets, w_up, w_down, w_gate=None, b_up=None, b_down=None,
               activation: str = "silu", gated: bool = True,
               elem_type: Optional[str] = None) -> np.ndarray:
    """Section 2.5. Gated: ``(act(r @ w_gate[e]) * (r @ w_up[e])) @ w_down[e]``; not gated:
    ``act(r @ w_up[e] + b_up[e]) @ w_down[e] + b_down[e]``. Rows at or past ``offsets[E]``
    (sanitised as in grouped_matmul) are 0. For f16/bf16 every intermediate is rounded to
    the rows' type."""
    op = "expert_ffn"
    act_name = activation
    if act_name not in ACTIVATIONS:
        raise ValueError(f"{op}: attribute 'activation' must be one of {ACTIVATIONS}, got {act_name!r}")
    et = _resolve_elem(elem_type, rows)
    r = _round_elem(_f32(rows, "rows", op, 2), et)
    wu = _f32(w_up, "w_up", op, 3)
    wd = _f32(w_down, "w_down", op, 3)
    R, H = r.shape
    E, H2, F = wu.shape
    if H2 != H:
        raise ValueError(f"{op}: operand 'w_up' must have shape [E, H={H}, F], got {wu.shape}")
    if wd.shape != (E, F, H):
        raise ValueError(f"{op}: operand 'w_down' must have shape [E={E}, F={F}, H={H}], got {wd.shape}")
    if gated:
        if w_gate is None:
            raise ValueError(f"{op}: operand 'w_gate' is required when gated = true")
        if b_up is not None or b_down is not None:
            raise ValueError(f"{op}: biases 'b_up'/'b_down' are only allowed when gated = false")
        wg = _f32(w_gate, "w_gate", op, 3)
        if wg.shape != (E, H, F):
            raise ValueError(f"{op}: operand 'w_gate' must have shape [E={E}, H={H}, F={F}], got {wg.shape}")
    else:
        if w_gate is not None:
            raise ValueError(f"{op}: operand 'w_gate' is only allowed when gated = true")
        bu = None if b_up is None else _f32(b_up, "b_up", op, 2)
        bd = None if b_down is None else _f32(b_down, "b_down", op, 2)
        if bu is not None and bu.shape != (E, F):
            raise ValueError(f"{op}: operand 'b_up' must have shape [E={E}, F={F}], got {bu.shape}")
        if bd is not None and bd.shape != (E, H):
            raise ValueError(f"{op}: operand 'b_down' must have shape [E={E}, H={H}], got {bd.shape}")
    o = _sanitise_offsets(offsets, E, R, op)
    out = np.zeros((R, H), F32)
    rnd = lambda a: _round_elem(a, et)  # noqa: E731
    with np.errstate(all="ignore"):
        for e in range(E):
            lo, hi = o[e], o[e + 1]
            if hi <= lo:
                continue
            x = r[lo:hi]
            if gated:
                g = rnd(np.matmul(x, wg[e]))
                u = rnd(np.matmul(x, wu[e]))
                h = rnd(rnd(_activate(g, act_name)) * u)
                out[lo:hi] = rnd(np.matmul(h, wd[e]))
            else:
                a = np.matmul(x, wu[e]).astype(F32)
                if bu is not None:
                    a = (a + bu[e]).astype(F32)
                h = rnd(_activate(rnd(a), act_name))
                y = np.matmul(h, wd[e]).astype(F32)
                if bd is not None:
                    y = (y + bd[e]).astype(F32)
                out[lo:hi] = rnd(y)
    return _as_out(out, et)


# --------------------------------------------------------------------------------------
# 2.6 combine
# --------------------------------------------------------------------------------------
def combine(y, slot_rows, ids, weights, x, experts: ExpertSpace, wc=None, v=None,
            elem_type: Optional[str] = None) -> np.ndarray:
    """Section 2.6: ``out[t] = sum_j weights[t,j] * c(t,j)`` in slot order, f32, from +0.0.
    Skipped (contributing nothing, so NaN weights there do not propagate): null and empty
    slots, out-of-range ids, and compute slots whose slot_rows is outside [0, R)."""
    op = "combine"
    if not isinstance(experts, ExpertSpace):
        raise ValueError(f"{op}: 'experts' must be an ExpertSpace")
    et = _resolve_elem(elem_type, x)
    xs = _round_elem(_f32(x, "x", op, 2), et)
    ys = _f32(y, "y", op, 2)
    sr = _ints(slot_rows, "slot_rows", op, 2)
    ids = _ints(ids, "ids", op, 2)
    w = _f32(weights, "weights", op, 2)
    T, H = xs.shape
    R = ys.shape[0]
    if ids.shape[0] != T or sr.shape != ids.shape or w.shape != ids.shape:
        raise ValueError(f"{op}: operands 'slot_rows', 'ids', 'weights' must all have shape "
                         f"[T={T}, K]; got {sr.shape}, {ids.shape}, {w.shape}")
    if ys.shape[1] != H:
        raise ValueError(f"{op}: operand 'y' must have shape [R, H={H}], got {ys.shape}")
    nc = experts.const
    if nc > 0:
        if wc is None or v is None:
            raise ValueError(f"{op}: operands 'Wc' and 'v' are required when N_const = {nc} > 0")
        wca = _f32(wc, "Wc", op, 3)
        va = _f32(v, "v", op, 2)
        if wca.shape != (nc, H, 2):
            raise ValueError(f"{op}: operand 'Wc' must have shape [N_const={nc}, H={H}, 2], got {wca.shape}")
        if va.shape != (nc, H):
            raise ValueError(f"{op}: operand 'v' must have shape [N_const={nc}, H={H}], got {va.shape}")
    elif wc is not None or v is not None:
        raise ValueError(f"{op}: operands 'Wc' and 'v' are only allowed when N_const > 0")
    K = ids.shape[1]
    E = experts.E
    with np.errstate(all="ignore"):
        const_c = []
        for i in range(nc):
            lg = np.matmul(xs, wca[i]).astype(F32)                      # [T,2]
            m = np.maximum(lg[:, 0], lg[:, 1])                           # NaN propagates
            ex0 = np.exp((lg[:, 0] - m).astype(F32)).astype(F32)
            ex1 = np.exp((lg[:, 1] - m).astype(F32)).astype(F32)
            den = (ex0 + ex1).astype(F32)
            a1 = (ex0 / den).astype(F32)
            a2 = (ex1 / den).astype(F32)
            c_i = (a1[:, None] * xs).astype(F32) + (a2[:, None] * va[i][None, :]).astype(F32)
            const_c.append(c_i.astype(F32))
        acc = np.zeros((T, H), F32)
        for j in range(K):
            idj, wj = ids[:, j], w[:, j]
            c = np.zeros((T, H), F32)
            active = np.zeros(T, bool)
            comp = (idj >= 0) & (idj < E) & (sr[:, j] >= 0) & (sr[:, j] < R)
            if comp.any():
                c[comp] = ys[sr[comp, j]]
            active |= comp
            cp = experts.is_copy(idj)
            c[cp] = xs[cp]
            active |= cp
            for i in range(nc):
                ci = idj == experts.const_begin + i
                c[ci] = const_c[i][ci]
                active |= ci
            contrib = (wj[:, None] * c).astype(F32)
            acc = np.where(active[:, None], (acc + contrib).astype(F32), acc)
    return _as_out(acc, et)


# --------------------------------------------------------------------------------------
# 2.7 layer
# --------------------------------------------------------------------------------------
@dataclass
class LayerTrace:
    """Every intermediate of ``layer``: gate -> route -> dispatch -> expert_ffn -> combine."""

    logits: np.ndarray
    ids: np.ndarray
    weights: np.ndarray
    rows: np.ndarray
    offsets: np.ndarray
    slot_rows: np.ndarray
    y_rows: np.ndarray
    out: np.ndarray
    route_args: dict = field(default_factory=dict)


def layer_trace(x, w_router, w_up, w_down, experts: ExpertSpace, k: int, *,
                scoring: str = "softmax", strategy=TopK(), normalize: str = "none",
                scale: float = 1.0, capacity: Optional[Capacity] = None,
                groups: Optional[Groups] = None, w_gate=None, b_router=None, b_up=None,
                b_down=None, k_per_token=None, selection_bias=None, wc=None, v=None,
                activation: str = "silu", gated: bool = True,
                elem_type: Optional[str] = None, r_max: Optional[int] = None) -> LayerTrace:
    """``layer`` returning every intermediate (see ``LayerTrace``)."""
    if not isinstance(experts, ExpertSpace):
        raise ValueError("layer: 'experts' must be an ExpertSpace")
    et = _resolve_elem(elem_type, x)
    xr = _round_elem(_f32(x, "x", "layer", 2), et)
    wr = _f32(w_router, "w_router", "layer", 2)
    br = None if b_router is None else _f32(b_router, "b_router", "layer", 1)
    wu = np.asarray(w_up)
    if wu.ndim != 3 or wu.shape[0] != experts.E:
        raise ValueError(f"layer: operand 'w_up' must have shape [E={experts.E}, H, F], got {wu.shape}")
    logits = gate(xr, wr, br)
    route_args = dict(scoring=scoring, strategy=strategy, normalize=normalize, scale=scale,
                      capacity=capacity, groups=groups, k_per_token=k_per_token,
                      selection_bias=selection_bias)
    ids, weights = route(logits, experts, k, **route_args)
    rows, offsets, slot_rows = dispatch(xr, ids, experts.E, r_max=r_max)
    y_rows = expert_ffn(rows, offsets, w_up, w_down, w_gate=w_gate, b_up=b_up, b_down=b_down,
                        activation=activation, gated=gated, elem_type=et)
    out = combine(y_rows, slot_rows, ids, weights, xr, experts, wc=wc, v=v, elem_type=et)
    return LayerTrace(logits, ids, weights, rows, offsets, slot_rows, y_rows, out, route_args)


def layer(x, w_router, w_up, w_down, experts: ExpertSpace, k: int, **kwargs) -> np.ndarray:
    """Section 2.7: ``combine(expert_ffn(dispatch(x, route(gate(x)))))``. Keyword arguments
    as ``layer_trace``: scoring, strategy, normalize, scale, capacity, groups, w_gate,
    b_router, b_up, b_down, k_per_token, selection_bias, wc, v, activation, gated,
    elem_type, r_max."""
    return layer_trace(x, w_router, w_up, w_down, experts, k, **kwargs).out


# --------------------------------------------------------------------------------------
# 2.8 aux_loss
# --------------------------------------------------------------------------------------
def aux_loss(scores, ids) -> np.float32:
    """``L = S * sum_i f_i * P_i``, ``f_i = count_i / max(1, #valid slots)``,
    ``P_i = sum_t scores[t,i] / max(1, T)``. A slot is valid (and counted) when
    ``0 <= id < S``. Evaluated in float64 and rounded once to f32."""
    op = "aux_loss"
    s = _f32(scores, "scores", op, 2)
    ids = _ints(ids, "ids", op, 2)
    T, S = s.shape
    if ids.shape[0] != T:
        raise ValueError(f"{op}: operand 'ids' must have shape [T={T}, K], got {ids.shape}")
    valid = (ids >= 0) & (ids < S)
    counts = np.bincount(ids[valid], minlength=S).astype(F64) if S else np.zeros(0)
    f = counts / max(1, int(valid.sum()))
    P = s.astype(F64).sum(axis=0) / max(1, T)
    with np.errstate(all="ignore"):
        loss = S * float(np.sum(f * P))
    return F32(loss)
