"""The store view (incremental refresh) and the cached code views."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from collectors.events import RecordEvent, StageEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from dashboard.codeviews import NO_BACKEND, CodeViews
from dashboard.colors import PALETTE
from dashboard.data import StoreView
from tests.dashboard.synthetic import START, synthetic_history


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path):
    opened = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def test_incremental_refresh_matches_a_fresh_read(store) -> None:
    history = synthetic_history(store, jobs=2, iterations=2)
    view = StoreView(store)
    first = view.snapshot()
    assert len(first.stages) == history.stages and len(first.records) == history.records
    assert first.pos == store.last_pos()
    assert view.snapshot() is first  # nothing new: the same snapshot
    more = synthetic_history(store, jobs=1, iterations=1, seed=7)
    second = view.snapshot()
    assert len(second.stages) == history.stages + more.stages
    fresh = StoreView(store).snapshot()
    for column in ("pos", "job", "lane", "x0", "x1", "status"):
        assert second.stages[column].tolist() == fresh.stages[column].tolist()
    pd.testing.assert_series_equal(second.records["mean_secs"], fresh.records["mean_secs"])
    assert second.t0_wall == START


def test_job_colours_and_labels_follow_submission_order(store) -> None:
    history = synthetic_history(store, jobs=3, iterations=1)
    snap = StoreView(store).snapshot()
    assert list(snap.colors) == history.jobs
    assert snap.colors[history.jobs[1]] == PALETTE[1]
    assert snap.labels[history.jobs[0]] == f"model-1 ({history.jobs[0]})"


def test_simulated_jobs_are_labelled_simulated() -> None:
    from tuner.simulation import simulate

    store = MemoryStore()
    simulate(jobs=1, tasks=1, iterations=1, candidates=2, store=store, records=True)
    snap = StoreView(store).snapshot()
    (label,) = snap.labels.values()
    assert label.endswith("· simulated")
    assert snap.stages["lane"].str.contains(" · sim ").all()


def test_concurrent_snapshots_while_writing_lose_nothing() -> None:
    store = MemoryStore()
    sink = EventSink(store, source="w")
    view = StoreView(store)
    done = threading.Event()

    def write() -> None:
        for i in range(400):
            sink.emit(StageEvent, job="j", task="t", iteration=i, stage="build",
                      resource="client:0", start=float(i), end=i + 0.5)  # fmt: skip
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        view.snapshot()
    thread.join()
    snap = view.snapshot()
    assert sorted(snap.stages["iteration"]) == list(range(400))


class CountingBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def trace_text(self, record: RecordEvent) -> str:
        self.calls.append(("trace", record.candidate))
        return f"trace of {record.candidate}"

    def tir(self, record: RecordEvent) -> str:
        self.calls.append(("tir", record.candidate))
        return "# tir"

    def llvm_ir(self, record: RecordEvent) -> str:
        raise ValueError("cannot build this one")

    def asm(self, record: RecordEvent) -> str:
        return "asm"


def _record_store() -> tuple[MemoryStore, int]:
    store = MemoryStore()
    sink = EventSink(store)
    sink.emit(RecordEvent, job="j", task="t", candidate=3, trace="sch.split(...)", run_secs=(1.0,))
    return store, store.last_pos()


def test_code_views_generate_once_per_record_and_view() -> None:
    store, pos = _record_store()
    backend = CountingBackend()
    views = CodeViews(store, backend)
    assert views.get(pos, "trace").text == "trace of 3"
    assert views.get(pos, "trace").text == "trace of 3"
    assert views.get(pos, "tir").text == "# tir"
    assert backend.calls == [("trace", 3), ("tir", 3)]
    failed = views.get(pos, "llvm")
    assert failed.text is None and failed.message == "cannot build this one"
    assert views.get(pos + 5, "tir").message == f"no record at position {pos + 5}"
    assert "unknown view" in views.get(pos, "ptx").message


def test_code_views_without_a_backend_show_the_stored_trace_only() -> None:
    store, pos = _record_store()
    views = CodeViews(store, None)
    assert views.get(pos, "trace").text == "sch.split(...)"
    assert views.get(pos, "asm").message == NO_BACKEND


def test_code_views_cache_is_bounded() -> None:
    store = MemoryStore()
    sink = EventSink(store)
    for c in range(5):
        sink.emit(RecordEvent, job="j", task="t", candidate=c, run_secs=(1.0,))
    backend = CountingBackend()
    views = CodeViews(store, backend, maxsize=2)
    for pos in (1, 2, 3, 1):
        views.get(pos, "tir")
    assert [c for _, c in backend.calls] == [0, 1, 2, 0]
