"""Fewest DRAM bytes with a TCM: the integer program against a brute force over every
placement on small graphs, never above the greedy plan nor below the compulsory traffic;
bad sizes get one clear line."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from memory_helpers import memory_graphs

from tuner.memory.graph import MemoryGraph, Node, Tensor, graph_from_edges
from tuner.memory.profile import peak_bytes
from tuner.memory.synthetic import random_dag
from tuner.memory.tcm import TcmPlan, greedy_plan, ilp_plan, plan_tcm
from tuner.memory.tcm_model import compulsory_dram_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def node_bytes(graph: MemoryGraph, node: int) -> int:
    names = {*graph.nodes[node].inputs, *graph.nodes[node].outputs}
    return sum(graph.tensors[name].bytes for name in names)


def brute_force_dram_bytes(graph: MemoryGraph, order: tuple[int, ...], tcm_bytes: int) -> int:
    """The least traffic over every sequence of TCM contents, step by step (states: what is
    in the TCM, what DRAM holds a copy of), without the gap argument of the model."""
    tensors = graph.tensors
    uses: dict[str, list[int]] = {}
    for step, node in enumerate(order):
        for name in {*graph.nodes[node].inputs, *graph.nodes[node].outputs}:
            uses.setdefault(name, []).append(step)

    def needed_from(name: str, step: int) -> bool:
        return tensors[name].is_output or any(use >= step for use in uses.get(name, []))

    states: dict[tuple[frozenset[str], frozenset[str]], int] = {(frozenset(), frozenset()): 0}
    for step, node in enumerate(order):
        io = {*graph.nodes[node].inputs, *graph.nodes[node].outputs}
        written = set(graph.nodes[node].outputs)
        made = {n for n, t in tensors.items() if t.producer is None or t.producer in order[:step]}
        optional = sorted(
            n for n in made | written if n not in io and tensors[n].bytes and needed_from(n, step)
        )
        following: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        for (in_tcm, in_dram), cost in states.items():
            for extra in itertools.chain.from_iterable(
                itertools.combinations(optional, k) for k in range(len(optional) + 1)
            ):
                chosen = io | set(extra)
                if sum(tensors[n].bytes for n in chosen) > tcm_bytes:
                    continue
                loads = chosen - in_tcm - written
                if any(tensors[n].producer is not None and n not in in_dram for n in loads):
                    continue  # dropped earlier without a copy: lost
                spills = {
                    n
                    for n in in_tcm - chosen
                    if tensors[n].producer is not None and n not in in_dram and needed_from(n, step)
                }
                moved = sum(tensors[n].bytes for n in loads | spills)
                key = (frozenset(chosen), in_dram | spills)
                following[key] = min(following.get(key, moved + cost), moved + cost)
        states = following
    return min(
        cost
        + sum(
            tensors[n].bytes
            for n in in_tcm
            if tensors[n].is_output and tensors[n].producer is not None and n not in in_dram
        )
        for (in_tcm, in_dram), cost in states.items()
    )


def check_plan(graph: MemoryGraph, order: tuple[int, ...], tcm_bytes: int, plan: TcmPlan) -> None:
    """The placement holds each step's inputs and outputs within the TCM, and the moves add
    up to the traffic."""
    for step, node in enumerate(order):
        held = set(plan.placement[step])
        assert {*graph.nodes[node].inputs, *graph.nodes[node].outputs} <= held
        assert sum(graph.tensors[name].bytes for name in held) <= tcm_bytes
    moved = sum(graph.tensors[name].bytes for _, name in (*plan.loads, *plan.spills))
    assert moved == plan.dram_bytes


def skip_connection() -> MemoryGraph:
    """n0 -> t0(10) read by n1 and by n3 two steps later; t1, t2 (10) in between; t3(1)."""
    return graph_from_edges([10, 10, 10, 1], [(0, 1), (1, 2), (2, 3), (0, 3)])


def test_skip_connection_spills_and_reloads() -> None:
    graph = skip_connection()
    assert peak_bytes(graph, graph.tvm_order) == 30
    result = plan_tcm(graph, graph.tvm_order, 25)
    assert result.compulsory_dram_bytes == 1  # the output t3
    for plan in (result.ilp, result.greedy):
        assert plan.dram_bytes == 21  # t0 written after n1 and read back before n3
        assert plan.placement == (("t0",), ("t0", "t1"), ("t1", "t2"), ("t0", "t2", "t3"))
        assert plan.loads == ((3, "t0"),)
        assert plan.spills == ((1, "t0"), (3, "t3"))
    assert result.ilp.optimal and not result.greedy.optimal


def test_dropped_model_input_is_loaded_again_never_written() -> None:
    """x(4) is read by n0 and by n2; n1 fills the TCM of 20 with t0 and t1 (10 each)."""
    tensors = {
        "x": Tensor("x", 4, None, (0, 2)),
        "t0": Tensor("t0", 10, 0, (1,)),
        "t1": Tensor("t1", 10, 1, (2,)),
        "t2": Tensor("t2", 1, 2, (), is_output=True),
    }
    nodes = (
        Node("n0", "op", ("x",), ("t0",)),
        Node("n1", "op", ("t0",), ("t1",)),
        Node("n2", "op", ("x", "t1"), ("t2",)),
    )
    graph = MemoryGraph(nodes, tensors)
    assert compulsory_dram_bytes(graph) == 4 + 1
    plan = ilp_plan(graph, graph.tvm_order, 20)
    assert (plan.dram_bytes, plan.loads, plan.spills) == (9, ((0, "x"), (2, "x")), ((2, "t2"),))
    assert plan.optimal


def test_greedy_can_lose_to_the_integer_program() -> None:
    graph = random_dag(5, 26, sizes=(1, 20))
    result = plan_tcm(graph, graph.tvm_order, 41)
    assert (result.ilp.dram_bytes, result.greedy.dram_bytes, result.compulsory_dram_bytes) == (
        60,
        74,
        46,
    )
    assert brute_force_dram_bytes(graph, graph.tvm_order, 41) == 60
    assert result.ilp.optimal and result.ilp.method == "integer linear program (HiGHS)"
    check_plan(graph, graph.tvm_order, 41, result.ilp)
    check_plan(graph, graph.tvm_order, 41, result.greedy)


@SETTINGS
@given(memory_graphs(max_nodes=6), st.integers(0, 2**32 - 1), st.booleans())
def test_ilp_optimal_against_brute_force(graph: MemoryGraph, seed: int, shuffle: bool) -> None:
    rng = random.Random(seed)
    order = graph.tvm_order
    if shuffle:  # some other valid order: run a random ready node each step
        done: list[int] = []
        while len(done) < len(graph.nodes):
            ready = [
                v
                for v in range(len(graph.nodes))
                if v not in done and set(graph.predecessors(v)) <= set(done)
            ]
            done.append(rng.choice(ready))
        order = tuple(done)
    peak = peak_bytes(graph, order)
    smallest = max(node_bytes(graph, node) for node in range(len(graph.nodes)))
    assume(peak > max(smallest, 1))  # else every TCM that fits a node holds the whole peak
    tcm_bytes = rng.randint(max(smallest, 1), peak - 1)
    result = plan_tcm(graph, order, tcm_bytes, time_limit_s=10)
    assert result.ilp.optimal
    assert result.ilp.dram_bytes == brute_force_dram_bytes(graph, order, tcm_bytes)
    assert result.compulsory_dram_bytes <= result.ilp.dram_bytes <= result.greedy.dram_bytes
    check_plan(graph, order, tcm_bytes, result.ilp)
    check_plan(graph, order, tcm_bytes, result.greedy)


def test_time_limit_keeps_the_greedy_cap() -> None:
    graph = random_dag(150, 1)
    peak = peak_bytes(graph, graph.tvm_order)
    result = plan_tcm(graph, graph.tvm_order, peak // 3, time_limit_s=0.05)
    assert result.compulsory_dram_bytes <= result.ilp.dram_bytes <= result.greedy.dram_bytes
    check_plan(graph, graph.tvm_order, peak // 3, result.ilp)


@pytest.mark.parametrize(
    ("tcm_bytes", "message"),
    [
        (0, "the TCM size must be a positive number of bytes, not 0"),
        (-5, "the TCM size must be a positive number of bytes, not -5"),
        (
            30,
            "a TCM of 30 bytes holds this order's peak of 30 bytes: every tensor fits, so the "
            "DRAM traffic is the compulsory 1 bytes",
        ),
        (10**9, "holds this order's peak"),
        (20, "node n3 reads and writes 21 bytes at once, more than the TCM of 20 bytes"),
    ],
)
def test_bad_sizes_get_one_clear_line(tcm_bytes: int, message: str) -> None:
    graph = skip_connection()
    for plan in (plan_tcm, greedy_plan, ilp_plan):
        with pytest.raises(ValueError, match=message) as error:
            plan(graph, graph.tvm_order, tcm_bytes)
        assert "\n" not in str(error.value)


def test_bad_order_is_named() -> None:
    graph = skip_connection()
    with pytest.raises(ValueError, match="node n1 runs at step 0, before n0"):
        plan_tcm(graph, (1, 0, 2, 3), 25)


def test_greedy_plan_returned_when_the_solver_finds_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tuner.memory.tcm as tcm

    graph = random_dag(5, 26, sizes=(1, 20))
    monkeypatch.setattr(tcm, "_solve_keeps", lambda model, time_limit_s: (None, False))
    result = plan_tcm(graph, graph.tvm_order, 41, time_limit_s=2)
    assert result.ilp.dram_bytes == result.greedy.dram_bytes == 74
    assert not result.ilp.optimal
    assert result.ilp.method.endswith("(the integer program found no plan within 2 s)")
