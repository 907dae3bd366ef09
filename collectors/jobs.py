"""The job vocabulary both sides share: stage kinds, job states, what a user submits
(``JobSpec``), what a tuner reports of a job (``JobInfo``) and the ``Control`` protocol the
dashboard and the clients steer jobs through.

The tuner implements ``Control``; the dashboard and the command line call it. Nothing here
imports the tuner or the dashboard. ``JobSpec`` round-trips through plain JSON
(``to_dict``/``from_dict``), so a spec can cross a process or an HTTP request unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class StageKind(StrEnum):
    """The four stages of one tuning iteration of a task, in the order they run."""

    SELECT = "select"
    BUILD = "build"
    PROFILE = "profile"
    UPDATE = "update"


STAGE_ORDER: tuple[StageKind, ...] = tuple(StageKind)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})

# The changes a ``job`` event reports, and the state each leaves the job in
# ("reprioritized" changes only the priority).
STATE_AFTER: dict[str, JobState] = {
    "submitted": JobState.QUEUED,
    "started": JobState.RUNNING,
    "resumed": JobState.RUNNING,
    "paused": JobState.PAUSED,
    "finished": JobState.FINISHED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
JOB_CHANGES: tuple[str, ...] = (
    "submitted",
    "started",
    "paused",
    "resumed",
    "reprioritized",
    "cancelled",
    "finished",
    "failed",
)


# How a job spreads its trial budget over its tasks (see ``tuner.allocation``).
ALLOCATORS: tuple[str, ...] = ("gain", "gradient", "uniform")

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h30m`` -> seconds (a time budget); JobSpecError for
    anything else or a duration that is not positive."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or not any(match.groups()):
        raise JobSpecError(f"{text!r} is not a duration (e.g. 90, 90s, 10m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise JobSpecError(f"{text!r}: the duration must be positive")
    return total


class JobSpecError(ValueError):
    """A job spec that cannot be tuned as written; the message names the field."""


class UnknownJobError(ValueError):
    """A control named a job the tuner does not know (an API answers 404)."""


class NoArtifactError(ValueError):
    """A job has no artifact to fetch (yet): not a model job, or not finished."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user submits: workloads (spec strings) or a model, and how to tune it.

    ``model`` is a zoo name (``zoo:cnn``) or a model file; ``workloads`` are built-in workload
    specs, one task each. ``trials`` is the job's whole budget, spread over its tasks by
    ``allocator`` (``gain``: where the model's latency falls fastest per second of tuning;
    ``gradient``: MetaSchedule's rule; ``uniform``), each task taking at most
    ``trials_per_task`` when that is given too; ``trials_per_task`` alone gives every task
    that many; neither gives 32 per task as the budget. ``time_budget`` (seconds) stops new
    batches once that much time has passed since the job's first stage; ``target_latency``
    (milliseconds, model jobs) once the model, compiled with what the job found and timed
    afresh, runs that fast. ``batch`` is the candidates per iteration, ``population`` the
    evolutionary search's population (None: the tuner's).
    ``target`` is the codegen target: a name (``llvm``), JSON text or an object
    (``{"kind": "llvm", "mcpu": ...}``); None: the tuner's default (``llvm`` unless it was
    started with another).
    ``device`` names the device pool that profiles the job (``rpc:KEY`` for the servers a
    TVM RPC tracker lists under KEY; None: the tuner's default device). ``input_shapes``
    fix a model's dynamic input dimensions (``{"x": (1, 3, 224, 224)}``), ``model_batch``
    a dynamic batch dimension.

    ``warm_start`` names a schedule library folder: each task first measures the library's
    schedules applied to it (at most ``reuse_limit``, from the library models
    ``reuse_sources`` names, else chosen automatically) and the search continues from them;
    ``reuse_only`` stops there, with the untuned workload measured as the fallback.
    """

    workloads: tuple[str, ...] = ()
    model: str | None = None
    trials: int | None = None
    trials_per_task: int | None = None
    allocator: str = "gain"
    time_budget: float | None = None
    target_latency: float | None = None
    priority: int = 0
    target: str | Mapping[str, Any] | None = None
    device: str | None = None
    name: str | None = None
    batch: int = 16
    population: int | None = None
    seed: int = 0
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    model_batch: int | None = None
    warm_start: str | None = None
    reuse_only: bool = False
    reuse_limit: int = 4
    reuse_sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.workloads, str) or not _all(self.workloads, str):
            raise JobSpecError("workloads must be a list of workload spec strings")
        object.__setattr__(self, "workloads", tuple(self.workloads))
        if not self.workloads and not self.model:
            raise JobSpecError("a job needs a model or at least one workload")
        for name in ("model", "device", "name", "warm_start"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise JobSpecError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("batch", "reuse_limit"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("trials", "trials_per_task", "population", "model_batch"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if self.allocator not in ALLOCATORS:
            raise JobSpecError(
                f"unknown allocator {self.allocator!r} (allocators: {', '.join(ALLOCATORS)})"
            )
        for name, unit in (("time_budget", "seconds"), ("target_latency", "milliseconds")):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not value > 0
                or not math.isfinite(value)
            ):
                raise JobSpecError(f"{name} must be a positive number of {unit}, got {value!r}")
        _check_int("priority", self.priority)
        _check_int("seed", self.seed, minimum=0)
        if self.target is not None and (
            not isinstance(self.target, str | Mapping) or not self.target
        ):
            raise JobSpecError(f"target must be a name or an object, got {self.target!r}")
        if not isinstance(self.reuse_only, bool):
            raise JobSpecError(f"reuse_only must be true or false, got {self.reuse_only!r}")
        if self.reuse_only and not self.warm_start:
            raise JobSpecError("a reuse-only job needs a library to start from (warm_start)")
        object.__setattr__(self, "input_shapes", _input_shapes(self.input_shapes))
        sources = self.reuse_sources
        if sources is not None:
            if isinstance(sources, str) or not _all(sources, str) or not sources:
                raise JobSpecError("reuse_sources must be a non-empty list of model names")
            object.__setattr__(self, "reuse_sources", tuple(sources))

    @property
    def label(self) -> str:
        """The job's name: ``name``, else the model, else its workloads joined by commas."""
        return self.name or self.model or ",".join(self.workloads)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON values (what ``from_dict`` reads back)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif f.name == "input_shapes":
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> JobSpec:
        """A spec from a decoded JSON object; JobSpecError names an unknown or bad field."""
        if not isinstance(data, Mapping):
            raise JobSpecError(f"a job spec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise JobSpecError(
                f"unknown job spec field {unknown[0]!r} (fields: {', '.join(sorted(known))})"
            )
        values = dict(data)
        for name in ("workloads", "reuse_sources"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise JobSpecError(f"bad job spec: {exc}") from None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as ``Control.list`` reports it."""

    id: str
    name: str
    state: JobState
    priority: int
    target: str
    tasks: tuple[str, ...]
    trials_done: int
    trials_total: int
    detail: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON values (what ``from_dict`` reads back)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = str(self.state)
        out["tasks"] = list(self.tasks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobInfo:
        """A job from a decoded JSON object (``to_dict``'s form)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["state"] = JobState(values["state"])
        values["tasks"] = tuple(values.get("tasks", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class JobArtifact:
    """What a finished job leaves to fetch: its MetaSchedule database folder and, for a
    model job, the compiled model's folder (``tuner.models.compiled`` layout)."""

    job: str
    database: Path
    compiled: Path | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a tuner takes: the zoo models it builds by name and its device pools (the
    ``JobSpec.device`` values; the first is the default)."""

    models: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


class Control(Protocol):
    """Job controls the dashboard and the clients use. Each change emits a ``job`` event;
    a refused change raises ValueError naming why (``UnknownJobError`` for a job the tuner
    does not know; an illegal transition...). ``artifact`` names a finished job's files
    (``NoArtifactError`` when it has none yet); a tuner that keeps none may leave it out."""

    def submit(self, spec: JobSpec) -> str: ...

    def pause(self, job: str, reason: str | None = None) -> None: ...

    def resume(self, job: str) -> None: ...

    def reprioritize(self, job: str, priority: int) -> None: ...

    def cancel(self, job: str) -> None: ...

    def list(self) -> list[JobInfo]: ...

    def catalog(self) -> Catalog: ...

    def artifact(self, job: str) -> JobArtifact: ...


def _all(values: Any, kind: type) -> bool:
    return isinstance(values, tuple | list) and all(isinstance(v, kind) for v in values)


def _check_int(name: str, value: Any, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise JobSpecError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise JobSpecError(f"{name} must be {what}, got {value}")


def _input_shapes(value: Any) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, Mapping):
        raise JobSpecError("input_shapes must map input names to shapes")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, dims in value.items():
        if (
            not isinstance(name, str)
            or not name
            or not _all(dims, int)
            or not dims
            or any(isinstance(d, bool) or d <= 0 for d in dims)
        ):
            raise JobSpecError(
                f"input_shapes: {name!r} must be a non-empty list of positive dimensions"
            )
        shapes[name] = tuple(dims)
    return shapes
