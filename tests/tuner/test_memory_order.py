"""The least peak memory order: exact against every topological order on small graphs, the
heuristic between the optimum and TVM's order, the lower bounds below the optimum."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from memory_helpers import memory_graphs, topological_orders

from tuner.memory.bounds import peak_bounds
from tuner.memory.graph import MemoryGraph, graph_from_edges
from tuner.memory.level_search import level_search
from tuner.memory.order import min_peak_order
from tuner.memory.profile import check_order, memory_profile, peak_bytes
from tuner.memory.scheduling import schedule_space
from tuner.memory.synthetic import random_dag

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fan_out() -> MemoryGraph:
    """n0 writes a(10), read by two branches n1 -> b1(100) -> n3 -> c1(1) and
    n2 -> b2(100) -> n4 -> c2(1); n5 joins c1 and c2. TVM's order runs both wide tensors at
    once; finishing a branch first does not."""
    return graph_from_edges(
        [10, 100, 100, 1, 1, 1], [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)]
    )


def best_peak(graph: MemoryGraph) -> int:
    return min(peak_bytes(graph, order) for order in topological_orders(graph))


def test_fan_out_beats_tvm_order() -> None:
    graph = fan_out()
    assert memory_profile(graph, graph.tvm_order) == [10, 110, 210, 201, 102, 3]
    result = min_peak_order(graph)
    assert result.exact
    assert result.tvm_order_peak_bytes == 210
    assert result.peak_bytes == 111 == best_peak(graph)
    assert memory_profile(graph, result.order) == [10, 110, 111, 111, 102, 3]
    assert peak_bounds(graph).peak == 110  # n1 (or n2) with a and its wide output
    assert result.lower_bound_bytes == 111  # exact: the optimum bounds itself
    assert result.saved_bytes == 99 and result.gap_bytes == 0


def test_chain_and_diamond_optima() -> None:
    chain = graph_from_edges([10, 20, 30], [(0, 1), (1, 2)], input_bytes=5)
    assert min_peak_order(chain).order == (0, 1, 2)
    assert min_peak_order(chain).peak_bytes == 50
    diamond = graph_from_edges([10, 20, 30, 5], [(0, 1), (0, 2), (1, 3), (2, 3)])
    result = min_peak_order(diamond)
    assert (result.peak_bytes, result.tvm_order_peak_bytes, result.exact) == (60, 60, True)
    assert peak_bounds(diamond).peak == 55  # the last step: t1, t2 and the output t3


def test_empty_graph() -> None:
    result = min_peak_order(MemoryGraph((), {}))
    assert (result.order, result.peak_bytes, result.exact) == ((), 0, True)


@SETTINGS
@given(memory_graphs())
def test_exact_against_every_order(graph: MemoryGraph) -> None:
    optimum = best_peak(graph)
    result = min_peak_order(graph)
    check_order(graph, result.order)
    assert result.exact
    assert result.peak_bytes == peak_bytes(graph, result.order) == optimum
    assert result.lower_bound_bytes <= optimum
    assert peak_bounds(graph).peak <= optimum
    assert result.peak_bytes <= result.tvm_order_peak_bytes


@SETTINGS
@given(memory_graphs())
def test_dynamic_programming_alone_is_exact(graph: MemoryGraph) -> None:
    """Without a heuristic's budget the search itself finds the optimum, and with the
    optimum as budget it proves that nothing is lower."""
    optimum = best_peak(graph)
    space, bounds = schedule_space(graph), peak_bounds(graph)
    found = level_search(space, bounds, budget=10**9)
    assert found.exact and found.peak == optimum == peak_bytes(graph, found.order)
    assert found.bound <= optimum
    proof = level_search(space, bounds, budget=optimum)
    assert proof.exact and proof.order is None and proof.bound == optimum


@SETTINGS
@given(memory_graphs())
def test_heuristic_between_optimum_and_tvm_order(graph: MemoryGraph) -> None:
    optimum = best_peak(graph)
    result = min_peak_order(graph, exact_limit=0)
    check_order(graph, result.order)
    assert optimum <= result.peak_bytes <= result.tvm_order_peak_bytes
    assert result.lower_bound_bytes <= optimum
    for width in (1, 2):
        beam = level_search(schedule_space(graph), peak_bounds(graph), budget=10**9, width=width)
        assert beam.peak == peak_bytes(graph, beam.order) >= optimum


@pytest.mark.parametrize("seed", range(12))
def test_random_dags_against_every_order(seed: int) -> None:
    graph = random_dag(8, seed, edge_prob=0.3, sizes=(1, 50))
    result = min_peak_order(graph)
    assert result.exact and result.peak_bytes == best_peak(graph)


def test_larger_graph_solved_exactly() -> None:
    graph = random_dag(30, 2)
    result = min_peak_order(graph)
    assert result.exact and result.states > 0
    assert result.peak_bytes == peak_bytes(graph, result.order) < result.tvm_order_peak_bytes
    assert result.lower_bound_bytes <= result.peak_bytes


@pytest.mark.parametrize("seed", [1, 4])
def test_above_the_exact_limit_says_heuristic_and_gap(seed: int) -> None:
    graph = random_dag(80, seed)
    result = min_peak_order(graph, exact_limit=20, time_limit_s=1.0)
    check_order(graph, result.order)
    assert result.peak_bytes == peak_bytes(graph, result.order) <= result.tvm_order_peak_bytes
    assert result.lower_bound_bytes <= result.peak_bytes
    if not result.exact:
        assert result.method.startswith("heuristic: ")
        assert "above the exact limit of 20" in result.method
        assert result.gap_bytes == result.peak_bytes - result.lower_bound_bytes > 0


def test_time_limit_stops_the_exact_search() -> None:
    graph = random_dag(60, 0)
    started = time.perf_counter()
    result = min_peak_order(graph, time_limit_s=0.5)
    assert time.perf_counter() - started < 5
    check_order(graph, result.order)
    assert result.peak_bytes <= result.tvm_order_peak_bytes
    if not result.exact:
        assert "stopped at its time limit" in result.method
