"""Event contract v1: frozen, validated records and their JSON-lines form.

Every event carries the envelope ``v`` (schema version), ``source`` (who produced it),
``seq`` (position in that source's stream), ``ts`` (unix seconds, or simulated seconds),
``clock`` ("wall" or "sim"), ``kind`` and ``job``. ``(source, seq)`` identifies an event, so
replaying a stream into a store is idempotent. Four kinds exist:

- ``job``: a job's state changed (submitted, started, paused, ...); a ``submitted`` event
  may carry the job's spec (``JobEvent.spec``), from which a restarted server resumes it.
- ``task``: a tuning task was registered (op kind, shapes, weight, flops).
- ``stage``: a select/build/profile/update stage ran on a resource from start to end.
- ``record``: one measured candidate (trace text, run times or error, predicted score).

Four kinds were added to v1 later (see "Extending v1" below):

- ``profile``: the per-kernel profile of a compiled model (each fused kernel's time per
  call and calls, beside the end-to-end latency), measured in a fresh process.
- ``graph``: a model's graph after fusion (one node per fused kernel call, data-flow edges,
  the source layers each node came from), as ``collectors.modelgraph.ModelGraph`` JSON.
- ``memory``: a model's memory plan (the tensors live at every step of TVM's order and of
  the orders with less memory, the storage TVM plans for each, optionally a TCM placement),
  as ``collectors.memoryplan.MemoryPlan`` JSON.
- ``resource``: a resource joined or left the tuner while it ran (the cores of a cluster
  node coming and going); ``job`` is empty. A timeline ends a lane that ``left``.

Extending v1: a new field is optional and written only when set (``Event.extensions``); a
new kind is stored and read by the stores like job events, and readers select the kinds
they know (``BaseStore.read(kinds=...)``), so a reader that predates a kind never sees it.

Events are immutable; any state (a job's progress, a task's best latency) is a replay of them.
"""

from __future__ import annotations

import json
import math
import operator
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal, get_args, get_origin

from collectors.jobs import JOB_CHANGES, StageKind

SCHEMA_VERSION = 1

CLOCKS = ("wall", "sim")
STAGE_KINDS: tuple[str, ...] = tuple(kind.value for kind in StageKind)
STAGE_STATUSES = ("ok", "error", "cancelled")
# Why a candidate has no latency: it failed to build, failed or crashed while running,
# ran past its time limit, or the tool that wrote the log did not say.
ERROR_CLASSES = ("build", "run", "timeout", "other")


class EventError(ValueError):
    """An event does not match the contract. The message names the offending field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Envelope shared by every kind. Use a concrete subclass."""

    kind: ClassVar[str] = ""
    # Fields added to v1 later: written only when set, so readers that predate them still
    # read every event that does not use them.
    extensions: ClassVar[tuple[str, ...]] = ()
    v: int = SCHEMA_VERSION
    source: str
    seq: int
    ts: float
    clock: str = "wall"
    job: str

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with ``kind`` included; tuples become lists."""
        spec = _spec(type(self))
        out: dict[str, Any] = {"v": self.v, "kind": self.kind}
        for name, value in zip(spec.out_names, spec.get_out(self), strict=True):
            out[name] = _jsonable(value)
        for name in self.extensions:
            if out[name] is None:
                del out[name]
        return out

    def to_json(self) -> str:
        """One line of canonical JSON (no trailing newline)."""
        spec = _spec(type(self))
        out: dict[str, Any] = {"v": self.v, "kind": self.kind}
        out.update(zip(spec.out_names, spec.get_out(self), strict=True))
        for name in self.extensions:
            if out[name] is None:
                del out[name]
        # The encoder writes tuples as JSON arrays, exactly as to_dict's lists.
        return _ENCODE(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent(Event):
    """A job changed state. ``detail`` holds a reason (why it failed, who paused it).

    ``spec`` (an extension of v1, optional) is the submitted ``JobSpec`` as JSON text
    (``JobSpec.to_dict``), on ``submitted`` events of jobs a tuner can plan again: what a
    restarted server resumes an unfinished job from. It is written only when set: readers
    that predate it read every other event, and reject only a ``submitted`` event that
    carries a spec."""

    kind: ClassVar[str] = "job"
    extensions: ClassVar[tuple[str, ...]] = ("spec",)
    change: str
    priority: int = 0
    model: str | None = None
    target: str | None = None
    name: str | None = None
    policy: str | None = None
    trials: int | None = None
    tasks: tuple[str, ...] | None = None
    detail: str | None = None
    spec: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskEvent(Event):
    """A tuning task of a job: what it computes and how much it matters in the model."""

    kind: ClassVar[str] = "task"
    task: str
    op: str
    shapes: tuple[tuple[int, ...], ...] = ()
    dtype: str | None = None
    weight: float = 1.0
    flops: float | None = None
    workload_hash: str | None = None
    tunable: bool = True
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StageEvent(Event):
    """One stage of one task iteration, held on ``resource`` from ``start`` to ``end``."""

    kind: ClassVar[str] = "stage"
    task: str
    iteration: int
    stage: str
    resource: str
    start: float
    end: float
    status: str = "ok"
    error: str | None = None
    candidates: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordEvent(Event):
    """One measured candidate. ``run_secs`` is None exactly when ``error_class`` is set."""

    kind: ClassVar[str] = "record"
    task: str
    candidate: int
    iteration: int | None = None
    workload_hash: str | None = None
    trace: str | None = None
    run_secs: tuple[float, ...] | None = None
    error: str | None = None
    error_class: str | None = None
    predicted: float | None = None
    origin: str | None = None

    @property
    def mean_secs(self) -> float | None:
        """Mean measured time in seconds, or None for a failed candidate."""
        if not self.run_secs:
            return None
        return mean_of(self.run_secs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileEvent(Event):
    """Per-kernel profile of one compiled model, run in a fresh process.

    ``variant`` says which build was profiled: ``untuned`` (no schedules), ``tuned`` (the
    job's database) or another label (``library``, ``check``...). ``kernels``, ``tasks``,
    ``calls`` and ``kernel_secs`` are parallel: the fused kernel's name (its PrimFunc), the
    tuning task it belongs to (``""`` for none: a VM builtin or an untuned helper), how
    many times one run of the model calls it, and its mean seconds per call.
    ``end_to_end_secs`` is the model's latency timed without the profiler; the gap between
    it and the kernels' sum is the VM's own work (and the profiler's cost, when negative).
    """

    kind: ClassVar[str] = "profile"
    model: str
    variant: str
    end_to_end_secs: float
    kernels: tuple[str, ...]
    tasks: tuple[str, ...]
    calls: tuple[int, ...]
    kernel_secs: tuple[float, ...]
    target: str | None = None
    threads: int | None = None
    detail: str | None = None

    @property
    def kernel_sum_secs(self) -> float:
        """Seconds of one model run spent in the profiled kernels (time per call x calls)."""
        return math.fsum(s * c for s, c in zip(self.kernel_secs, self.calls, strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphEvent(Event):
    """A model's graph after fusion: ``graph`` is ``collectors.modelgraph.ModelGraph``
    JSON text (nodes are fused kernel calls, with the source layers they came from)."""

    kind: ClassVar[str] = "graph"
    model: str
    graph: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryEvent(Event):
    """A model's memory plan: ``plan`` is ``collectors.memoryplan.MemoryPlan`` JSON text
    (live tensors per step of several operator orders, an optional TCM placement)."""

    kind: ClassVar[str] = "memory"
    model: str
    plan: str


RESOURCE_PRESENCE = ("joined", "left")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceEvent(Event):
    """A resource joined the tuner or left it (``presence``), e.g. the cores of a cluster
    node; ``detail`` says why it left. Not about one job: ``job`` is empty."""

    kind: ClassVar[str] = "resource"
    resource: str
    presence: str
    detail: str | None = None


def mean_secs_of(run_secs: tuple[float, ...] | None) -> float | None:
    """The mean of a record's run times as stores and summaries keep it (one time as it
    is); None without any."""
    if not run_secs:
        return None
    return run_secs[0] if len(run_secs) == 1 else mean_of(run_secs)


def mean_of(values: tuple[float, ...]) -> float:
    """``fsum(values) / len(values)``, also when the sum alone would exceed the float range."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # the sum, not the mean, exceeds the float range
        count = len(values)
        return math.fsum(v / count for v in values)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        JobEvent, TaskEvent, StageEvent, RecordEvent, ProfileEvent, GraphEvent, MemoryEvent,
        ResourceEvent,
    )
}  # fmt: skip

_CHOICES: dict[str, tuple[str, ...]] = {
    "clock": CLOCKS,
    "change": JOB_CHANGES,
    "stage": STAGE_KINDS,
    "status": STAGE_STATUSES,
    "error_class": ERROR_CLASSES,
    "presence": RESOURCE_PRESENCE,
}


def from_dict(data: Mapping[str, Any]) -> Event:
    """Build and validate an event from a decoded JSON object.

    Raises EventError naming the field for a missing field, a wrong type, an unknown
    field, an unknown kind or an unknown schema version.
    """
    if not isinstance(data, Mapping):
        raise EventError(f"event: expected a JSON object, got {type(data).__name__}")
    if "v" not in data:
        raise EventError("v: missing field")
    version = data["v"]
    if type(version) is not int:
        raise EventError(f"v: expected int, got {type(version).__name__}")
    if version != SCHEMA_VERSION:
        raise EventError(f"v: unknown schema version {version} (this build reads {SCHEMA_VERSION})")
    if "kind" not in data:
        raise EventError("kind: missing field")
    kind = data["kind"]
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventError(f"kind: unknown kind {kind!r} (expected one of {sorted(EVENT_TYPES)})")
    spec = _spec(cls)
    keys = data.keys()
    if not spec.accepted >= keys:
        unknown = [k for k in data if k != "kind" and k not in spec.accepted]
        raise EventError(f"{kind}.{unknown[0]}: unknown field")
    if not spec.required_set <= keys:
        missing = [name for name in spec.required if name not in keys]
        raise EventError(f"{kind}.{missing[0]}: missing field")
    kwargs = dict(data)
    del kwargs["kind"]
    for name, value in kwargs.items():
        if type(value) is list:
            kwargs[name] = _from_jsonable(value)
    # What cls(**kwargs) does (fields, defaults, then the validation of __post_init__),
    # without the dataclass __init__'s per-field overhead.
    event = trusted_constructor(cls)(**kwargs)
    _validate(event)
    return event


def from_json(line: str) -> Event:
    """Parse one JSON line into a validated event."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EventError(f"event: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return from_dict(data)


def trusted_constructor(cls: type[E], order: tuple[str, ...] | None = None) -> Callable[..., E]:
    """A constructor of ``cls`` that skips validation, for producers whose values are
    already canonical by construction. With ``order`` (every field's name, once), it takes
    the values as positional arguments in that order instead of keyword arguments.

    It takes the class's keyword arguments and defaults and builds the same frozen event,
    about five times faster, but checks nothing: every value must be what validation would
    accept unchanged (exact types: ``float`` not ``int`` for float fields, tuples not
    lists; finite floats; integers within 64 bits; text without lone surrogates; choice
    fields from the contract's lists; ``seq >= 0``, a non-empty ``source``, a stage's
    ``end >= start``). Anything else stored through it would break the contract, so use
    the class itself wherever a value comes from outside unchecked.
    """
    made = _TRUSTED.get((cls, order))
    if made is None:
        made = _TRUSTED[(cls, order)] = _build_trusted(cls, order)
    return made  # type: ignore[return-value]


E = typing.TypeVar("E", bound=Event)
_TRUSTED: dict[tuple[type, tuple[str, ...] | None], Callable[..., Any]] = {}


def _build_trusted(cls: type, order: tuple[str, ...] | None) -> Callable[..., Any]:
    if not getattr(cls, "kind", ""):
        raise TypeError(f"{cls.__name__} is not a concrete event class")
    if order is not None and sorted(order) != sorted(f.name for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: order must name every field once, got {order}")
    required, optional, namespace = [], [], {"_new": object.__new__, "_cls": cls}
    for f in fields(cls):
        if f.default is MISSING:
            required.append(f.name)
        else:
            namespace[f"_d_{f.name}"] = f.default
            optional.append(f"{f.name}=_d_{f.name}")
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        namespace[f"_s_{f.name}"] = slot.__set__  # writes the slot, as the frozen __init__ does
    body = [f"    _s_{f.name}(e, {f.name})" for f in fields(cls)]
    parameters = ["*", *required, *optional] if order is None else list(order)
    source = (
        f"def make({', '.join(parameters)}):\n"
        "    e = _new(_cls)\n" + "\n".join(body) + "\n    return e\n"
    )
    exec(source, namespace)  # the source is generated from the dataclass fields above
    make = namespace["make"]
    make.__doc__ = f"Build a {cls.__name__} without validation (see trusted_constructor)."
    return make


def write_jsonl(events: Iterable[Event], stream: typing.TextIO) -> int:
    """Write events one per line; returns how many were written."""
    count = 0
    for event in events:
        stream.write(event.to_json())
        stream.write("\n")
        count += 1
    return count


def read_jsonl(stream: Iterable[str]) -> Iterator[Event]:
    """Yield validated events from JSON lines; blank lines are skipped.

    A bad line raises EventError prefixed with its line number.
    """
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield from_json(line)
        except EventError as exc:
            raise EventError(f"line {number}: {exc}") from None


# --- validation --------------------------------------------------------------------------
#
# Validation runs on every event built, so it has a fast path: per class, one precomputed
# predicate per field answers "is this value already in canonical form?" (exact type,
# finite float, tuple items). Only when a predicate or a choice check fails does the
# general checker run, field by field in declaration order, to coerce (int -> float,
# list -> tuple) or to raise the message naming the first offending field. Both paths
# accept exactly the same values.

_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_isfinite = math.isfinite


@dataclass(frozen=True, slots=True)
class _Spec:
    """Facts about one event class, computed once."""

    hints: tuple[tuple[str, Any], ...]  # (field, type hint) in declaration order
    get_all: Callable[[Any], tuple[Any, ...]]  # values of every field, same order
    canonical: tuple[Callable[[Any], bool], ...]  # per field: value needs no coercion
    choices: tuple[tuple[int, frozenset[str]], ...]  # (field index, allowed values)
    out_names: tuple[str, ...]  # fields after the ``v``/``kind`` head of the JSON form
    get_out: Callable[[Any], tuple[Any, ...]]
    accepted: frozenset[str]  # keys a JSON object of this kind may hold (fields + "kind")
    required: tuple[str, ...]  # fields without a default, in declaration order
    required_set: frozenset[str]


_SPECS: dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _build_spec(cls)
    return spec


def _build_spec(cls: type) -> _Spec:
    type_hints = typing.get_type_hints(cls)
    names = tuple(f.name for f in fields(cls))
    out_names = tuple(n for n in names if n != "v")
    required = tuple(
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    )
    return _Spec(
        hints=tuple((n, type_hints[n]) for n in names),
        get_all=operator.attrgetter(*names),
        canonical=tuple(_canonical_predicate(type_hints[n]) for n in names),
        choices=tuple((i, frozenset(_CHOICES[n])) for i, n in enumerate(names) if n in _CHOICES),
        out_names=out_names,
        get_out=operator.attrgetter(*out_names),
        accepted=frozenset((*names, "kind")),
        required=required,
        required_set=frozenset(required),
    )


def _canonical_predicate(hint: Any) -> Callable[[Any], bool]:
    """A predicate true exactly when ``_check`` would accept ``value`` unchanged."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _canonical_predicate(next(o for o in get_args(hint) if o is not type(None)))
        return lambda value: value is None or inner(value)
    if origin is tuple:
        item = _canonical_predicate(get_args(hint)[0])
        return lambda value: type(value) is tuple and all(map(item, value))
    if hint is float:
        return lambda value: type(value) is float and _isfinite(value)
    if hint is int:
        return _is_int64
    if hint is str:
        return _is_text
    if hint is bool:
        return lambda value: type(value) is bool
    raise TypeError(f"unsupported type hint {hint!r}")  # a bug in this module


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_int64(value: Any) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _is_text(value: Any) -> bool:
    """A str that encodes as UTF-8 (no lone surrogates), so every store can keep it."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _validate(event: Event) -> None:
    if not event.kind:
        raise EventError("kind: use a concrete event class (JobEvent, TaskEvent, ...)")
    spec = _spec(type(event))
    values = spec.get_all(event)
    canonical = all(map(operator.call, spec.canonical, values))
    if canonical:  # every value has its exact type, so the choice fields hold str or None
        for i, allowed in spec.choices:
            value = values[i]
            if value is not None and value not in allowed:
                canonical = False
    if not canonical:
        _validate_fields(event, spec)
    kind = event.kind
    if event.v != SCHEMA_VERSION:
        raise EventError(f"{kind}.v: unknown schema version {event.v}")
    if event.seq < 0:
        raise EventError(f"{kind}.seq: must be >= 0, got {event.seq}")
    if not event.source:
        raise EventError(f"{kind}.source: must not be empty")
    if kind == "stage" and event.end < event.start:  # type: ignore[attr-defined]
        end, start = event.end, event.start  # type: ignore[attr-defined]
        raise EventError(f"stage.end: ends before it starts ({end} < {start})")
    if kind == "profile":
        _validate_profile(event)  # type: ignore[arg-type]


def _validate_profile(event: ProfileEvent) -> None:
    count = len(event.kernels)
    for name in ("tasks", "calls", "kernel_secs"):
        if len(getattr(event, name)) != count:
            got = len(getattr(event, name))
            raise EventError(f"profile.{name}: {got} items for {count} kernels")
    if event.end_to_end_secs < 0:
        raise EventError("profile.end_to_end_secs: must not be negative")
    if any(s < 0 for s in event.kernel_secs):
        raise EventError("profile.kernel_secs: times must not be negative")
    if any(c < 0 for c in event.calls):
        raise EventError("profile.calls: counts must not be negative")


def _validate_fields(event: Event, spec: _Spec) -> None:
    """The general checker: coerces values in place or raises naming the first bad field."""
    kind = event.kind
    for name, hint in spec.hints:
        value = getattr(event, name)
        coerced = _check(value, hint, f"{kind}.{name}")
        if coerced is not value:
            object.__setattr__(event, name, coerced)
        choices = _CHOICES.get(name)
        if choices is not None and value is not None and value not in choices:
            raise EventError(f"{kind}.{name}: {value!r} is not one of {list(choices)}")


def _check(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; returns it, possibly normalized (list -> tuple)."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise EventError(f"{where}: must not be null")
        inner = [o for o in options if o is not type(None)]
        return _check(value, inner[0], where)
    if origin is Literal:
        if value not in get_args(hint):
            raise EventError(f"{where}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise EventError(f"{where}: expected a list, got {type(value).__name__}")
        item_hint = get_args(hint)[0]
        items = tuple(_check(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value))
        if isinstance(value, tuple) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    if hint is float:
        if type(value) is float:
            if not math.isfinite(value):
                raise EventError(f"{where}: must be a finite number, got {value}")
            return value
        if type(value) is int:
            return float(value)
        raise EventError(f"{where}: expected float, got {type(value).__name__}")
    if hint is int:
        if type(value) is not int:
            raise EventError(f"{where}: expected int, got {type(value).__name__}")
        if not _is_int64(value):
            raise EventError(f"{where}: {value} does not fit in 64 bits")
        return value
    if hint is bool:
        if type(value) is not bool:
            raise EventError(f"{where}: expected bool, got {type(value).__name__}")
        return value
    if hint is str:
        if type(value) is not str:
            raise EventError(f"{where}: expected str, got {type(value).__name__}")
        if not _is_text(value):
            raise EventError(f"{where}: not valid UTF-8 text (a lone surrogate)")
        return value
    raise TypeError(f"{where}: unsupported type hint {hint!r}")  # a bug in this module


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_jsonable(v) for v in value)
    return value
