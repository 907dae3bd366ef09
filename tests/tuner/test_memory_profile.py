"""The memory an order keeps live, on graphs small enough to count by hand; random graphs."""

from __future__ import annotations

import pytest

from tuner.memory.graph import MemoryGraph, Node, Tensor, graph_from_edges
from tuner.memory.profile import check_order, live_tensors, memory_profile, peak_bytes
from tuner.memory.synthetic import random_dag


def chain() -> MemoryGraph:
    """x(5) -> n0 -> t0(10) -> n1 -> t1(20) -> n2 -> t2(30), the output."""
    return graph_from_edges([10, 20, 30], [(0, 1), (1, 2)], input_bytes=5)


def diamond() -> MemoryGraph:
    """n0 -> t0(10) read by n1 (t1: 20) and n2 (t2: 30); n3 reads both, writes t3(5)."""
    return graph_from_edges([10, 20, 30, 5], [(0, 1), (0, 2), (1, 3), (2, 3)])


def test_chain_profile() -> None:
    graph = chain()
    assert memory_profile(graph, (0, 1, 2)) == [15, 30, 50]
    assert peak_bytes(graph, (0, 1, 2)) == 50
    assert live_tensors(graph, (0, 1, 2)) == [("x", "t0"), ("t0", "t1"), ("t1", "t2")]


def test_diamond_profile_in_both_orders() -> None:
    graph = diamond()
    assert memory_profile(graph, (0, 1, 2, 3)) == [10, 30, 60, 55]
    assert memory_profile(graph, (0, 2, 1, 3)) == [10, 40, 60, 55]
    assert live_tensors(graph, (0, 2, 1, 3))[1] == ("t0", "t2")


def test_outputs_stay_and_unread_tensors_live_one_step() -> None:
    tensors = {
        "x": Tensor("x", 7, None, (), is_output=True),  # an input that is an output
        "u": Tensor("u", 100, None, ()),  # an input no one reads: the first step only
        "a": Tensor("a", 3, 0, (1,), is_output=True),  # read, and an output: to the end
        "dead": Tensor("dead", 50, 0, ()),  # written, never read: its step only
        "b": Tensor("b", 2, 1, ()),
    }
    nodes = (Node("n0", "op", (), ("a", "dead")), Node("n1", "op", ("a",), ("b",)))
    graph = MemoryGraph(nodes, tensors)
    assert memory_profile(graph, (0, 1)) == [7 + 100 + 3 + 50, 7 + 3 + 2]


def test_empty_graph() -> None:
    graph = MemoryGraph((), {})
    assert memory_profile(graph, ()) == []
    assert peak_bytes(graph, ()) == 0


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ((0, 1), "2 steps for a graph of 4 nodes"),
        ((0, 1, 1, 3), "runs twice"),
        ((0, 1, 2, 7), "not one of 0..3"),
        ((0, 1, 3, 2), "node n3 runs at step 2, before n2"),
    ],
)
def test_bad_orders_are_named(order: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_order(diamond(), order)


def test_random_dag_is_seeded_and_reads_one_to_three_earlier_nodes() -> None:
    graph = random_dag(30, 4, sizes=(5, 9))
    assert graph == random_dag(30, 4, sizes=(5, 9))
    assert graph != random_dag(30, 5, sizes=(5, 9))
    assert all(5 <= graph.tensors[f"t{i}"].bytes <= 9 for i in range(30))
    assert graph.nodes[0].inputs == ("x",)
    assert all(1 <= len(graph.predecessors(i)) <= 3 for i in range(1, 30))
    local = random_dag(30, 4, window=2)
    assert all(i - p <= 2 for i in range(30) for p in local.predecessors(i))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_nodes": 0}, "at least one node"),
        ({"edge_prob": 1.5}, "edge_prob"),
        ({"sizes": (9, 5)}, "sizes"),
        ({"window": 0}, "window"),
    ],
)
def test_random_dag_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"n_nodes": 5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        random_dag(**arguments)
