"""The msgspec readings of log lines agree with the readings they speed up: wherever one
answers, the line reads the same through the path it skips; on any other line it stays out
of the way (None), so errors are still worded by the general path.

Lines are drawn from the fixtures and edited: a value swapped for any JSON value, the
separators and key order changed, keys repeated, text inserted anywhere.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.events import EventError, RecordEvent, StageEvent, from_json
from collectors.importers import ansor, autotvm, metaschedule
from collectors.importers._common import BadLine, as_float_tuple
from collectors.importers.ms_database import run_secs_of
from collectors.jsonl import decode_event
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB

AUTOTVM = [x for x in AUTOTVM_SMALL.read_text().splitlines() if x.startswith("{")]
ANSOR = [x for x in ANSOR_SMALL.read_text().splitlines() if x.startswith("{")]
MS = (MS_DB / "database_tuning_record.json").read_text().splitlines()
EVENTS = [
    RecordEvent(
        source="run-x", seq=3, ts=1.5, job="j", task="t", candidate=2, iteration=1,
        run_secs=(1e-3, 2e-3), trace="[1]", workload_hash="ab", predicted=0.25, origin="ansor",
    ).to_json(),
    RecordEvent(
        source="run-x", seq=4, ts=2.0, clock="sim", job="j", task="t", candidate=3,
        error="BUILD_TIMEOUT", error_class="timeout",
    ).to_json(),
    StageEvent(
        source="run-x", seq=5, ts=3.0, job="j", task="t", iteration=0, stage="build",
        resource="client:0", start=1.0, end=3.0, candidates=16, status="error", error="x",
    ).to_json(),
]  # fmt: skip

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
SETTINGS = settings(max_examples=300, deadline=None)


def _paths(obj: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a decoded JSON value."""
    out = [at]
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            out += _paths(item, (*at, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            out += _paths(item, (*at, key))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, list):
        return [_replace(v, rest, value) if i == head else v for i, v in enumerate(obj)]
    return {k: _replace(v, rest, value) if k == head else v for k, v in obj.items()}


def _edited(line: str, seed: int, value: Any, noise: str) -> str:
    """One of several edits of ``line``, chosen by ``seed``."""
    rng = random.Random(seed)
    obj = json.loads(line)
    edit = seed % 6
    if edit == 0:  # any value anywhere
        obj = _replace(obj, rng.choice(_paths(obj)), value)
    if edit == 1 and isinstance(obj, dict):  # another key order
        items = list(obj.items())
        rng.shuffle(items)
        obj = dict(items)
    separators = rng.choice([(", ", ": "), (",", ":"), (" ,", " : "), (",\t", ":")])
    text = json.dumps(obj, separators=separators, ensure_ascii=seed % 5 != 0)
    if edit == 2 and text.startswith("{"):  # a repeated key
        key = rng.choice(list(obj))
        text = f"{text[:-1]}, {json.dumps(key)}: {json.dumps(value)}}}"
    if edit == 3:  # text inserted anywhere
        at = rng.randrange(len(text) + 1)
        text = text[:at] + noise + text[at:]
    if edit == 4:  # a number written another way
        text = text.replace("0, ", "0.0, ", 1).replace("e-05", "E-5", 1)
    return text.strip()


def _same(fast: Callable[[str], Any], slow: Callable[[str], Any], text: str) -> None:
    found = fast(text)
    if found is not None:
        assert found == slow(text), text


def _slow_or_error(read: Callable[[str], Any]) -> Callable[[str], Any]:
    def run(text: str) -> Any:
        try:
            return read(text)
        except (BadLine, EventError) as exc:
            return f"error: {exc}"

    return run


def _ms_slow(text: str) -> Any:
    index, record, trace = metaschedule._parse_record(text)
    return index, run_secs_of(record[1]), trace


EDIT = given(
    seed=st.integers(0, 10**6), value=_JSON, noise=st.text(max_size=3) | st.just("\\ud800")
)


@SETTINGS
@EDIT
@pytest.mark.parametrize(
    ("module", "lines"), [(autotvm, AUTOTVM), (ansor, ANSOR)], ids=["autotvm", "ansor"]
)
def test_msgspec_reading_of_a_measured_log_agrees(
    module: Any, lines: list[str], seed: int, value: Any, noise: str
) -> None:
    text = _edited(lines[seed % len(lines)], seed, value, noise)
    _same(_as_imported(module._msgspec_measurement), _as_imported(module._fast_measurement), text)


def _as_imported(read: Callable[[str], Any]) -> Callable[[str], Any]:
    """A measured log's line reading, its costs as the import takes them: ``as_float_tuple``
    of them without error (None: the line is bad), none with one (they are not used)."""

    def run(text: str) -> Any:
        try:
            found = read(text)
        except BadLine as exc:
            return f"error: {exc}"
        if found is None:
            return None
        key, target, costs, error_no, all_cost, ts, trace = found
        if error_no == 0:
            costs = costs if type(costs) is tuple else as_float_tuple(costs)
        else:
            costs = None
        return key, target, costs, error_no, all_cost, ts, trace

    return run


_NUMBER = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.integers(-(10**400), 10**400).map(str)
    | st.sampled_from(["1e400", "-1e400", "1e308", "-1e308", "1E-5", "0", "-0", "-0.0", "true"])
)


@SETTINGS
@given(
    costs=st.lists(_NUMBER, max_size=4),
    rest=st.lists(_NUMBER | st.sampled_from(["null", '"x"', "[]"]), min_size=3, max_size=4),
    seed=st.integers(0, 10**6),
)
@pytest.mark.parametrize(
    ("module", "lines", "key"),
    [(autotvm, AUTOTVM, "result"), (ansor, ANSOR, "r")],
    ids=["autotvm", "ansor"],
)
def test_msgspec_reading_of_measured_results_agrees(
    module: Any, lines: list[str], key: str, costs: list[str], rest: list[str], seed: int
) -> None:
    """Costs, error numbers, all_cost and timestamps written any way JSON allows (and some
    it does not) read as the slow path reads them, or are left to it."""
    obj = json.loads(lines[seed % len(lines)])
    obj[key] = "@RESULT@"
    result = f"[[{', '.join(costs)}], {', '.join(rest)}]"
    if seed % 2:  # the usual error number: costs are checked
        result = f"[[{', '.join(costs)}], 0, {', '.join(rest[1:])}]"
    text = json.dumps(obj).replace('"@RESULT@"', result)
    _same(_as_imported(module._msgspec_measurement), _as_imported(module._fast_measurement), text)


@SETTINGS
@EDIT
def test_msgspec_reading_of_a_metaschedule_record_agrees(seed: int, value: Any, noise: str) -> None:
    text = _edited(MS[seed % len(MS)], seed, value, noise)
    _same(metaschedule._msgspec_record, _slow_or_error(_ms_slow), text)


@SETTINGS
@EDIT
def test_msgspec_reading_of_an_event_agrees(seed: int, value: Any, noise: str) -> None:
    text = _edited(EVENTS[seed % len(EVENTS)], seed, value, noise)
    _same(decode_event, _slow_or_error(from_json), text)


@pytest.mark.parametrize(
    ("read", "lines"),
    [
        (autotvm._msgspec_measurement, AUTOTVM),
        (ansor._msgspec_measurement, ANSOR),
        (metaschedule._msgspec_record, MS),
        (decode_event, EVENTS),
    ],
    ids=["autotvm", "ansor", "metaschedule", "tuneloom"],
)
def test_msgspec_reads_every_line_as_the_tools_write_it(
    read: Callable[[str], Any], lines: list[str]
) -> None:
    assert all(read(line) is not None for line in lines)


_RUN_TIME = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.integers(-(10**400), 10**400).map(str)
    | st.sampled_from(["1e400", "-1e400", "1e308", "-1e308", "1e9", "1E-5", "0", "-0", "true"])
)


@SETTINGS
@given(times=st.lists(_RUN_TIME, max_size=4), seed=st.integers(0, 10**6))
def test_msgspec_reading_of_metaschedule_run_times_agrees(times: list[str], seed: int) -> None:
    obj = json.loads(MS[seed % len(MS)])
    obj[1][1] = "@TIMES@"
    text = json.dumps(obj, separators=(",", ":")).replace('"@TIMES@"', f"[{','.join(times)}]")
    _same(metaschedule._msgspec_record, _slow_or_error(_ms_slow), text)


_STEP_ITEM = (
    st.integers(-(10**6), 10**6)
    | st.text("ab1-", max_size=3)
    | st.lists(st.integers(-99, 99), max_size=3)
)


@SETTINGS
@given(
    steps=st.lists(st.lists(_STEP_ITEM, max_size=3) | _STEP_ITEM, max_size=4),
    digits=st.lists(st.sampled_from("0123456789"), min_size=1, max_size=8),
)
def test_ansor_steps_check_by_shape_agrees(steps: list[Any], digits: list[str]) -> None:
    """Texts of one shape (the same text but for digits) get the answer ``check_steps``
    gives each, whichever of them was checked first."""
    text = json.dumps(steps)
    # The same shape: every digit replaced, which keeps the text valid JSON unless a
    # number gains a leading zero.
    other = "".join(digits[i % len(digits)] if c.isdigit() else c for i, c in enumerate(text))
    for candidate in (text, other):
        try:
            value = json.loads(candidate)  # ``_are_steps`` is only asked about valid JSON
        except json.JSONDecodeError:
            continue
        try:
            ansor.check_steps(value)
            expected = True
        except BadLine:
            expected = False
        assert ansor._are_steps(candidate) is expected, candidate
