"""Import driver: detect, stream events into a store in batches, summarize.

Memory stays constant in the file size: importers yield one event at a time, the driver holds
one batch and one small summary row per workload.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors._frames import gc_paused
from collectors.events import Event, RecordEvent, mean_secs_of
from collectors.importers import ansor, autotvm, metaschedule, tuneloom_jsonl
from collectors.importers._common import ImportContext, job_id, source_id
from collectors.importers.detect import Detected, detect
from collectors.importers.timeline import DEFAULT_GAP_S
from collectors.record_fields import MEAN_SECS, RECORD_FIELDS, record_fields

BATCH_SIZE = 5000  # events per append: one transaction each


@dataclass
class WorkloadSummary:
    """Counts for one workload (one task) of an imported file."""

    key: str
    records: int = 0
    valid: int = 0
    best_mean_cost_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "records": self.records,
            "valid": self.valid,
            "best_mean_cost_s": self.best_mean_cost_s,
        }


@dataclass
class FileSummary:
    """What one imported file held. ``valid`` counts records measured without error."""

    path: str
    format: str
    source: str | None
    jobs: list[str] = field(default_factory=list)
    records: int = 0
    valid: int = 0
    bad_lines: int = 0
    bad_line_details: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[WorkloadSummary] = field(default_factory=list)
    events: int = 0
    stored: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "source": self.source,
            "jobs": list(self.jobs),
            "records": self.records,
            "valid": self.valid,
            "bad_lines": self.bad_lines,
            "bad_line_details": list(self.bad_line_details),
            "workloads": [w.to_dict() for w in self.workloads],
            "events": self.events,
            "stored": self.stored,
            "notes": list(self.notes),
        }


def context_for(
    detected: Detected,
    *,
    use_tvm: bool = True,
    gap_s: float = DEFAULT_GAP_S,
    workers: int | None = None,
) -> ImportContext:
    """The import context of a detected file: its source id and readable job id."""
    source = source_id(detected.format, *detected.files)
    if detected.database is not None:
        stem = detected.database.directory.resolve().name
    else:
        stem = detected.path.name.removesuffix(".json").removesuffix(".log").removesuffix(".jsonl")
    return ImportContext(
        source=source,
        job=job_id(detected.format, stem, source),
        path=detected.path,
        use_tvm=use_tvm,
        gap_s=gap_s,
        workers=workers,
    )


def iter_events(detected: Detected, ctx: ImportContext) -> Iterator[Event]:
    """The events of a detected file, streamed."""
    if detected.format == "autotvm":
        return autotvm.read(ctx)
    if detected.format == "ansor":
        return ansor.read(ctx)
    if detected.format == "tuneloom":
        return tuneloom_jsonl.read(ctx)
    assert detected.database is not None
    return metaschedule.read(ctx, detected.database)


def import_file(
    detected: Detected | str | Path,
    store: BaseStore | None,
    *,
    fmt: str | None = None,
    use_tvm: bool = True,
    gap_s: float = DEFAULT_GAP_S,
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
) -> FileSummary:
    """Import one file or MetaSchedule database into ``store`` (None: only read and count).

    ``workers``: processes that parse an AutoTVM or Ansor log or a MetaSchedule record file
    (``importers.parallel``); None picks by file size and CPUs, 0 parses in this process.
    The result is the same.

    A store with ``append_imported`` (every ``BaseStore``) gets the records as fields
    tuples; any other object with ``append_counting`` and ``appending_in_bulk`` gets
    events.
    """
    if not isinstance(detected, Detected):
        detected = detect(detected, fmt)
    ctx = context_for(detected, use_tvm=use_tvm, gap_s=gap_s, workers=workers)
    append_imported = getattr(store, "append_imported", None)
    if store is None or append_imported is not None:
        ctx.record = record_fields
    summary = FileSummary(
        path=str(detected.path),
        format=detected.format,
        source=None if detected.format == "tuneloom" else ctx.source,
    )
    tally = _Tally(per_job=detected.format == "tuneloom")
    batch: list[Any] = []  # events, and records as fields tuples where ``ctx.record`` says
    append = batch.append
    # The collector runs only after each stored batch, on the youngest generation: an import
    # keeps thousands of small acyclic tuples alive at a time (a batch, a worker's answer),
    # and automatic collections walked each of them several times on its way to the oldest
    # generation, then the whole heap (5-7 % of the import). The few cycles an import makes
    # (an exception kept by the frame that raised another) are young, so they are freed.
    with nullcontext() if store is None else store.appending_in_bulk(), gc_paused():
        for event in iter_events(detected, ctx):
            append(event)
            if len(batch) >= batch_size:
                tally.add_all(batch)
                summary.stored += _flush(store, batch, append_imported)
                gc.collect(0)
        tally.add_all(batch)
        summary.stored += _flush(store, batch, append_imported)
    summary.jobs = tally.jobs
    summary.events = tally.events
    summary.records = tally.records
    summary.valid = tally.valid
    summary.workloads = tally.rows()
    summary.bad_lines = ctx.bad_lines
    summary.bad_line_details = ctx.bad_details
    summary.notes = ctx.notes
    return summary


def import_paths(
    paths: Sequence[str | Path],
    store: BaseStore | None,
    *,
    fmt: str | None = None,
    use_tvm: bool = True,
    gap_s: float = DEFAULT_GAP_S,
    workers: int | None = None,
) -> list[FileSummary]:
    """Import several paths. All are detected first, so a bad path stores nothing."""
    detected = [detect(path, fmt) for path in paths]
    return [
        import_file(item, store, use_tvm=use_tvm, gap_s=gap_s, workers=workers) for item in detected
    ]


def _flush(
    store: BaseStore | None,
    batch: list[Any],
    append_imported: Callable[[list[Any]], int] | None,
) -> int:
    if not batch:
        return 0
    if store is None:
        stored = len(batch)
    elif append_imported is not None:
        stored = append_imported(batch)
    else:
        stored = store.append_counting(batch)
    batch.clear()
    return stored


# job, task, error_class, run_secs of a record's fields tuple
_tallied = itemgetter(*(RECORD_FIELDS.index(f) for f in ("job", "task", "error_class", "run_secs")))


class _Tally:
    """Running counts per workload, fed the events as they pass. Workloads are named by
    task, by ``job/task`` when ``per_job`` (tuneloom JSONL) or the file made several jobs
    (a log of several targets)."""

    def __init__(self, *, per_job: bool) -> None:
        self.per_job = per_job
        self.events = 0
        self.records = 0
        self.valid = 0
        self.jobs: list[str] = []
        self._jobs: set[str] = set()
        self.workloads: dict[tuple[str, str], WorkloadSummary] = {}  # by (job, task)

    def add_all(self, events: list[Any]) -> None:
        """Count a batch of events and records as fields tuples, in order."""
        self.events += len(events)
        known_jobs, workloads, per_job = self._jobs, self.workloads, self.per_job
        records = valid = 0
        for event in events:
            cls = type(event)
            if cls is tuple:
                job, task, error_class, run_secs = _tallied(event)
            else:
                job = event.job
                if cls is RecordEvent:
                    task, error_class, run_secs = event.task, event.error_class, event.run_secs
            if job not in known_jobs:
                known_jobs.add(job)
                self.jobs.append(job)
            if cls is not RecordEvent and cls is not tuple:
                continue
            key = (job, task)
            row = workloads.get(key)
            if row is None:
                name = f"{job}/{task}" if per_job else task
                row = workloads[key] = WorkloadSummary(name)
            records += 1
            row.records += 1
            if run_secs and error_class is None:
                valid += 1
                row.valid += 1
                mean = event[MEAN_SECS] if cls is tuple else mean_secs_of(run_secs)
                if row.best_mean_cost_s is None or mean < row.best_mean_cost_s:
                    row.best_mean_cost_s = mean
        self.records += records
        self.valid += valid

    def rows(self) -> list[WorkloadSummary]:
        """One row per workload; keys say the job too when the file made several jobs."""
        rows = list(self.workloads.values())
        if not self.per_job and len(self.jobs) > 1:
            for (job, task), row in self.workloads.items():
                row.key = f"{job}/{task}"
        return rows
