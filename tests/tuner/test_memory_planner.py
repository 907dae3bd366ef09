"""TVM's memory planner simulated in Python: its rules on graphs built by hand, storage by
storage equal to what ``StaticPlanBlockMemory`` plans on real modules, and the search for
the order it plans the least for (never worse than TVM's order, optimal on tiny graphs)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from memory_helpers import memory_graphs, topological_orders

from tuner.memory.graph import MemoryGraph, Node, Tensor, graph_from_edges
from tuner.memory.planned_order import (
    least_planned_order,
    planned_lower_bound,
    search_starts,
)
from tuner.memory.synthetic import random_dag
from tuner.memory.token_planner import simulate_planner

TARGET = {"kind": "llvm", "num-cores": 1}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chain(sizes: list[int], dtypes: list[str] | None = None) -> MemoryGraph:
    """x -> n0 -> n1 -> ... with node i writing ``t{i}`` of ``sizes[i]`` bytes."""
    dtypes = dtypes or ["float32"] * len(sizes)
    tensors = {"x": Tensor("x", 64, None, (0,), dtype="float32")}
    nodes = []
    for i, size in enumerate(sizes):
        last = i == len(sizes) - 1
        readers = () if last else (i + 1,)
        tensors[f"t{i}"] = Tensor(f"t{i}", size, i, readers, last, dtypes[i])
        nodes.append(Node(f"n{i}", "op", ("x",) if i == 0 else (f"t{i - 1}",), (f"t{i}",)))
    return MemoryGraph(tuple(nodes), tensors)


# ---------------------------------------------------------------- the planner's rules
def test_an_output_is_allocated_before_the_inputs_are_freed() -> None:
    plan = simulate_planner(chain([100, 100, 100, 100, 8]), range(5))
    # t0 and t1 are live together at n1; t2 reuses t0's storage, t3 t1's; t4 is an output.
    assert plan.storage_sizes == (100, 100)
    assert plan.tensor_storage == {"t0": 0, "t1": 1, "t2": 0, "t3": 1}
    assert plan.output_bytes == 8 and plan.total_bytes == 208


def test_a_free_storage_up_to_16_times_larger_is_reused_and_a_smaller_one_grows() -> None:
    plan = simulate_planner(chain([100, 100, 60, 130, 8]), range(5))
    # n2: t0's storage is free (100 >= 60): reused. n3: t1's is free (100 < 130 but at
    # least 130 // 16): it grows to 130.
    assert plan.storage_sizes == (100, 130)
    assert plan.tensor_storage["t2"] == 0 and plan.tensor_storage["t3"] == 1


def test_out_of_range_sizes_get_new_storage() -> None:
    # t2 = 1700 bytes: t0's 100 is below 1700 // 16 = 106; t3 = 6 bytes: 100 > 16 * 6.
    plan = simulate_planner(chain([100, 100, 1700, 6, 8]), range(5))
    assert plan.storage_sizes == (100, 100, 1700, 6)


def test_smallest_large_enough_storage_wins_and_dtypes_do_not_share() -> None:
    # Free when n3 asks: t0 (300), t1 (200). t3 (150) takes the smallest that fits: t1's.
    graph = graph_from_edges([300, 200, 10, 150, 10], [(0, 2), (1, 2), (2, 3), (3, 4)])
    assert simulate_planner(graph, range(5)).tensor_storage["t3"] == 1
    ints = chain([100, 100, 100, 100, 8], ["float32", "int32", "float32", "int32", "float32"])
    assert simulate_planner(ints, range(5)).storage_sizes == (100, 100)
    mixed = chain([100, 100, 100, 100, 8], ["float32", "float32", "int32", "int32", "float32"])
    assert simulate_planner(mixed, range(5)).storage_sizes == (100, 100, 100, 100)


def test_bad_orders_are_refused() -> None:
    with pytest.raises(ValueError, match="runs at step 0, before"):
        simulate_planner(chain([4, 4, 4]), [1, 0, 2])


# ---------------------------------------------------------------- against TVM
def _check_equal(model_name: str, orders_from: str = "all") -> None:
    from tuner.memory.apply import planned_memory, reorder_module
    from tuner.memory.order import min_peak_order
    from tuner.memory.relax_graph import fused_module, memory_graph
    from tuner.models.loaders import load_model

    fused = fused_module(load_model(f"zoo:{model_name}"), TARGET)
    graph = memory_graph(fused, TARGET, name=model_name)
    best = min_peak_order(graph)
    orders = {"TVM's": graph.tvm_order, "least-peak": best.order}
    if orders_from == "all":
        found = least_planned_order(graph, search_starts(graph, best.order), evaluations=2000)
        orders["least-planned"] = found.order
    for label, order in orders.items():
        module = fused if label == "TVM's" else reorder_module(fused, order)
        real = planned_memory(module, TARGET)
        simulated = simulate_planner(graph, order)
        where = f"{model_name}, {label} order"
        assert simulated.planned_bytes == real.planned_bytes, where
        assert simulated.total_bytes == real.total_bytes, where
        expected = [*simulated.storage_sizes] + ([simulated.output_bytes] * bool(real.output_bytes))
        assert Counter(expected) == Counter(real.storage_sizes), where


def test_simulation_equals_tvms_plan_on_inception() -> None:
    _check_equal("inception")


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_name", ["cnn", "mobilenet", "resnet", "mlp", "randwire", "randwire-b"]
)
def test_simulation_equals_tvms_plan_on_every_zoo_model(model_name: str) -> None:
    _check_equal(model_name)


# ---------------------------------------------------------------- the search
@SETTINGS
@given(memory_graphs(max_nodes=6, max_bytes=40))
def test_search_is_optimal_on_tiny_graphs_and_never_worse_than_tvm(graph: MemoryGraph) -> None:
    found = least_planned_order(graph, evaluations=800, seed=1)
    costs = [simulate_planner(graph, o).total_bytes for o in topological_orders(graph)]
    assert found.start == "every order" and found.evaluations == len(costs)
    assert found.planned_bytes == simulate_planner(graph, found.order).total_bytes
    assert found.planned_bytes == min(costs)
    assert found.planned_bytes <= found.tvm_order_planned_bytes
    assert found.lower_bound_bytes <= min(costs)


@SETTINGS
@given(memory_graphs(max_nodes=6, max_bytes=40))
def test_annealing_is_never_worse_than_tvm_nor_below_the_best_order(graph: MemoryGraph) -> None:
    found = least_planned_order(graph, evaluations=0, seed=1)  # too few to try every order
    costs = [simulate_planner(graph, o).total_bytes for o in topological_orders(graph)]
    assert found.start != "every order"
    assert found.planned_bytes == simulate_planner(graph, found.order).total_bytes
    assert min(costs) <= found.planned_bytes <= found.tvm_order_planned_bytes
    assert found.lower_bound_bytes <= min(costs)


def test_search_is_seeded_and_bounded_on_random_graphs() -> None:
    for seed in range(3):
        graph = random_dag(30, seed, sizes=(1, 64))
        a = least_planned_order(graph, evaluations=3000, seed=seed)
        b = least_planned_order(graph, evaluations=3000, seed=seed)
        assert a.order == b.order and a.planned_bytes == b.planned_bytes
        assert a.lower_bound_bytes <= a.planned_bytes <= a.tvm_order_planned_bytes
        assert a.evaluations <= 3000
        assert planned_lower_bound(graph) == a.lower_bound_bytes or (
            a.lower_bound_bytes == a.planned_bytes
        )


def test_the_least_peak_order_is_not_the_least_planned_one() -> None:
    from tuner.memory.order import min_peak_order

    graph = random_dag(20, 4, sizes=(1, 200))
    peak_order = min_peak_order(graph).order
    found = least_planned_order(graph, search_starts(graph, peak_order), evaluations=3000)
    assert found.planned_bytes < simulate_planner(graph, peak_order).total_bytes
    assert found.planned_bytes < found.tvm_order_planned_bytes
