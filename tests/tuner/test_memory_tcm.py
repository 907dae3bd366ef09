"""Fewest DRAM bytes with a TCM: the integer program against a brute force over every
placement on small graphs, never above the greedy plan nor below the compulsory traffic;
bad sizes get one clear line."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

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


def brute_force_dram_bytes(graph: MemoryGraph, order: tuple[int, ...], tcm_bytes: int) -> int:
    """The least traffic over every sequence of TCM contents, step by step (states: what is
    in the TCM, what DRAM holds a copy of), without the gap argument of the model: each step
    chooses which of its node's operands are resident (the rest stream) and which other
    tensors the TCM holds."""
    tensors = graph.tensors
    uses: dict[str, list[int]] = {}
    for step, node in enumerate(order):
        for name in {*graph.nodes[node].inputs, *graph.nodes[node].outputs}:
            uses.setdefault(name, []).append(step)

    def needed_from(name: str, step: int) -> bool:
        return tensors[name].is_output or any(use >= step for use in uses.get(name, []))

    def subsets(names: list[str]) -> Iterator[tuple[str, ...]]:
        return itertools.chain.from_iterable(
            itertools.combinations(names, k) for k in range(len(names) + 1)
        )

    states: dict[tuple[frozenset[str], frozenset[str]], int] = {(frozenset(), frozenset()): 0}
    for step, node in enumerate(order):
        reads = {n for n in graph.nodes[node].inputs if tensors[n].bytes}
        written = {n for n in graph.nodes[node].outputs if tensors[n].bytes}
        io = sorted(reads | written)
        made = {n for n, t in tensors.items() if t.producer is None or t.producer in order[:step]}
        optional = sorted(
            n for n in made if n not in io and tensors[n].bytes and needed_from(n, step)
        )
        following: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        for (in_tcm, in_dram), cost in states.items():
            for res in subsets(io):
                for extra in subsets(optional):
                    chosen = set(res) | set(extra)
                    if sum(tensors[n].bytes for n in chosen) > tcm_bytes:
                        continue
                    spills = {
                        n
                        for n in in_tcm - chosen
                        if tensors[n].producer is not None
                        and n not in in_dram
                        and needed_from(n, step)
                    }
                    dram = in_dram | spills
                    fetched = (reads - (in_tcm & chosen)) | (set(extra) - in_tcm)
                    if any(tensors[n].producer is not None and n not in dram for n in fetched):
                        continue  # dropped earlier without a copy: lost
                    streamed_out = written - chosen
                    moved = sum(tensors[n].bytes for n in [*spills, *fetched, *streamed_out])
                    key = (frozenset(chosen), frozenset(dram | streamed_out))
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
    """Each step's operands are resident or streamed, the TCM never overflows, and the
    moves add up to the traffic."""
    streamed = set(plan.streamed)
    for step, node in enumerate(order):
        held = set(plan.placement[step])
        for name in {*graph.nodes[node].inputs, *graph.nodes[node].outputs}:
            if graph.tensors[name].bytes:
                assert name in held or (step, name) in streamed, (step, name)
        assert sum(graph.tensors[name].bytes for name in held) <= tcm_bytes
    moves = (*plan.loads, *plan.spills, *plan.streamed)
    assert sum(graph.tensors[name].bytes for _, name in moves) == plan.dram_bytes


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
        assert plan.placement[:3] == (("t0",), ("t0", "t1"), ("t1", "t2"))
        assert (1, "t0") in plan.spills  # written to DRAM after n1 (t3 streams or spills)
        assert (3, "t0") in (*plan.loads, *plan.streamed)
        check_plan(graph, graph.tvm_order, 25, plan)
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
    assert plan.dram_bytes == 9 and plan.optimal
    assert sorted((*plan.loads, *plan.streamed, *plan.spills)) == [(0, "x"), (2, "t2"), (2, "x")]


def test_greedy_can_lose_to_the_integer_program() -> None:
    graph = random_dag(5, 1, sizes=(1, 20))
    result = plan_tcm(graph, graph.tvm_order, 20)
    got = (result.ilp.dram_bytes, result.greedy.dram_bytes, result.compulsory_dram_bytes)
    assert got == (42, 93, 17)
    assert brute_force_dram_bytes(graph, graph.tvm_order, 20) == 42
    assert result.ilp.optimal and result.ilp.method == "integer linear program (HiGHS)"
    check_plan(graph, graph.tvm_order, 20, result.ilp)
    check_plan(graph, graph.tvm_order, 20, result.greedy)


def test_a_tcm_smaller_than_a_kernel_streams() -> None:
    """n3 reads and writes 21 bytes; with a TCM of 12 or none at all some operands stream."""
    graph = skip_connection()
    for tcm_bytes in (12, 5, 0):
        result = plan_tcm(graph, graph.tvm_order, tcm_bytes)
        assert result.ilp.optimal
        assert result.ilp.dram_bytes == brute_force_dram_bytes(graph, graph.tvm_order, tcm_bytes)
        assert result.compulsory_dram_bytes <= result.ilp.dram_bytes <= result.greedy.dram_bytes
        assert result.ilp.streamed
        for plan in (result.ilp, result.greedy):
            check_plan(graph, graph.tvm_order, tcm_bytes, plan)
    # No TCM: t0 written and read twice (30), t1 and t2 written and read once (20 each), t3
    # written (1); tensors larger than the TCM can only stream: the compulsory traffic.
    assert plan_tcm(graph, graph.tvm_order, 0).ilp.dram_bytes == 30 + 20 + 20 + 1
    assert plan_tcm(graph, graph.tvm_order, 5).compulsory_dram_bytes == 30 + 20 + 20 + 1
    assert plan_tcm(graph, graph.tvm_order, 12).compulsory_dram_bytes == 1


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
    assume(peak > 0)
    tcm_bytes = rng.randint(0, peak - 1)
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
        (-5, "the TCM size must be zero or a positive number of bytes, not -5"),
        (
            30,
            "a TCM of 30 bytes holds this order's peak of 30 bytes: every tensor fits, so the "
            "DRAM traffic is the compulsory 1 bytes",
        ),
        (10**9, "holds this order's peak"),
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
    monkeypatch.setattr(tcm, "_solve", lambda model, time_limit_s: (None, False))
    result = plan_tcm(graph, graph.tvm_order, 41, time_limit_s=2)
    assert result.ilp.dram_bytes == result.greedy.dram_bytes
    assert not result.ilp.optimal
    assert result.ilp.method.endswith("(the integer program found no plan within 2 s)")
