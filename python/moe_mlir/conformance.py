"""Section 5 of the moe semantics contract ("how implementations are compared") as
reusable comparison helpers over the NumPy reference.

* ``compare_route`` / ``assert_route_conforms``: ids exactly and route weights within
  ``1e-5 * max|ref row| + 1e-6`` on the tokens that are not ambiguous.
* ``compare_rows`` / ``assert_close_rows``: outputs of ops with matmuls (gate,
  grouped_matmul, expert_ffn, combine, layer) within ``1e-4 * max|ref row| + 1e-5`` (f32).
* ``compare_layer`` / ``assert_layer_conforms``: a whole layer against the reference,
  excluding the tokens whose routing is ambiguous.

Every ``compare_*`` returns a ``ConformanceResult``; its ``assert_ok()`` raises an
``AssertionError`` with a readable report when a value is out of tolerance, or when more
than 5% of the tokens are ambiguous (a badly chosen test case).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import numpy as np

from . import reference as _ref

__all__ = [
    "ROUTE_WEIGHT_TOL", "MATMUL_TOL", "MAX_AMBIGUOUS_FRACTION", "Mismatch",
    "ConformanceResult", "matmul_tolerance", "compare_values", "compare_route",
    "assert_route_conforms", "compare_rows", "assert_close_rows", "compare_layer",
    "assert_layer_conforms",
]

#: (relative to max|ref row|, absolute) for route weights (section 5)
ROUTE_WEIGHT_TOL = (1e-5, 1e-6)
#: (relative to max|ref row|, absolute) for outputs of ops with matmuls, per element type.
#: f32 is the contract's bound; f16 / bf16 are this project's documented bounds.
MATMUL_TOL = {"f32": (1e-4, 1e-5), "f16": (2e-3, 1e-3), "bf16": (1.6e-2, 8e-3)}
#: more ambiguous tokens than this fraction make a badly chosen test case
MAX_AMBIGUOUS_FRACTION = 0.05


def matmul_tolerance(elem_type: str = "f32"):
    """``(rtol_row, atol)`` for outputs of ops with matmuls in ``elem_type``."""
    if elem_type not in MATMUL_TOL:
        raise ValueError(f"unknown element type {elem_type!r}; expected one of {tuple(MATMUL_TOL)}")
    return MATMUL_TOL[elem_type]


@dataclass
class Mismatch:
    """One value out of tolerance. ``token`` is the row (first index), ``slot`` the column
    (slot j for route results, the flattened trailing index otherwise); -1 when the whole
    array is concerned (shape mismatch)."""

    what: str
    token: int
    slot: int
    got: object
    expected: object
    tol: Optional[float] = None

    def __str__(self) -> str:
        where = "" if self.token < 0 else f" token {self.token}" + (
            "" if self.slot < 0 else f" slot {self.slot}")
        tol = "" if self.tol is None else f" (tolerance {self.tol:.3g})"
        return f"{self.what}{where}: got {self.got!r}, expected {self.expected!r}{tol}"


@dataclass
class ConformanceResult:
    """Outcome of a comparison under section 5."""

    what: str
    n_tokens: int
    ambiguous: List[int] = field(default_factory=list)
    reasons: Dict[int, List[str]] = field(default_factory=dict)
    failures: List[Mismatch] = field(default_factory=list)
    max_ambiguous_fraction: float = MAX_AMBIGUOUS_FRACTION

    @property
    def ambiguous_fraction(self) -> float:
        return len(self.ambiguous) / self.n_tokens if self.n_tokens else 0.0

    @property
    def badly_chosen(self) -> bool:
        """More than ``max_ambiguous_fraction`` of the tokens are ambiguous."""
        return self.ambiguous_fraction > self.max_ambiguous_fraction

    @property
    def ok(self) -> bool:
        return not self.failures and not self.badly_chosen

    def report(self, limit: int = 20) -> str:
        status = "ok" if self.ok else "FAILED"
        lines = [f"{self.what} conformance: {status}: {len(self.failures)} mismatch(es), "
                 f"{len(self.ambiguous)} of {self.n_tokens} tokens ambiguous "
                 f"({100 * self.ambiguous_fraction:.1f}%, limit "
                 f"{100 * self.max_ambiguous_fraction:.1f}%)"]
        if self.badly_chosen:
            lines.append("  badly chosen case: too many ambiguous tokens (section 5); pick "
                         "inputs whose routing decisions are not on a knife edge")
        for m in self.failures[:limit]:
            lines.append(f"  {m}")
        if len(self.failures) > limit:
            lines.append(f"  ... {len(self.failures) - limit} more mismatch(es)")
        for t in self.ambiguous[:limit]:
            why = "; ".join(self.reasons.get(t, [])) or "excluded by the caller"
            lines.append(f"  ambiguous token {t}: {why}")
        if len(self.ambiguous) > limit:
            lines.append(f"  ... {len(self.ambiguous) - limit} more ambiguous token(s)")
        return "\n".join(lines)

    def assert_ok(self) -> "ConformanceResult":
        if not self.ok:
            raise AssertionError(self.report())
        return self

    def __str__(self) -> str:
        return self.report()


# --------------------------------------------------------------------------------------
# element-wise comparison with a per-row tolerance
# --------------------------------------------------------------------------------------
def compare_values(got, ref, rtol_row: float, atol: float, exclude: Iterable[int] = (),
                   what: str = "values", limit: Optional[int] = None) -> List[Mismatch]:
    """Per row r (first axis): ``|got - ref| <= rtol_row * max|finite ref[r]| + atol``.
    Where ``ref`` is NaN, ``got`` must be NaN; where ``ref`` is +-inf, ``got`` must be
    equal. Rows listed in ``exclude`` are skipped. Returns the mismatches."""
    g = np.asarray(got)
    r = np.asarray(ref)
    if g.shape != r.shape:
        return [Mismatch(f"{what} shape", -1, -1, g.shape, r.shape)]
    if r.ndim == 0:
        g, r = g.reshape(1, 1), r.reshape(1, 1)
    n = r.shape[0]
    if r.size == 0:          # T = 0 or R = 0: equal shapes, nothing to compare
        return []
    g = g.reshape(n, -1).astype(np.float64)
    r = r.reshape(n, -1).astype(np.float64)
    fin = np.isfinite(r)
    rowmax = np.where(fin, np.abs(r), 0.0).max(axis=1) if r.shape[1] else np.zeros(n)
    tol = rtol_row * rowmax + atol
    with np.errstate(invalid="ignore"):
        close = np.where(fin, np.isfinite(g) & (np.abs(g - r) <= tol[:, None]),
                         np.where(np.isnan(r), np.isnan(g), g == r))
    if n:
        keep = np.ones(n, bool)
        ex = np.asarray(list(exclude), np.int64)
        keep[ex[(ex >= 0) & (ex < n)]] = False
        close |= ~keep[:, None]
    out = []
    for t, j in zip(*np.nonzero(~close)):
        out.append(Mismatch(what, int(t), int(j), float(g[t, j]), float(r[t, j]),
                            float(tol[t])))
        if limit is not None and len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------------------
# route
# --------------------------------------------------------------------------------------
def compare_route(ids, weights, logits, experts, k, *, eps: float = _ref.AMBIGUITY_EPS,
                  max_ambiguous_fraction: float = MAX_AMBIGUOUS_FRACTION,
                  **route_args) -> ConformanceResult:
    """Compare an implementation's ``route`` results with the reference on ``logits``.

    ``route_args`` are the keyword arguments of ``reference.route`` (scoring, strategy,
    normalize, scale, capacity, groups, k_per_token, selection_bias). Ambiguous tokens
    (``reference.route_decisions``) are reported and excluded; the others must have equal
    ids and weights within ``1e-5 * max|ref row| + 1e-6``."""
    dec = _ref.route_decisions(logits, experts, k, eps=eps, **route_args)
    T = dec.ids.shape[0]
    amb = [int(t) for t in dec.ambiguous_tokens]
    res = ConformanceResult("route", T, amb, {t: dec.reasons.get(t, []) for t in amb},
                            max_ambiguous_fraction=max_ambiguous_fraction)
    g_ids = np.asarray(ids)
    if g_ids.shape != dec.ids.shape:
        res.failures.append(Mismatch("ids shape", -1, -1, g_ids.shape, dec.ids.shape))
        return res
    g_ids = g_ids.astype(np.int64)
    bad = g_ids != dec.ids
    bad[dec.ambiguous] = False
    for t, j in zip(*np.nonzero(bad)):
        res.failures.append(Mismatch("ids", int(t), int(j), int(g_ids[t, j]), int(dec.ids[t, j])))
    res.failures += compare_values(weights, dec.weights, *ROUTE_WEIGHT_TOL, exclude=amb,
                                   what="weights")
    return res


def assert_route_conforms(ids, weights, logits, experts, k, **kwargs) -> ConformanceResult:
    """``compare_route(...).assert_ok()``: raises AssertionError with a report."""
    return compare_route(ids, weights, logits, experts, k, **kwargs).assert_ok()


# --------------------------------------------------------------------------------------
# outputs of ops with matmuls
# --------------------------------------------------------------------------------------
def compare_rows(got, ref, *, rtol_row: Optional[float] = None, atol: Optional[float] = None,
                 elem_type: str = "f32", exclude_tokens: Iterable[int] = (),
                 reasons: Optional[Dict[int, List[str]]] = None,
                 max_ambiguous_fraction: float = MAX_AMBIGUOUS_FRACTION,
                 what: str = "values") -> ConformanceResult:
    """Compare an output of an op with matmuls (gate, grouped_matmul, expert_ffn, combine,
    layer) row by row: ``|v - ref| <= rtol_row * max|ref row| + atol`` (defaults from
    ``matmul_tolerance(elem_type)``: 1e-4 and 1e-5 for f32). ``exclude_tokens`` are row
    indices left out as ambiguous (they count towards the 5% limit)."""
    rt, at = matmul_tolerance(elem_type)
    rt = rt if rtol_row is None else rtol_row
    at = at if atol is None else atol
    ref_a = np.asarray(ref)
    n = ref_a.shape[0] if ref_a.ndim else 1
    ex = sorted({int(t) for t in exclude_tokens})
    res = ConformanceResult(what, n, ex, dict(reasons or {}),
                            max_ambiguous_fraction=max_ambiguous_fraction)
    res.failures = compare_values(got, ref_a, rt, at, exclude=ex, what=what)
    return res


def assert_close_rows(got, ref, rtol_row: Optional[float] = None, atol: Optional[float] = None,
                      exclude_tokens: Iterable[int] = (), **kwargs) -> ConformanceResult:
    """``compare_rows(...).assert_ok()``: raises AssertionError with a report."""
    return compare_rows(got, ref, rtol_row=rtol_row, atol=atol, exclude_tokens=exclude_tokens,
                        **kwargs).assert_ok()


def compare_layer(y, x, w_router, w_up, w_down, experts, k, *, eps: float = _ref.AMBIGUITY_EPS,
                  rtol_row: Optional[float] = None, atol: Optional[float] = None,
                  max_ambiguous_fraction: float = MAX_AMBIGUOUS_FRACTION,
                  **layer_args) -> ConformanceResult:
    """Compare a layer output ``y[T,H]`` with ``reference.layer`` on the same operands;
    tokens whose routing is ambiguous on the reference's logits are excluded."""
    tr = _ref.layer_trace(x, w_router, w_up, w_down, experts, k, **layer_args)
    dec = _ref.route_decisions(tr.logits, experts, k, eps=eps, **tr.route_args)
    et = layer_args.get("elem_type") or ("f16" if np.asarray(x).dtype == np.float16 else "f32")
    amb = [int(t) for t in dec.ambiguous_tokens]
    return compare_rows(y, tr.out, rtol_row=rtol_row, atol=atol, elem_type=et,
                        exclude_tokens=amb, reasons=dec.reasons,
                        max_ambiguous_fraction=max_ambiguous_fraction, what="layer")


def assert_layer_conforms(y, x, w_router, w_up, w_down, experts, k, **kwargs) -> ConformanceResult:
    """``compare_layer(...).assert_ok()``: raises AssertionError with a report."""
    return compare_layer(y, x, w_router, w_up, w_down, experts, k, **kwargs).assert_ok()
