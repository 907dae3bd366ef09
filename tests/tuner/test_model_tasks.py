"""A model's tasks: extraction after the compile passes, untunable tasks reported, tuning a
model as one job, and the compiled model saved, loaded and run in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from collectors.events import TaskEvent
from tests.tuner.model_jobs import run_model_job
from tuner.models._base import InputSpec, LoadedModel, ModelError
from tuner.models.tasks import NO_DECISIONS, extract_tasks, fused_ops

ROOT = Path(__file__).resolve().parents[2]


def tiny_onnx_model() -> LoadedModel:
    """conv -> relu -> conv -> relu -> reshape on a 1x3x8x8 input (weights seeded)."""
    from tvm.relax.frontend.onnx import from_onnx

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype("float32"), "w1"),
        numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype("float32"), "w2"),
        numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Reshape", ["r2", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
        weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return LoadedModel(
        name="tiny-onnx",
        framework="onnx",
        source=None,
        inputs=(InputSpec("x", (1, 3, 8, 8)),),
        mod=from_onnx(proto),
    )


@pytest.fixture(scope="module")
def target() -> dict:
    from tuner.metaschedule.targets import target_config

    return target_config("llvm", 1)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return tiny_onnx_model()


@pytest.fixture(scope="module")
def tasks(model: LoadedModel, target: dict) -> list:
    return extract_tasks(model, target)


def test_fused_names_become_operator_lists() -> None:
    assert fused_ops("fused_conv2d1_add2_relu") == "conv2d+add+relu"
    assert fused_ops("fused_max_pool2d") == "max_pool2d"
    assert fused_ops("reshape") == "reshape"


def test_tasks_are_the_fused_operators_heaviest_first(tasks: list) -> None:
    convs = [t for t in tasks if t.op.startswith("conv2d")]
    assert len(convs) == 2
    assert all(t.detail[1] == "fused=conv2d+relu" for t in convs)
    # The second conv (4 -> 8 channels) does more work and comes first.
    assert convs[0].shapes == ((1, 4, 8, 8), (8, 4, 3, 3), (1, 8, 8, 8))
    assert convs[0].flops == pytest.approx(2 * 8 * 8 * 8 * 4 * 3 * 3, rel=0.2)
    assert tasks.index(convs[0]) < tasks.index(convs[1])
    assert all(t.weight == 1.0 and t.untunable is None for t in convs)


def test_a_task_with_nothing_to_search_is_marked_not_dropped(tasks: list) -> None:
    reshape = [t for t in tasks if t.op == "reshape"]
    assert len(reshape) == 1
    assert reshape[0].untunable == NO_DECISIONS


def test_a_model_without_operators_is_a_clear_error(target: dict) -> None:
    from tvm.relax.frontend.onnx import from_onnx

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    empty = LoadedModel("identity-net", "onnx", None, (InputSpec("x", (1, 4)),), from_onnx(proto))
    with pytest.raises(ModelError, match="model identity-net: no operator to tune"):
        extract_tasks(empty, target)


@pytest.mark.slow
def test_model_job_tunes_saves_and_runs_in_a_fresh_process(
    model: LoadedModel, tasks: list, target: dict, tmp_path: Path
) -> None:
    from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
    from tuner.models.compiled import compile_and_save, load_compiled

    def before(driver: Any) -> None:
        assert driver.trials() == (0, 8)  # two tunable tasks x 4; the reshape has no budget

    settings = DriverSettings(trials_per_task=4, batch_size=4, search=SMALL_SEARCH, target=target)
    driver, store = run_model_job(model.name, tasks, settings, tmp_path / "db", before)
    assert driver.trials() == (8, 8)
    events = [s.event for s in store.read(kinds=("task",))]
    by_task = {e.task: e for e in events if isinstance(e, TaskEvent)}
    reshape = next(e for e in events if e.op == "reshape")
    assert reshape.tunable is False and f"stopped={NO_DECISIONS}" in reshape.detail
    assert all("model=tiny-onnx" in e.detail for e in by_task.values())
    assert len(store.records()) == 8

    inputs = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype("float32")}
    untuned = compile_and_save(model, target, tmp_path / "u")
    tuned = compile_and_save(model, target, tmp_path / "t", database_dir=tmp_path / "db")
    assert json.loads((tuned / "model.json").read_text())["tuned"] is True
    expected = load_compiled(untuned).run(inputs)[0]
    np.save(tmp_path / "x.npy", inputs["x"])
    script = (
        "import sys, numpy as np; from tuner.models.compiled import load_compiled;"
        "out = load_compiled(sys.argv[1]).run({'x': np.load(sys.argv[2])})[0];"
        "np.save(sys.argv[3], out)"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tuned), str(tmp_path / "x.npy"), str(tmp_path / "y")],
        check=True, cwd=ROOT,
    )  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-4)


def test_a_folder_that_is_not_a_compiled_model_is_refused(tmp_path: Path) -> None:
    from tuner.models.compiled import load_compiled

    with pytest.raises(ModelError, match="not a compiled model"):
        load_compiled(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelError, match="not a tuneloom-compiled-model"):
        load_compiled(tmp_path)
