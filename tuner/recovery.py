"""The job table a restarted server starts from, replayed from the store's journal.

Every job the store has heard of comes back: its latest state and priority, its spec (the
``submitted`` event's ``JobSpec``, when the submitter could plan it again), where its
MetaSchedule database is (its task events name it), and, per task, how many ``record``
events the store holds and why the task stopped, if it did. ``tuner.engine`` resumes the
unfinished ones (``tuner.metaschedule.resume`` reconciles each with its database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collectors._base import BaseStore
from collectors.events import JobEvent, TaskEvent
from collectors.importers.ms_database import DETAIL_DATABASE_PREFIX
from collectors.jobs import STATE_AFTER, TERMINAL_STATES, JobInfo, JobSpec, JobSpecError, JobState

STOPPED_PREFIX = "stopped="


@dataclass
class StoredJob:
    """A job as the store's journal left it."""

    id: str
    state: JobState = JobState.QUEUED
    priority: int = 0
    name: str | None = None
    model: str | None = None
    target: str | None = None
    tasks: tuple[str, ...] = ()
    trials_total: int = 0
    detail: str | None = None
    spec: JobSpec | None = None
    spec_error: str | None = None  # why the stored spec cannot be read back
    started_at: float | None = None  # unix seconds of its first ``started`` event
    db_dir: Path | None = None
    stored_records: dict[str, int] = field(default_factory=dict)  # per task
    stopped: dict[str, str] = field(default_factory=dict)  # per task: why it stopped

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def started(self) -> bool:
        return self.started_at is not None

    def info(self) -> JobInfo:
        """The job as ``Control.list`` reports it (trials done: records in the store)."""
        return JobInfo(
            id=self.id,
            name=self.name or self.id,
            state=self.state,
            priority=self.priority,
            target=self.target or "",
            tasks=self.tasks,
            trials_done=sum(self.stored_records.values()),
            trials_total=self.trials_total,
            detail=self.detail,
            model=self.model,
        )


def stored_jobs(store: BaseStore) -> list[StoredJob]:
    """Every job of the store, in order of first appearance (see the module docstring)."""
    jobs: dict[str, StoredJob] = {}
    for stored in store.read(kinds=["job"]):
        event = stored.event
        assert isinstance(event, JobEvent)
        job = jobs.get(event.job)
        if job is None:
            job = jobs[event.job] = StoredJob(event.job, priority=event.priority)
        _apply_job_event(job, event)
    for stored in store.read(kinds=["task"]):
        event = stored.event
        assert isinstance(event, TaskEvent)
        job = jobs.get(event.job)
        if job is not None:
            _apply_task_event(job, event)
    if jobs:
        records = store.records(job=list(jobs))
        counts: Mapping[tuple[str, str], int] = records.groupby(["job", "task"]).size().to_dict()
        for (job_id, task), count in counts.items():
            jobs[job_id].stored_records[task] = int(count)
    return list(jobs.values())


def _apply_job_event(job: StoredJob, event: JobEvent) -> None:
    after = STATE_AFTER.get(event.change)
    if after is not None:
        job.state = after
    if event.change in ("submitted", "reprioritized"):
        job.priority = event.priority
    if event.change in ("started", "resumed") and job.started_at is None:
        job.started_at = event.ts
    for name in ("name", "model", "target"):
        value = getattr(event, name)
        if value is not None:
            setattr(job, name, value)
    if event.tasks is not None:
        job.tasks = tuple(event.tasks)
    if event.trials is not None:
        job.trials_total = event.trials
    job.detail = event.detail
    if event.change == "submitted" and event.spec is not None:
        try:
            job.spec = JobSpec.from_dict(json.loads(event.spec))
            job.spec_error = None
        except (ValueError, JobSpecError) as exc:
            job.spec, job.spec_error = None, f"its stored spec cannot be read: {exc}"


def _apply_task_event(job: StoredJob, event: TaskEvent) -> None:
    stopped = None
    for line in (event.detail or "").splitlines():
        if line.startswith(DETAIL_DATABASE_PREFIX) and job.db_dir is None:
            job.db_dir = Path(line.removeprefix(DETAIL_DATABASE_PREFIX))
        elif line.startswith(STOPPED_PREFIX):
            stopped = line.removeprefix(STOPPED_PREFIX)
    if stopped is not None:
        job.stopped[event.task] = stopped
