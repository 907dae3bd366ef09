"""Appends inside ``appending_in_bulk`` (the WAL checkpointed by a thread of its own) store
exactly what plain appends store, and the WAL is still checkpointed."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors import _sqlite_checkpoint
from collectors._base import StoreError
from collectors.sqlite_store import SQLiteStore
from tests.collectors.storekit import EventFactory


def _events(count: int) -> list:  # type: ignore[type-arg]
    make = EventFactory()
    out = [make.job(), make.task()]
    for i in range(count):
        out.append(make.record(candidate=i, run_secs=(1e-3 + i * 1e-6,), trace="x" * 2000))
    return out


def test_bulk_appends_store_what_plain_appends_store(tmp_path: Path) -> None:
    events = _events(6000)
    stored = {}
    for name, bulk in (("plain", False), ("bulk", True)):
        with SQLiteStore(tmp_path / f"{name}.db") as store:
            if bulk:
                with store.appending_in_bulk(), store.appending_in_bulk():  # nested: one thread
                    for at in range(0, len(events), 500):
                        store.append(events[at : at + 500])
                    store.append(events[:10])  # already stored: nothing new
            else:
                for at in range(0, len(events), 500):
                    store.append(events[at : at + 500])
            stored[name] = [(s.pos, s.event) for s in store.read()]
    assert stored["bulk"] == stored["plain"]
    assert len(stored["bulk"]) == len(events)


def test_bulk_appends_checkpoint_the_wal_and_restore_the_writer_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_checkpoint, "CHECKPOINT_PAGES", 64)  # 512 KiB
    monkeypatch.setattr(_sqlite_checkpoint, "WAL_LIMIT_PAGES", 256)  # 2 MiB
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        before = store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # type: ignore[union-attr]
        with store.appending_in_bulk():
            assert store._checkpointer is not None
            events = _events(20000)  # ~40 MB of traces: more than one automatic checkpoint
            for at in range(0, len(events), 2000):
                store.append(events[at : at + 2000])
        assert store._checkpointer is None
        assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == before  # type: ignore[union-attr]
        # Appending back to back, the WAL was still started over: it stayed within the
        # limit and the batches (4 MB each) the thread may be behind by, of the 40 MB stored.
        limit = (256 + _sqlite_checkpoint.MAX_BEHIND * 512) * 8192
        assert (tmp_path / "s.db-wal").stat().st_size < limit < path.stat().st_size


def test_bulk_appends_need_a_writable_store(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.db").close()
    store = SQLiteStore(tmp_path / "s.db", read_only=True)
    with store, pytest.raises(StoreError), store.appending_in_bulk():
        pass
