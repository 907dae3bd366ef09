"""The one suite every store backend passes (the ``store`` fixture runs it per backend)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors._base import (
    JOB_COLUMNS,
    RECORD_COLUMNS,
    STAGE_COLUMNS,
    TASK_COLUMNS,
    BaseStore,
    Stored,
)
from collectors.events import Event, JobEvent, RecordEvent, StageEvent
from collectors.record_fields import fields_of
from tests.collectors.storekit import BACKENDS, EventFactory, open_backend


def sample(make: EventFactory) -> list[Event]:
    """Two jobs with a task, stages on two resources and records (one failed)."""
    return [
        make.job("submitted", priority=1, model="mlp", target="llvm", trials=8, tasks=("mm",)),
        make.task("mm", op="matmul", flops=2.0 * 64**3, workload_hash="h1"),
        make.stage(0.0, 1.0, task="mm", stage="select", candidates=2),
        make.stage(1.0, 2.0, task="mm", stage="build"),
        make.stage(2.0, 3.5, task="mm", stage="profile", resource="device:llvm:0"),
        make.record(task="mm", candidate=0, iteration=0, trace="sch.split(...)",
                    run_secs=(1e-3, 3e-3), predicted=0.5, workload_hash="h1"),
        make.record(task="mm", candidate=1, iteration=0, trace="sch.fuse(...)",
                    error="segfault", error_class="run"),
        make.job("submitted", job="job-b"),
        make.task("conv", job="job-b", op="conv2d"),
        make.stage(0.5, 4.0, job="job-b", task="conv", stage="build"),
        make.record(job="job-b", task="conv", candidate=0, run_secs=(2e-3,)),
        make.stage(3.5, 4.0, task="mm", stage="update", status="error", error="db locked"),
    ]  # fmt: skip


def test_a_new_store_is_empty(store: BaseStore) -> None:
    assert store.last_pos() == 0
    assert store.read() == []
    assert store.max_seq("anyone") == -1
    assert store.record(1) is None
    for frame, columns in [
        (store.stage_intervals(), STAGE_COLUMNS),
        (store.records(), RECORD_COLUMNS),
        (store.jobs(), JOB_COLUMNS),
        (store.tasks(), TASK_COLUMNS),
    ]:
        assert list(frame.columns) == list(columns)
        assert len(frame) == 0


def test_every_kind_round_trips_with_increasing_positions(
    store: BaseStore, make: EventFactory
) -> None:
    events = sample(make)
    stored = store.append(events)
    assert [s.event for s in stored] == events
    positions = [s.pos for s in stored]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert positions[0] >= 1
    assert store.read() == stored
    assert store.last_pos() == positions[-1]
    assert {type(s.event) for s in store.read()} == {JobEvent, type(events[1]), StageEvent,
                                                     RecordEvent}  # fmt: skip
    for s in stored:
        assert store.record(s.pos) == s.event
    more = store.append([make.job("started")])
    assert more[0].pos > positions[-1]


def test_empty_and_zero_like_values_are_not_taken_for_missing_ones(
    store: BaseStore, make: EventFactory
) -> None:
    """Empty text, empty run times and zeros read back as themselves, never as None."""
    events = [
        make.record(task="mm", candidate=0, run_secs=(), error="", error_class="run", trace=""),
        make.record(task="mm", candidate=1, run_secs=(0.0,), error="0", trace="0"),
        make.record(task="mm", candidate=2, error="NULL", error_class="build"),
        make.stage(0.0, 0.0, task="mm", stage="build", status="error", error=""),
        make.stage(0.0, 1.0, task="mm", stage="build", status="error", error="0"),
    ]
    stored = store.append(events)
    assert [s.event for s in store.read()] == events
    assert [store.record(s.pos) for s in stored] == events
    records = store.records()
    assert list(records["error"]) == ["", "0", "NULL"]


def test_append_of_nothing_stores_nothing(store: BaseStore) -> None:
    assert store.append([]) == []
    assert store.append(iter(())) == []
    assert store.last_pos() == 0


def test_append_accepts_any_iterable(store: BaseStore, make: EventFactory) -> None:
    stored = store.append(make.stage(float(i), float(i) + 1) for i in range(3))
    assert len(stored) == 3


def test_append_refuses_things_that_are_not_events(store: BaseStore, make: EventFactory) -> None:
    with pytest.raises(TypeError, match="append takes events, got dict"):
        store.append([make.job(), {"kind": "job"}])  # type: ignore[list-item]
    assert store.last_pos() == 0


def test_replaying_the_same_events_stores_nothing_new(store: BaseStore, make: EventFactory) -> None:
    events = sample(make)
    first = store.append(events)
    assert store.append(events) == []
    assert store.read() == first
    # A batch mixing old and new events stores only the new ones, in order.
    fresh = [make.job("started"), make.stage(5.0, 6.0)]
    mixed = store.append([events[0], fresh[0], events[3], fresh[1], fresh[0]])
    assert [s.event for s in mixed] == fresh
    assert [s.pos for s in mixed] == [first[-1].pos + 1, first[-1].pos + 2]
    assert store.read(after=first[-1].pos) == mixed


def test_idempotence_is_by_source_and_seq(store: BaseStore) -> None:
    a = EventFactory("run-a")
    b = EventFactory("run-b")
    stored = store.append([a.job(), b.job()])  # both seq 0, different sources
    assert len(stored) == 2
    same_key = JobEvent(source="run-a", seq=0, ts=5.0, job="other", change="failed")
    assert store.append([same_key]) == []
    assert store.read()[0].event.job == "job-a"


def test_max_seq_per_source(store: BaseStore) -> None:
    a, b = EventFactory("run-a"), EventFactory("run-b")
    store.append([a.job(seq=4), a.job(seq=2), b.job(seq=0)])
    assert store.max_seq("run-a") == 4
    assert store.max_seq("run-b") == 0
    assert store.max_seq("run-c") == -1


def test_read_after_a_position_tails_the_journal(store: BaseStore, make: EventFactory) -> None:
    stored = store.append(sample(make))
    assert store.read(after=stored[4].pos) == stored[5:]
    assert store.read(after=stored[-1].pos) == []
    assert store.read(after=-10) == stored


def test_read_filters_by_kind_job_task_and_limit(store: BaseStore, make: EventFactory) -> None:
    stored = store.append(sample(make))

    def expect(predicate: object) -> list[Stored]:
        return [s for s in stored if predicate(s.event)]  # type: ignore[operator]

    assert store.read(kinds=["stage"]) == expect(lambda e: e.kind == "stage")
    assert store.read(kinds=("job", "task")) == expect(lambda e: e.kind in ("job", "task"))
    assert store.read(kinds=[]) == []
    assert store.read(job="job-b") == expect(lambda e: e.job == "job-b")
    assert store.read(task="mm") == expect(lambda e: getattr(e, "task", None) == "mm")
    assert store.read(kinds=["record"], job="job-a", task="mm") == expect(
        lambda e: e.kind == "record" and e.job == "job-a"
    )
    assert store.read(limit=3) == stored[:3]
    assert store.read(limit=0) == []
    assert store.read(kinds=["stage"], limit=2) == expect(lambda e: e.kind == "stage")[:2]
    after = stored[3].pos
    assert store.read(after=after, kinds=["stage"], limit=1) == [stored[4]]
    assert store.read(job="nobody") == []


def test_stage_intervals_columns_and_values(store: BaseStore, make: EventFactory) -> None:
    stored = store.append(sample(make))
    frame = store.stage_intervals()
    assert list(frame.columns) == list(STAGE_COLUMNS)
    stages = [s for s in stored if isinstance(s.event, StageEvent)]
    assert frame["pos"].tolist() == [s.pos for s in stages]
    first = frame.iloc[0]
    e = stages[0].event
    assert (first["source"], first["clock"], first["job"], first["task"]) == (
        e.source, "wall", "job-a", "mm",
    )  # fmt: skip
    assert (first["iteration"], first["stage"], first["resource"]) == (0, "select", "client:0")
    assert (first["start"], first["end"], first["status"]) == (0.0, 1.0, "ok")
    assert pd.isna(first["error"]) and first["candidates"] == 2
    assert frame["candidates"].isna().tolist() == [False, True, True, True, True]
    last = frame.iloc[-1]
    assert (last["status"], last["error"]) == ("error", "db locked")
    assert frame["pos"].dtype == np.int64 and frame["start"].dtype == np.float64
    assert frame["iteration"].dtype == np.int64


def test_stage_intervals_filters(store: BaseStore, make: EventFactory) -> None:
    store.append(sample(make))

    def stages_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
        return list(zip(frame["job"], frame["stage"], strict=True))

    assert stages_of(store.stage_intervals(job="job-b")) == [("job-b", "build")]
    assert len(store.stage_intervals(job=["job-a", "job-b"])) == 5
    assert len(store.stage_intervals(job=[])) == 0
    assert stages_of(store.stage_intervals(resource="device:llvm:0")) == [("job-a", "profile")]
    assert len(store.stage_intervals(task="mm")) == 4
    assert stages_of(store.stage_intervals(job="job-a", task="mm", resource="client:0")) == [
        ("job-a", "select"), ("job-a", "build"), ("job-a", "update"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (1.5, 2.5, [(1.0, 2.0), (2.0, 5.0), (0.0, 100.0)]),
        (2.0, 2.0, [(1.0, 2.0), (2.0, 5.0), (0.0, 100.0)]),  # touching counts as overlapping
        (5.5, None, [(6.0, 7.0), (0.0, 100.0)]),
        (None, 0.5, [(0.0, 1.0), (0.0, 100.0)]),
        (50.0, 60.0, [(0.0, 100.0)]),  # inside one long stage
        (100.5, 200.0, []),
        (None, None, [(0.0, 1.0), (1.0, 2.0), (2.0, 5.0), (6.0, 7.0), (0.0, 100.0)]),
    ],
)
def test_stage_intervals_keep_those_overlapping_the_window(
    store: BaseStore,
    make: EventFactory,
    start: float | None,
    end: float | None,
    expected: list[tuple[float, float]],
) -> None:
    spans = [(0.0, 1.0), (1.0, 2.0), (2.0, 5.0), (6.0, 7.0), (0.0, 100.0)]
    store.append(make.stage(a, b) for a, b in spans)
    frame = store.stage_intervals(start=start, end=end)
    assert list(zip(frame["start"], frame["end"], strict=True)) == expected


def test_records_have_mean_secs_and_no_trace(store: BaseStore, make: EventFactory) -> None:
    stored = store.append(sample(make))
    frame = store.records()
    assert list(frame.columns) == list(RECORD_COLUMNS)
    records = [s for s in stored if isinstance(s.event, RecordEvent)]
    assert frame["pos"].tolist() == [s.pos for s in records]
    assert frame["mean_secs"].iloc[0] == pytest.approx(2e-3)
    assert math.isnan(frame["mean_secs"].iloc[1])
    assert frame["error_class"].iloc[1] == "run" and frame["error"].iloc[1] == "segfault"
    assert frame["predicted"].iloc[0] == 0.5 and math.isnan(frame["predicted"].iloc[2])
    assert frame["workload_hash"].iloc[0] == "h1"
    assert frame["iteration"].tolist()[:2] == [0, 0] and pd.isna(frame["iteration"].iloc[2])
    assert frame["ts"].tolist() == [s.event.ts for s in records]
    assert "trace" not in frame.columns
    full = store.record(int(frame["pos"].iloc[0]))
    assert isinstance(full, RecordEvent) and full.trace == "sch.split(...)"


def test_records_filter_by_job_and_task(store: BaseStore, make: EventFactory) -> None:
    store.append(sample(make))
    assert store.records(job="job-b")["task"].tolist() == ["conv"]
    assert store.records(job=("job-a",))["candidate"].tolist() == [0, 1]
    assert store.records(task="conv")["job"].tolist() == ["job-b"]
    assert len(store.records(job="job-a", task="conv")) == 0


def test_record_of_a_missing_position_is_none(store: BaseStore, make: EventFactory) -> None:
    store.append([make.job()])
    assert store.record(0) is None
    assert store.record(2) is None
    assert store.record(-1) is None


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        (["submitted"], "queued"),
        (["submitted", "started"], "running"),
        (["submitted", "started", "paused"], "paused"),
        (["submitted", "started", "paused", "resumed"], "running"),
        (["submitted", "started", "finished"], "finished"),
        (["submitted", "started", "failed"], "failed"),
        (["submitted", "cancelled"], "cancelled"),
        (["submitted", "started", "reprioritized"], "running"),
        (["started"], "running"),
    ],
)
def test_job_state_is_replayed_from_job_events(
    store: BaseStore, make: EventFactory, changes: list[str], state: str
) -> None:
    store.append(make.job(change) for change in changes)
    jobs = store.jobs()
    assert jobs["job"].tolist() == ["job-a"]
    assert jobs["state"].iloc[0] == state


def test_jobs_frame_values(store: BaseStore, make: EventFactory) -> None:
    submitted = make.job(
        "submitted", priority=1, model="mlp", target="llvm", name="first",
        policy="interleaved", trials=8, tasks=("mm", "conv"), detail="cli",
    )  # fmt: skip
    store.append([
        submitted,
        make.job("submitted", job="job-b", priority=3),
        make.job("started"),
        make.job("paused", detail="by user"),
        make.job("reprioritized", priority=7),
        make.job("resumed"),
        make.job("failed", job="job-b", detail="build crashed", clock="wall"),
    ])  # fmt: skip
    last = store.read()[-2].event
    jobs = store.jobs().set_index("job")
    assert list(store.jobs().columns) == list(JOB_COLUMNS)
    assert store.jobs()["job"].tolist() == ["job-a", "job-b"]  # order of first appearance
    a = jobs.loc["job-a"]
    assert (a["state"], a["priority"], a["model"], a["target"]) == ("running", 7, "mlp", "llvm")
    assert (a["name"], a["policy"], a["trials"], a["tasks"]) == (
        "first", "interleaved", 8, ("mm", "conv"),
    )  # fmt: skip
    assert a["submitted_ts"] == submitted.ts and a["updated_ts"] == last.ts
    assert pd.isna(a["detail"])  # the latest event (resumed) gave no reason
    assert a["clock"] == "wall"
    b = jobs.loc["job-b"]
    assert (b["state"], b["priority"], b["detail"]) == ("failed", 3, "build crashed")
    assert pd.isna(b["model"]) and pd.isna(b["trials"]) and b["tasks"] is None


def test_priority_changes_only_on_submit_and_reprioritize(
    store: BaseStore, make: EventFactory
) -> None:
    store.append([make.job("submitted", priority=4), make.job("started", priority=0),
                  make.job("paused")])  # fmt: skip
    assert store.jobs()["priority"].tolist() == [4]
    store.append([make.job("reprioritized", priority=-2), make.job("resumed", priority=9)])
    assert store.jobs()["priority"].tolist() == [-2]


def test_tasks_keep_the_latest_event_per_job_and_task(store: BaseStore, make: EventFactory) -> None:
    store.append([
        make.task("mm", op="matmul", weight=1.0),
        make.task("conv", op="conv2d", shapes=((1, 3, 8, 8),), dtype="float32", flops=1e6),
        make.task("mm", job="job-b", op="matmul", tunable=False),
        make.task("mm", op="matmul", weight=3.0, workload_hash="h2", detail="fused"),
    ])  # fmt: skip
    tasks = store.tasks()
    assert list(tasks.columns) == list(TASK_COLUMNS)
    assert list(zip(tasks["job"], tasks["task"], strict=True)) == [
        ("job-a", "mm"), ("job-a", "conv"), ("job-b", "mm"),
    ]  # fmt: skip
    mm = tasks.iloc[0]
    assert (mm["weight"], mm["workload_hash"], mm["detail"]) == (3.0, "h2", "fused")
    conv = tasks.iloc[1]
    assert conv["shapes"] == ((1, 3, 8, 8),) and conv["dtype"] == "float32"
    assert conv["flops"] == 1e6 and bool(conv["tunable"]) is True
    assert bool(tasks.iloc[2]["tunable"]) is False and math.isnan(mm["flops"])
    assert store.tasks(job="job-b")["task"].tolist() == ["mm"]
    assert store.tasks(job=["job-a"])["task"].tolist() == ["mm", "conv"]


def test_every_backend_returns_identical_frames(tmp_path: Path, make: EventFactory) -> None:
    events = sample(make)
    stores = [open_backend(name, tmp_path / f"{name}.db") for name in BACKENDS]
    try:
        for s in stores:
            s.append(events)
        for query in ("stage_intervals", "records", "jobs", "tasks"):
            frames = [getattr(s, query)() for s in stores]
            pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
        windows = [s.stage_intervals(job="job-a", start=1.5, end=3.0) for s in stores]
        pd.testing.assert_frame_equal(windows[0], windows[1], check_exact=True)
        empties = [s.records(job="nobody") for s in stores]
        pd.testing.assert_frame_equal(empties[0], empties[1], check_exact=True)
    finally:
        for s in stores:
            s.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_events_round_trip_through_every_backend(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    events = data.draw(st.lists(events_strategy, max_size=8))
    first_of_key: dict[tuple[str, int], Event] = {}
    for e in events:
        first_of_key.setdefault((e.source, e.seq), e)
    unique = list(first_of_key.values())  # a later duplicate of a key is skipped
    with tempfile.TemporaryDirectory() as folder:
        for name in BACKENDS:
            store = open_backend(name, Path(folder) / "store.db")
            try:
                stored = store.append(events)
                assert [s.event for s in stored] == unique
                assert [s.event for s in store.read()] == unique
                assert [s.event.to_json() for s in store.read()] == [e.to_json() for e in unique]
                for s in stored:
                    assert store.record(s.pos) == s.event
                assert store.append(events) == []
                stages = store.stage_intervals()
                assert stages["pos"].tolist() == [
                    s.pos for s in stored if isinstance(s.event, StageEvent)
                ]
                records = store.records()
                expected = [s.event.mean_secs for s in stored if isinstance(s.event, RecordEvent)]
                got = [None if math.isnan(x) else x for x in records["mean_secs"]]
                assert got == expected
            finally:
                store.close()


def test_query_frames_belong_to_the_caller(store: BaseStore, make: EventFactory) -> None:
    store.append(sample(make))
    stages, records = store.stage_intervals(), store.records()
    stages.loc[0, "start"] = -1.0
    stages["end"] += 1.0
    records.loc[0, "mean_secs"] = 9.0
    records.loc[0, "candidate"] = 42
    assert stages["start"].iloc[0] == -1.0 and records["candidate"].iloc[0] == 42
    assert store.stage_intervals()["start"].iloc[0] == 0.0  # the store is not changed
    assert store.records()["candidate"].iloc[0] == 0


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 40)), max_size=12),
        max_size=6,
    )
)
def test_batches_of_any_keys_store_each_key_once_like_every_backend(
    batches: list[list[tuple[str, int]]],
) -> None:
    """Replays, gaps and out-of-order seqs over several batches and sources: each (source,
    seq) is stored once, at the first append that carries it, in every backend alike."""
    with tempfile.TemporaryDirectory() as folder:
        stores = [open_backend(name, Path(folder) / "store.db") for name in BACKENDS]
        try:
            seen: set[tuple[str, int]] = set()
            for i, batch in enumerate(batches):
                events = [
                    JobEvent(source=s, seq=q, ts=float(i), job=f"j{i}", change="started")
                    for s, q in batch
                ]
                expected = []
                for e in events:
                    if (e.source, e.seq) not in seen:
                        seen.add((e.source, e.seq))
                        expected.append(e)
                results = [store.append(events) for store in stores]
                for stored in results:
                    assert [s.event for s in stored] == expected
                assert [s.pos for s in results[0]] == [s.pos for s in results[1]]
            for source in ("a", "b", "c", "d"):
                assert len({store.max_seq(source) for store in stores}) == 1
            assert stores[0].read() == stores[1].read()
        finally:
            for store in stores:
                store.close()


def test_append_counting_counts_what_append_returns(store: BaseStore, make: EventFactory) -> None:
    events = sample(make)
    half = len(events) // 2
    assert store.append_counting(events[:half]) == half
    assert store.append_counting(events) == len(events) - half  # repeats are not new
    assert store.append_counting(events) == 0
    assert [s.event for s in store.read()] == events


def _as_fields(e: Event) -> Event | tuple[object, ...]:
    """A record as the fields tuple an importer hands ``append_imported``; others as they are."""
    return fields_of(e) if isinstance(e, RecordEvent) else e


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_records_as_fields_tuples_are_stored_as_their_events(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    events = data.draw(st.lists(events_strategy, max_size=10))
    with tempfile.TemporaryDirectory() as folder:
        for name in BACKENDS:
            plain = open_backend(name, Path(folder) / "plain.db")
            imported = open_backend(name, Path(folder) / "imported.db")
            try:
                count = plain.append_counting(events)
                assert imported.append_imported(map(_as_fields, events)) == count
                assert imported.read() == plain.read()
                assert imported.records().equals(plain.records())
                assert imported.append_imported(map(_as_fields, events)) == 0  # replayed
                assert imported.read() == plain.read()
            finally:
                plain.close()
                imported.close()


def test_only_append_imported_takes_fields_tuples(store: BaseStore, make: EventFactory) -> None:
    record = make.record(task="mm", candidate=0, run_secs=(1e-3,))
    with pytest.raises(TypeError, match="append takes events, got tuple"):
        store.append([_as_fields(record)])  # type: ignore[list-item]
    assert store.last_pos() == 0
    assert store.append_imported([make.job(), _as_fields(record)]) == 2
    assert store.record(2) == record
