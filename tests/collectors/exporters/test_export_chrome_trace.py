"""Chrome trace export: structure, counts, tracks per resource, jobs as colours, streaming."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from collectors._base import BaseStore
from collectors.exporters import chrome_trace, export_chrome_trace
from collectors.exporters.chrome_trace import ERROR_COLOUR, pool_of, stages_of
from collectors.sqlite_store import SQLiteStore
from tests.collectors.storekit import EventFactory


def _fill(store: BaseStore, make: EventFactory) -> None:
    store.append(
        [
            make.job("submitted", job="a"),
            make.stage(10.0, 10.5, job="a", stage="select", resource="client:0"),
            make.stage(10.5, 11.25, job="a", stage="build", resource="client:0", iteration=0),
            make.record(job="a"),
            make.stage(11.25, 12.0, job="a", stage="profile", resource="device:llvm:0",
                       candidates=16),
            make.stage(11.0, 11.5, job="b", stage="profile", resource="device:llvm:1",
                       status="error", error="runner crashed"),
            make.stage(12.0, 12.125, job="b", stage="update", resource="client:0", clock="sim"),
            make.task("mm", job="b"),
        ]
    )  # fmt: skip


def _load(path: Path) -> dict[str, Any]:
    with open(path) as stream:
        return json.load(stream)


def test_document_structure_and_counts(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    _fill(store, make)
    out = tmp_path / "trace.json"
    summary = export_chrome_trace(store, out)
    doc = _load(out)
    assert doc["displayTimeUnit"] == "ms"
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert len(complete) == summary.stages == 5
    assert (summary.resources, summary.pools, summary.jobs) == (3, 2, 2)
    processes = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert sorted(processes.values()) == ["client", "device:llvm"]
    assert sorted(threads.values()) == ["client:0", "device:llvm:0", "device:llvm:1"]
    for event in complete:  # every stage sits on the track of its resource, in its pool
        track = threads[(event["pid"], event["tid"])]
        assert processes[event["pid"]] == pool_of(track)
    build = next(e for e in complete if e["args"]["stage"] == "build")
    assert (build["ts"], build["dur"]) == (10.5e6, 0.75e6)
    assert build["args"] == {
        "job": "a", "task": "matmul-64", "iteration": 0, "stage": "build", "status": "ok",
    }  # fmt: skip
    assert build["name"] == "a build" and build["cat"] == "a"


def test_jobs_get_colours_and_errors_stand_out(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    _fill(store, make)
    export_chrome_trace(store, tmp_path / "t.json")
    complete = [e for e in _load(tmp_path / "t.json")["traceEvents"] if e["ph"] == "X"]
    colour = {e["args"]["job"]: e["cname"] for e in complete if e["args"]["status"] == "ok"}
    assert colour["a"] != colour["b"]
    failed = next(e for e in complete if e["args"]["status"] == "error")
    assert failed["cname"] == ERROR_COLOUR and failed["args"]["error"] == "runner crashed"
    sim = next(e for e in complete if e["args"]["stage"] == "update")
    assert sim["args"]["clock"] == "sim"
    profile = next(e for e in complete if e["args"].get("candidates"))
    assert profile["args"]["candidates"] == 16


def test_job_filter(store: BaseStore, make: EventFactory, tmp_path: Path) -> None:
    _fill(store, make)
    summary = export_chrome_trace(store, tmp_path / "t.json", jobs=["b"])
    complete = [e for e in _load(tmp_path / "t.json")["traceEvents"] if e["ph"] == "X"]
    assert summary.stages == 2
    assert {e["args"]["job"] for e in complete} == {"b"}


def test_empty_store_gives_a_valid_empty_trace(store: BaseStore, tmp_path: Path) -> None:
    summary = export_chrome_trace(store, tmp_path / "t.json")
    assert summary.stages == 0
    assert _load(tmp_path / "t.json")["traceEvents"] == []


def test_pages_cover_every_stage(
    store: BaseStore, make: EventFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chrome_trace, "PAGE", 3)
    events = []
    for i in range(20):
        events.append(make.stage(float(i), i + 0.5, iteration=i, resource=f"device:llvm:{i % 4}"))
        events.append(make.record(candidate=i))
    store.append(events)
    assert [s.iteration for s in stages_of(store)] == list(range(20))
    assert export_chrome_trace(store, tmp_path / "t.json").stages == 20


def test_failed_export_leaves_no_partial_file(
    store: BaseStore, make: EventFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store, make)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "t.json"

    def broken(*args: Any, **kwargs: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(chrome_trace, "_complete", broken)
    with pytest.raises(OSError, match="disk full"):
        export_chrome_trace(store, out)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("resource", "pool"),
    [("device:llvm:0", "device:llvm"), ("client:3", "client"),
     ("device:rpc:pi:12", "device:rpc:pi"), ("gpu", "gpu"), ("device:x", "device:x")],
)  # fmt: skip
def test_pool_of(resource: str, pool: str) -> None:
    assert pool_of(resource) == pool


def test_export_memory_is_flat_in_the_number_of_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chrome_trace, "PAGE", 500)
    peaks = []
    for n in (1_000, 10_000):
        make = EventFactory()
        with SQLiteStore(tmp_path / f"{n}.db") as store:
            store.append(
                make.stage(float(i), i + 0.5, iteration=i, resource=f"device:llvm:{i % 3}")
                for i in range(n)
            )
            tracemalloc.start()
            try:
                assert export_chrome_trace(store, tmp_path / f"{n}.json").stages == n
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0], peaks  # ten times the stages, not ten times the memory
