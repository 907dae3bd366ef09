"""Repeated blocks of a model's kernel sequence, so a view can collapse them. Pure.

A *block* is a run of at least two back-to-back repetitions of the same window of kernel
calls: each call in the window has the same signature as the call one period later (the
signature: the kernel, its output shapes and where its inputs come from, as distances back
in the run order). Scanning the calls in run order, at each call the window (at most
``MAX_PERIOD`` calls long) whose repetitions cover the most calls from there starts a block
(the shorter window on a tie); the scan resumes after it. Every call of one block gets the
same label, ``"block K: P kernels x R"`` (the K-th block found, its period P and number of
repetitions R); calls in no block get None. E.g. zoo:deep's 170 identical residual blocks
of three kernels form one block ``"block 0: 3 kernels x 170"``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

MAX_PERIOD = 64


def block_labels(signatures: Sequence[Hashable], max_period: int = MAX_PERIOD) -> list[str | None]:
    """The block label of every call (see the module docstring)."""
    n = len(signatures)
    labels: list[str | None] = [None] * n
    found = 0
    i = 0
    while i < n:
        best_cover, best_period, best_repeats = 0, 0, 0
        for period in range(1, min(max_period, (n - i) // 2) + 1):
            window = signatures[i : i + period]
            repeats = 1
            while signatures[i + repeats * period : i + (repeats + 1) * period] == window:
                repeats += 1
            if repeats >= 2 and repeats * period > best_cover:
                best_cover, best_period, best_repeats = repeats * period, period, repeats
        if not best_cover:
            i += 1
            continue
        label = f"block {found}: {best_period} kernels x {best_repeats}"
        labels[i : i + best_cover] = [label] * best_cover
        found += 1
        i += best_cover
    return labels
