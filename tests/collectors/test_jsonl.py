"""JSON lines: store -> file -> store gives identical events; bad lines stop cleanly."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors._base import BaseStore, Stored
from collectors.events import Event, EventError, from_json
from collectors.jsonl import ImportSummary, JsonlImportError, export_jsonl, import_jsonl
from collectors.memory_store import MemoryStore
from tests.collectors.storekit import BACKENDS, EventFactory, open_backend


def mixed(make: EventFactory) -> list[Event]:
    return [
        make.job("submitted", tasks=("mm",), trials=4),
        make.task("mm", shapes=((64, 64),), flops=5e5),
        make.stage(0.0, 1.5, stage="select", candidates=2),
        make.record(trace="sch.split(l0, [8, 8])\n", run_secs=(1e-3, 1.1e-3), predicted=0.2),
        make.record(candidate=1, error="timeout", error_class="timeout"),
        make.job("finished"),
    ]


def test_export_writes_every_event_in_position_order(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    stored = store.append(mixed(make))
    before = {p.name for p in tmp_path.iterdir()}
    path = tmp_path / "run.jsonl"
    assert export_jsonl(store, path) == len(stored)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [s.event.to_json() for s in stored]
    assert {p.name for p in tmp_path.iterdir()} - before == {"run.jsonl"}  # no partial file
    stream = io.StringIO()
    assert export_jsonl(store, stream) == len(stored)
    assert stream.getvalue() == path.read_text(encoding="utf-8")


def test_export_of_an_empty_store_writes_an_empty_file(store: BaseStore, tmp_path: Path) -> None:
    assert export_jsonl(store, tmp_path / "empty.jsonl") == 0
    assert (tmp_path / "empty.jsonl").read_text() == ""


def test_export_into_a_missing_folder_fails_and_leaves_nothing(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    store.append(mixed(make))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        export_jsonl(store, tmp_path / "missing" / "run.jsonl")
    assert sorted(tmp_path.iterdir()) == before


def test_export_takes_the_events_stored_when_it_starts(make: EventFactory) -> None:
    class GrowingStore(MemoryStore):
        """Appends an event on every read, like a run still in progress."""

        def read(self, after: int = 0, **kw: object) -> list[Stored]:
            out = super().read(after, **kw)  # type: ignore[arg-type]
            self.append([make.job("started")])
            return out

    growing = GrowingStore()
    growing.append(mixed(make))
    stream = io.StringIO()
    assert export_jsonl(growing, stream) == 6
    assert len(stream.getvalue().splitlines()) == 6


@pytest.mark.parametrize("target", BACKENDS)
def test_round_trip_between_stores_gives_identical_events(
    store: BaseStore, make: EventFactory, tmp_path: Path, target: str
) -> None:
    original = store.append(mixed(make))
    path = tmp_path / "run.jsonl"
    export_jsonl(store, path)
    copy = open_backend(target, tmp_path / "copy.db")
    try:
        summary = import_jsonl(path, copy, batch=4)
        assert summary == ImportSummary(read=6, stored=6, duplicates=0)
        assert [s.event for s in copy.read()] == [s.event for s in original]
        again = import_jsonl(path, copy)
        assert again == ImportSummary(read=6, stored=0, duplicates=6)
        assert copy.last_pos() == 6
    finally:
        copy.close()


def test_import_reads_iterables_of_lines_and_skips_blank_lines(
    store: BaseStore, make: EventFactory
) -> None:
    events = mixed(make)
    lines = [e.to_json() + "\n" for e in events]
    lines.insert(2, "\n")
    lines.insert(4, "   \n")
    assert import_jsonl(io.StringIO("".join(lines)), store).stored == 6
    encoded = [line.encode() for line in lines]
    assert import_jsonl(encoded, store) == ImportSummary(read=6, stored=0, duplicates=6)
    assert [s.event for s in store.read()] == events


def test_a_bad_line_stops_the_import_after_storing_the_lines_before_it(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    earlier = store.append([EventFactory("earlier-run").job()])
    events = mixed(make)
    lines = [e.to_json() for e in events]
    lines.insert(1, "")  # blank lines still count as lines
    lines[4] = lines[4].replace('"candidate":0', '"candidate":"zero"')
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(JsonlImportError) as info:
        import_jsonl(path, store, batch=2)
    error = info.value
    assert isinstance(error, EventError)
    assert str(error).startswith("line 5: record.candidate: expected int, got str")
    assert "3 events before it were imported" in str(error)
    assert error.line == 5
    assert error.summary == ImportSummary(read=3, stored=3, duplicates=0)
    assert [s.event for s in store.read()] == [earlier[0].event, *events[:3]]
    # Fixed, the file imports the rest and nothing twice.
    lines[4] = events[3].to_json()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_jsonl(path, store) == ImportSummary(read=6, stored=3, duplicates=3)
    assert [s.event for s in store.read()] == [earlier[0].event, *events]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"v":1,"kind":"job"', r"^line 2: event: not valid JSON"),
        (b"[1, 2]", r"^line 2: event: expected a JSON object, got list"),
        (b'{"v":2,"kind":"job"}', r"^line 2: v: unknown schema version 2"),
        (b"\xff\xfe not text", r"^line 2: not valid UTF-8"),
    ],
)
def test_bad_lines_are_named(
    store: BaseStore, make: EventFactory, bad: bytes, message: str
) -> None:
    good = make.job().to_json().encode()
    with pytest.raises(JsonlImportError, match=message):
        import_jsonl(io.BytesIO(good + b"\n" + bad + b"\n" + good), store)
    assert store.last_pos() == 1


def test_import_batch_must_be_positive(store: BaseStore) -> None:
    with pytest.raises(ValueError, match="batch: must be >= 1"):
        import_jsonl(io.StringIO(""), store, batch=0)


def test_import_of_a_missing_file_raises(store: BaseStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        import_jsonl(tmp_path / "nope.jsonl", store)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_events_survive_store_jsonl_store(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    events = data.draw(st.lists(events_strategy, max_size=10))
    with tempfile.TemporaryDirectory() as folder:
        for source_backend in BACKENDS:
            source = open_backend(source_backend, Path(folder) / f"{source_backend}-a.db")
            copy = open_backend(source_backend, Path(folder) / f"{source_backend}-b.db")
            try:
                source.append(events)
                stream = io.StringIO()
                export_jsonl(source, stream)
                stream.seek(0)
                import_jsonl(stream, copy)
                assert [s.event.to_json() for s in copy.read()] == [
                    s.event.to_json() for s in source.read()
                ]
                for line, item in zip(stream.getvalue().splitlines(), copy.read(), strict=True):
                    assert from_json(line) == item.event
            finally:
                source.close()
                copy.close()
