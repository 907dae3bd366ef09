"""AutoTVM logs: records, errors with their class, knob text, tasks with shapes and FLOPs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.importers import readable_trace
from collectors.importers.autotvm import knob_text, render_trace
from tests.collectors.importers.importer_helpers import (
    AUTOTVM_SMALL,
    jobs,
    read_events,
    records,
    stages,
    tasks,
)


def test_records_keep_costs_and_errors_with_class() -> None:
    events, ctx = read_events(AUTOTVM_SMALL)
    recs = records(events)
    assert ctx.bad_lines == 0
    assert [r.run_secs for r in recs] == [
        (2.0e-05,), (1.0e-05, 1.2e-05), None, (3.0e-05,), (5.0e-06,), None,
    ]  # fmt: skip
    failed = [(r.error, r.error_class) for r in recs if r.run_secs is None]
    assert failed == [("BUILD_TIMEOUT", "timeout"), ("RUNTIME_DEVICE", "run")]
    assert [r.ts for r in recs] == [1000.0, 1001.0, 1002.0, 1010.0, 1020.0, 1021.0]
    # candidate counts per task in file order
    assert [r.candidate for r in recs] == [0, 1, 2, 3, 0, 1]


def test_the_config_is_kept_as_written_and_read_as_knob_lines() -> None:
    first = records(read_events(AUTOTVM_SMALL)[0])[0]
    line = next(x for x in AUTOTVM_SMALL.read_text().splitlines() if x.startswith("{"))
    assert first.origin == "autotvm"
    assert json.loads(first.trace or "") == json.loads(line)["config"]
    assert render_trace(first.trace or "") == (
        "config #3\ntile_y=[-1, 1]  (split)\ntile_x=[-1, 8]  (split)\ntile_k=[-1, 16]  (split)"
    )
    assert readable_trace(first) == render_trace(first.trace or "")
    assert knob_text([["unroll", "ot", True]]) == "unroll=true  (other)"


def test_render_trace_refuses_what_is_not_a_config() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        render_trace("config #3")
    with pytest.raises(ValueError, match="knob is not"):
        render_trace('{"index": 1, "entity": [["tile_x", "sp"]]}')


def test_tasks_have_op_shapes_and_flops() -> None:
    found = tasks(read_events(AUTOTVM_SMALL)[0])
    assert [(t.task, t.op) for t in found] == [
        ("dense_nopack.x86(1x64, 32x64)", "dense_nopack.x86"),
        ("batch_matmul.x86(2x16x8, 2x4x8)", "batch_matmul.x86"),
    ]
    assert [t.shapes for t in found] == [((1, 64), (32, 64)), ((2, 16, 8), (2, 4, 8))]
    assert [t.flops for t in found] == [2 * 1 * 32 * 64, 2 * 2 * 16 * 4 * 8]
    assert all(t.dtype == "float32" for t in found)
    assert len({t.workload_hash for t in found}) == 2


def test_job_events_bracket_the_import() -> None:
    events, _ = read_events(AUTOTVM_SMALL)
    submitted, finished = jobs(events)
    assert events[0] is submitted and events[-1] is finished
    assert (submitted.change, finished.change) == ("submitted", "finished")
    assert finished.target == "llvm -keys=cpu -mcpu=skylake-avx512"
    assert finished.trials == 6
    assert finished.tasks == ("dense_nopack.x86(1x64, 32x64)", "batch_matmul.x86(2x16x8, 2x4x8)")
    assert finished.detail is not None and "reconstructed" in finished.detail
    assert (submitted.ts, finished.ts) == (1000.0, 1021.0)
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.source for e in events}) == 1 and events[0].source.startswith("import:autotvm:")


def test_timeline_is_reconstructed_from_timestamp_gaps() -> None:
    events, _ = read_events(AUTOTVM_SMALL)
    got = [
        (s.task.split("(")[0], s.iteration, s.start, s.end, s.candidates) for s in stages(events)
    ]
    assert got == [
        ("dense_nopack.x86", 0, 992.0, 1002.0, 3),  # the timeout started 10 s before it ended
        ("dense_nopack.x86", 1, 1009.0, 1010.0, 1),
        ("batch_matmul.x86", 0, 1019.5, 1021.0, 2),
    ]
    assert all(s.stage == "profile" and s.status == "ok" for s in stages(events))
    assert len({s.resource for s in stages(events)}) == 1
    assert stages(events)[0].resource.startswith("device:imported:")
    assert [r.iteration for r in records(events)] == [0, 0, 0, 1, 0, 0]


def test_older_v01_lines_are_read(tmp_path: Path) -> None:
    line = {
        "i": ["llvm", "dense_nopack.x86", [["TENSOR", [4, 8], "float32"],
              ["TENSOR", [2, 8], "float32"], None, "float32"], {}, ["dense", 1],
              {"i": 11, "t": "direct", "c": None, "e": [["tile_x", "sp", [-1, 2]]]}],
        "r": [[1.5e-06], 0, 0.2, 50.0],
        "v": 0.1,
    }  # fmt: skip
    path = tmp_path / "old.log"
    path.write_text(json.dumps(line) + "\n")
    (rec,) = records(read_events(path)[0])
    assert rec.run_secs == (1.5e-06,)
    assert render_trace(rec.trace or "") == "config #11\ntile_x=[-1, 2]  (split)"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"input": ["llvm", "dense_nopack.x86", [], {}], "config": {"index"', "not valid JSON"),
        ('{"input": ["llvm", "d", [], {}], "config": {"entity": []}, "result": [[1], 0]}',
         "result"),
        ('{"input": ["llvm", "d", [], {}], "config": {"entity": []}, '
         '"result": [["x"], 0, 1.0, 5.0]}', "costs"),
        ('{"i": [["k", "llvm"], [[], []]], "r": [[1.0], 0, 1.0, 2.0]}', "not an AutoTVM record"),
    ],
)  # fmt: skip
def test_bad_lines_are_counted_with_their_number(tmp_path: Path, bad: str, reason: str) -> None:
    text = AUTOTVM_SMALL.read_text().splitlines()
    text.insert(3, bad)  # becomes line 4 of the file
    path = tmp_path / "bad.log"
    path.write_text("\n".join(text) + "\n")
    events, ctx = read_events(path)
    assert ctx.bad_lines == 1
    assert ctx.bad_details[0]["line"] == 4
    assert reason in ctx.bad_details[0]["reason"]
    assert len(records(events)) == 6


def test_truncated_last_line_is_a_bad_line(tmp_path: Path) -> None:
    text = AUTOTVM_SMALL.read_text()
    path = tmp_path / "cut.log"
    path.write_text(text.rstrip("\n")[:-40])  # the file ends in the middle of its last record
    events, ctx = read_events(path)
    assert ctx.bad_lines == 1
    assert ctx.bad_details[0]["line"] == len(text.splitlines())
    assert len(records(events)) == 5
