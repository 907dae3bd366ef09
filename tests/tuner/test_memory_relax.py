"""Graph-level memory planning at the TVM edge: the graph read from a fused Relax module,
reordering it, the memory TVM's planner then allocates, and `tuneloom memory`."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
from tuner.memory.graph import MemoryGraph
from tuner.memory.relax_graph import fused_module, is_fused, memory_graph
from tuner.memory.sizes import format_bytes, parse_size
from tuner.models._base import ModelError
from tuner.models.loaders import load_model

TARGET = {"kind": "llvm", "num-cores": 1}
BIG = 4096  # floats in each fan-out branch's intermediate tensor


# ---------------------------------------------------------------- helpers
def modelled_peak(graph: MemoryGraph, order: list[int] | tuple[int, ...]) -> int:
    """Peak live bytes of ``order`` by the graph's own liveness rule (for these tests)."""
    step = {node: s for s, node in enumerate(order)}
    live = [0] * len(order)
    for t in graph.tensors.values():
        start = 0 if t.producer is None else step[t.producer]
        reads = [step[c] for c in t.consumers]
        end = len(order) - 1 if t.is_output else max(reads, default=start)
        for s in range(start, end + 1):
            live[s] += t.bytes
    return max(live)


def brute_force_order(graph: MemoryGraph) -> tuple[tuple[int, ...], int]:
    """The topological order with the least modelled peak, trying them all (tiny graphs)."""
    preds = [set(graph.predecessors(i)) for i in range(len(graph.nodes))]
    best: tuple[tuple[int, ...], int] = ((), math.inf)  # type: ignore[assignment]
    for order in itertools.permutations(range(len(graph.nodes))):
        if _topological(order, preds):
            peak = modelled_peak(graph, order)
            if peak < best[1]:
                best = (order, peak)
    return best


def _topological(order: tuple[int, ...], preds: list[set[int]]) -> bool:
    done: set[int] = set()
    for node in order:
        if not preds[node] <= done:
            return False
        done.add(node)
    return True


def random_topological_order(graph: MemoryGraph, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    preds = [set(graph.predecessors(i)) for i in range(len(graph.nodes))]
    order: list[int] = []
    left = set(range(len(graph.nodes)))
    while left:
        ready = sorted(n for n in left if preds[n] <= set(order))
        order.append(ready[int(rng.integers(len(ready)))])
        left.remove(order[-1])
    return order


def _const(rng: np.random.Generator, *shape: int) -> Any:
    return relax.const(rng.standard_normal(shape).astype("float32"))


def fan_out_module(x_shape: tuple[Any, ...] = (1, 64)) -> tvm.IRModule:
    """x -> a; a -> b1 (big), a -> b2 (big); b1, b2 -> small; the two added. Emitted breadth
    first, so TVM's order keeps both big tensors alive at once."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(list(x_shape), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.matmul(x, _const(rng, 64, 64)), "a")
            b1 = bb.emit(relax.op.matmul(a, _const(rng, 64, BIG)), "b1")
            b2 = bb.emit(relax.op.matmul(a, _const(rng, 64, BIG)), "b2")
            c1 = bb.emit(relax.op.matmul(b1, _const(rng, BIG, 8)), "c1")
            c2 = bb.emit(relax.op.matmul(b2, _const(rng, BIG, 8)), "c2")
            out = bb.emit_output(relax.op.add(c1, c2), "out")
        bb.emit_func_output(out)
    mod = bb.get()
    mod["main"] = mod["main"].with_attr("num_input", 1)
    return mod


def views_module() -> tvm.IRModule:
    """A split (a call with two outputs), TupleGetItem, a reshape and a tuple output."""
    rng = np.random.default_rng(1)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 64], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.matmul(x, _const(rng, 64, 64)), "a")
            s = bb.emit(relax.op.split(a, 2, axis=1), "s")
            s0 = bb.emit(relax.TupleGetItem(s, 0), "s0")
            s1 = bb.emit(relax.TupleGetItem(s, 1), "s1")
            r = bb.emit(relax.op.reshape(s0, (4, 8)), "r")
            p = bb.emit(relax.op.matmul(r, _const(rng, 8, 2)), "p")
            q = bb.emit(relax.op.matmul(s1, _const(rng, 32, 8)), "q")
            out = bb.emit_output(relax.Tuple([p, q]), "out")
        bb.emit_func_output(out)
    mod = bb.get()
    mod["main"] = mod["main"].with_attr("num_input", 1)
    return mod


# ---------------------------------------------------------------- the graph
def test_graph_of_a_fan_out_has_the_bytes_computed_by_hand() -> None:
    graph = memory_graph(fan_out_module(), TARGET)
    # Fusion folds the final add into the matmul reading b1 (the last binding, gv).
    assert [(n.name, n.inputs, n.outputs) for n in graph.nodes] == [
        ("a", ("x",), ("a",)),
        ("b1", ("a",), ("b1",)),
        ("b2", ("a",), ("b2",)),
        ("c2", ("b2",), ("c2",)),
        ("gv", ("b1", "c2"), ("gv",)),
    ]
    assert [n.op for n in graph.nodes] == [
        "matmul",
        "matmul1",
        "matmul1",
        "matmul2",
        "fused_matmul2_add",
    ]
    sizes = {name: t.bytes for name, t in graph.tensors.items()}
    assert sizes == {"x": 256, "a": 256, "b1": 4 * BIG, "b2": 4 * BIG, "c2": 32, "gv": 32}
    assert graph.tensors["x"].producer is None and graph.tensors["x"].consumers == (0,)
    assert graph.tensors["a"].consumers == (1, 2)
    assert [t.name for t in graph.tensors.values() if t.is_output] == ["gv"]
    assert graph.weight_bytes == 4 * (64 * 64 + 2 * 64 * BIG + 2 * BIG * 8)
    assert graph.notes == ()


def test_views_tuples_and_multi_output_calls() -> None:
    graph = memory_graph(views_module(), TARGET)
    assert [(n.name, n.op, n.inputs, n.outputs) for n in graph.nodes] == [
        ("a", "matmul", ("x",), ("a",)),
        ("s", "split", ("a",), ("s.0", "s.1")),
        ("p", "matmul1", ("s.0",), ("p",)),  # reads the reshape of s.0: s.0 itself
        ("q", "matmul2", ("s.1",), ("q",)),
    ]
    assert {n: t.bytes for n, t in graph.tensors.items()} == {
        "x": 256, "a": 256, "s.0": 128, "s.1": 128, "p": 32, "q": 32,
    }  # fmt: skip
    assert {t.name for t in graph.tensors.values() if t.is_output} == {"p", "q"}
    assert graph.weight_bytes == 4 * (64 * 64 + 8 * 2 + 32 * 8)
    assert any("1 reshape(s) are views" in note for note in graph.notes)
    assert any("3 tuple or TupleGetItem" in note for note in graph.notes)


def test_a_fused_module_is_kept_as_it_is() -> None:
    mod = fan_out_module()
    assert not is_fused(mod)
    fused = fused_module(mod, TARGET)
    assert is_fused(fused)
    assert memory_graph(fused, TARGET) == memory_graph(mod, TARGET)


def test_dynamic_input_shape_is_one_clear_error() -> None:
    n = tvm.tirx.Var("n", "int64")
    with pytest.raises(ModelError) as err:
        memory_graph(fan_out_module((n, 64)), TARGET, name="dyn")
    text = str(err.value)
    assert text == (
        "model dyn: input x has a dynamic shape (n, 64): give its shape, e.g. "
        "input_shapes={'x': (1, 64)} (CLI: --input-shape x:1x64)"
    )


def test_zoo_cnn_graph() -> None:
    model = load_model("zoo:cnn", input_shapes={"image": (1, 16, 16, 3)})
    graph = memory_graph(model, TARGET)
    assert graph.name == "cnn" and len(graph.nodes) == 8
    # conv 3x3 'same' + relu, then 2x2 max pool, three times; float32 NHWC.
    want = [16 * 16 * 16, 8 * 8 * 16, 8 * 8 * 32, 4 * 4 * 32, 4 * 4 * 64, 2 * 2 * 64, 64, 10]
    assert [graph.tensors[n.outputs[0]].bytes for n in graph.nodes] == [4 * w for w in want]
    assert graph.tensors["image"].bytes == 4 * 16 * 16 * 3
    convs = [(3, 16), (16, 32), (32, 64)]
    weights = sum(9 * i * o + o for i, o in convs) + 256 * 64 + 64 + 64 * 10 + 10
    assert graph.weight_bytes == 4 * weights
    assert any("reshape" in note for note in graph.notes)  # the flatten is a view


# ---------------------------------------------------------------- reordering and measuring
def test_better_order_needs_less_planned_memory_and_computes_the_same() -> None:
    fused = fused_module(fan_out_module(), TARGET)
    graph = memory_graph(fused, TARGET)
    order, best_peak = brute_force_order(graph)
    assert order == (0, 2, 3, 1, 4)  # one branch finished before the other starts
    tvm_peak = modelled_peak(graph, graph.tvm_order)
    assert (tvm_peak, best_peak) == (256 + 2 * 4 * BIG, 256 + 4 * BIG + 32)

    reordered = reorder_module(fused, order)
    tvm_planned, best_planned = planned_memory(fused, TARGET), planned_memory(reordered, TARGET)
    assert best_planned.calls == tuple(graph.nodes[i].op for i in order)
    assert tvm_planned.calls == tuple(n.op for n in graph.nodes)
    # The planner can reuse b2's storage for b1 only in the better order.
    assert tvm_planned.total_bytes > best_planned.total_bytes  # same direction as modelled
    assert (tvm_planned.total_bytes, best_planned.total_bytes) == (33056, 16704)
    assert best_planned.planned_bytes + best_planned.output_bytes == best_planned.total_bytes
    assert best_planned.output_bytes == 32

    # What the running VM allocates is what the plan says.
    args = [np.random.default_rng(2).standard_normal((1, 64)).astype("float32")]
    out_tvm, allocated_tvm = run_module(compile_module(fused, TARGET), args)
    out_best, allocated_best = run_module(compile_module(reordered, TARGET), args)
    assert (allocated_tvm, allocated_best) == (tvm_planned.total_bytes, best_planned.total_bytes)
    np.testing.assert_array_equal(out_tvm[0], out_best[0])
    assert outputs_match(None, fused, reordered, target=TARGET)


def test_reorder_places_views_after_what_they_read() -> None:
    fused = fused_module(views_module(), TARGET)
    reordered = reorder_module(fused, [0, 1, 3, 2])
    names = [b.var.name for b in reordered["main"].body.blocks[0].bindings]
    assert names == ["a", "s", "lv", "lv1", "s1", "q", "p", "out"]
    assert memory_graph(reordered, TARGET).nodes[2].name == "q"
    assert outputs_match(None, fused, reordered, target=TARGET)


def test_bad_orders_are_refused() -> None:
    mod = fan_out_module()
    fused = fused_module(mod, TARGET)
    with pytest.raises(ValueError, match="permutation of the 5 node indices"):
        reorder_module(fused, [0, 1, 2, 2, 4])
    with pytest.raises(ValueError, match="order runs c2 before b2, which it reads"):
        reorder_module(fused, [0, 1, 3, 2, 4])
    with pytest.raises(ValueError, match="fused module"):
        reorder_module(mod, [0, 1, 2, 3, 4, 5])


@pytest.mark.slow
def test_zoo_inception_in_another_order() -> None:
    model = load_model("zoo:inception", input_shapes={"image": (1, 16, 16, 3)})
    fused = fused_module(model, TARGET)
    graph = memory_graph(fused, TARGET)
    assert len(graph.nodes) == 32 and graph.weight_bytes > 0
    order = random_topological_order(graph, seed=1)
    assert order != list(graph.tvm_order)
    reordered = reorder_module(fused, order)
    planned = planned_memory(reordered, TARGET)
    assert planned.calls == tuple(graph.nodes[i].op for i in order)
    assert outputs_match(model, fused, reordered, target=TARGET)
    _, allocated = run_module(compile_module(reordered, TARGET), [np.zeros((1, 16, 16, 3), "f")])
    assert allocated == planned.total_bytes


# ---------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64K", 65536), ("1.5MiB", 1572864), ("2MB", 2_000_000),
     ("4 kb", 4000), ("0.5k", 512), ("1G", 1024**3), ("12B", 12)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_format_bytes() -> None:
    assert [format_bytes(s) for s in (512, 1536, 64 * 1024**2, 3 * 1024**3)] == [
        "512 B", "1.5 KiB", "64.0 MiB", "3.0 GiB",
    ]  # fmt: skip


# ---------------------------------------------------------------- the command
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--tcm", "0"], "--tcm: '0': the size must be positive"),
        (["--tcm=-4K"], "--tcm: '-4K': the size must be positive"),
        (["--limit", "lots"], "--limit: 'lots' is not a size"),
        (["--limit", "5XB"], "--limit: '5XB' is not a size"),
    ],
)
def test_memory_command_bad_sizes(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.cli import main

    assert main(["memory", "zoo:cnn", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tuneloom memory: error: "), err
    assert fragment in err


def write_fan_out_onnx(path: Path) -> Path:
    """The fan-out as an ONNX file (nodes breadth first)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    shapes = {"wa": (64, 64), "w1": (64, BIG), "w2": (64, BIG), "v1": (BIG, 8), "v2": (BIG, 8)}
    inits = [
        numpy_helper.from_array(rng.standard_normal(s).astype("float32"), n)
        for n, s in shapes.items()
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "wa"], ["a"]),
        helper.make_node("MatMul", ["a", "w1"], ["b1"]),
        helper.make_node("MatMul", ["a", "w2"], ["b2"]),
        helper.make_node("MatMul", ["b1", "v1"], ["c1"]),
        helper.make_node("MatMul", ["b2", "v2"], ["c2"]),
        helper.make_node("Add", ["c1", "c2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fan_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def stub_algorithms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The order and TCM solvers replaced by this file's brute force and fixed figures."""
    from tuneloom.commands import memory

    def best_order(graph: MemoryGraph) -> SimpleNamespace:
        order, peak = brute_force_order(graph)
        return SimpleNamespace(
            order=order,
            peak_bytes=peak,
            tvm_order_peak_bytes=modelled_peak(graph, graph.tvm_order),
            exact=True,
            method="brute-force",
            lower_bound_bytes=peak,
        )

    def tcm_plan(graph: MemoryGraph, order: Any, tcm_bytes: int) -> SimpleNamespace:
        from tuner.memory.tcm import TcmPlan

        if tcm_bytes < 100:
            raise ValueError(f"a TCM of {tcm_bytes} bytes is too small")
        empty = tuple(() for _ in order)
        return SimpleNamespace(
            ilp=TcmPlan(1000, empty, (), (), True, "fixed", 0.0),
            greedy=TcmPlan(1500, empty, (), (), False, "fixed", 0.0),
            compulsory_dram_bytes=800,
        )

    monkeypatch.setattr(memory, "best_order", best_order)
    monkeypatch.setattr(memory, "tcm_plan", tcm_plan)


def test_memory_command_json(
    tmp_path: Path, stub_algorithms: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.cli import main

    path = write_fan_out_onnx(tmp_path / "fan_out.onnx")
    argv = ["memory", str(path), "--tcm", "8K", "--limit", "20K", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nodes"] == 5 and result["exact"] is True
    assert len(set(result["order"])) == 5
    assert result["tvm_order_peak_bytes"] > result["optimal_peak_bytes"]
    measured = result["measured"]
    assert measured["tvm_order_bytes"] > measured["optimal_order_bytes"]
    assert result["outputs_match"] is True
    assert result["weight_bytes"] == 4 * (64 * 64 + 2 * 64 * BIG + 2 * BIG * 8)
    assert result["tcm"] == {
        "tcm_bytes": 8192, "ilp_dram_bytes": 1000, "greedy_dram_bytes": 1500,
        "compulsory_dram_bytes": 800,
    }  # fmt: skip
    assert result["limit"] == {
        "limit_bytes": 20480, "fits_tvm_order": False, "fits_optimal_order": True,
        "fits_least_planned_order": True,
    }  # fmt: skip
    least = result["least_planned"]
    assert measured["least_planned_order_bytes"] == least["simulated_bytes"]
    assert least["lower_bound_bytes"] <= least["simulated_bytes"]
    assert least["simulated_bytes"] <= measured["tvm_order_bytes"]
    assert result["rewritten"]["rewrites"] == {} and result["rewritten"]["applied"] is False
    assert result["rewritten"]["reason"].startswith("nothing to rewrite: no sum of three")


def test_memory_command_human(
    tmp_path: Path, stub_algorithms: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.cli import main

    path = write_fan_out_onnx(tmp_path / "fan_out.onnx")
    assert main(["memory", str(path), "--limit", "20K"]) == 0
    out = capsys.readouterr().out
    assert "5 kernels" in out and "planned by TVM (measured)" in out
    assert "outputs unchanged by the new order: yes" in out
    assert "TVM's order does not fit (32.3 KiB), the best order fits (16.3 KiB)" in out


def test_memory_command_unusable_tcm_is_one_line(
    tmp_path: Path, stub_algorithms: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.cli import main

    path = write_fan_out_onnx(tmp_path / "fan_out.onnx")
    assert main(["memory", str(path), "--tcm", "64"]) == 2
    err = capsys.readouterr().err
    assert err == "tuneloom memory: error: --tcm: a TCM of 64 bytes is too small\n"


def test_memory_command_stores_a_plan_the_dashboard_can_list(
    tmp_path: Path, stub_algorithms: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from collectors.memoryplan import MemoryPlan
    from collectors.sqlite_store import SQLiteStore
    from tuneloom.cli import main

    path = write_fan_out_onnx(tmp_path / "fan_out.onnx")
    db = tmp_path / "store.db"
    assert main(["memory", str(path), "--tcm", "8K", "--db", str(db), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    job = f"memory:{path}"
    assert result["stored"] == {"db": str(db), "job": job}
    assert main(["memory", str(path), "--db", str(db), "--job", "other", "--json"]) == 0
    with SQLiteStore(db, read_only=True) as store:
        assert store.jobs()["job"].tolist() == [job]  # submitted once, listed by the dashboard
        (event,) = store.memory_plans(job)
        plan = MemoryPlan.from_json(event.plan)
        assert [o.label for o in plan.orders] == ["TVM's order", "least peak", "least planned"]
        assert plan.order("TVM's order").planned_bytes == result["measured"]["tvm_order_bytes"]
        assert plan.tcm is not None and plan.tcm.dram_bytes == 1000
        assert len(store.memory_plans("other")) == 1
        assert MemoryPlan.from_json(store.memory_plans("other")[0].plan).tcm is None


def test_memory_command_job_needs_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    from tuneloom.cli import main

    assert main(["memory", "zoo:cnn", "--job", "j1"]) == 2
    assert capsys.readouterr().err == "tuneloom memory: error: --job needs --db STORE\n"
