"""The import driver against every store backend: batches, summaries, idempotency, safety."""

from __future__ import annotations

import contextlib
import gc
import shutil
import weakref
from pathlib import Path
from typing import Any

import pytest

from collectors._base import BaseStore
from collectors.events import RecordEvent, write_jsonl
from collectors.importers import LogFormatError, import_file, import_paths, readable_trace
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB
from tests.collectors.storekit import EventFactory


def test_summary_counts_workloads_and_best(store: BaseStore) -> None:
    (summary,) = import_paths([AUTOTVM_SMALL], store)
    got = summary.to_dict()
    assert (got["format"], got["records"], got["valid"], got["bad_lines"]) == ("autotvm", 6, 4, 0)
    assert got["workloads"] == [
        {"key": "dense_nopack.x86(1x64, 32x64)", "records": 4, "valid": 3,
         "best_mean_cost_s": pytest.approx(1.1e-05)},
        {"key": "batch_matmul.x86(2x16x8, 2x4x8)", "records": 2, "valid": 1,
         "best_mean_cost_s": 5.0e-06},
    ]  # fmt: skip
    assert got["events"] == got["stored"] == store.last_pos()
    assert got["jobs"] == [store.jobs()["job"].iloc[0]]


def test_store_views_after_import(store: BaseStore) -> None:
    import_paths([AUTOTVM_SMALL, ANSOR_SMALL, MS_DB], store, use_tvm=False)
    jobs = store.jobs()
    assert list(jobs["state"]) == ["finished"] * 3
    recs = store.records()
    assert len(recs) == 6 + 5 + 6
    assert recs["error_class"].notna().sum() == 2 + 2 + 1
    assert set(store.tasks()["op"]) == {
        "dense_nopack.x86", "batch_matmul.x86", "compute_dag", "matmul_add", "matmul16",
        "scale_relu64",
    }  # fmt: skip
    intervals = store.stage_intervals()
    assert len(intervals) == 3 + 3  # the MetaSchedule database has no timeline
    # the full event keeps the trace for the inspector, which reads it as text
    first = store.record(int(recs["pos"].iloc[0]))
    assert isinstance(first, RecordEvent) and first.origin == "autotvm"
    assert "tile_x=[-1, 8]  (split)" in (readable_trace(first) or "")


def test_reimport_adds_nothing(store: BaseStore) -> None:
    first = import_paths([AUTOTVM_SMALL, MS_DB], store, use_tvm=False)
    before = store.last_pos()
    second = import_paths([AUTOTVM_SMALL, MS_DB], store, use_tvm=False)
    assert store.last_pos() == before
    assert [s.stored for s in second] == [0, 0]
    assert [s.source for s in first] == [s.source for s in second]
    # the same database given as its record file is the same source
    (again,) = import_paths([MS_DB / "database_tuning_record.json"], store, use_tvm=False)
    assert again.stored == 0


def test_a_copy_elsewhere_is_the_same_source(store: BaseStore, tmp_path: Path) -> None:
    shutil.copy(AUTOTVM_SMALL, tmp_path / "renamed.log")
    import_paths([AUTOTVM_SMALL], store)
    (summary,) = import_paths([tmp_path / "renamed.log"], store)
    assert summary.stored == 0


def test_an_edited_file_is_a_new_source(store: BaseStore, tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    shutil.copy(AUTOTVM_SMALL, path)
    (first,) = import_paths([path], store)
    with open(path, "a") as stream:
        stream.write(AUTOTVM_SMALL.read_text().splitlines()[2] + "\n")
    (second,) = import_paths([path], store)
    assert second.source != first.source
    assert second.jobs != first.jobs
    assert second.stored == second.events


def test_unknown_file_among_good_ones_stores_nothing(store: BaseStore, tmp_path: Path) -> None:
    import_paths([ANSOR_SMALL], store)
    before = store.last_pos()
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    with pytest.raises(LogFormatError, match=r"notes\.txt"):
        import_paths([AUTOTVM_SMALL, bad], store)
    assert store.last_pos() == before  # detection runs before anything is stored
    assert len(store.records()) == 5  # the earlier import is intact


def test_bad_lines_are_reported_and_good_lines_stored(store: BaseStore, tmp_path: Path) -> None:
    lines = AUTOTVM_SMALL.read_text().splitlines()
    lines[4] = lines[4][:50]  # line 5 is cut short
    path = tmp_path / "cut.log"
    path.write_text("\n".join(lines) + "\n")
    (summary,) = import_paths([path], store)
    assert summary.bad_lines == 1
    assert summary.bad_line_details[0]["line"] == 5
    assert "not valid JSON" in summary.bad_line_details[0]["reason"]
    assert len(store.records()) == summary.records == 5


def test_small_batches_store_everything(store: BaseStore) -> None:
    summary = import_file(ANSOR_SMALL, store, batch_size=2)
    assert summary.stored == summary.events == store.last_pos() == 12


def test_tuneloom_jsonl_keeps_sources_and_counts_bad_lines(
    store: BaseStore, make: EventFactory, tmp_path: Path
) -> None:
    events = [
        make.job("submitted", job="j1"),
        make.task("mm", job="j1"),
        make.record(task="mm", job="j1", run_secs=(2e-3,)),
        make.record(task="mm", job="j1", candidate=1, run_secs=(1e-3, 3e-3)),
        make.record(task="mm", job="j1", candidate=2, error="boom", error_class="build"),
        make.stage(1.0, 2.0, job="j1", task="mm"),
    ]
    path = tmp_path / "run.jsonl"
    with open(path, "w") as stream:
        write_jsonl(events[:3], stream)
        stream.write('{"v": 1, "kind": "record", "job": "j1"}\n')  # line 4: missing fields
        stream.write("{truncat\n")  # line 5
        write_jsonl(events[3:], stream)
    (summary,) = import_paths([path], store)
    assert summary.format == "tuneloom"
    assert (summary.records, summary.valid, summary.bad_lines) == (3, 2, 2)
    assert [d["line"] for d in summary.bad_line_details] == [4, 5]
    assert summary.workloads[0].to_dict() == {
        "key": "j1/mm", "records": 3, "valid": 2, "best_mean_cost_s": 2e-3,
    }  # fmt: skip
    assert [s.event for s in store.read()] == events  # source and seq kept as they were
    (again,) = import_paths([path], store)
    assert again.stored == 0


def test_without_a_store_events_are_only_counted() -> None:
    (summary,) = import_paths([ANSOR_SMALL], None)
    assert summary.stored == summary.events == 12


class _CycleMakingStore:
    """A store that leaves a reference cycle behind at each append and notes, at the next,
    whether the cyclic garbage collector has freed the one before."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.last: weakref.ref[_Node] | None = None
        self.freed: list[bool] = []
        self.collector_enabled: list[bool] = []

    def appending_in_bulk(self) -> Any:
        return contextlib.nullcontext()

    def append_imported(self, items: list[Any]) -> int:
        if self.fail:
            raise OSError("disk full")
        if self.last is not None:
            self.freed.append(self.last() is None)
        self.collector_enabled.append(gc.isenabled())
        node = _Node()
        node.itself = node
        self.last = weakref.ref(node)
        return len(items)


class _Node:
    itself: Any = None


def test_an_import_frees_its_cyclic_garbage_after_each_batch() -> None:
    store = _CycleMakingStore()
    summary = import_file(ANSOR_SMALL, store, batch_size=2)  # type: ignore[arg-type]
    assert summary.events == 12 and len(store.freed) == 5
    assert all(store.freed)  # collected batch by batch, not only once the import ends
    assert not any(store.collector_enabled)  # no automatic collection walks a batch
    assert gc.isenabled()


def test_an_import_leaves_the_collector_as_it_found_it() -> None:
    with pytest.raises(OSError, match="disk full"):
        import_file(ANSOR_SMALL, _CycleMakingStore(fail=True), batch_size=2)  # type: ignore[arg-type]
    assert gc.isenabled()
    gc.disable()
    try:
        import_file(ANSOR_SMALL, None)
        assert not gc.isenabled()
    finally:
        gc.enable()
