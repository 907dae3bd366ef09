"""Rows and DataFrames of the typed queries, shared by every store backend.

Each backend hands either row tuples (``stage_frame``, built from events in memory) or whole
columns (``stage_frame_from_columns``, decoded from storage) to the builders here, so all
backends return identical columns and dtypes:

- integers that are always present: ``int64``; integers that may be missing
  (``iteration`` of a record, ``candidates``, ``trials``): nullable ``Int64``;
- floats: ``float64``, missing values (a failed candidate's ``mean_secs``) are NaN;
- text: pandas' ``str`` dtype, missing values are NaN;
- ``tunable``: ``bool``; ``shapes`` and a job's ``tasks``: tuples (``object``).

Job state is a pure replay of job events (``replay_jobs``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from collectors._base import JOB_COLUMNS, RECORD_COLUMNS, STAGE_COLUMNS, TASK_COLUMNS, Stored
from collectors.events import JobEvent, RecordEvent, StageEvent, TaskEvent
from collectors.jobs import STATE_AFTER

_I, _NI, _F, _S, _B, _O = "int64", "Int64", "float64", "str", "bool", "object"
TEXT = _S  # the dtype of text columns

STAGE_DTYPES: dict[str, str] = dict(
    zip(STAGE_COLUMNS, (_I, _S, _S, _S, _S, _I, _S, _S, _F, _F, _S, _S, _NI), strict=True)
)
RECORD_DTYPES: dict[str, str] = dict(
    zip(RECORD_COLUMNS, (_I, _S, _S, _F, _S, _S, _NI, _I, _S, _F, _S, _S, _F, _S), strict=True)
)
JOB_DTYPES: dict[str, str] = dict(
    zip(JOB_COLUMNS, (_S, _S, _I, _S, _S, _S, _S, _NI, _O, _F, _F, _S, _S), strict=True)
)
TASK_DTYPES: dict[str, str] = dict(
    zip(TASK_COLUMNS, (_S, _S, _S, _O, _S, _F, _F, _S, _B, _S), strict=True)
)


def stage_row(pos: int, e: StageEvent) -> tuple[Any, ...]:
    """One ``STAGE_COLUMNS`` row."""
    return (
        pos, e.source, e.clock, e.job, e.task, e.iteration, e.stage, e.resource,
        e.start, e.end, e.status, e.error, e.candidates,
    )  # fmt: skip


def record_row(pos: int, e: RecordEvent) -> tuple[Any, ...]:
    """One ``RECORD_COLUMNS`` row (the trace text stays out)."""
    return (
        pos, e.source, e.clock, e.ts, e.job, e.task, e.iteration, e.candidate,
        e.workload_hash, e.mean_secs, e.error, e.error_class, e.predicted, e.origin,
    )  # fmt: skip


def stage_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Stage intervals from ``STAGE_COLUMNS`` rows."""
    return _frame(rows, STAGE_DTYPES)


def record_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Measured candidates from ``RECORD_COLUMNS`` rows."""
    return _frame(rows, RECORD_DTYPES)


def stage_frame_from_columns(columns: dict[str, Any]) -> pd.DataFrame:
    """Stage intervals from whole columns (sequences or arrays, keyed by column name)."""
    return frame_from_columns(columns, STAGE_DTYPES)


def record_frame_from_columns(columns: dict[str, Any]) -> pd.DataFrame:
    """Measured candidates from whole columns (sequences or arrays, keyed by column name)."""
    return frame_from_columns(columns, RECORD_DTYPES)


def jobs_frame(job_events: Iterable[Stored]) -> pd.DataFrame:
    """Current state of each job, replayed from its job events in position order."""
    return _frame(replay_jobs(job_events), JOB_DTYPES)


def tasks_frame(task_events: Iterable[Stored]) -> pd.DataFrame:
    """The latest task event per (job, task), in order of first registration."""
    latest: dict[tuple[str, str], TaskEvent] = {}
    for stored in task_events:
        e = stored.event
        assert isinstance(e, TaskEvent)
        latest[(e.job, e.task)] = e  # dict keeps the first insertion's order
    rows = [
        (e.job, e.task, e.op, e.shapes, e.dtype, e.weight, e.flops, e.workload_hash,
         e.tunable, e.detail)
        for e in latest.values()
    ]  # fmt: skip
    return _frame(rows, TASK_DTYPES)


def replay_jobs(job_events: Iterable[Stored]) -> list[tuple[Any, ...]]:
    """``JOB_COLUMNS`` rows, one per job in order of first appearance.

    ``state`` follows ``STATE_AFTER`` ("queued" until a change says otherwise);
    ``priority`` comes from "submitted" and "reprioritized" events; model, target, name,
    policy, trials and tasks keep the latest value given; ``detail`` and ``clock`` are those
    of the latest event; ``submitted_ts`` is the time of the "submitted" event (of the first
    event when there is none) and ``updated_ts`` that of the latest event.
    """
    jobs: dict[str, dict[str, Any]] = {}
    for stored in job_events:
        e = stored.event
        assert isinstance(e, JobEvent)
        job = jobs.get(e.job)
        if job is None:
            job = jobs[e.job] = dict.fromkeys(JOB_COLUMNS)
            job.update(job=e.job, state="queued", priority=e.priority, submitted_ts=e.ts)
        if e.change == "submitted":
            job["submitted_ts"] = e.ts
        if e.change in ("submitted", "reprioritized"):
            job["priority"] = e.priority
        after = STATE_AFTER.get(e.change)
        if after is not None:
            job["state"] = after.value
        for name in ("model", "target", "name", "policy", "trials", "tasks"):
            value = getattr(e, name)
            if value is not None:
                job[name] = value
        job.update(updated_ts=e.ts, detail=e.detail, clock=e.clock)
    return [tuple(job[c] for c in JOB_COLUMNS) for job in jobs.values()]


def job_filter(job: str | Sequence[str] | None) -> frozenset[str] | None:
    """The set of jobs a query keeps, or None for all."""
    if job is None:
        return None
    if isinstance(job, str):
        return frozenset((job,))
    return frozenset(job)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small tuples.

    Tuples of a large query result hold no cycles; without this, collections triggered
    by their sheer number can take as long as the query.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _frame(rows: Sequence[tuple[Any, ...]], dtypes: dict[str, str]) -> pd.DataFrame:
    if not rows:
        return frame_from_columns({c: () for c in dtypes}, dtypes)
    with gc_paused():
        columns = dict(zip(dtypes, zip(*rows, strict=True), strict=True))
    return frame_from_columns(columns, dtypes)


def frame_from_columns(columns: dict[str, Any], dtypes: dict[str, str]) -> pd.DataFrame:
    """A frame with exactly the columns and dtypes of ``dtypes``; arrays that already have
    the right dtype (numpy or pandas) are used without copying."""
    data = {c: _column(columns[c], dtype) for c, dtype in dtypes.items()}
    return pd.DataFrame(data, copy=False)


def _column(values: Any, dtype: str) -> Any:
    if isinstance(values, pd.api.extensions.ExtensionArray | np.ndarray):
        if values.dtype == dtype or (dtype == _O and values.dtype == object):
            return values
        if isinstance(values, np.ndarray) and dtype in (_I, _F, _B):
            return values.astype(dtype)
    if dtype == _I:
        return np.fromiter(values, dtype=np.int64, count=len(values))
    if dtype == _F:
        return np.array(values, dtype=np.float64)  # None becomes NaN
    if dtype == _B:
        return np.array(values, dtype=bool)
    if dtype == _O:
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # item by item: tuples must stay whole
            out[i] = value
        return out
    return pd.array(values, dtype=dtype)
