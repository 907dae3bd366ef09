"""Sets of sequence numbers kept as runs of consecutive integers.

The SQLite store remembers which ``seq`` values of each source it holds as runs
``(lo, hi)`` (every seq from ``lo`` to ``hi`` inclusive is stored). A producer numbers its
events 0, 1, 2, ..., so a source's whole history is usually one run, and deciding whether
an appended event is a replay costs a comparison instead of a lookup in an index of every
event. Runs are sorted, disjoint and never adjacent (``(0, 4)`` and ``(5, 9)`` merge into
``(0, 9)``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

Run = tuple[int, int]


def runs_of(values: Iterable[int]) -> list[Run]:
    """The runs covering exactly ``values`` (any order, repeats allowed)."""
    ordered = sorted(set(values))
    if not ordered:
        return []
    first = ordered[0]
    if ordered[-1] - first == len(ordered) - 1:  # one contiguous run: the usual batch
        return [(first, ordered[-1])]
    runs: list[Run] = []
    lo = hi = first
    for value in ordered[1:]:
        if value == hi + 1:
            hi = value
        else:
            runs.append((lo, hi))
            lo = hi = value
    runs.append((lo, hi))
    return runs


def merge(runs: Iterable[Run]) -> list[Run]:
    """Sorted, disjoint, non-adjacent runs covering the same values as ``runs``."""
    out: list[Run] = []
    for lo, hi in sorted(runs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def fresh(seqs: Sequence[int], runs: Sequence[Run]) -> list[bool]:
    """Per value of ``seqs``: True when it is in none of ``runs`` (sorted and disjoint) and
    does not occur earlier in ``seqs``."""
    starts = [lo for lo, _ in runs]
    seen: set[int] = set()
    out = []
    for seq in seqs:
        at = bisect_right(starts, seq) - 1
        new = seq not in seen and (at < 0 or seq > runs[at][1])
        seen.add(seq)
        out.append(new)
    return out


def strictly_increasing_after(seqs: Sequence[int], floor: int) -> bool:
    """True when every value exceeds ``floor`` and the previous value (all new for sure)."""
    last = floor
    for seq in seqs:
        if seq <= last:
            return False
        last = seq
    return True
