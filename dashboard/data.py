"""Cached, incrementally refreshed views of a store for the dashboard's callbacks.

The first read uses the store's typed queries; later refreshes only read the events appended
since (``store.read(after=pos)``), so a live run or a 100k-stage store is not re-read on every
zoom. Every frame returned here is a snapshot: callers must not modify it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd

from collectors import _frames, reuse
from collectors._base import JOB_COLUMNS, BaseStore
from collectors.events import Event, GraphEvent, ProfileEvent, RecordEvent, StageEvent
from collectors.modelgraph import GraphError, ModelGraph
from dashboard.colors import job_colors
from dashboard.figures.timeline import with_axis

READ_CHUNK = 50_000


def job_label(job: str, name: str | None, simulated: bool, reused: str | None = None) -> str:
    """How a job is named on every page; simulated jobs always say so, and a job that started
    from library schedules says how (``reused``: ``warm start`` or ``library schedules``)."""
    label = f"{name} ({job})" if isinstance(name, str) and name and name != job else job
    if reused:
        label += f" · {reused}"
    if simulated:
        label += " · simulated"
    return label


@dataclass(frozen=True)
class Snapshot:
    """What the store held at position ``pos``, ready for the figure functions."""

    pos: int
    stages: pd.DataFrame  # STAGE_COLUMNS + lane, x0, x1
    records: pd.DataFrame  # RECORD_COLUMNS
    jobs: pd.DataFrame  # JOB_COLUMNS, in submission order
    tasks: pd.DataFrame  # TASK_COLUMNS
    colors: dict[str, str]
    labels: dict[str, str]
    t0_wall: float | None
    job_t0: dict[str, float]
    # Schedules reused from a library, per (job, task) and candidate (parsed once per snapshot
    # from the tasks' detail), and how each job that reused some started.
    reused: reuse.ReuseIndex = field(default_factory=dict)
    reuse_kinds: dict[str, str] = field(default_factory=dict)


class StoreView:
    """Keeps the store's stages, records, jobs and tasks in memory, refreshed incrementally."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pos = -1
        self._stages = _frames.stage_frame([])
        self._records = _frames.record_frame([])
        self._axis: pd.DataFrame | None = None  # _stages with lane/x0/x1 for _axis_t0
        self._axis_t0: float | None = None
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """The current state, reading only what was appended since the last call."""
        with self._lock:
            last = self.store.last_pos()
            if self._snapshot is not None and last <= self._pos:
                return self._snapshot
            if self._pos < 0:
                self._initial_load(last)
            else:
                self._read_new(last)
            self._snapshot = self._build()
            return self._snapshot

    def _initial_load(self, last: int) -> None:
        stages = self.store.stage_intervals()
        records = self.store.records()
        self._stages = stages[stages["pos"] <= last].reset_index(drop=True)
        self._records = records[records["pos"] <= last].reset_index(drop=True)
        self._pos = last

    def _read_new(self, last: int) -> None:
        stage_rows: list[tuple[object, ...]] = []
        record_rows: list[tuple[object, ...]] = []
        after = self._pos
        while True:
            batch = self.store.read(after, kinds=("stage", "record"), limit=READ_CHUNK)
            for item in batch:
                event: Event = item.event
                if isinstance(event, StageEvent):
                    stage_rows.append(_frames.stage_row(item.pos, event))
                elif isinstance(event, RecordEvent):
                    record_rows.append(_frames.record_row(item.pos, event))
            if batch:
                after = batch[-1].pos
            if len(batch) < READ_CHUNK:
                break
        self._pos = max(last, after)
        if stage_rows:
            self._stages = _concat(self._stages, _frames.stage_frame(stage_rows))
        if record_rows:
            self._records = _concat(self._records, _frames.record_frame(record_rows))

    def _with_axis(self, t0_wall: float | None) -> pd.DataFrame:
        """Stages with axis columns; only rows added since the last call are labelled."""
        done = 0 if self._axis is None or t0_wall != self._axis_t0 else len(self._axis)
        if done == len(self._stages) and self._axis is not None:
            return self._axis
        new = with_axis(self._stages.iloc[done:], t0_wall)
        self._axis = new if done == 0 else pd.concat([self._axis, new], ignore_index=True)
        self._axis_t0 = t0_wall
        return self._axis

    def _build(self) -> Snapshot:
        jobs = _ordered_jobs(self.store.jobs())
        tasks = self.store.tasks()
        wall = self._stages[self._stages["clock"] == "wall"]
        t0_wall = float(wall["start"].min()) if len(wall) else None
        if t0_wall is None:
            wall_jobs = jobs[jobs["clock"] == "wall"]
            if len(wall_jobs):
                t0_wall = float(wall_jobs["submitted_ts"].min())
        order = list(jobs["job"])
        known = set(order)
        for frame in (self._stages, self._records):
            for job in pd.unique(frame["job"]):
                if job not in known:
                    order.append(job)
                    known.add(job)
        # Simulated: on the simulated clock, or every task of the job is a simulated one.
        simulated = set(jobs.loc[jobs["clock"] == "sim", "job"])
        if len(tasks):
            kinds = tasks.groupby("job")["op"].agg(lambda ops: set(ops) == {"simulated"})
            simulated |= set(kinds[kinds].index)
        reused = reuse.reuse_index(tasks)
        reuse_kinds = reuse.job_reuse(reused)
        labels = {
            str(r.job): job_label(
                str(r.job), r.name, r.job in simulated, reuse_kinds.get(str(r.job))
            )
            for r in jobs.itertuples()
        }
        for job in order:
            labels.setdefault(job, job_label(job, None, False, reuse_kinds.get(job)))
        job_t0 = {
            str(j): float(t)
            for j, t in zip(jobs["job"], jobs["submitted_ts"], strict=True)
            if pd.notna(t)
        }
        return Snapshot(
            pos=self._pos,
            stages=self._with_axis(t0_wall),
            records=self._records,
            jobs=jobs,
            tasks=tasks,
            colors=job_colors(order),
            labels=labels,
            t0_wall=t0_wall,
            job_t0=job_t0,
            reused=reused,
            reuse_kinds=reuse_kinds,
        )


def _concat(frame: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return new
    return pd.concat([frame, new], ignore_index=True)


def _ordered_jobs(jobs: pd.DataFrame) -> pd.DataFrame:
    if jobs.empty:
        return pd.DataFrame(columns=list(JOB_COLUMNS))
    return jobs.sort_values(["submitted_ts", "job"], kind="stable", na_position="last").reset_index(
        drop=True
    )


@dataclass(frozen=True)
class ModelInputs:
    """What the store holds for one job's Model page: its newest graph event (None before
    the tuner stores one), the graph parsed from it or the one-line reason it could not
    be, and its profiles oldest first."""

    job: str
    graph_event: GraphEvent | None
    graph: ModelGraph | None
    graph_error: str | None
    profiles: tuple[ProfileEvent, ...]


class ModelEvents:
    """The store's ``profile`` and ``graph`` events per job, refreshed incrementally (only
    events appended since the last call are read); each graph is parsed once."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pos = 0
        self._graphs: dict[str, GraphEvent] = {}
        self._profiles: dict[str, list[ProfileEvent]] = {}
        self._parsed: dict[str, tuple[GraphEvent, ModelGraph | None, str | None]] = {}

    def refresh(self) -> int:
        """Read what was appended since the last call; returns the position read up to."""
        with self._lock:
            last = self.store.last_pos()
            while self._pos < last:
                batch = self.store.read(self._pos, kinds=("profile", "graph"), limit=READ_CHUNK)
                for item in batch:
                    event = item.event
                    if isinstance(event, GraphEvent):
                        self._graphs[event.job] = event
                    elif isinstance(event, ProfileEvent):
                        self._profiles.setdefault(event.job, []).append(event)
                if len(batch) < READ_CHUNK:
                    self._pos = last
                else:
                    self._pos = batch[-1].pos
            return self._pos

    def jobs_with_graph(self) -> set[str]:
        """Jobs that have a graph event."""
        self.refresh()
        with self._lock:
            return set(self._graphs)

    def inputs(self, job: str) -> ModelInputs:
        """The job's newest graph (parsed) and its profiles."""
        self.refresh()
        with self._lock:
            event = self._graphs.get(job)
            profiles = tuple(self._profiles.get(job, ()))
            if event is None:
                return ModelInputs(job, None, None, None, profiles)
            cached = self._parsed.get(job)
            if cached is None or cached[0] is not event:
                try:
                    cached = (event, ModelGraph.from_json(event.graph), None)
                except GraphError as exc:
                    cached = (event, None, str(exc))
                self._parsed[job] = cached
            return ModelInputs(job, event, cached[1], cached[2], profiles)
