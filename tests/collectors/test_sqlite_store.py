"""SQLiteStore specifics: files on disk, several processes, foreign files left untouched."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from collectors._base import StoreError
from collectors.events import EventError, JobEvent, RecordEvent
from collectors.sqlite_store import APPLICATION_ID, STORE_SCHEMA_VERSION, SQLiteStore
from tests.collectors.storekit import EventFactory, append_from_process


def snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """A file's bytes and mtime, and what its folder holds."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def test_new_store_is_marked_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    header = path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert int.from_bytes(header[60:64], "big") == STORE_SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == STORE_SCHEMA_VERSION
        indices = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='index'")}
        assert {"job_task_events_kind", "stages_start"} <= indices
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert tables == {
            "meta", "names", "seq_runs", "job_task_events", "stages", "records", "traces",
            "trace_heads",
        }  # fmt: skip
    finally:
        conn.close()


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as store:
        store.append([EventFactory().job()])
    with SQLiteStore(path) as store:
        assert store.last_pos() == 1


def test_reopening_keeps_events_and_positions_continue(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make = EventFactory()
    with SQLiteStore(path) as store:
        first = store.append([make.job(), make.stage(0.0, 1.0)])
    assert sorted(os.listdir(tmp_path)) == ["store.db"]  # closing checkpoints the WAL
    with SQLiteStore(path) as store:
        assert store.read() == first
        assert store.max_seq(make.source) == 1
        more = store.append([make.job("started")])
        assert more[0].pos == first[-1].pos + 1
        assert store.stage_intervals(start=0.5)["pos"].tolist() == [first[1].pos]


FOREIGN_BYTES = b"name,latency\nmatmul,1.5\n" * 20


def _other_app_db(path: Path, application_id: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute(f"PRAGMA application_id = {application_id}")
    conn.commit()
    conn.close()


def _newer_store(path: Path) -> None:
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda p: p.write_bytes(FOREIGN_BYTES), r"not a tuneloom store \(not an SQLite"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00short"), r"not an SQLite database"),
        (lambda p: _other_app_db(p, 0), r"SQLite database of another application"),
        (lambda p: _other_app_db(p, 0x12345678), r"another application, application_id 0x12345678"),
        (
            _newer_store,
            rf"schema version {STORE_SCHEMA_VERSION + 1}, newer than this build reads "
            rf"\({STORE_SCHEMA_VERSION}\)",
        ),
    ],
    ids=["text", "short", "sqlite-no-id", "sqlite-other-id", "newer-version"],
)
def test_foreign_file_is_refused_and_left_untouched(
    tmp_path: Path, make_file: object, message: str, read_only: bool
) -> None:
    path = tmp_path / "data.db"
    make_file(path)  # type: ignore[operator]
    before = snapshot(path)
    with pytest.raises(StoreError, match=message) as info:
        SQLiteStore(path, read_only=read_only)
    assert str(path) in str(info.value)
    assert snapshot(path) == before


def test_a_folder_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "nowhere" / "store.db")


def test_read_only_sees_the_data_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make = EventFactory()
    with SQLiteStore(path) as store:
        stored = store.append([make.job(), make.stage(0.0, 1.0)])
    before = path.read_bytes()
    with SQLiteStore(path, read_only=True) as viewer:
        assert viewer.read() == stored
        assert len(viewer.stage_intervals()) == 1
        with pytest.raises(StoreError, match="read-only"):
            viewer.append([make.job("started")])
        with pytest.raises(StoreError, match="read-only"):
            viewer.append([])
    assert path.read_bytes() == before


def test_read_only_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no tuneloom store there"):
        SQLiteStore(tmp_path / "missing.db", read_only=True)
    assert os.listdir(tmp_path) == []


def test_a_viewer_sees_what_a_writer_appends_later(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    make = EventFactory()
    with SQLiteStore(path) as writer, SQLiteStore(path, read_only=True) as viewer:
        assert viewer.last_pos() == 0
        stored = writer.append([make.job(), make.stage(0.0, 1.0)])
        assert viewer.read() == stored
        assert viewer.max_seq(make.source) == 1


def test_values_sqlite_cannot_hold_never_reach_the_store(sqlite_store: SQLiteStore) -> None:
    make = EventFactory()
    with pytest.raises(EventError, match=r"stage\.iteration: .* does not fit in 64 bits"):
        make.stage(0.0, 1.0, iteration=2**64)
    with pytest.raises(EventError, match=r"stage\.task: not valid UTF-8 text"):
        make.stage(0.0, 1.0, task="bad \ud800")
    assert sqlite_store.last_pos() == 0
    assert sqlite_store.append([make.job()])[0].pos == 1


def test_a_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append([EventFactory().job()])
    with pytest.raises(StoreError, match="closed"):
        store.read()


def test_threads_share_one_store(sqlite_store: SQLiteStore) -> None:
    errors: list[BaseException] = []

    def work(source: str) -> None:
        try:
            make = EventFactory(source)
            for i in range(40):
                sqlite_store.append([make.stage(float(i), float(i) + 1.0)])
                sqlite_store.read(after=max(0, sqlite_store.last_pos() - 5))
                sqlite_store.stage_intervals(start=float(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"run-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    positions = [s.pos for s in sqlite_store.read()]
    assert positions == list(range(1, 161))
    assert all(sqlite_store.max_seq(f"run-{n}") == 39 for n in range(4))


@pytest.mark.parametrize("create_first", [True, False])
def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path, create_first: bool) -> None:
    path = tmp_path / "shared.db"
    if create_first:
        SQLiteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    start, times = ctx.Barrier(2), ctx.Queue()
    count, batch = 1500, 25
    workers = [
        ctx.Process(
            target=append_from_process, args=(str(path), f"proc-{n}", count, batch, start, times)
        )
        for n in range(2)
    ]
    for w in workers:
        w.start()
    spans = [times.get(timeout=240) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1  # the two writers ran at the same time
    with SQLiteStore(path, read_only=True) as store:
        stored = store.read()
        assert [s.pos for s in stored] == list(range(1, 2 * count + 1))
        for n in range(2):
            seqs = [s.event.seq for s in stored if s.event.source == f"proc-{n}"]
            assert seqs == list(range(count))
        sources = [s.event.source for s in stored]
        switches = sum(a != b for a, b in itertools.pairwise(sources))
        assert switches > 10  # their transactions interleaved, batch by batch


def query_plan(store: SQLiteStore, sql: str, params: tuple[object, ...]) -> str:
    conn = sqlite3.connect(store.path)
    try:
        return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()


def test_time_window_and_job_queries_use_the_indices(sqlite_store: SQLiteStore) -> None:
    window = 'SELECT pos FROM stages WHERE job IN (?) AND start >= ? AND "end" >= ? AND start <= ?'
    assert "stages_start" in query_plan(sqlite_store, window, (1, 0.0, 1.0, 2.0))
    jobs = "SELECT pos, body FROM job_task_events WHERE kind = 'job'"
    assert "job_task_events_kind" in query_plan(sqlite_store, jobs, ())
    tasks = "SELECT pos, body FROM job_task_events WHERE job IN (?) AND kind = 'task'"
    assert "job_task_events_kind" in query_plan(sqlite_store, tasks, (1,))


def test_repr_names_the_file(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        assert "s.db" in repr(store)
        assert isinstance(store.append([EventFactory().job()])[0].event, JobEvent)


def test_a_failed_append_of_new_names_leaves_the_names_right(tmp_path: Path) -> None:
    # The batch's names are added, the append fails and rolls back: they must not stay
    # cached under ids that later appends give to other names.
    fine = RecordEvent(source="run", seq=0, ts=0.0, job="j", task="t", candidate=0)
    too_big = RecordEvent(source="run", seq=1, ts=1.0, job="j", task="t", candidate=1)
    object.__setattr__(too_big, "candidate", 2**64)  # as if a reader let it through
    with SQLiteStore(tmp_path / "s.db") as store:
        with pytest.raises(StoreError, match="64 bits"):
            store.append([fine, too_big])
        assert store.read() == []
        store.append([fine])
        assert store.read()[0].event == fine
    with SQLiteStore(tmp_path / "s.db", read_only=True) as store:
        assert store.read()[0].event == fine
