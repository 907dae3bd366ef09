"""Tasks whose design spaces hold no decision (elementwise kernels): their fixed schedules
and the unscheduled function are measured once, and the compiled model uses the fastest,
instead of running them as scalar loops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from collectors.events import TaskEvent
from tests.tuner.model_jobs import run_model_job
from tuner.models._base import InputSpec, LoadedModel
from tuner.models.tasks import NO_DECISIONS, extract_tasks

SHAPE = (1, 16, 64, 64)  # 65,536 floats: a scalar loop is ~10x slower than a vectorized one


def add_relu_model() -> LoadedModel:
    """relu(x + y) -> conv -> reshape: one elementwise task, one searched, one reshape."""
    from tvm.relax.frontend.onnx import from_onnx

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 16, 3, 3)).astype("float32")
    nodes = [
        helper.make_node("Add", ["x", "y"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Conv", ["r", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "shape"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "add-relu",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE)),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE)),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4 * 64 * 64])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return LoadedModel(
        name="add-relu",
        framework="onnx",
        source=None,
        inputs=(InputSpec("x", SHAPE), InputSpec("y", SHAPE)),
        mod=from_onnx(proto),
    )


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return add_relu_model()


@pytest.fixture(scope="module")
def tasks(model: LoadedModel, target: dict) -> list:
    return extract_tasks(model, target)


def test_an_elementwise_task_keeps_its_fixed_schedules(tasks: list) -> None:
    elementwise = next(t for t in tasks if "add" in t.name and "conv" not in t.name)
    assert elementwise.untunable is None and elementwise.fixed_spaces >= 1
    assert elementwise.searched is False
    conv = next(t for t in tasks if "conv2d" in t.name)
    assert conv.searched and conv.fixed_spaces == 0
    reshape = next(t for t in tasks if t.op == "reshape")
    assert reshape.untunable == NO_DECISIONS and reshape.fixed_spaces == 0


def test_fixed_schedules_are_post_processed_then_the_unscheduled_function(
    tasks: list, target: dict
) -> None:
    import tvm_ffi
    from tvm.target import Target

    from tuner.metaschedule.fixed import fixed_schedules

    elementwise = next(t for t in tasks if t.fixed_spaces)
    schedules = fixed_schedules(elementwise.mod, Target(target), elementwise.name)
    assert len(schedules) == elementwise.fixed_spaces + 2
    *spaces, flat, unscheduled = schedules
    assert tvm_ffi.structural_equal(unscheduled.mod, elementwise.mod)
    assert len(unscheduled.trace.insts) == 0
    for space in spaces:
        text = space.mod.script()
        assert "T.vectorized" in text  # what RewriteParallelVectorizeUnroll makes
        assert "meta_schedule.vectorize" not in text  # the annotation was applied
    flat_text = flat.mod.script()
    assert "T.vectorized(T.int64(16))" in flat_text and "T.unroll(T.int64(4))" in flat_text
    assert "T_add_intermediate" in unscheduled.mod.script()
    assert "T_add_intermediate" not in flat_text  # the addition was inlined into the relu
    hashes = {tvm_ffi.structural_hash(s.mod) for s in schedules}
    assert len(hashes) == len(schedules)
    # Not for a CPU (a GPU: neither a vector loop nor an unscheduled function would build).
    spaces_only = fixed_schedules(elementwise.mod, Target(target), elementwise.name, cpu=False)
    assert [tvm_ffi.structural_hash(s.mod) for s in spaces_only] == [
        tvm_ffi.structural_hash(s.mod) for s in spaces
    ]


@pytest.mark.slow
def test_a_model_job_measures_fixed_schedules_once_and_compiles_the_fastest(
    model: LoadedModel, tasks: list, target: dict, tmp_path: Path
) -> None:
    from tvm.target import Target

    from tuner.metaschedule.driver import FIXED_DETAIL
    from tuner.metaschedule.fixed import fixed_schedules
    from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
    from tuner.models.compiled import compile_and_save, load_compiled, open_database

    fixed = next(t for t in tasks if t.fixed_spaces)
    fixed_trials = len(fixed_schedules(fixed.mod, Target(target), fixed.name))

    def before(driver: Any) -> None:
        # The search budget is the conv's; the fixed schedules are measured besides it
        # (counted at their most until they are listed).
        assert driver.trials() == (0, 4 + fixed.fixed_spaces + 2)

    settings = DriverSettings(trials=4, batch_size=4, search=SMALL_SEARCH, target=target)
    driver, store = run_model_job(model.name, tasks, settings, tmp_path / "db", before)
    assert driver.trials() == (4 + fixed_trials, 4 + fixed_trials)
    records = store.records(task=fixed.name)
    assert len(records) == fixed_trials and records["error"].isna().all()
    task_events = [s.event for s in store.read(kinds=("task",))]
    event = next(e for e in task_events if isinstance(e, TaskEvent) and e.task == fixed.name)
    assert event.tunable is True and FIXED_DETAIL in event.detail

    # The vectorized schedule runs several times faster than the scalar loop, so the
    # database's best for the task is a post-processed space, not the empty trace.
    database = open_database(tmp_path / "db")
    best = database.query_tuning_record(fixed.mod, Target(target), fixed.name)
    assert best is not None and len(best.trace.insts) > 0
    fastest = float(records["mean_secs"].min())
    assert float(np.mean([float(x) for x in best.run_secs])) == pytest.approx(fastest)

    rng = np.random.default_rng(1)
    inputs = {s.name: rng.standard_normal(s.shape).astype("float32") for s in model.inputs}
    untuned = compile_and_save(model, target, tmp_path / "u")
    tuned = compile_and_save(model, target, tmp_path / "t", database_dir=tmp_path / "db")
    expected = load_compiled(untuned).run(inputs)[0]
    np.testing.assert_allclose(load_compiled(tuned).run(inputs)[0], expected, rtol=1e-4, atol=1e-4)
