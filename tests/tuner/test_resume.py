"""Jobs outlive their process: a restarted engine takes back what the store's journal and the
jobs' MetaSchedule databases say, with real TVM.

The states a kill can leave are built exactly: a finished run's store is copied without the
events a kill would have lost (the last records of a batch whose database lines were
written, a batch half committed to the database, a line cut short), then a fresh engine
recovers from it and the job must end with every record once in both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors._base import StoreError
from collectors.events import JobEvent, RecordEvent
from collectors.jobs import JobSpec, JobState
from collectors.lock import StoreLock
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from tuner.engine import Engine, EngineSettings
from tuner.metaschedule.resume import records_by_workload, repair_database
from tuner.metaschedule.run import EvalConfig
from tuner.metaschedule.settings import SMALL_SEARCH

QUICK = EvalConfig(number=2, repeat=1, min_repeat_ms=5)
SPEC = JobSpec(workloads=("matmul:16,dense:1x16x16",), trials_per_task=12, batch=4)


def settings(runs: Path) -> EngineSettings:
    return EngineSettings(runs_dir=runs, measure=QUICK, search=SMALL_SEARCH, compile_models=False)


def test_an_interrupted_job_resumes_from_its_database_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    with Engine(settings(runs), store=tmp_path / "first.db") as engine:
        job = engine.submit(SPEC)
        engine.run()
        tasks = engine.report().job(job).tasks
    first = SQLiteStore(tmp_path / "first.db")
    matmul, dense = (t.name for t in tasks)
    db_dir = runs / job
    by_hash = records_by_workload(db_dir)
    assert sorted(len(v) for v in by_hash.values()) == [12, 12]

    # The kill: matmul's last 3 records reached the database but not the store; dense's
    # last batch was half committed (2 of 4 lines, the second cut short) and none stored.
    dense_hash = first.tasks(job=job).set_index("task").loc[dense, "workload_hash"]
    lines = (db_dir / "database_tuning_record.json").read_bytes().splitlines(keepends=True)
    dense_index = _workload_index(db_dir, dense_hash)
    dense_lines = [i for i, line in enumerate(lines) if json.loads(line)[0] == dense_index]
    dropped = set(dense_lines[-3:])
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    cut = lines[dense_lines[-3]]
    (db_dir / "database_tuning_record.json").write_bytes(b"".join(kept) + cut[: len(cut) // 2])
    lost = {(matmul, c) for c in (9, 10, 11)} | {(dense, c) for c in range(8, 12)}
    killed = SQLiteStore(tmp_path / "killed.db")
    for stored in first.read():
        event = stored.event
        if isinstance(event, JobEvent) and event.change == "finished":
            continue
        if isinstance(event, RecordEvent) and (event.task, event.candidate) in lost:
            continue
        killed.append([event])
    measured_before = {
        (e.task, e.candidate): e.run_secs for e in _records(first) if e.task == matmul
    }
    first.close()

    with Engine(settings(runs), store=killed) as engine:
        lines_back = engine.recover()
        assert lines_back and "running" in lines_back[0]
        (info,) = engine.list()
        assert info.state == JobState.RUNNING and info.trials_done == 21  # 12 + 9 recovered
        assert len(_records(killed)) == 21  # the store caught up with the databases at once
        engine.run()
        (info,) = engine.list()
    assert info.state == JobState.FINISHED and info.trials_done == 24

    records = _records(killed)
    keys = [(e.task, e.candidate) for e in records]
    assert len(keys) == len(set(keys)) == 24, "a record stored twice"
    assert sorted(c for t, c in keys if t == dense) == list(range(12))
    # matmul's 3 records came from the database, unchanged, and were not measured again.
    by_key = {(e.task, e.candidate): e.run_secs for e in records}
    for key, secs in measured_before.items():
        assert by_key[key] == secs
    by_hash = records_by_workload(db_dir)
    assert sorted(len(v) for v in by_hash.values()) == [12, 12], "database and store disagree"
    for records_of_task in by_hash.values():
        traces = [r.trace_text for r in records_of_task]
        assert len(set(traces)) == len(traces), "a schedule measured twice"
    resumed = [e for e in _job_events(killed) if e.change == "resumed"]
    assert [e.detail for e in resumed] == ["resumed after restart"]
    killed.close()


def test_paused_queued_finished_and_specless_jobs_come_back_as_they_were(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sink = EventSink(store, source="before")
    spec = json.dumps(JobSpec(workloads=("matmul:16",), trials=8, batch=4).to_dict())
    for job, changes in {
        "j1-aaaa": ["submitted", "started", "paused"],
        "j2-aaaa": ["submitted"],
        "j3-aaaa": ["submitted", "started", "finished"],
        "j4-aaaa": ["started"],  # no spec: a producer that cannot be planned again
    }.items():
        for change in changes:
            sink.emit(
                JobEvent, job=job, change=change, name=job, priority=3,
                spec=spec if change == "submitted" else None,
            )  # fmt: skip
    with Engine(settings(tmp_path / "runs"), store=store) as engine:
        engine.recover()
        states = {info.id: (info.state, info.priority) for info in engine.list()}
        assert states == {
            "j1-aaaa": (JobState.PAUSED, 3),
            "j2-aaaa": (JobState.QUEUED, 3),
            "j3-aaaa": (JobState.FINISHED, 3),
            "j4-aaaa": (JobState.FAILED, 3),
        }
        with pytest.raises(ValueError, match="j3-aaaa is finished"):
            engine.pause("j3-aaaa")
        engine.cancel("j2-aaaa")
        engine.resume("j1-aaaa")
        engine.run()
        final = {info.id: info.state for info in engine.list()}
    assert final["j1-aaaa"] == JobState.FINISHED and final["j2-aaaa"] == JobState.CANCELLED
    details = {e.job: e.detail for e in _job_events(store) if e.source != "before"}
    assert "no stored spec" in details["j4-aaaa"]
    paused_again = [e for e in _job_events(store) if e.job == "j1-aaaa" and e.change == "paused"]
    assert paused_again[-1].detail == "still paused after restart"
    store.close()


def test_a_store_that_cannot_be_written_halts_the_tuner_and_loses_nothing(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    store = SQLiteStore(tmp_path / "s.db")
    engine = Engine(settings(runs), store=store)
    job = engine.submit(JobSpec(workloads=("matmul:16",), trials=40, batch=4))
    engine.serve()
    try:
        _wait_for(lambda: len(store.records()) >= 1, "a first record")
        # The disk is full, as SQLite sees it: the file may not grow by one more page.
        writer = store._writer  # the store's one writing connection
        assert writer is not None
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count = {pages}")
        _wait_for(lambda: engine.scheduler.halted is not None, "the scheduler to halt")
        assert "cannot be written" in str(engine.scheduler.halted)
        with pytest.raises(ValueError, match="cannot be written"):
            engine.pause(job)
        with pytest.raises(ValueError, match="cannot be written"):
            engine.submit(JobSpec(workloads=("matmul:8",)))
        _wait_for(lambda: not engine.scheduler.stages_running(), "running stages to end")
        stored = len(_records(store))
        time.sleep(1.0)
        assert len(_records(store)) == stored and not engine.scheduler.stages_running()
    finally:
        engine.close()
        store.close()
    # Writable again: a restart puts in the store what the database kept, and finishes.
    store = SQLiteStore(tmp_path / "s.db")
    with Engine(settings(runs), store=store) as engine:
        engine.recover()
        engine.run()
        (info,) = engine.list()
    records = _records(store)
    assert info.state == JobState.FINISHED and len(records) == 40
    assert len({(e.task, e.candidate) for e in records}) == 40
    assert [len(v) for v in records_by_workload(runs / job).values()] == [40]
    store.close()


def _wait_for(condition: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_line_cut_short_is_dropped_and_earlier_lines_are_never_touched(tmp_path: Path) -> None:
    (tmp_path / "database_workload.json").write_text('["7","AAAA"]')  # whole, no line end
    good = "[0,[[[],[]],[0.001],{},[]]]\n[0,[[[],[]],[1e10],{},[]]]\n"
    (tmp_path / "database_tuning_record.json").write_text(good + "[0,[[[],[]],[0.00")
    notes = repair_database(tmp_path)
    assert len(notes) == 2 and "cut short" in notes[1]
    assert (tmp_path / "database_tuning_record.json").read_text() == good
    assert [r.run_secs for r in records_by_workload(tmp_path)["7"]] == [(0.001,), None]
    assert repair_database(tmp_path) == []


def test_one_tuner_per_store_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with StoreLock(db), pytest.raises(StoreError, match=rf"in use .*pid {os.getpid()}"):
        StoreLock(db).acquire()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from collectors.lock import StoreLock; import time; "
         f"StoreLock({str(db)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"pid {holder.pid}"):
            StoreLock(db).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            StoreLock(db).acquire().release()
            break
        except StoreError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)


def _records(store: SQLiteStore) -> list[RecordEvent]:
    return [s.event for s in store.read(kinds=["record"])]  # type: ignore[misc]


def _job_events(store: SQLiteStore) -> list[JobEvent]:
    return [s.event for s in store.read(kinds=["job"])]  # type: ignore[misc]


def _workload_index(db_dir: Path, workload_hash: str) -> int:
    lines = (db_dir / "database_workload.json").read_text().splitlines()
    return next(i for i, line in enumerate(lines) if json.loads(line)[0] == workload_hash)
