"""Sibling schedules: a task's batches also measure the bests of the job's other tasks of its
op class, applied to it; real TVM schedules, builds and measurements."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors.events import RecordEvent, TaskEvent
from collectors.jobs import StageKind
from collectors.memory_store import MemoryStore
from collectors.reuse import parse_reused
from collectors.sink import EventSink
from tuner._base import TunerError
from tuner.metaschedule.driver import MetaScheduleDriver
from tuner.metaschedule.library import describe_workload
from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings, SearchConfig
from tuner.metaschedule.siblings import SiblingBest, SiblingBoard, sibling_schedules
from tuner.metaschedule.targets import target_config
from tuner.metaschedule.traces import trace_json_text
from tuner.metaschedule.workers import StageWorkers
from tuner.metaschedule.workloads import workload_module


def llvm() -> Any:
    from tvm.target import Target

    return Target(target_config("llvm", 1))


def tiled_best(spec: str, task: str, inner: int = 16) -> SiblingBest:
    """``spec``'s workload with its output columns tiled by ``inner`` and vectorized, as a
    sibling's best (tile sizes as sampled decisions, which applying refits)."""
    from tvm.s_tir import Schedule

    mod = workload_module(spec)
    sch = Schedule(mod)
    block = sch.get_sblock("C")
    i, j, k = sch.get_loops(block)
    extent = int(spec.split(":")[1])
    tiles = sch.sample_perfect_tile(
        j, n=2, max_innermost_factor=64, decision=[extent // inner, inner]
    )
    outer, vector = sch.split(j, tiles)
    sch.reorder(i, outer, k, vector)
    sch.vectorize(vector)
    trace = json.loads(trace_json_text(sch.trace))
    return SiblingBest(task, 3, mod, describe_workload(mod), f"hash-{task}", 1e-5, 16, trace)


def run_matmul(sch: Any, size: int) -> None:
    """Build the scheduled matmul and check it against numpy on random inputs."""
    import tvm

    built = tvm.tirx.build(sch.mod, target="llvm")
    rng = np.random.default_rng(size)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    out = tvm.runtime.tensor(np.zeros((size, size), dtype=np.float32))
    built(tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-4)


def test_the_most_similar_siblings_best_comes_first_and_none_is_offered_twice() -> None:
    import tvm_ffi

    mod = workload_module("matmul:64")
    info = describe_workload(mod)
    far, near = tiled_best("matmul:512", "far", inner=8), tiled_best("matmul:128", "near")
    known: set[int] = set()
    (first,) = sibling_schedules(mod, info, [far, near], llvm(), limit=1, folder="", known=known)
    assert (first.sibling, first.method) == ("near", "replay")
    assert known == {int(tvm_ffi.structural_hash(first.schedule.mod))}
    run_matmul(first.schedule, 64)
    # Already measured: the next most similar instead, and never more than the limit.
    (second,) = sibling_schedules(mod, info, [far, near], llvm(), limit=1, folder="", known=known)
    assert second.sibling == "far"
    assert sibling_schedules(mod, info, [far, near], llvm(), limit=2, folder="", known=known) == []
    run_matmul(second.schedule, 64)


def test_tile_sizes_are_refitted_to_the_tasks_extents() -> None:
    from tvm.s_tir import analysis

    mod = workload_module("matmul:48")  # 32-wide tiles do not divide 48
    best = tiled_best("matmul:64", "wide", inner=32)
    (got,) = sibling_schedules(
        mod, describe_workload(mod), [best], llvm(), limit=2, folder="", known=set()
    )
    assert got.refitted
    analysis.verify_well_formed(got.schedule.mod)
    run_matmul(got.schedule, 48)


def test_a_best_of_another_op_class_is_not_applied() -> None:
    from tvm.s_tir import Schedule

    conv = workload_module("conv2d:1x8x8x8,8x3x3,pad=1")
    trace = json.loads(trace_json_text(Schedule(conv).trace))
    other = SiblingBest("conv", 0, conv, describe_workload(conv), "h", 1e-5, 8, trace)
    mod = workload_module("matmul:64")
    got = sibling_schedules(
        mod, describe_workload(mod), [other], llvm(), limit=2, folder="", known=set()
    )
    assert got == []


def test_the_number_of_sibling_schedules_is_checked() -> None:
    with pytest.raises(TunerError, match="siblings must be a whole number >= 0, got -1"):
        SearchConfig(siblings=-1)


def test_a_job_measures_its_tasks_bests_in_each_others_batches(
    workers: StageWorkers, tmp_path: Path
) -> None:
    store = MemoryStore()
    driver = MetaScheduleDriver(
        "j-siblings",
        ["matmul:64,matmul:96"],
        DriverSettings(
            trials_per_task=16,
            batch_size=8,
            search=replace(SMALL_SEARCH, siblings=1),
            seed=1,
        ),
        workers=workers,
        db_dir=tmp_path / "j",
        sink=EventSink(store),
    )
    small, large = driver.tasks
    client = next(r for r in workers.resources if r.startswith("client:"))
    device = next(r for r in workers.resources if r.startswith("device:"))
    selects = []
    while (step := driver.next_stage()) is not None:
        task, iteration, kind = step
        result = driver.run(task, iteration, kind, device if kind == StageKind.PROFILE else client)
        assert result.ok
        if kind == StageKind.SELECT:
            selects.append((task, iteration, result.candidates))
    driver.close()

    # Every batch is the batch size: a sibling's schedule takes a search candidate's place.
    assert all(count == 8 for *_, count in selects), selects
    detail = {}
    for stored in store.read(kinds=[TaskEvent.kind]):
        detail[stored.event.task] = parse_reused(stored.event.detail)
    # The second task's first batch opens with the first task's best, applied to it; a
    # second batch may open with the other's best (a new one, not measured there before).
    assert detail[large][0].sibling and detail[large][0].source == small
    assert set(detail[small]) <= {8} and set(detail[large]) <= {0, 8}
    assert all(s.sibling for found in detail.values() for s in found.values())
    records = {(r.task, r.candidate): r for r in (s.event for s in store.read(kinds=["record"]))}
    assert len(records) == 32
    summary = {s.name: s for s in driver.summary()}
    for task, found in detail.items():
        for candidate in found:
            record: RecordEvent = records[(task, candidate)]
            assert record.run_secs and record.error is None
        # The job's report counts them and names the sibling whose schedule holds the best.
        mine = [r for r in records.values() if r.task == task and r.mean_secs is not None]
        best = min(mine, key=lambda r: r.mean_secs or 0.0).candidate
        assert summary[task].siblings == len(found)
        assert summary[task].best_from == (found[best].source if best in found else None)


def test_the_board_offers_the_bests_of_other_tasks_and_jobs_on_one_target_and_op_class() -> None:
    from tvm.s_tir import Schedule

    board = SiblingBoard()
    mine, other = tiled_best("matmul:128", "mine"), tiled_best("matmul:64", "other")
    conv_mod = workload_module("conv2d:1x8x8x8,8x3x3,pad=1")
    conv_trace = json.loads(trace_json_text(Schedule(conv_mod).trace))
    conv = SiblingBest("conv", 0, conv_mod, describe_workload(conv_mod), "h", 1e-5, 8, conv_trace)
    board.publish("j1", "llvm -a", mine)
    board.publish("j1", "llvm -a", other)
    board.publish("j2", "llvm -a", tiled_best("matmul:96", "wide"))
    board.publish("j2", "llvm -a", conv)
    board.publish("j3", "llvm -b", tiled_best("matmul:32", "elsewhere"))
    op_class = mine.info.op_class

    def offered(job: str = "j1", task: str = "mine") -> dict[str, int]:
        return {b.task: b.candidate for b in board.bests(job, task, "llvm -a", op_class)}

    # The job's other task by its name, another job's as JOB/TASK; not the asking task's own
    # best, nor another op class's, nor one found on another target.
    assert offered() == {"other": 3, "j2/wide": 3}
    assert offered("j2", "wide") == {"j1/mine": 3, "j1/other": 3}
    board.publish("j1", "llvm -a", replace(other, candidate=11))  # a newer best replaces it
    assert offered() == {"other": 11, "j2/wide": 3}
    board.retire("j2")  # an ended job offers nothing
    assert offered() == {"other": 11}


def test_running_jobs_that_share_a_board_measure_each_others_bests(
    workers: StageWorkers, tmp_path: Path
) -> None:
    board, store = SiblingBoard(), MemoryStore()

    def job(name: str, spec: str, siblings: SiblingBoard | None) -> MetaScheduleDriver:
        settings = DriverSettings(trials_per_task=16, batch_size=8, search=SMALL_SEARCH, seed=1)
        return MetaScheduleDriver(
            name, [spec], settings, workers=workers, db_dir=tmp_path / name,
            sink=EventSink(store), siblings=siblings,
        )  # fmt: skip

    def run(driver: MetaScheduleDriver) -> None:
        client = next(r for r in workers.resources if r.startswith("client:"))
        device = next(r for r in workers.resources if r.startswith("device:"))
        while (step := driver.next_stage()) is not None:
            task, iteration, kind = step
            pick = device if kind == StageKind.PROFILE else client
            assert driver.run(task, iteration, kind, pick).ok

    first = job("first", "matmul:64", board)
    run(first)  # done searching, still running: its best stays on the board
    second, alone = job("second", "matmul:96", board), job("alone", "matmul:80", None)
    run(second)
    run(alone)
    for driver in (first, second, alone):
        driver.close()
    detail = {}
    for stored in store.read(kinds=[TaskEvent.kind]):
        detail[stored.event.job] = parse_reused(stored.event.detail)
    (task,) = first.tasks
    # The second job's first batch opened with the first job's best, applied to its task
    # and measured; a job with a board of its own saw none of it.
    assert detail["second"][0].sibling and detail["second"][0].source == f"first/{task}"
    assert detail["alone"] == {} and detail["first"] == {}
    records = [s.event for s in store.read(kinds=["record"])]
    (record,) = [r for r in records if (r.job, r.candidate) == ("second", 0)]
    assert record.run_secs and record.error is None
    op_class = describe_workload(workload_module("matmul:96")).op_class
    assert board.bests("second", second.tasks[0], str(second.target), op_class) == []  # retired
