"""Stores written by an older tuneloom: upgraded in place when opened for writing; opened
read-only, a schema-2 store is read as it is and a schema-1 store refused, both left
untouched; a failed upgrade leaves the file as it was.

``data/store_v1.db`` was written by tuneloom's schema-1 SQLiteStore (a journal table beside
the typed tables); ``data/store_v1.jsonl`` holds the same events, written at the same time.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from collectors._base import StoreError
from collectors.events import JobEvent, StageEvent, read_jsonl
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import STORE_SCHEMA_VERSION, SQLiteStore

DATA = Path(__file__).resolve().parent / "data"
V1_STORE = DATA / "store_v1.db"
V1_EVENTS = DATA / "store_v1.jsonl"


def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(V1_STORE, path)
    return path


def header_version(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[60:64], "big")


def expected_events() -> list:
    with open(V1_EVENTS, encoding="utf-8") as stream:
        return list(read_jsonl(stream))


def test_the_fixture_is_a_schema_1_store() -> None:
    assert header_version(V1_STORE) == 1
    assert STORE_SCHEMA_VERSION > 1


def test_opening_for_writing_upgrades_and_keeps_every_event(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    events = expected_events()
    with SQLiteStore(path) as store:
        stored = store.read()
        assert [s.event for s in stored] == events
        assert [s.pos for s in stored] == list(range(1, len(events) + 1))
        assert store.max_seq("run-v1") == max(e.seq for e in events if e.source == "run-v1")
        assert store.max_seq("sim-b") == 9
        for s in stored:
            assert store.record(s.pos) == s.event
    assert header_version(path) == STORE_SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert "events" not in tables
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == STORE_SCHEMA_VERSION
    finally:
        conn.close()


def test_an_upgraded_store_answers_queries_like_a_fresh_one(tmp_path: Path) -> None:
    events = expected_events()
    fresh = MemoryStore()
    fresh.append(events)
    with SQLiteStore(v1_copy(tmp_path)) as store:
        for query in ("stage_intervals", "records", "jobs", "tasks"):
            got, want = getattr(store, query)(), getattr(fresh, query)()
            assert got.equals(want), query
        window = store.stage_intervals(job="job-a", start=2.0, end=4.0)
        assert window.equals(fresh.stage_intervals(job="job-a", start=2.0, end=4.0))


def test_idempotence_survives_the_upgrade(tmp_path: Path) -> None:
    events = expected_events()
    with SQLiteStore(v1_copy(tmp_path)) as store:
        assert store.append(events) == []
        # sim-b stored seqs 2, 4 and 9: the gaps are still free.
        gap = JobEvent(source="sim-b", seq=3, ts=1.0, job="job-b", clock="sim", change="paused")
        late = StageEvent(
            source="run-v1", seq=1000, ts=2.0, job="job-a", task="mm", iteration=9,
            stage="build", resource="client:0", start=1.0, end=2.0,
        )  # fmt: skip
        stored = store.append([gap, events[5], late, gap])
        assert [s.event for s in stored] == [gap, late]
        assert [s.pos for s in stored] == [len(events) + 1, len(events) + 2]
        assert store.max_seq("run-v1") == 1000


def test_read_only_opening_refuses_an_old_store_and_changes_nothing(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"schema version 1, written by an older tuneloom") as info:
        SQLiteStore(path, read_only=True)
    assert str(path) in str(info.value) and "without read-only" in str(info.value)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["old.db"]


def test_a_failed_upgrade_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE stages SET row = x'00' WHERE pos = (SELECT min(pos) FROM stages)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"cannot upgrade .* schema version 1 .* left unchanged"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert header_version(path) == 1
    assert sorted(os.listdir(tmp_path)) == ["old.db"]


# ``data/store_v2.db`` was written by tuneloom's schema-2 SQLiteStore (traces kept whole)
# from the importer fixtures (a MetaSchedule database, an AutoTVM and an Ansor log);
# ``data/store_v2.jsonl`` holds the same events.
V2_STORE = DATA / "store_v2.db"
V2_EVENTS = DATA / "store_v2.jsonl"


def v2_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(V2_STORE, path)
    return path


def v2_events() -> list:
    with open(V2_EVENTS, encoding="utf-8") as stream:
        return list(read_jsonl(stream))


def test_the_v2_fixture_is_a_schema_2_store_with_metaschedule_traces() -> None:
    assert header_version(V2_STORE) == 2
    origins = {e.origin for e in v2_events() if e.kind == "record"}
    assert origins == {"metaschedule", "autotvm", "ansor"}


def test_a_schema_2_store_is_upgraded_and_keeps_every_event(tmp_path: Path) -> None:
    path = v2_copy(tmp_path)
    events = v2_events()
    fresh = MemoryStore()
    fresh.append(events)
    with SQLiteStore(path) as store:
        stored = store.read()
        assert [s.event for s in stored] == events
        for s in stored:
            assert store.record(s.pos) == s.event
        for query in ("stage_intervals", "records", "jobs", "tasks"):
            assert getattr(store, query)().equals(getattr(fresh, query)()), query
        for job, task in {(e.job, e.task) for e in events if e.kind == "record"}:
            assert store.record_traces(job, task) == fresh.record_traces(job, task)
        # New MetaSchedule records after the upgrade share instruction lists, old ones
        # stay whole; both read back as appended.
        ms = [e for e in events if e.kind == "record" and e.origin == "metaschedule"]
        again = [replace(e, source="again") for e in ms]
        store.append(again)
        assert [s.event for s in store.read(after=stored[-1].pos)] == again
    assert header_version(path) == STORE_SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM traces WHERE head IS NOT NULL").fetchone() == (
            sum(e.trace is not None and not e.trace.endswith(",[]]") for e in again),
        )
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == 3
    finally:
        conn.close()


def test_read_only_opening_reads_a_schema_2_store_as_it_is_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = v2_copy(tmp_path)
    before = path.read_bytes()
    events = v2_events()
    fresh = MemoryStore()
    fresh.append(events)
    with SQLiteStore(path, read_only=True) as store:
        stored = store.read()
        assert [s.event for s in stored] == events
        assert all(store.record(s.pos) == s.event for s in stored)
        for query in ("stage_intervals", "records", "jobs", "tasks"):
            assert getattr(store, query)().equals(getattr(fresh, query)()), query
        for job, task in {(e.job, e.task) for e in events if e.kind == "record"}:
            assert store.record_traces(job, task) == fresh.record_traces(job, task)
    assert path.read_bytes() == before
    assert header_version(path) == 2


def test_a_failed_upgrade_from_2_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = v2_copy(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE trace_heads (x)")  # in the way of the upgrade
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"cannot upgrade .* schema version 2 .* left unchanged"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert header_version(path) == 2
