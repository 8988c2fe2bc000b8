"""Deterministic greedy pairwise covering arrays for the differential tests.

``pairwise(factors, valid)`` returns rows (dicts ``factor -> value``) such that every
*valid pair* ``(f1 = a, f2 = b)`` appears in at least one row, where a pair is valid when
some complete row that contains it satisfies ``valid``. Every returned row satisfies
``valid``, so forbidden combinations are never produced and no repair is needed: the
generator only ever picks valid rows.

Algorithm (classic greedy set cover, fully deterministic): enumerate every valid complete
row in ``itertools.product`` order, then repeatedly take the row that covers the most
still-uncovered pairs (ties: the first such row in enumeration order) until every valid
pair is covered. The factor spaces used here are small (a few thousand rows), so the
enumeration is exact and cheap; spaces beyond ``MAX_ROWS`` raise ``ValueError``.
"""
import itertools
from typing import Callable, Dict, List, Sequence, Set, Tuple

MAX_ROWS = 200_000

Pair = Tuple[Tuple[str, object], Tuple[str, object]]


def _rows(factors: Dict[str, Sequence]):
    names = list(factors)
    total = 1
    for n in names:
        if not factors[n]:
            raise ValueError(f"factor {n!r} has no values")
        total *= len(factors[n])
    if total > MAX_ROWS:
        raise ValueError(f"{total} complete rows exceed MAX_ROWS = {MAX_ROWS}")
    for combo in itertools.product(*(range(len(factors[n])) for n in names)):
        yield names, combo


def _pairs_of(names, combo) -> List[Tuple[int, int, int, int]]:
    """Index form of the pairs of one row: (factor i, value index, factor j, value index)."""
    return [(i, combo[i], j, combo[j])
            for i in range(len(names)) for j in range(i + 1, len(names))]


def _named(factors, names, p) -> Pair:
    i, a, j, b = p
    return ((names[i], factors[names[i]][a]), (names[j], factors[names[j]][b]))


def valid_rows(factors: Dict[str, Sequence], valid: Callable[[dict], bool]) -> List[dict]:
    """Every complete row (in product order) that satisfies ``valid``."""
    out = []
    for names, combo in _rows(factors):
        row = {n: factors[n][c] for n, c in zip(names, combo)}
        if valid(row):
            out.append(row)
    return out


def valid_pairs(factors: Dict[str, Sequence], valid: Callable[[dict], bool]) -> Set[Pair]:
    """The pairs that occur in at least one valid complete row."""
    out = set()
    for names, combo in _rows(factors):
        row = {n: factors[n][c] for n, c in zip(names, combo)}
        if valid(row):
            out.update(_named(factors, names, p) for p in _pairs_of(names, combo))
    return out


def covered_pairs(rows: Sequence[dict], factors: Dict[str, Sequence]) -> Set[Pair]:
    """The pairs that the given rows cover (factor order as in ``factors``)."""
    names = list(factors)
    out = set()
    for row in rows:
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                out.add(((names[i], row[names[i]]), (names[j], row[names[j]])))
    return out


def pairwise(factors: Dict[str, Sequence], valid: Callable[[dict], bool] = lambda row: True
             ) -> List[dict]:
    """A greedy pairwise covering array over the valid rows (see the module docstring)."""
    candidates = []
    names = None
    for names, combo in _rows(factors):
        row = {n: factors[n][c] for n, c in zip(names, combo)}
        if valid(row):
            candidates.append((row, _pairs_of(names, combo)))
    uncovered = set()
    for _, pairs in candidates:
        uncovered.update(pairs)
    chosen = []
    used = set()
    while uncovered:
        best, best_gain = -1, 0
        for idx, (_, pairs) in enumerate(candidates):
            if idx in used:
                continue
            gain = sum(1 for p in pairs if p in uncovered)
            if gain > best_gain:
                best, best_gain = idx, gain
        assert best >= 0, "internal error: an uncovered pair has no valid row"
        used.add(best)
        row, pairs = candidates[best]
        chosen.append(dict(row))
        uncovered.difference_update(pairs)
    return chosen
