"""``record_traces`` on every store backend: a task's candidates with their traces, read in
one call, the same as reading the record events one by one."""

from __future__ import annotations

from collectors._base import BaseStore, RecordTrace
from collectors.events import RecordEvent
from tests.collectors.storekit import EventFactory


def test_record_traces_of_one_task_in_position_order(store: BaseStore, make: EventFactory):
    stored = store.append([
        make.job(),
        make.task("mm"),
        make.record(task="mm", candidate=0, trace="[[],[]]", run_secs=(1e-3, 3e-3),
                    origin="metaschedule"),
        make.record(task="conv", candidate=0, trace="other task"),
        make.record(task="mm", candidate=1, trace="[[1],[]]", error="segfault",
                    error_class="run"),
        make.record(task="mm", candidate=2, run_secs=(5e-4,), origin="ansor"),  # no trace
        make.record(task="mm", candidate=3, job="job-b", trace="other job"),
    ])  # fmt: skip
    got = store.record_traces("job-a", "mm")
    assert got == [
        RecordTrace(stored[2].pos, 2e-3, None, "metaschedule", "[[],[]]"),
        RecordTrace(stored[4].pos, None, "segfault", None, "[[1],[]]"),
        RecordTrace(stored[5].pos, 5e-4, None, "ansor", None),
    ]
    # The same as the events read one by one, mean seconds to the bit.
    for row in got:
        event = store.record(row.pos)
        assert isinstance(event, RecordEvent) and row.mean_secs == event.mean_secs
    # Only what came after a position (an incremental refresh reads just that).
    assert store.record_traces("job-a", "mm", after=stored[4].pos) == got[2:]
    assert store.record_traces("job-a", "mm", after=stored[-1].pos) == []
    assert store.record_traces("job-a", "never stored") == []
    assert store.record_traces("no such job", "mm") == []
