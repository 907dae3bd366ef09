"""A Control with a tuner's job states and transitions but no tuning: the API, the Jobs page
and the client commands are tested against it. Tests move jobs on with ``start``,
``measure``, ``finish`` and ``fail``; ``on_list`` runs on every ``list`` (a scripted tuner)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

from collectors.jobs import (
    TERMINAL_STATES,
    Catalog,
    JobArtifact,
    JobInfo,
    JobSpec,
    JobState,
    NoArtifactError,
    UnknownJobError,
)

ZOO = ("zoo:cnn", "zoo:mlp")
DEFAULT_TRIALS = 32


class FakeTuner:
    """Jobs in memory; finished jobs get files under ``runs`` (``compiled/`` for models)."""

    def __init__(self, runs: Path, *, catalog: Catalog | None = None) -> None:
        self.runs = runs
        self.specs: dict[str, JobSpec] = {}
        self.infos: dict[str, JobInfo] = {}
        self.on_list: Callable[[FakeTuner], None] | None = None
        self._catalog = catalog or Catalog(models=ZOO, devices=("llvm", "rpc:pi"))
        self._lock = threading.RLock()

    # --- Control ------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        for text in spec.workloads:
            if text.startswith("bad"):
                raise ValueError(f"unknown workload {text!r}")
        with self._lock:
            job = f"j{len(self.specs) + 1}"
            self.specs[job] = spec
            tasks = spec.workloads or ("model",)
            self.infos[job] = JobInfo(
                id=job, name=spec.label, state=JobState.QUEUED, priority=spec.priority,
                target=str(spec.target), tasks=tasks,
                trials_total=spec.trials or DEFAULT_TRIALS * len(tasks), trials_done=0,
                model=spec.model,
            )  # fmt: skip
            return job

    def pause(self, job: str, reason: str | None = None) -> None:
        with self._lock:
            info = self._get(job)
            if info.state not in (JobState.QUEUED, JobState.RUNNING):
                raise ValueError(f"job {job} is {info.state}: only a queued or running job pauses")
            self._set(job, state=JobState.PAUSED, detail=reason)

    def resume(self, job: str) -> None:
        with self._lock:
            info = self._get(job)
            if info.state != JobState.PAUSED:
                raise ValueError(f"job {job} is {info.state}, not paused")
            self._set(job, state=JobState.RUNNING, detail=None)

    def cancel(self, job: str) -> None:
        with self._lock:
            info = self._get(job)
            if info.state in TERMINAL_STATES:
                raise ValueError(f"job {job} has already ended ({info.state})")
            self._set(job, state=JobState.CANCELLED, detail="cancelled by a user")

    def reprioritize(self, job: str, priority: int) -> None:
        with self._lock:
            info = self._get(job)
            if info.state in TERMINAL_STATES:
                raise ValueError(f"job {job} has already ended ({info.state})")
            self._set(job, priority=priority)

    def list(self) -> list[JobInfo]:
        if self.on_list is not None:
            self.on_list(self)
        with self._lock:
            return list(self.infos.values())

    def catalog(self) -> Catalog:
        return self._catalog

    def artifact(self, job: str) -> JobArtifact:
        with self._lock:
            info = self._get(job)
            if info.state != JobState.FINISHED:
                raise NoArtifactError(
                    f"job {job} is {info.state}: it has no files until it finishes"
                )
            folder = self.runs / job
            compiled = folder / "compiled"
            return JobArtifact(job, folder / "database", compiled if compiled.is_dir() else None)

    # --- what tests do to jobs ------------------------------------------------------------

    def start(self, job: str) -> None:
        self._set(job, state=JobState.RUNNING)

    def measure(self, job: str, trials: int) -> None:
        with self._lock:
            info = self._get(job)
            self._set(job, trials_done=min(info.trials_done + trials, info.trials_total))

    def finish(self, job: str) -> None:
        """End a job well, writing its database (and, for a model job, a compiled model)."""
        with self._lock:
            info = self._get(job)
            database = self.runs / job / "database"
            database.mkdir(parents=True)
            (database / "database_workload.json").write_text('["w"]\n')
            (database / "database_tuning_record.json").write_text('[0, ["trace"]]\n')
            if info.model is not None:
                compiled = self.runs / job / "compiled"
                (compiled / "params").mkdir(parents=True)
                (compiled / "model.so").write_bytes(b"\x7fELF library")
                (compiled / "params" / "weights.npz").write_bytes(b"PK weights")
            self._set(job, state=JobState.FINISHED, trials_done=info.trials_total)

    def fail(self, job: str, why: str) -> None:
        self._set(job, state=JobState.FAILED, detail=why)

    def _get(self, job: str) -> JobInfo:
        info = self.infos.get(job)
        if info is None:
            raise UnknownJobError(f"unknown job {job!r}")
        return info

    def _set(self, job: str, **changes: object) -> None:
        with self._lock:
            self.infos[job] = dataclasses.replace(self._get(job), **changes)


class ListOnlyTuner:
    """A Control that keeps no files (no ``artifact``)."""

    def __init__(self, inner: FakeTuner) -> None:
        self.inner = inner
        self.submit = inner.submit
        self.pause = inner.pause
        self.resume = inner.resume
        self.cancel = inner.cancel
        self.reprioritize = inner.reprioritize
        self.list = inner.list
        self.catalog = inner.catalog
