"""Pure helpers: batch timelines, FLOPs from AutoTVM args, MetaSchedule trace/target text."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from collectors.importers._common import job_id, measure_error
from collectors.importers.ms_targets import target_text
from collectors.importers.ms_trace import trace_text, workload_names
from collectors.importers.op_info import autotvm_flops
from collectors.importers.timeline import BatchTimeline


def _tensor(*shape: int) -> list[object]:
    return ["TENSOR", list(shape), "float32"]


# --- timeline ----------------------------------------------------------------------------


def test_batches_close_on_gap_and_on_task_change() -> None:
    timeline = BatchTimeline(gap_s=2.0)
    placed = [
        timeline.add("a", 10.0, 1.0),  # [9, 10]
        timeline.add("a", 11.0, 1.0),  # starts at 10: same batch
        timeline.add("a", 20.0, 1.0),  # starts at 19 > 11 + 2: new batch
        timeline.add("b", 21.0, 0.5),  # other task: new batch
    ]
    assert [p[0] for p in placed] == [0, 0, 1, 0]
    closed = [p[1] for p in placed if p[1] is not None] + [timeline.finish()]
    assert [(b.task, b.iteration, b.start, b.end, b.count) for b in closed] == [
        ("a", 0, 9.0, 11.0, 2),
        ("a", 1, 19.0, 20.0, 1),
        ("b", 0, 20.5, 21.0, 1),  # starts where the previous batch ended: no overlap
    ]
    assert timeline.finish() is None


def test_missing_all_cost_gives_instant_measurements() -> None:
    timeline = BatchTimeline(gap_s=0.0)
    timeline.add("a", 5.0, None)
    batch = timeline.finish()
    assert batch is not None and (batch.start, batch.end) == (5.0, 5.0)


def test_negative_gap_is_rejected() -> None:
    with pytest.raises(ValueError, match="gap_s"):
        BatchTimeline(gap_s=-1)


# --- FLOPs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "args", "flops"),
    [
        ("dense_pack.x86", [_tensor(128, 768), _tensor(2304, 768), None, "float32"],
         2 * 128 * 2304 * 768),
        ("batch_matmul.x86", [_tensor(12, 128, 64), _tensor(12, 128, 64), [12, 128, 128]],
         2 * 12 * 128 * 128 * 64),
        # resnet stem: 224x224, 7x7 stride 2 pad 3 -> 112x112
        ("conv2d_NCHWc.x86", [_tensor(1, 3, 224, 224), _tensor(64, 3, 7, 7), [2, 2],
                              [3, 3, 3, 3], [1, 1], "NCHW", "NCHW", "float32"],
         2 * 64 * 112 * 112 * 3 * 7 * 7),
        ("depthwise_conv2d_nchw.x86", [_tensor(1, 32, 8, 8), _tensor(32, 1, 3, 3), [1, 1],
                                       [1, 1], [1, 1], "float32"],
         2 * 32 * 8 * 8 * 3 * 3),
        ("conv2d_nhwc.x86", [_tensor(1, 8, 8, 3), _tensor(3, 3, 3, 8), 1, 1, 1], None),
        ("softmax.x86", [_tensor(4, 4), _tensor(4, 4)], None),
        # TVM 0.4-0.6 task names
        ("topi_nn_dense", [_tensor(1, 512), _tensor(1000, 512), None, "float32"],
         2 * 1 * 1000 * 512),
        ("topi_x86_dense", [_tensor(2, 64), _tensor(32, 64), None, "float32"], 2 * 2 * 32 * 64),
        ("topi_arm_cpu_dense", [_tensor(2, 64), _tensor(32, 64)], 2 * 2 * 32 * 64),
        ("topi_nn_batch_matmul", [_tensor(2, 8, 4), _tensor(2, 6, 4)], 2 * 2 * 8 * 6 * 4),
        ("topi_nn_softmax", [_tensor(4, 4), _tensor(4, 4)], None),
        ("my_topi_nn_dense", [_tensor(4, 4), _tensor(4, 4)], None),
        ("dense_nopack.x86", [["TENSOR", [1, -1], "float32"], _tensor(4, 4)], None),
    ],
)  # fmt: skip
def test_autotvm_flops(op: str, args: list[object], flops: float | None) -> None:
    assert autotvm_flops(op, args) == flops


# --- MetaSchedule text --------------------------------------------------------------------


def test_trace_text_renders_instructions_and_decisions() -> None:
    trace = [
        [
            ["GetSBlock", [], ["C", "main"], ["b0"]],
            ["GetLoops", ["b0"], [], ["l1", "l2"]],
            ["SamplePerfectTile", ["l1"], [2, 64], ["v3", "v4"]],
            ["Split", ["l1", "v3", "v4"], [1, 0], ["l5", "l6"]],
            ["EnterPostproc", [], [], []],
        ],
        [[2, [4, 8]]],
    ]
    assert trace_text(trace).splitlines() == [
        'b0 = get_sblock(attrs=["C", "main"])',
        "l1, l2 = get_loops(b0)",
        "v3, v4 = sample_perfect_tile(l1, attrs=[2, 64], decision=[4, 8])",
        "l5, l6 = split(l1, v3, v4, attrs=[1, 0])",
        "enter_postproc()",
    ]


def test_malformed_trace_raises() -> None:
    with pytest.raises(ValueError, match="instruction 0"):
        trace_text([[["GetLoops"]], []])
    with pytest.raises(ValueError, match="instructions, decisions"):
        trace_text({"x": 1})


def test_target_text() -> None:
    target = {"kind": "llvm", "tag": "", "keys": ["cpu"], "num-cores": 2, "mcpu": "skylake"}
    assert target_text(target) == "llvm -keys=cpu -mcpu=skylake -num-cores=2"
    assert target_text("cuda") == "cuda"
    assert target_text(None) is None


def test_workload_names_from_graph_json() -> None:
    graph = {
        "root_index": 4,
        "nodes": [
            {"type": "ffi.String", "data": "main"},
            {"type": "ir.GlobalVar", "data": {"name_hint": 0}},
            {"type": "ffi.String", "data": "global_symbol"},
            {"type": "ffi.String", "data": "fused_dense_add"},
            {"type": "ffi.Map", "data": [2, 3]},
            {"type": "ffi.String", "data": "T_add"},
            {"type": "s_tir.SBlock", "data": {"name_hint": 5}},
        ],
    }
    payload = json.dumps(graph).encode()
    encoded = base64.b64encode(struct.pack("<Q", len(payload)) + payload).decode()
    assert workload_names(encoded) == ("fused_dense_add", ["T_add"])
    assert workload_names("not base64 at all") == (None, [])


# --- ids and errors -----------------------------------------------------------------------


def test_job_id_is_readable_and_unique_per_source() -> None:
    assert job_id("autotvm", "bert-B1 float32", "import:autotvm:abcdef123456") == (
        "autotvm-bert-B1_float32-abcdef"
    )
    assert job_id("ansor", "ansor_run", "import:ansor:0123456789ab") == "ansor_run-012345"


def test_measure_error_names_and_classes() -> None:
    assert [measure_error(n) for n in range(1, 9)] == [
        ("INSTANTIATION_ERROR", "build"),
        ("COMPILE_HOST", "build"),
        ("COMPILE_DEVICE", "build"),
        ("RUNTIME_DEVICE", "run"),
        ("WRONG_ANSWER", "run"),
        ("BUILD_TIMEOUT", "timeout"),
        ("RUN_TIMEOUT", "timeout"),
        ("UNKNOWN_ERROR", "other"),
    ]
    assert measure_error(42) == ("ERROR_NO_42", "other")
