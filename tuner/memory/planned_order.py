"""The order of a graph's nodes for which TVM's planner allocates the least storage.

The cost of an order is what ``token_planner.simulate_planner`` says TVM's
``StaticPlanBlockMemory`` allocates for it (the shared storages plus the model outputs).
That cost depends on the order's history (which free token a request finds, which it grows),
so the order with the least live bytes is a good start, not the answer. Search: simulated
annealing over topological orders from every start given (TVM's order, the least-peak order,
greedy orders), a move taking one node to a random step between its last predecessor and its
first successor, with a seeded RNG and a budget of evaluations (and a time limit). Never
worse than TVM's order: it is always a start. A graph of at most ``EXHAUSTIVE_NODES`` nodes
with at most ``evaluations`` orders gets every order tried instead (exact). Otherwise a
heuristic: no proof of optimality; ``lower_bound_bytes`` bounds it from below: the storages
must hold every tensor live at once, so no order plans less than the least peak of the live
bytes without the model inputs (which TVM does not plan), a bound from ``min_peak_order``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph
from tuner.memory.greedy_order import GREEDY_RULES, greedy_order
from tuner.memory.order import min_peak_order
from tuner.memory.profile import check_order, peak_bytes
from tuner.memory.scheduling import schedule_space
from tuner.memory.token_planner import PlannerTables, planner_tables, simulate_checked

DEFAULT_EVALUATIONS = 20_000
EXHAUSTIVE_NODES = 8  # graphs this small are searched exhaustively when their orders fit
START_TEMPERATURE = 0.05  # of the start's cost: a move costing 5 % more is taken 1 in e
END_TEMPERATURE = 0.002


@dataclass(frozen=True, slots=True)
class PlannedOrderResult:
    """The order found, the storage TVM plans for it and for TVM's order (simulated), the
    start it came from, and the search's effort."""

    order: tuple[int, ...]
    planned_bytes: int  # total: shared storages + model outputs
    tvm_order_planned_bytes: int
    lower_bound_bytes: int  # no order plans less (see the module docstring)
    start: str
    method: str
    evaluations: int
    solve_s: float

    @property
    def saved_bytes(self) -> int:
        """Planned bytes saved against TVM's order."""
        return self.tvm_order_planned_bytes - self.planned_bytes


def least_planned_order(
    graph: MemoryGraph,
    starts: Mapping[str, Sequence[int]] | None = None,
    *,
    seed: int = 0,
    evaluations: int = DEFAULT_EVALUATIONS,
    time_limit_s: float = 30.0,
) -> PlannedOrderResult:
    """The order with the least storage planned by TVM that the search finds (see the module
    docstring). ``starts``: named orders to anneal from besides TVM's order (each checked);
    ``evaluations`` is split evenly among the starts; a tenth of ``time_limit_s`` at most
    goes to the lower bound."""
    began = time.perf_counter()
    deadline = began + time_limit_s
    tables = planner_tables(graph)
    named = {"TVM's order": tuple(graph.tvm_order)}
    for name, order in (starts or {}).items():
        check_order(graph, order)
        named.setdefault(name, tuple(int(i) for i in order))
    tvm_cost = _cost(tables, graph.tvm_order)
    every = every_order(graph, evaluations) if len(graph.nodes) <= EXHAUSTIVE_NODES else None
    if every is not None:
        cost, _, order = min((_cost(tables, o), peak_bytes(graph, o), o) for o in every)
        return PlannedOrderResult(
            order=order,
            planned_bytes=cost,
            tvm_order_planned_bytes=tvm_cost,
            lower_bound_bytes=cost,
            start="every order",
            method=f"every order of TVM's planner (simulated): {len(every)} orders, exact",
            evaluations=len(every),
            solve_s=time.perf_counter() - began,
        )
    rng = random.Random(seed)
    best: tuple[int, int, tuple[int, ...], str] | None = None  # (cost, peak, order, start)
    used = 0
    share = max(1, evaluations // len(named))
    for name, order in named.items():
        found, cost, spent = _anneal(graph, tables, order, rng, share, deadline)
        used += spent
        key = (cost, peak_bytes(graph, found), found, name)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    cost, _, order, start = best
    bound = planned_lower_bound(graph, time_limit_s=time_limit_s / 10)
    return PlannedOrderResult(
        order=order,
        planned_bytes=cost,
        tvm_order_planned_bytes=tvm_cost,
        lower_bound_bytes=min(bound, cost),
        start=start,
        method=(
            f"simulated annealing over orders of TVM's planner (simulated), best from "
            f"{start}; {used} evaluations, seed {seed}"
        ),
        evaluations=used,
        solve_s=time.perf_counter() - began,
    )


def every_order(graph: MemoryGraph, limit: int) -> list[tuple[int, ...]] | None:
    """Every order of ``graph``'s nodes that runs each after the nodes it reads from, or None
    when there are more than ``limit``."""
    count = len(graph.nodes)
    predecessors = [set(graph.predecessors(node)) for node in range(count)]
    found: list[tuple[int, ...]] = []

    def extend(order: list[int], done: set[int]) -> bool:  # False: over the limit
        if len(order) == count:
            found.append(tuple(order))
            return len(found) <= limit
        for node in range(count):
            if node not in done and predecessors[node] <= done:
                order.append(node)
                done.add(node)
                within = extend(order, done)
                order.pop()
                done.discard(node)
                if not within:
                    return False
        return True

    return found if extend([], set()) else None


def search_starts(
    graph: MemoryGraph, least_peak_order: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """The starts ``least_planned_order`` anneals from: the least-peak order and the greedy
    orders of ``greedy_order`` (TVM's order is always one)."""
    space = schedule_space(graph)
    starts = {"the least-peak order": tuple(least_peak_order)}
    for name, rule in GREEDY_RULES.items():
        starts[f"greedy, {name}"] = greedy_order(space, rule)
    return starts


def planned_lower_bound(graph: MemoryGraph, *, time_limit_s: float = 5.0) -> int:
    """Bytes below which no order's plan (shared storages and model outputs) can go: the
    lower bound on the least peak of ``graph`` with its model inputs weighing nothing."""
    tensors = {
        name: dataclasses.replace(t, bytes=0) if t.producer is None else t
        for name, t in graph.tensors.items()
    }
    without_inputs = MemoryGraph(graph.nodes, tensors, name=graph.name)
    return min_peak_order(without_inputs, time_limit_s=time_limit_s).lower_bound_bytes


def _cost(tables: PlannerTables, order: Sequence[int]) -> int:
    return simulate_checked(tables, order).total_bytes


def _anneal(
    graph: MemoryGraph,
    tables: PlannerTables,
    start: tuple[int, ...],
    rng: random.Random,
    evaluations: int,
    deadline: float,
) -> tuple[tuple[int, ...], int, int]:
    """(best order, its cost, evaluations used) of one annealing run from ``start``."""
    predecessors = [graph.predecessors(v) for v in range(len(graph.nodes))]
    successors: list[list[int]] = [[] for _ in graph.nodes]
    for v, preds in enumerate(predecessors):
        for p in preds:
            successors[p].append(v)
    order = list(start)
    cost = best_cost = _cost(tables, order)
    best = tuple(order)
    if len(order) < 2 or evaluations <= 1:
        return best, best_cost, 1
    scale = max(best_cost, 1)
    spent = 1
    while spent < evaluations:
        if spent % 256 == 0 and time.perf_counter() > deadline:
            break
        temperature = START_TEMPERATURE * (END_TEMPERATURE / START_TEMPERATURE) ** (
            spent / evaluations
        )
        moved = _move(order, predecessors, successors, rng)
        if moved is None:
            spent += 1
            continue
        new_cost = _cost(tables, moved)
        spent += 1
        delta = (new_cost - cost) / scale
        if delta <= 0 or rng.random() < math.exp(-delta / temperature):
            order, cost = moved, new_cost
            if cost < best_cost:
                best, best_cost = tuple(order), cost
    return best, best_cost, spent


def _move(
    order: list[int],
    predecessors: Sequence[Sequence[int]],
    successors: Sequence[Sequence[int]],
    rng: random.Random,
) -> list[int] | None:
    """``order`` with one random node moved to another step it may run at, or None when
    the node drawn has nowhere else to go."""
    at = rng.randrange(len(order))
    node = order[at]
    rest = order[:at] + order[at + 1 :]
    position = {v: i for i, v in enumerate(rest)}
    low = max((position[p] + 1 for p in predecessors[node]), default=0)
    high = min((position[s] for s in successors[node]), default=len(rest))
    if high - low < 1:
        return None
    to = rng.randint(low, high)
    if to == at:
        to = high if at == low else low
    return [*rest[:to], node, *rest[to:]]
