"""Reuse as scheduler jobs: library schedules measured as ordinary stages, with real TVM.

A reuse-only job measures each task's library schedules and its untuned workload, then stops;
a warm-started job measures them first and its search goes on from them. Either way the
task events say which records came from the library.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.events import RecordEvent, StageEvent, TaskEvent
from collectors.jobs import JobSpec
from collectors.memory_store import MemoryStore
from collectors.reuse import UNTUNED, parse_reused
from collectors.sink import EventSink
from tuner._base import TunerError
from tuner.metaschedule.library import ScheduleLibrary
from tuner.metaschedule.reuse import ReuseSettings

pytestmark = pytest.mark.slow


def run_job(
    workloads: list[str], library: ScheduleLibrary, db: Path, *, only: bool, trials: int = 8
) -> tuple[object, MemoryStore]:
    from tuner.clock import WallClock
    from tuner.metaschedule.driver import MetaScheduleDriver
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
    from tuner.metaschedule.workers import StageWorkers
    from tuner.scheduler import Scheduler

    store = MemoryStore()
    sink = EventSink(store)
    with StageWorkers(evaluator=EvalConfig(number=2, repeat=1, min_repeat_ms=5)) as workers:
        driver = MetaScheduleDriver(
            "j2",
            workloads,
            DriverSettings(
                trials_per_task=trials,
                batch_size=4,
                search=SMALL_SEARCH,
                target="llvm",
                reuse=ReuseSettings(library, only=only, limit=2),
            ),
            workers=workers,
            db_dir=db,
            sink=sink,
        )
        scheduler = Scheduler(workers.resources, "interleaved", clock=WallClock(), sink=sink)
        scheduler.submit_job(
            lambda job_id: driver, name="reuse", target="llvm", device_pool="device:llvm",
            tasks=driver.tasks, trials_total=driver.trials()[1],
        )  # fmt: skip
        scheduler.run()
    return driver, store


def latest_tasks(store: MemoryStore) -> dict[str, TaskEvent]:
    return {s.event.task: s.event for s in store.read(kinds=("task",))}


def records(store: MemoryStore, task: str) -> list[RecordEvent]:
    found = [s.event for s in store.read(kinds=("record",))]
    return sorted((r for r in found if r.task == task), key=lambda r: r.candidate)


def test_a_reuse_job_measures_library_schedules_and_the_untuned_fallback(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    driver, store = run_job(["matmul:128", "batch_matmul:2x32x32x32"], library, tmp_path / "db",
                            only=True)  # fmt: skip
    tasks = latest_tasks(store)
    matmul, batched = driver.tasks
    summary = {s.name: s for s in driver.summary()}

    reused = parse_reused(tasks[matmul].detail)
    matmul_records = records(store, matmul)
    assert summary[matmul].done and summary[matmul].trials == len(matmul_records) == len(reused)
    assert 2 <= len(reused) <= 3  # up to two library schedules, then the untuned workload
    untuned = [r for r in reused.values() if r.method == UNTUNED]
    assert [r.candidate for r in untuned] == [len(reused) - 1]
    # Dense-class schedules only, the most similar (the matmul) first.
    sources = [reused[i].source for i in sorted(reused) if reused[i].method != UNTUNED]
    assert sources[0] == "specs/matmul:64x64x64"
    assert set(sources) <= {"specs/matmul:64x64x64", "specs/dense:1x256x128"}
    assert all(r.run_secs for r in matmul_records)  # every one built and ran
    best = min(matmul_records, key=lambda r: r.mean_secs)
    untuned_secs = matmul_records[-1].mean_secs
    assert best.mean_secs < untuned_secs  # the tuned matmul-64 schedule beats no schedule

    # batch_matmul has a loop nest no library entry shares: the untuned workload alone.
    only_untuned = parse_reused(tasks[batched].detail)
    assert [r.method for r in only_untuned.values()] == [UNTUNED]
    assert "reuse_note=" in tasks[batched].detail
    assert summary[batched].trials == 1

    # The stages ran on the scheduler's resources like any job's.
    stages = [s.event for s in store.read(kinds=("stage",))]
    assert {e.stage for e in stages if isinstance(e, StageEvent)} == {
        "select", "build", "profile", "update",
    }  # fmt: skip
    # The job's database holds every measured record, untuned one included.
    lines = (tmp_path / "db" / "database_tuning_record.json").read_text().splitlines()
    assert len(lines) == summary[matmul].trials + summary[batched].trials
    assert any(json.loads(line)[1][0] == [[], []] for line in lines)  # the empty trace
    # Joining a library, the job's untuned records are no schedule to offer.
    other = ScheduleLibrary(tmp_path / "lib", create=True)
    summary = other.add_database(tmp_path / "db", task_names=driver.task_names_by_hash())
    assert summary.added == 1 and [e.task for e in other.entries()] == [matmul]
    assert summary.skipped == (f"{batched}: no measured schedule (line 2 of the workload file)",)


def test_a_warm_started_job_measures_library_schedules_first_then_searches(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    driver, store = run_job(["matmul:128"], library, tmp_path / "db", only=False, trials=8)
    (task,) = driver.tasks
    reused = parse_reused(latest_tasks(store)[task].detail)
    found = records(store, task)
    assert len(found) == 8 == driver.trials()[0]
    assert sorted(reused) == list(range(len(reused))) and 1 <= len(reused) <= 2
    assert all(r.method != UNTUNED for r in reused.values())
    assert {r.iteration for r in found[len(reused) :]} != {0}  # the search went on
    warm_best = min(r.mean_secs for r in found[: len(reused)])
    assert min(r.mean_secs for r in found) <= warm_best


def test_a_job_spec_with_a_bad_library_fails_at_submit(tmp_path: Path) -> None:
    from collectors.jobs import JobSpecError
    from tuner.engine import Engine, EngineSettings
    from tuner.metaschedule.library import LibraryError

    with Engine(EngineSettings(runs_dir=tmp_path / "runs")) as engine:
        with pytest.raises(LibraryError, match="not a schedule library"):
            engine.submit(JobSpec(workloads=("matmul:64",), warm_start=str(tmp_path / "nope")))
        assert engine.list() == []
    with pytest.raises(JobSpecError, match="needs a library"):
        JobSpec(workloads=("matmul:64",), reuse_only=True)


def test_naming_a_source_the_library_lacks_is_an_error(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    from tuner.metaschedule.driver import MetaScheduleDriver
    from tuner.metaschedule.settings import DriverSettings
    from tuner.metaschedule.workers import StageWorkers

    with StageWorkers() as workers, pytest.raises(TunerError, match=r"no such source .*: nowhere"):
        MetaScheduleDriver(
            "j3",
            ["matmul:128"],
            DriverSettings(
                trials_per_task=4, reuse=ReuseSettings(library, only=True, sources=("nowhere",))
            ),
            workers=workers,
            db_dir=tmp_path / "db",
        )


def test_a_submitted_spec_starts_from_the_library_and_the_finished_job_joins_another(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    """What the Jobs page does: a JobSpec naming a library, through the engine."""
    from tuner.engine import Engine, EngineSettings
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SMALL_SEARCH

    store = MemoryStore()
    joined = ScheduleLibrary(tmp_path / "joined", create=True)
    settings = EngineSettings(
        runs_dir=tmp_path / "runs",
        measure=EvalConfig(number=2, repeat=1, min_repeat_ms=5),
        search=SMALL_SEARCH,
        library=joined.folder,
    )
    with Engine(settings, store=store) as engine:
        spec = JobSpec(workloads=("matmul:128",), trials=4, batch=4, name="mm",
                       warm_start=str(library.folder), reuse_only=True)  # fmt: skip
        job = engine.submit(spec)
        report = engine.run()
    (info,) = report.jobs
    assert info.id == job and info.state == "finished"
    assert info.library is not None and info.library["added"] == 1
    (task,) = latest_tasks(store).values()
    assert any(r.method != UNTUNED for r in parse_reused(task.detail).values())
    (entry,) = joined.entries()
    assert entry.model == "mm" and entry.task == task.task
