"""Graph rewriting for memory (``tuner.memory.rewrite``, ``tuner.memory.partition``): sums
of three or more tensors accumulated in place and concatenations read by convolutions
partitioned, on hand-built Relax modules compiled for llvm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax

from collectors.memoryplan import MemoryPlan
from tuner.memory.apply import (
    compile_module,
    outputs_match,
    planned_memory,
    reorder_module,
    run_module,
)
from tuner.memory.graph import MemoryGraph, Node, Tensor, graph_from_edges
from tuner.memory.order import min_peak_order
from tuner.memory.partition import partition_concats
from tuner.memory.plan_event import memory_plan
from tuner.memory.relax_graph import fused_module, memory_graph
from tuner.memory.rewrite import RewriteError, accumulate_sums, rewrite_for_memory
from tuner.memory.rewritten_order import ATOL, RTOL
from tuner.memory.token_planner import simulate_planner

TARGET = {"kind": "llvm", "num-cores": 1}
IN = 64  # floats of the model input
BIG = 4096  # floats of each term of the sum
OUT = 8  # floats of the model output
F32 = 4


def _const(rng: np.random.Generator, *shape: int) -> relax.Constant:
    return relax.const(rng.standard_normal(shape).astype("float32"))


def sum_module(terms: int = 4) -> tvm.IRModule:
    """x -> ``terms`` matmuls (plus a bias) of BIG floats, each also reduced to one float
    (a model output, so the term is read twice and TVM cannot fuse the sum into its
    kernel); the terms summed as the chain ((t0 + t1) + t2) + ..., then ReLU and a small
    matmul (the first model output). TVM fuses the whole sum into one kernel."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, IN], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            parts, sides = [], []
            for i in range(terms):
                product = bb.emit(relax.op.matmul(x, _const(rng, IN, BIG)), f"m{i}")
                parts.append(bb.emit(relax.op.add(product, _const(rng, BIG)), f"t{i}"))
                sides.append(bb.emit(relax.op.sum(parts[-1], axis=[1]), f"side{i}"))
            total = parts[0]
            for i, part in enumerate(parts[1:]):
                total = bb.emit(relax.op.add(total, part), f"s{i}")
            active = bb.emit(relax.op.nn.relu(total), "active")
            out = bb.emit(relax.op.matmul(active, _const(rng, BIG, OUT)), "out")
            result = bb.emit_output(relax.Tuple([out, *sides]), "result")
        bb.emit_func_output(result)
    mod = bb.get()
    mod["main"] = mod["main"].with_attr("num_input", 1)
    return mod


def test_a_sum_of_four_is_accumulated_and_its_peak_falls_by_two_terms() -> None:
    mod = sum_module(4)
    original = fused_module(mod, TARGET)
    rewritten = accumulate_sums(mod, TARGET)
    assert rewritten.rewrites == {"accumulated_sums": 1, "partial_sums": 2, "in_place": 1}
    assert rewritten.sums == (("t0", "t1", "t2", "t3"),)
    before = min_peak_order(memory_graph(original, TARGET))
    after = min_peak_order(memory_graph(rewritten.mod, TARGET))
    big, x, side, outputs = BIG * F32, IN * F32, F32, (OUT + 4) * F32
    # Before: the sum kernel reads the four terms and writes a fifth tensor; x is dead by
    # then, one reduction (a model output) already made.
    assert before.peak_bytes == 5 * big + side
    # After: t0 + t1 is a new tensor (both are read again) while x is still needed; the
    # accumulator is then written in place, with one term live at a time.
    assert after.peak_bytes == 3 * big + x + side
    assert planned_memory(original, TARGET).total_bytes == 5 * big + outputs
    measured = planned_memory(reorder_module(rewritten.mod, after.order), TARGET)
    assert measured.total_bytes == 3 * big + outputs
    assert outputs_match(None, original, rewritten.mod, target=TARGET)


def test_the_simulated_planner_matches_tvm_on_the_rewritten_module() -> None:
    """In-place partial sums hold their operand's storage: the simulation of TVM's planner
    over the rewritten graph equals the planned module storage by storage, and the running
    VM allocates that total."""
    rewritten = accumulate_sums(sum_module(4), TARGET)
    graph = memory_graph(rewritten.mod, TARGET)
    assert any(t.bytes == 0 for t in graph.tensors.values())  # the in-place result
    for order in (graph.tvm_order, min_peak_order(graph).order):
        mod = reorder_module(rewritten.mod, order)
        real = planned_memory(mod, TARGET)
        simulated = simulate_planner(graph, order)
        assert simulated.planned_bytes == real.planned_bytes
        assert sorted(simulated.storage_sizes) == sorted(
            size for size in real.storage_sizes if size == BIG * F32
        )
        assert simulated.total_bytes == real.total_bytes
        x = np.random.default_rng(0).standard_normal((1, IN)).astype("float32")
        _, allocated = run_module(compile_module(mod, TARGET), [x])
        assert allocated == real.total_bytes


def two_term_module() -> tvm.IRModule:
    """A sum of two tensors only: nothing to rewrite."""
    rng = np.random.default_rng(2)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, IN], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.matmul(x, _const(rng, IN, IN)), "a")
            b = bb.emit(relax.op.matmul(x, _const(rng, IN, IN)), "b")
            out = bb.emit_output(relax.op.add(a, b), "out")
        bb.emit_func_output(out)
    mod = bb.get()
    mod["main"] = mod["main"].with_attr("num_input", 1)
    return mod


def test_a_module_with_nothing_to_rewrite_is_returned_unchanged() -> None:
    mod = two_term_module()
    rewritten = accumulate_sums(mod, TARGET)
    assert rewritten.rewrites == {} and not rewritten.changed and rewritten.sums == ()
    tvm.ir.assert_structural_equal(rewritten.mod, fused_module(mod, TARGET))


def no_dataflow_module() -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, IN], "float32"))
    with bb.function("main", [x]):
        out = bb.emit(relax.op.add(x, x), "out")
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (no_dataflow_module, "main has no dataflow block: nothing to rewrite"),
        (lambda: fused_module(sum_module(3), TARGET), "main is already fused"),
        (lambda: tvm.IRModule({}), "the module has no function main to rewrite"),
        (lambda: "model.tflite", "expected a Relax IRModule, got str"),
    ],
)
def test_bad_input_is_one_clear_error(make: object, message: str) -> None:
    with pytest.raises(RewriteError, match=message):
        accumulate_sums(make(), TARGET)  # type: ignore[operator]


def test_the_rewritten_order_joins_the_memory_plan() -> None:
    """Its tensors join the plan's: same name and size shared, a clash renamed, the 0-byte
    results of in-place calls left out."""
    base = graph_from_edges([8, 8, 4], [(0, 1), (1, 2)], name="toy")
    other = MemoryGraph(
        (
            Node("n0", "op", (), ("t0",)),
            Node("n1", "op", ("t0",), ("t1",)),
            Node("acc", "in place", ("t1",), ("acc",)),
        ),
        {
            "t0": Tensor("t0", 8, 0, (1,)),
            "t1": Tensor("t1", 6, 1, (2,), is_output=True),
            "acc": Tensor("acc", 0, 2, (), is_output=True),
        },
        name="toy",
    )
    plan = memory_plan(
        base, {"TVM's order": ((0, 1, 2), 20)}, rewritten=("rewritten", other, (0, 1, 2), 14)
    )
    assert plan.tensors == {"t0": 8, "t1": 8, "t2": 4, "t1 (rewritten)": 6}
    rewritten = plan.order("rewritten")
    assert rewritten.steps == ("n0", "n1", "acc") and rewritten.planned_bytes == 14
    assert rewritten.live == (("t0",), ("t0", "t1 (rewritten)"), ("t1 (rewritten)",))
    assert MemoryPlan.from_json(plan.to_json()) == plan


def write_sum_onnx(path: Path, terms: int = 4) -> Path:
    """``sum_module`` as an ONNX file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)

    def init(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.standard_normal(shape).astype("float32"), name)

    inits = [init("v", BIG, OUT), numpy_helper.from_array(np.array([1], "int64"), "axes")]
    nodes, outputs = [], []
    for i in range(terms):
        inits += [init(f"w{i}", IN, BIG), init(f"b{i}", BIG)]
        nodes.append(helper.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"t{i}"]))
        nodes.append(helper.make_node("ReduceSum", [f"t{i}", "axes"], [f"side{i}"], keepdims=0))
        outputs.append(helper.make_tensor_value_info(f"side{i}", TensorProto.FLOAT, [1]))
    total = "t0"
    for i in range(1, terms):
        nodes.append(helper.make_node("Add", [total, f"t{i}"], [f"s{i}"]))
        total = f"s{i}"
    nodes.append(helper.make_node("Relu", [total], ["active"]))
    nodes.append(helper.make_node("MatMul", ["active", "v"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, OUT]), *outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_memory_command_reports_the_rewritten_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.cli import main

    path = write_sum_onnx(tmp_path / "sum.onnx")
    assert main(["memory", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rewritten = result["rewritten"]
    assert rewritten["rewrites"] == {"accumulated_sums": 1, "partial_sums": 2, "in_place": 1}
    assert rewritten["applied"] is True and rewritten["outputs_match"] is True
    big = BIG * F32
    best_without = min(
        result["measured"]["optimal_order_bytes"], result["measured"]["least_planned_order_bytes"]
    )
    assert best_without - rewritten["measured_bytes"] == 2 * big
    assert rewritten["measured_bytes"] == min(
        rewritten["least_peak_measured_bytes"], rewritten["least_planned_measured_bytes"]
    )
    assert rewritten["lower_bound_bytes"] <= rewritten["peak_bytes"]
    assert len(rewritten["order"]) == rewritten["nodes"]


# ---------------------------------------------------------------- concatenations
def concat_module(*, pooled: bool = False, returned: bool = False) -> tvm.IRModule:
    """x (NHWC) -> three 1x1 convolutions concatenated over channels, read by a 3x3
    convolution (after a 3x3 max pool with ``pooled``); with ``returned`` the
    concatenation is also a model output."""
    rng = np.random.default_rng(5)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 8, 8, 4], "float32"))
    conv = {"data_layout": "NHWC", "kernel_layout": "HWIO", "out_layout": "NHWC"}
    with bb.function("main", [x]):
        with bb.dataflow():
            parts = [
                bb.emit(relax.op.nn.relu(relax.op.nn.conv2d(x, _const(rng, 1, 1, 4, c), **conv)))
                for c in (3, 5, 2)
            ]
            joined = bb.emit(relax.op.concat(parts, axis=3), "joined")
            read = joined
            if pooled:
                read = bb.emit(
                    relax.op.nn.max_pool2d(joined, 3, padding=1, layout="NHWC"), "pooled"
                )
            y = bb.emit(relax.op.nn.conv2d(read, _const(rng, 3, 3, 10, 6), padding=1, **conv))
            out = bb.emit_output(relax.Tuple([y, joined]) if returned else y, "out")
        bb.emit_func_output(out)
    mod = bb.get()
    mod["main"] = mod["main"].with_attr("num_input", 1)
    return mod


@pytest.mark.parametrize(("pooled", "concats"), [(False, 1), (True, 2)])
def test_a_concatenation_read_by_a_convolution_is_partitioned(pooled: bool, concats: int) -> None:
    mod = concat_module(pooled=pooled)
    parted = partition_concats(mod)
    assert (parted.concats, parted.convolutions) == (concats, 1)
    bindings = parted.mod["main"].body.blocks[0].bindings
    calls = [str(b.value.op.name) for b in bindings if isinstance(b.value, relax.Call)]
    assert "relax.concat" not in calls and calls.count("relax.nn.conv2d") == 3 + 3
    rewritten = rewrite_for_memory(mod, TARGET)
    assert rewritten.rewrites["partitioned_concats"] == concats
    assert rewritten.rewrites["accumulated_sums"] == 1  # the three partial convolutions
    graph = memory_graph(rewritten.mod, TARGET)
    assert not any(node.op.startswith("concatenate") for node in graph.nodes)
    original = fused_module(mod, TARGET)
    assert outputs_match(None, original, rewritten.mod, target=TARGET, rtol=RTOL, atol=ATOL)


def test_a_concatenation_read_otherwise_is_kept() -> None:
    mod = concat_module(returned=True)
    parted = partition_concats(mod)
    assert parted.concats == 0 and parted.mod is mod


def test_a_small_randwire_rewritten_computes_the_same_and_is_planned_as_simulated() -> None:
    """A randomly wired net of six nodes in one stage (one sums three outputs): its sums
    accumulated, the outputs unchanged, and TVM's plan of the rewritten module in its
    least-peak order equal to the simulation."""
    from tuner.memory.rewritten_order import rewritten_orders
    from tuner.models.loaders import load_model
    from tuner.models.zoo import RandWireSpec, build_randwire

    spec = RandWireSpec("ws", 6, ((8, 1),), wiring_seed=1)
    model = load_model(build_randwire(spec, image_size=16), name="randwire-tiny")
    fused = fused_module(model, TARGET)
    result = rewritten_orders(
        model, fused, TARGET, baseline_bytes=1 << 40, time_limit_s=10, slices=()
    )
    assert result.rewrites["accumulated_sums"] >= 1
    assert result.outputs_match is True and result.applied is True
    assert result.graph is not None
    best = min_peak_order(result.graph)
    assert result.peak_bytes == best.peak_bytes
    simulated = simulate_planner(result.graph, best.order).total_bytes
    assert simulated == result.least_peak_measured_bytes
