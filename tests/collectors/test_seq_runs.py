"""Runs of consecutive seqs: the SQLite store's record of which (source, seq) it holds."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from collectors._seq_runs import fresh, merge, runs_of, strictly_increasing_after

SEQS = st.lists(st.integers(0, 60), max_size=40)


def covered(runs: list[tuple[int, int]]) -> set[int]:
    return {v for lo, hi in runs for v in range(lo, hi + 1)}


def well_formed(runs: list[tuple[int, int]]) -> bool:
    """Sorted, each lo <= hi, disjoint and not adjacent."""
    return all(lo <= hi for lo, hi in runs) and all(
        a[1] + 1 < b[0] for a, b in itertools.pairwise(runs)
    )


@given(SEQS)
def test_runs_of_cover_exactly_the_values(values: list[int]) -> None:
    runs = runs_of(values)
    assert covered(runs) == set(values) and well_formed(runs)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=12))
def test_merge_keeps_what_is_covered(pairs: list[tuple[int, int]]) -> None:
    runs = [(lo, lo + extra) for lo, extra in pairs]
    merged = merge(runs)
    assert covered(merged) == covered(runs) and well_formed(merged)


@given(stored=SEQS, batch=SEQS)
def test_fresh_is_new_and_first_in_the_batch(stored: list[int], batch: list[int]) -> None:
    flags = fresh(batch, runs_of(stored))
    seen = set(stored)
    expected = []
    for seq in batch:
        expected.append(seq not in seen)
        seen.add(seq)
    assert flags == expected


def test_strictly_increasing_after() -> None:
    assert strictly_increasing_after([5, 6, 9], 4)
    assert not strictly_increasing_after([5, 6, 9], 5)
    assert not strictly_increasing_after([5, 7, 7], -1)
    assert strictly_increasing_after([], 3)
