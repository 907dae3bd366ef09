"""The MetaSchedule inspector backend: replays a record's trace with TVM and prints code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.events import JobEvent, RecordEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard.codeviews import CodeViews
from tests.dashboard.tvm_records import plain_json
from tuner.metaschedule.inspector import InspectError, MetaScheduleInspector, trace_json

pytestmark = pytest.mark.slow


def scheduled_trace(spec: str = "matmul:64") -> str:
    from tvm.s_tir.schedule import Schedule

    from tuner.metaschedule.workloads import workload_module

    sch = Schedule(workload_module(spec))
    i, j, _ = sch.get_loops(sch.get_sblock("C"))
    io, _ = sch.split(i, [None, 8])
    _, ji = sch.split(j, [None, 16])
    sch.vectorize(ji)
    sch.parallel(io)
    return json.dumps(plain_json(sch.trace.as_json()))


def store_with(**record: object) -> tuple[MemoryStore, RecordEvent]:
    store = MemoryStore()
    sink = EventSink(store, source="s")
    sink.emit(JobEvent, job="j1", change="submitted", target="llvm")
    fields = {"job": "j1", "task": "matmul:64", "candidate": 0, "run_secs": (1e-4,)} | record
    return store, sink.emit(RecordEvent, **fields)


def test_a_metaschedule_trace_replays_to_tir_llvm_ir_and_assembly() -> None:
    store, record = store_with(trace=scheduled_trace(), origin="metaschedule")
    inspector = MetaScheduleInspector(store)
    text = inspector.trace_text(record)
    assert "sch.split" in text and "sch.vectorize" in text
    tir = inspector.tir(record)
    assert "T.prim_func" in tir and "T.vectorized" in tir and "T.parallel" in tir
    assert "define" in inspector.llvm_ir(record)
    assert ".text" in inspector.asm(record)


def test_workloads_come_from_metaschedule_databases(tmp_path: Path) -> None:
    from tvm.s_tir import meta_schedule as ms

    from tuner.metaschedule.workloads import workload_module

    # A task name that is not a workload spec: only the database knows the workload.
    line = ms.database.Workload(workload_module("matmul:64")).as_json()
    folder = tmp_path / "runs" / "j1"
    folder.mkdir(parents=True)
    (folder / "database_workload.json").write_text(json.dumps([str(line[0]), str(line[1])]) + "\n")
    store, record = store_with(task="fused_matmul", trace=scheduled_trace(),
                               workload_hash=str(line[0]))  # fmt: skip
    assert "T.prim_func" in MetaScheduleInspector(store, database_dirs=[tmp_path]).tir(record)
    with pytest.raises(InspectError, match="is in no MetaSchedule database"):
        MetaScheduleInspector(store).tir(record)


def test_the_jobs_own_database_is_found_through_its_task_event(tmp_path: Path) -> None:
    from tvm.s_tir import meta_schedule as ms

    from collectors.events import TaskEvent
    from tuner.metaschedule.workloads import workload_module

    line = ms.database.Workload(workload_module("matmul:64")).as_json()
    (tmp_path / "database_workload.json").write_text(json.dumps([str(line[0]), str(line[1])]))
    store, record = store_with(task="main", trace=scheduled_trace(), workload_hash=str(line[0]))
    detail = f"metaschedule_database={tmp_path}"  # the task name "main" is no spec
    EventSink(store, source="t").emit(TaskEvent, job="j1", task="main", op="matmul",
                                      workload_hash=str(line[0]), detail=detail)  # fmt: skip
    assert "T.prim_func" in MetaScheduleInspector(store).tir(record)


def test_records_without_a_replayable_trace_say_why() -> None:
    store, autotvm = store_with(trace="[('tile_x', [-1, 8])]", origin="autotvm")
    inspector = MetaScheduleInspector(store)
    assert inspector.trace_text(autotvm) == "[('tile_x', [-1, 8])]"
    with pytest.raises(InspectError, match=r"autotvm log .* cannot be generated"):
        inspector.asm(autotvm)
    _, simulated = store_with(origin="simulated")
    with pytest.raises(InspectError, match="simulated"):
        inspector.tir(simulated)
    assert trace_json(autotvm) is None


def test_a_trace_for_another_workload_is_reported_not_raised_through_the_page() -> None:
    # The trace names block "C" of a matmul; a dense workload's block is "Y".
    store, _ = store_with(task="dense:1x64x64", trace=scheduled_trace("matmul:64"))
    views = CodeViews(store, MetaScheduleInspector(store))
    pos = store.last_pos()
    tir = views.get(pos, "tir")
    assert tir.text is None and "does not replay" in tir.message
    assert views.get(pos, "trace").text  # the trace is still shown as text
