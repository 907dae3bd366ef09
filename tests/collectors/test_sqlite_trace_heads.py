"""MetaSchedule traces stored as a shared instruction list (``trace_heads``) plus each
record's decisions: every reading gives back the trace text exactly as appended."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors._base import StoreError
from collectors._sqlite_schema import split_trace
from collectors.events import RecordEvent
from collectors.importers import metaschedule
from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import MS_DB

MS_TRACES = [
    metaschedule._parse_record(line)[2]
    for line in (MS_DB / "database_tuning_record.json").read_text().splitlines()
]


def record(seq: int, trace: str | None, task: str = "t") -> RecordEvent:
    return RecordEvent(
        source="run", seq=seq, ts=float(seq), job="j", task=task, candidate=seq,
        run_secs=(1e-3,), trace=trace, origin="metaschedule",
    )  # fmt: skip


def heads_stored(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM trace_heads").fetchone()[0]
    finally:
        conn.close()


def test_the_fixture_traces_split_where_their_decisions_start() -> None:
    split = 0
    for trace in MS_TRACES:
        assert trace.startswith("[[[")
        parts = split_trace(trace)
        if trace.endswith("]],[]]"):  # no decisions: kept whole
            assert parts is None
            continue
        assert parts is not None
        head, rest = parts
        assert head + rest == trace
        assert head.endswith("]]") and rest.startswith(",[[") and rest.count("]],[[") == 0
        split += 1
    assert split == 5


def test_records_sharing_an_instruction_list_store_it_once(tmp_path: Path) -> None:
    trace = MS_TRACES[0]
    head, _ = split_trace(trace)  # type: ignore[misc]
    other = head + ",[[4,[2,2,2,2]]]]"  # the same instructions, other decisions
    assert split_trace(other) == (head, ",[[4,[2,2,2,2]]]]") and other != trace
    events = [record(0, trace), record(1, other), record(2, trace, task="u")]
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.append(events[:2])
        store.append(events[2:])
        assert [s.event for s in store.read()] == events
    assert heads_stored(path) == 1
    with SQLiteStore(path) as store:  # a new process does not know the head: stored again
        store.append([record(3, trace)])
        assert store.record(4) == record(3, trace)
        assert [r.trace for r in store.record_traces("j", "t")] == [trace, other, trace]
    assert heads_stored(path) == 2


def test_a_failed_append_caches_no_head(tmp_path: Path) -> None:
    trace = MS_TRACES[1]
    with SQLiteStore(tmp_path / "s.db") as store:
        too_big = record(1, None)
        object.__setattr__(too_big, "candidate", 2**64)  # as if a reader let it through
        with pytest.raises(StoreError, match="64 bits"):
            store.append([record(0, trace), too_big])
        assert store.read() == []
        store.append([record(0, trace)])  # its head was rolled back: written again
        assert store.record(1) == record(0, trace)


_PIECES = st.sampled_from(["[[[", "]],[[", "]]", ",", "[", "]", '"a"', "1", "\x00", "é", "𝄞"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_PIECES | st.text(max_size=40), max_size=60).map("".join), max_size=8))
def test_any_trace_reads_back_exactly(tmp_path_factory, texts: list[str]) -> None:
    # Long MetaSchedule-looking texts, split or not, and any other text.
    traces = [t if i % 2 else "[[[" + "x" * 200 + t for i, t in enumerate(texts)]
    events = [record(i, t) for i, t in enumerate(traces)]
    path = tmp_path_factory.mktemp("heads") / "s.db"
    with SQLiteStore(path) as store:
        store.append(events)
        store.append(events)  # nothing new: idempotent
        assert [s.event for s in store.read()] == events
        assert [store.record(i + 1) for i in range(len(events))] == events
        assert [r.trace for r in store.record_traces("j", "t")] == traces
