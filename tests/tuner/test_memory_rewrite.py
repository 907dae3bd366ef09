"""Graph rewriting for memory (``tuner.memory.rewrite``): sums of three or more tensors
accumulated in place, on hand-built Relax modules compiled for llvm."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tuner.memory.apply import (
    compile_module,
    outputs_match,
    planned_memory,
    reorder_module,
    run_module,
)
from tuner.memory.order import min_peak_order
from tuner.memory.relax_graph import fused_module, memory_graph
from tuner.memory.rewrite import RewriteError, accumulate_sums
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
