"""The order of a graph's nodes with the least peak memory (the model of ``profile``).

Exact: dynamic programming over the sets of scheduled nodes (``level_search``), with the
budget of the best heuristic order, for graphs of up to ``exact_limit`` nodes that it solves
within the time limit. Beyond: the best of TVM's order, two greedy rules and beam searches
over the same levels (widening while time is left), with the gap to a lower bound.

Measured here (Python 3.11, one core of a 2-core machine, ``time_limit_s=60``) on
``random_dag(n, seed)`` (each node reads 1-3 uniformly drawn earlier nodes), seeds 0-9:
every graph of up to 50 nodes is solved exactly (45 nodes: at most 27 s; 50 nodes: at most
28 s, up to 2.7 million sets), 9 of 10 at 55 nodes (at most 41 s), 5 of 10 at 60 nodes,
4 of 10 at 65. The unsolved ones got the best beam's order, 0.2-33% above the lower bound
(raised by the exact search's last whole level, still loose there).
Narrow graphs (chains with branches, as most models are) are solved exactly far beyond: with
``window=8`` all 10 graphs of 200 nodes took under 0.5 s each, a beam that never has to cut
a level being an exact search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tuner.memory.bounds import peak_bounds
from tuner.memory.graph import MemoryGraph
from tuner.memory.greedy_order import GREEDY_RULES, greedy_order
from tuner.memory.level_search import level_search
from tuner.memory.profile import peak_bytes
from tuner.memory.scheduling import schedule_space

DEFAULT_EXACT_LIMIT = 64  # nodes; above, the exact search is not tried
FIRST_BEAM_WIDTH = 64
MAX_BEAM_WIDTH = 65_536
BEAM_SHARE = 0.1  # of the time limit, for the beams that set the exact search's budget


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The order found, its peak, TVM's order's peak, and how far it is from optimal.

    ``exact``: ``peak_bytes`` is the least peak of any order. ``method``: how it was found.
    ``lower_bound_bytes``: a lower bound on the least peak (``bounds``, raised by the exact
    search's levels when it ran; the peak itself when exact). ``states``: sets of scheduled
    nodes expanded by all the searches."""

    order: tuple[int, ...]
    peak_bytes: int
    tvm_order_peak_bytes: int
    exact: bool
    method: str
    lower_bound_bytes: int
    solve_s: float
    states: int

    @property
    def saved_bytes(self) -> int:
        """Peak bytes saved against TVM's order."""
        return self.tvm_order_peak_bytes - self.peak_bytes

    @property
    def gap_bytes(self) -> int:
        """How far the peak may be above the optimum (0 when exact)."""
        return 0 if self.exact else self.peak_bytes - self.lower_bound_bytes


@dataclass(frozen=True, slots=True)
class _Candidate:
    method: str
    order: tuple[int, ...]
    peak: int


def min_peak_order(
    graph: MemoryGraph,
    *,
    time_limit_s: float = 60.0,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
) -> OrderResult:
    """The order of ``graph``'s nodes with the least peak memory: exact for graphs of up to
    ``exact_limit`` nodes solved within ``time_limit_s``, else the best heuristic order
    found in that time (exact too, at any size, when it meets the lower bound or a beam
    never had to cut a level); never worse than TVM's order.

    Greedy orders first, then beam searches of widening width (a tenth of the time when the
    exact search follows, all of it when not) set the budget of the exact search."""
    start = time.perf_counter()
    deadline = start + time_limit_s
    space = schedule_space(graph)
    bounds = peak_bounds(graph)
    tvm = _Candidate("TVM's order", graph.tvm_order, peak_bytes(graph, graph.tvm_order))
    best = tvm
    for name, rule in GREEDY_RULES.items():
        best = _better(best, _candidate(graph, f"greedy, {name}", greedy_order(space, rule)))
    lower_bound, states, note = bounds.peak, 0, ""
    proof = "meets the lower bound" if best.peak <= lower_bound else ""
    try_exact = len(graph.nodes) <= exact_limit
    beam_deadline = start + time_limit_s * (BEAM_SHARE if try_exact else 1.0)
    width, last_beam_s = FIRST_BEAM_WIDTH, 0.0
    while not proof and width <= MAX_BEAM_WIDTH:
        began = time.perf_counter()
        if width > FIRST_BEAM_WIDTH and began + 4 * last_beam_s > beam_deadline:
            break
        found = level_search(space, bounds, budget=best.peak, width=width, deadline=deadline)
        states += found.states
        if found.order is not None:
            best = _better(best, _candidate(graph, f"beam search, width {width}", found.order))
        if found.exact:
            lower_bound = best.peak
            proof = f"a beam of width {width} kept every set, an exact search"
        elif best.peak <= lower_bound:
            proof = "meets the lower bound"
        width, last_beam_s = width * 4, time.perf_counter() - began
    exact = bool(proof)
    if exact:
        method = f"{best.method} (optimal: {proof})"
    elif try_exact:
        found = level_search(space, bounds, budget=best.peak, deadline=deadline)
        states += found.states
        lower_bound = max(lower_bound, found.bound)
        exact = found.exact
        if found.order is not None:
            best = _candidate(graph, "dynamic programming", found.order)
        if exact:
            method = "dynamic programming over the sets of scheduled nodes"
            if found.order is None:
                method += f" (no order below the peak of the {best.method})"
        else:
            stop = "time limit" if time.perf_counter() > deadline else "state limit"
            note = f"; the exact search stopped at its {stop} after {found.states} states"
    else:
        note = f"; {len(graph.nodes)} nodes, above the exact limit of {exact_limit}"
    if not exact:
        method = f"heuristic: {best.method}{note}"
    return OrderResult(
        order=best.order,
        peak_bytes=best.peak,
        tvm_order_peak_bytes=tvm.peak,
        exact=exact,
        method=method,
        lower_bound_bytes=min(lower_bound, best.peak),
        solve_s=time.perf_counter() - start,
        states=states,
    )


def _candidate(graph: MemoryGraph, method: str, order: tuple[int, ...]) -> _Candidate:
    return _Candidate(method, order, peak_bytes(graph, order))


def _better(current: _Candidate, other: _Candidate) -> _Candidate:
    return other if other.peak < current.peak else current
