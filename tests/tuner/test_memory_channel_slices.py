"""Separable convolutions on channel slices (``tuner.memory.channel_slices``), the in-place
kernels they need (``tuner.memory.in_place``) and the order ``relax_graph`` gives an
in-place write, on a small hand-built Relax module compiled for llvm."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tuner.memory.apply import compile_module, planned_memory, run_module
from tuner.memory.channel_slices import (
    ACCUMULATE_PREFIX,
    accumulator_input,
    slice_separables,
)
from tuner.memory.compact_order import compacted
from tuner.memory.graph import graph_from_edges
from tuner.memory.in_place import in_place_kernel
from tuner.memory.relax_graph import fused_module, memory_graph
from tuner.memory.rewrite import RewriteError, rewrite_for_memory
from tuner.memory.rewritten_order import ATOL, RTOL

TARGET = {"kind": "llvm", "num-cores": 1}
C, HW, READERS = 8, 8, 3  # channels, height and width of the activations, stem readers


def separable_module(channels: int = C, hw: int = HW, readers: int = READERS) -> tvm.IRModule:
    """A randwire-like stage: a stride-2 stem (conv + bias + ReLU of the image) read by
    ``readers`` separable convolutions (depthwise 3x3 + bias, pointwise + bias), their
    outputs summed and ReLU'd, then one more separable convolution whose output is added
    to that sum (a residual) and averaged."""
    rng = np.random.default_rng(0)

    def k(*shape: int) -> relax.Constant:
        return relax.const((rng.standard_normal(shape) * 0.3).astype("float32"))

    conv = {"data_layout": "NHWC", "kernel_layout": "HWIO"}
    dw = {"data_layout": "NHWC", "kernel_layout": "HWOI", "groups": channels, "padding": 1}
    bb = relax.BlockBuilder()
    image = relax.Var("image", relax.TensorType([1, 2 * hw, 2 * hw, 3], "float32"))
    with bb.function("main", [image]):
        with bb.dataflow():
            stem = bb.emit(
                relax.op.nn.conv2d(image, k(3, 3, 3, channels), strides=2, padding=1, **conv)
            )
            stem = bb.emit(relax.op.nn.relu(bb.emit(relax.op.add(stem, k(channels)))))
            outs = []
            for _ in range(readers):
                d = bb.emit(
                    relax.op.add(
                        bb.emit(relax.op.nn.conv2d(stem, k(3, 3, channels, 1), **dw)), k(channels)
                    )
                )
                p = bb.emit(relax.op.nn.conv2d(d, k(1, 1, channels, channels), **conv))
                outs.append(bb.emit(relax.op.add(p, k(channels))))
            total = outs[0]
            for other in outs[1:]:
                total = bb.emit(relax.op.add(total, other))
            total = bb.emit(relax.op.nn.relu(total))
            d = bb.emit(relax.op.nn.conv2d(total, k(3, 3, channels, 1), **dw))
            p = bb.emit(relax.op.nn.conv2d(d, k(1, 1, channels, channels), **conv))
            p = bb.emit(relax.op.add(p, total))
            out = bb.emit_output(relax.op.mean(p, axis=[1, 2]))
        bb.emit_func_output(out)
    return bb.get()


def _run(mod: tvm.IRModule) -> list[np.ndarray]:
    x = np.random.default_rng(1).standard_normal((1, 2 * HW, 2 * HW, 3)).astype("float32")
    outputs, _ = run_module(compile_module(mod, TARGET), [x])
    return outputs


def test_sliced_module_compiles_with_the_original_outputs() -> None:
    mod = separable_module()
    rewritten = rewrite_for_memory(mod, TARGET, parts=4)
    assert rewritten.rewrites["sliced_separables"] == READERS + 1
    assert rewritten.rewrites["channel_slices"] == 4
    assert rewritten.rewrites["recomputed_stems"] == 1  # the stem, per reader and slice
    assert rewritten.rewrites["in_place_accumulations"] >= 3 * (READERS + 1)
    want, got = _run(fused_module(mod, TARGET)), _run(rewritten.mod)
    assert len(want) == len(got) == 1
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=ATOL)


def test_sliced_module_needs_less_measured_storage() -> None:
    mod = separable_module()
    before = planned_memory(fused_module(mod, TARGET), TARGET).total_bytes
    after = planned_memory(rewrite_for_memory(mod, TARGET, parts=4).mod, TARGET).total_bytes
    # whole (1, 8, 8, 8) tensors are 2 KiB; no whole stem or depthwise output is built
    assert after < before
    assert after <= 0.8 * before


def test_the_stem_is_recomputed_by_slices_from_the_image() -> None:
    rewritten = rewrite_for_memory(separable_module(), TARGET, parts=4)
    graph = memory_graph(rewritten.mod, TARGET)
    slice_bytes = C // 4 * HW * HW * 4
    stems = [n for n in graph.nodes if "image" in n.inputs]
    assert len(stems) == 4 * READERS  # per reader and slice
    assert all(graph.tensors[n.outputs[0]].bytes == slice_bytes for n in stems)
    calls = [n.op for n in graph.nodes]
    assert sum(op.startswith(ACCUMULATE_PREFIX) for op in calls) >= 3 * (READERS + 1)


def test_a_small_randwire_sliced_is_applied_and_planned_as_simulated() -> None:
    """A randomly wired net of six nodes in one stage: rewritten with channel slices
    (each rewrite tried, the least storage kept), outputs unchanged, less storage than
    the other rewrites tried, and TVM's plan of its order equal to the simulation (in-place
    accumulations and the order they impose included)."""
    from tuner.memory.rewritten_order import rewritten_orders
    from tuner.memory.token_planner import simulate_planner
    from tuner.models.loaders import load_model
    from tuner.models.zoo import RandWireSpec, build_randwire

    spec = RandWireSpec("ws", 6, ((8, 1),), wiring_seed=1)
    model = load_model(build_randwire(spec, image_size=16), name="randwire-tiny")
    fused = fused_module(model, TARGET)
    result = rewritten_orders(model, fused, TARGET, baseline_bytes=1 << 40, time_limit_s=5)
    assert result.rewrites["sliced_separables"] >= 1
    assert result.outputs_match is True and result.applied is True
    assert result.alternatives
    assert all(result.measured_bytes <= a["measured_bytes"] for a in result.alternatives)
    assert result.graph is not None
    simulated = simulate_planner(result.graph, result.order).total_bytes
    assert simulated == result.measured_bytes


def test_in_place_write_is_ordered_after_the_other_readers() -> None:
    """The last separable convolution accumulates into the ReLU'd sum, which its own
    slices read first: the graph orders those reads before the write."""
    rewritten = rewrite_for_memory(separable_module(), TARGET, parts=4)
    graph = memory_graph(rewritten.mod, TARGET)
    links = [name for name, t in graph.tensors.items() if "^" in name]
    assert links
    for name in links:
        tensor = graph.tensors[name]
        assert tensor.bytes == 0 and tensor.producer is not None and tensor.consumers
        overwritten = name.split("^")[0]
        reader = graph.nodes[tensor.producer]
        assert overwritten in reader.inputs  # a reader of the overwritten tensor ...
        for writer in tensor.consumers:  # ... runs before the in-place write into it
            assert "_in_place" in graph.nodes[writer].op
            assert tensor.producer in graph.predecessors(writer)


def test_nothing_to_slice_leaves_the_module_alone() -> None:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 4, 4, 8], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.nn.relu(x))
        bb.emit_func_output(out)
    mod = bb.get()
    sliced = slice_separables(mod, 4)
    assert sliced.mod is mod and sliced.separables == 0


def test_channels_that_do_not_divide_are_not_sliced() -> None:
    sliced = slice_separables(separable_module(channels=6), 4)
    assert sliced.separables == 0


def test_bad_slice_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="parts must be at least 2"):
        slice_separables(separable_module(), 1)
    with pytest.raises(RewriteError, match="parts must be 0"):
        rewrite_for_memory(separable_module(), TARGET, parts=1)


def test_accumulator_input_names_only_accumulations() -> None:
    assert accumulator_input(f"{ACCUMULATE_PREFIX}3") == 0
    assert accumulator_input("fused_conv2d_add") is None


def test_in_place_kernel_refuses_an_input_it_cannot_write() -> None:
    mod = fused_module(separable_module(), TARGET)
    kernel = next(mod[gv] for gv in mod.get_global_vars() if gv.name_hint == "mean")
    with pytest.raises(ValueError, match="no input 1 to write into"):
        in_place_kernel(kernel, 1)


def test_compacted_runs_each_producer_right_before_its_reader() -> None:
    # nodes 0 and 1 are read by 2 and 3: the order makes both before either reader
    graph = graph_from_edges([4, 4, 1, 1], [(0, 2), (1, 3)])
    assert compacted(graph, (0, 1, 2, 3)) == (0, 2, 1, 3)
    order = (0, 1, 2, 3)
    with pytest.raises(ValueError):
        compacted(graph, order[:2])
