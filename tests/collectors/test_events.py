"""Event contract v1: exact JSON round trips, and every kind of bad input named by field."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.events import (
    EVENT_TYPES,
    Event,
    EventError,
    JobEvent,
    RecordEvent,
    StageEvent,
    TaskEvent,
    from_dict,
    from_json,
    mean_of,
    read_jsonl,
    trusted_constructor,
    write_jsonl,
)

ENVELOPE = {"v": 1, "source": "run-1", "seq": 3, "ts": 1700000000.5, "clock": "wall", "job": "j"}

FULL: dict[str, dict[str, Any]] = {
    "job": {
        **ENVELOPE, "kind": "job", "change": "submitted", "priority": 2, "model": "resnet",
        "target": "llvm", "name": "first", "policy": "interleaved", "trials": 64,
        "tasks": ["t1", "t2"], "detail": "from the CLI",
    },
    "task": {
        **ENVELOPE, "kind": "task", "task": "t1", "op": "conv2d",
        "shapes": [[1, 3, 224, 224], [64, 3, 7, 7]], "dtype": "float32", "weight": 2.0,
        "flops": 1.5e9, "workload_hash": "abc123", "tunable": False, "detail": "stem",
    },
    "stage": {
        **ENVELOPE, "kind": "stage", "task": "t1", "iteration": 4, "stage": "profile",
        "resource": "device:llvm:0", "start": 10.25, "end": 11.5, "status": "error",
        "error": "timeout", "candidates": 16,
    },
    "record": {
        **ENVELOPE, "kind": "record", "task": "t1", "candidate": 7, "iteration": 4,
        "workload_hash": "abc123", "trace": "sch = tir.Schedule(mod)\n", "run_secs": [1e-3, 2e-3],
        "error": None, "error_class": None, "predicted": 0.75, "origin": "metaschedule",
    },
}  # fmt: skip


def minimal(kind: str) -> dict[str, Any]:
    """The required fields of a kind only."""
    cls = EVENT_TYPES[kind]
    data = {k: v for k, v in FULL[kind].items() if k in ("v", "kind")}
    data.update({k: FULL[kind][k] for k in cls.__dataclass_fields__ if _required(cls, k)})
    return data


def _required(cls: type[Event], name: str) -> bool:
    from dataclasses import MISSING

    f = cls.__dataclass_fields__[name]
    return f.default is MISSING and f.default_factory is MISSING


@pytest.mark.parametrize("kind", sorted(FULL))
def test_every_kind_round_trips_through_json_exactly(kind: str) -> None:
    event = from_dict(FULL[kind])
    assert type(event) is EVENT_TYPES[kind]
    text = event.to_json()
    assert json.loads(text) == FULL[kind]
    assert from_json(text) == event
    assert from_json(text).to_json() == text
    assert event.to_dict() == FULL[kind]


@pytest.mark.parametrize("kind", sorted(FULL))
def test_defaults_fill_optional_fields(kind: str) -> None:
    event = from_dict(minimal(kind))
    assert from_json(event.to_json()) == event
    assert set(event.to_dict()) == set(FULL[kind])


def test_json_form_is_compact_with_v_and_kind_first() -> None:
    text = from_dict(FULL["stage"]).to_json()
    assert text.startswith('{"v":1,"kind":"stage","source":"run-1","seq":3,')
    assert " " not in text.replace("device:llvm:0", "")


def test_lists_become_tuples_and_ints_become_floats() -> None:
    event = from_dict({**FULL["task"], "weight": 3})
    assert isinstance(event, TaskEvent)
    assert event.shapes == ((1, 3, 224, 224), (64, 3, 7, 7))
    assert type(event.weight) is float and event.weight == 3.0
    run_secs: Any = [1, 2.5]
    built = RecordEvent(source="s", seq=0, ts=1, job="j", task="t", candidate=0, run_secs=run_secs)
    assert built.run_secs == (1.0, 2.5) and all(type(x) is float for x in built.run_secs)
    assert type(built.ts) is float


def test_mean_secs_is_the_mean_of_run_secs_or_none() -> None:
    ok = from_dict(FULL["record"])
    assert isinstance(ok, RecordEvent)
    assert ok.mean_secs == pytest.approx(1.5e-3)
    failed = RecordEvent(source="s", seq=0, ts=1, job="j", task="t", candidate=0,
                         error="crash", error_class="run")  # fmt: skip
    assert failed.mean_secs is None


@pytest.mark.parametrize("kind", sorted(FULL))
def test_missing_required_field_is_named(kind: str) -> None:
    data = minimal(kind)
    for name in [k for k in data if k not in ("v", "kind", "clock")]:
        broken = {k: v for k, v in data.items() if k != name}
        with pytest.raises(EventError, match=rf"^{kind}\.{name}: missing field$"):
            from_dict(broken)


@pytest.mark.parametrize(
    ("kind", "field", "value", "message"),
    [
        ("stage", "iteration", "4", r"stage\.iteration: expected int, got str"),
        ("stage", "iteration", True, r"stage\.iteration: expected int, got bool"),
        ("stage", "iteration", 4.0, r"stage\.iteration: expected int, got float"),
        ("job", "priority", False, r"job\.priority: expected int, got bool"),
        ("job", "seq", None, r"job\.seq: expected int, got NoneType"),
        ("stage", "start", "10", r"stage\.start: expected float, got str"),
        ("stage", "start", True, r"stage\.start: expected float, got bool"),
        ("task", "tunable", 1, r"task\.tunable: expected bool, got int"),
        ("task", "op", 5, r"task\.op: expected str, got int"),
        ("task", "shapes", [[1, "2"]], r"task\.shapes\[0\]\[1\]: expected int, got str"),
        ("task", "shapes", "1x2", r"task\.shapes: expected a list, got str"),
        ("record", "run_secs", [1e-3, "x"], r"record\.run_secs\[1\]: expected float"),
        ("job", "tasks", ["a", 1], r"job\.tasks\[1\]: expected str, got int"),
        ("stage", "job", None, r"stage\.job: expected str, got NoneType"),
        ("stage", "stage", "compile", r"stage\.stage: 'compile' is not one of"),
        ("stage", "status", "done", r"stage\.status: 'done' is not one of"),
        ("job", "change", "exploded", r"job\.change: 'exploded' is not one of"),
        ("record", "error_class", "oom", r"record\.error_class: 'oom' is not one of"),
        ("job", "clock", "cpu", r"job\.clock: 'cpu' is not one of"),
        ("job", "seq", -1, r"job\.seq: must be >= 0"),
        ("job", "source", "", r"job\.source: must not be empty"),
    ],
)
def test_wrong_values_are_rejected_naming_the_field(
    kind: str, field: str, value: Any, message: str
) -> None:
    with pytest.raises(EventError, match=message):
        from_dict({**FULL[kind], field: value})


def test_wrong_type_in_a_constructor_is_rejected_too() -> None:
    with pytest.raises(EventError, match=r"^stage\.iteration: expected int, got bool$"):
        StageEvent(source="s", seq=0, ts=1.0, job="j", task="t", iteration=True,
                   stage="build", resource="client:0", start=0.0, end=1.0)  # fmt: skip


def test_an_unhashable_value_in_a_choice_field_is_a_type_error() -> None:
    stage: Any = ["build"]
    with pytest.raises(EventError, match=r"^stage\.stage: expected str, got list$"):
        StageEvent(source="s", seq=0, ts=1.0, job="j", task="t", iteration=0, stage=stage,
                   resource="client:0", start=0.0, end=1.0)  # fmt: skip


def test_first_bad_field_in_declaration_order_is_reported() -> None:
    with pytest.raises(EventError, match=r"^stage\.seq: expected int"):
        from_dict({**FULL["stage"], "seq": "x", "start": "y", "stage": "nope"})


NON_FINITE_FIELDS = [("stage", "start"), ("job", "ts"), ("task", "flops"), ("record", "predicted")]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("kind", "field"), NON_FINITE_FIELDS)
def test_non_finite_floats_are_rejected(kind: str, field: str, value: float) -> None:
    with pytest.raises(EventError, match=rf"^{kind}\.{field}: must be a finite number"):
        from_dict({**FULL[kind], field: value})


def test_non_finite_float_inside_a_list_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^record\.run_secs\[0\]: must be a finite number"):
        from_dict({**FULL["record"], "run_secs": [math.inf]})


def test_non_finite_floats_in_json_text_are_rejected() -> None:
    text = from_dict(FULL["stage"]).to_json().replace('"end":11.5', '"end":NaN')
    with pytest.raises(EventError, match=r"^stage\.end: must be a finite number"):
        from_json(text)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^kind: unknown kind 'trial'"):
        from_dict({**FULL["job"], "kind": "trial"})
    with pytest.raises(EventError, match=r"^kind: missing field$"):
        from_dict({k: v for k, v in FULL["job"].items() if k != "kind"})


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_version_is_rejected(version: int) -> None:
    with pytest.raises(EventError, match=rf"^v: unknown schema version {version}"):
        from_dict({**FULL["record"], "v": version})


def test_missing_or_non_int_version_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^v: missing field$"):
        from_dict({k: v for k, v in FULL["job"].items() if k != "v"})
    with pytest.raises(EventError, match=r"^v: expected int, got str$"):
        from_dict({**FULL["job"], "v": "1"})


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^stage\.color: unknown field$"):
        from_dict({**FULL["stage"], "color": "red"})
    with pytest.raises(EventError, match=r"^job\.trace: unknown field$"):
        from_dict({**FULL["job"], "trace": "only records have traces"})


def test_stage_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^stage\.end: ends before it starts \(9\.0 < 10\.25\)"):
        from_dict({**FULL["stage"], "end": 9.0})
    zero_length = from_dict({**FULL["stage"], "end": 10.25})
    assert isinstance(zero_length, StageEvent) and zero_length.end == zero_length.start


def test_not_an_object_or_not_json_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^event: expected a JSON object, got list"):
        from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(EventError, match=r"^event: not valid JSON"):
        from_json('{"v":1,')


def test_base_event_cannot_be_built() -> None:
    with pytest.raises(EventError, match=r"^kind: use a concrete event class"):
        Event(source="s", seq=0, ts=1.0, job="j")


def test_events_are_immutable() -> None:
    event = from_dict(FULL["job"])
    with pytest.raises(AttributeError):
        event.job = "other"  # type: ignore[misc]


def test_jsonl_helpers_round_trip_and_number_bad_lines() -> None:
    import io

    originals = [from_dict(FULL[k]) for k in sorted(FULL)]
    buffer = io.StringIO()
    assert write_jsonl(originals, buffer) == 4
    lines = buffer.getvalue().splitlines()
    assert list(read_jsonl([lines[0], "", "  ", *lines[1:]])) == originals
    with pytest.raises(EventError, match=r"^line 3: job\.priority: expected int"):
        list(read_jsonl([lines[1], lines[2], lines[0].replace('"priority":2', '"priority":"2"')]))


@given(data=st.data())
def test_generated_events_round_trip_through_json(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    event = data.draw(events_strategy)
    text = event.to_json()
    back = from_json(text)
    assert back == event
    assert back.to_json() == text
    assert from_dict(json.loads(text)) == event


@given(data=st.data())
def test_rebuilding_from_fields_gives_an_equal_event(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    event = data.draw(events_strategy)
    fields = event.to_dict()
    kind = fields.pop("kind")
    rebuilt = EVENT_TYPES[kind](**fields)
    assert rebuilt == event
    assert isinstance(rebuilt, JobEvent | TaskEvent | StageEvent | RecordEvent)


@pytest.mark.parametrize("seq", [2**63, -(2**63) - 1])
def test_integers_beyond_64_bits_are_rejected(seq: int) -> None:
    with pytest.raises(EventError, match=r"^record\.seq: .* does not fit in 64 bits$"):
        from_dict({**FULL["record"], "seq": seq})


def test_integers_at_the_64_bit_edges_are_kept() -> None:
    event = from_dict({**FULL["record"], "seq": 2**63 - 1, "candidate": -(2**63)})
    assert (event.seq, event.candidate) == (2**63 - 1, -(2**63))


def test_text_with_a_lone_surrogate_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^record\.trace: not valid UTF-8 text"):
        from_dict({**FULL["record"], "trace": "ok \udc80"})
    assert from_dict({**FULL["record"], "trace": "µs → ok"}).trace == "µs → ok"


@given(data=st.data())
def test_the_trusted_constructor_builds_the_same_event_without_checking(
    data: st.DataObject, events_strategy: st.SearchStrategy[Event]
) -> None:
    event = data.draw(events_strategy)
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    made = trusted_constructor(type(event))(**fields)
    assert made == event and type(made) is type(event) and hash(made) == hash(event)
    assert made.to_json() == event.to_json()
    required = {k: v for k, v in fields.items() if _required(type(event), k)}
    # the defaults of the fields left out are the class's
    assert trusted_constructor(type(event))(**required) == type(event)(**required)
    # positional, in any order of the fields
    order = tuple(data.draw(st.permutations(list(fields))))
    made = trusted_constructor(type(event), order)(*(fields[name] for name in order))
    assert made == event and made.to_json() == event.to_json()


def test_the_trusted_constructor_checks_nothing_and_needs_a_concrete_class() -> None:
    made = trusted_constructor(StageEvent)(
        source="", seq=-1, ts=math.inf, job="j", task="t", iteration=0, stage="nap",
        resource="r", start=2.0, end=1.0,
    )  # fmt: skip
    assert made.stage == "nap" and made.seq == -1  # what validation would have refused
    with pytest.raises(EventError):
        from_dict(made.to_dict())
    with pytest.raises(TypeError, match="not a concrete event class"):
        trusted_constructor(Event)
    with pytest.raises(TypeError, match="must name every field once"):
        trusted_constructor(StageEvent, ("source", "seq"))


def test_mean_of_does_not_overflow_where_the_sum_would() -> None:
    assert mean_of((1e-3, 3e-3)) == pytest.approx(2e-3)
    assert mean_of((1.5e308, 1.5e308)) == 1.5e308
    record = from_dict({**FULL["record"], "run_secs": [1.7e308, 1.7e308], "error_class": None})
    assert record.mean_secs == 1.7e308


def test_the_job_spec_extension_is_written_only_when_set() -> None:
    plain = JobEvent(source="s", seq=0, ts=1.0, job="j1", change="started")
    assert "spec" not in plain.to_dict() and '"spec"' not in plain.to_json()
    spec = '{"workloads":["matmul:8"]}'
    submitted = JobEvent(source="s", seq=1, ts=1.0, job="j1", change="submitted", spec=spec)
    assert from_json(submitted.to_json()) == submitted
    assert submitted.to_dict()["spec"] == spec
