"""Ansor (auto_scheduler) JSON-lines logs to events (plain JSON, no TVM needed).

Lines look like::

    {"i": [[workload_key, target, hardware_params, target_host, ...], [[], steps]],
     "r": [costs, error_no, all_cost, timestamp], "v": "v0.6"}

``workload_key`` is a JSON string: ``["<md5 of the compute DAG>", shape, ...]`` (the DAG itself
is not in the log, so its compute is named by hash) or ``["<registered function>", arg, ...]``.

A record's trace is its transform steps exactly as the log writes them (JSON, origin
``"ansor"``); ``render_trace`` turns them into lines such as
``split(stage=2, iter=0, lengths=[8, 4])`` when a viewer shows one record. Rendering every
step of every record at import took five times as long as everything else the import does.
Lines in the layout above are read in one pass that keeps the steps' text as it is (checking
that it is JSON and a list of steps): by msgspec in C when written exactly as Ansor writes
them (``_msgspec_measurement``, 2-3x faster), else piece by piece with ``json``'s scanner;
any other layout is decoded as a whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from collectors.events import Event
from collectors.importers._common import (
    BadLine,
    ImportContext,
    compact,
    parse_json,
    parse_result,
    quick_measurement,
    scan_json,
    shape_text,
)
from collectors.importers._measured import (
    LineFormat,
    Measurement,
    WorkloadInfo,
    json_line_measurements,
    measured_log_events,
)

# auto_scheduler IteratorAnnotation, in enum order.
ANNOTATIONS = (
    "none", "unroll", "vectorize", "parallel", "vthread", "blockIdx.x", "threadIdx.x",
    "blockIdx.y", "threadIdx.y", "blockIdx.z", "threadIdx.z", "tensorize",
)  # fmt: skip

# Record prefix -> (readable name, names of the fields after the prefix).
STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "AN": ("annotate", ("stage", "iter", "annotation")),
    "FU": ("fuse", ("stage", "iters")),
    "PR": ("pragma", ("stage", "iter", "pragma")),
    "RE": ("reorder", ("stage", "order")),
    "SP": ("split", ("stage", "iter", "extent", "lengths", "inner_to_outer")),
    "FSP": ("follow_split", ("stage", "iter", "src_step", "n_split")),
    "FFSP": ("follow_fused_split", ("stage", "iter", "src_steps", "level", "factor_or_nparts")),
    "SA": ("storage_align", ("stage", "iter", "factor", "offset")),
    "CA": ("compute_at", ("stage", "target_stage", "target_iter")),
    "CI": ("compute_inline", ("stage",)),
    "CR": ("compute_root", ("stage",)),
    "CHR": ("cache_read", ("stage", "scope", "readers")),
    "CHW": ("cache_write", ("stage", "scope")),
    "RF": ("rfactor", ("stage", "iter", "factor_iter")),
}

_MD5 = re.compile(r"^[0-9a-f]{32}$")


def looks_like(obj: Any) -> bool:
    """True for a decoded Ansor log line: ``i`` is [[workload_key, ...], [stages, steps]]."""
    if not isinstance(obj, dict) or "r" not in obj:
        return False
    inp = obj.get("i")
    return (
        isinstance(inp, list)
        and len(inp) == 2
        and isinstance(inp[0], list)
        and bool(inp[0])
        and isinstance(inp[0][0], str)
        and isinstance(inp[1], list)
    )


ORIGIN = "ansor"  # the origin of every imported record: its trace is the steps' JSON


def read(ctx: ImportContext) -> Iterator[Event]:
    """Stream events from an Ansor log at ``ctx.path``."""
    return measured_log_events(
        ctx, "Ansor log", ORIGIN, json_line_measurements(ctx, LINES), _describe
    )


def render_trace(trace: str) -> str:
    """An imported record's steps (their JSON, as stored) as readable lines, one per step.

    Raises ValueError when ``trace`` is not a JSON list of steps.
    """
    try:
        steps = json.loads(trace)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Ansor steps are not valid JSON ({exc.msg})") from None
    try:
        return steps_text(steps)
    except BadLine as exc:
        raise ValueError(str(exc)) from None


def step_text(step: Any) -> str:
    """One transform step as ``name(field=value, ...)``; unknown steps keep their raw form."""
    if not isinstance(step, list) or not step or not isinstance(step[0], str):
        raise BadLine(f"step is not [code, ...]: {step!r}"[:200])
    code, values = step[0], step[1:]
    known = STEPS.get(code)
    if known is None or len(values) != len(known[1]):
        return f"{code}{json.dumps(values)}"
    name, fields = known
    parts = []
    for field, value in zip(fields, values, strict=True):
        if field == "annotation" and type(value) is int and 0 <= value < len(ANNOTATIONS):
            parts.append(f"{field}={ANNOTATIONS[value]}")
        elif isinstance(value, str):
            parts.append(f"{field}={value}")
        else:
            parts.append(f"{field}={compact(value)}")
    return f"{name}({', '.join(parts)})"


def steps_text(steps: Any) -> str:
    """All steps of a state, one per line."""
    if not isinstance(steps, list):
        raise BadLine("state steps is not a list")
    return "\n".join(step_text(step) for step in steps)


def check_steps(steps: Any) -> None:
    """Raise BadLine unless ``steps`` is a list of ``[code, ...]`` steps."""
    if type(steps) is not list:
        raise BadLine("state steps is not a list")
    for step in steps:
        if type(step) is not list or not step or type(step[0]) is not str:
            raise BadLine(f"step is not [code, ...]: {step!r}"[:200])


def _measurement(obj: dict[str, Any]) -> Measurement:
    task_input, state = obj["i"]
    if not isinstance(state, list) or len(state) != 2:
        raise BadLine("state is not [stages, steps]")
    check_steps(state[1])
    return _from_parts(task_input, obj["r"], json.dumps(state[1]))


def _from_parts(task_input: list[Any], result: Any, steps: str) -> Measurement:
    key = task_input[0]
    target = task_input[1] if len(task_input) > 1 and isinstance(task_input[1], str) else None
    costs, error_no, all_cost, ts = parse_result(result)
    return Measurement(key, target, costs, error_no, all_cost, ts, steps)


# The usual layout, read piece by piece: {"i": [TASK_INPUT, [STAGES, STEPS]], "r": RESULT, ...}
_HEAD = re.compile(r'\{[ \t]*"i"[ \t]*:[ \t]*\[[ \t]*')
_COMMA = re.compile(r"[ \t]*,[ \t]*")
_COMMA_LIST = re.compile(r"[ \t]*,[ \t]*\[[ \t]*")
_STATE_END = re.compile(r'[ \t]*\][ \t]*\][ \t]*,[ \t]*"r"[ \t]*:[ \t]*')
_COLON = re.compile(r"[ \t]*:[ \t]*")
_OBJECT_END = re.compile(r"[ \t]*\}")


def _fast_measurement(text: str) -> Measurement | None:
    """The measurement of a line in the usual layout, keeping the steps' text as it is;
    None for any other line (read by the general path, which also explains errors)."""
    try:
        if (m := _HEAD.match(text)) is None:
            return None
        task_input, at = scan_json(text, m.end())
        if (m := _COMMA_LIST.match(text, at)) is None:
            return None
        _, at = scan_json(text, m.end())  # the stages: always empty in logs
        if (m := _COMMA.match(text, at)) is None:
            return None
        steps, end = scan_json(text, m.end())
        raw = text[m.end() : end]
        if (m := _STATE_END.match(text, end)) is None:
            return None
        result, at = scan_json(text, m.end())
        while (m := _COMMA.match(text, at)) is not None:  # "v" and any other member
            key, at = scan_json(text, m.end())
            if type(key) is not str or key in ("i", "r") or (m := _COLON.match(text, at)) is None:
                return None  # a repeated key: the general path takes the last one
            _, at = scan_json(text, m.end())
        if (m := _OBJECT_END.match(text, at)) is None or m.end() != len(text):
            return None
    except (StopIteration, ValueError, RecursionError):
        return None
    if type(task_input) is not list or not task_input or type(task_input[0]) is not str:
        return None
    check_steps(steps)
    return _from_parts(task_input, result, raw)


class _Line(msgspec.Struct, gc=False):
    """A line as msgspec reads it: ``i``'s parts and ``r`` as the JSON text written."""

    i: tuple[msgspec.Raw, tuple[msgspec.Raw, msgspec.Raw]]
    r: msgspec.Raw


class _Step(msgspec.Struct, array_like=True, gc=False):
    """What a step must be: an array whose first item is its code (the rest is skipped)."""

    code: str


# ``i``: [task input, [stages, steps]], each part kept as its text.
_DECODE_LINE = msgspec.json.Decoder(_Line).decode
_DECODE_STEPS = msgspec.json.Decoder(list[_Step]).decode
_TASK_INPUTS: dict[str, tuple[str, str | None] | None] = {}  # raw text -> (key, target)
_TASK_INPUTS_LIMIT = 4096
_SHAPES: dict[bytes, bool] = {}  # steps' shape -> whether they are a list of steps
_SHAPES_LIMIT = 4096
_NUMBER_CHARS = b"0123456789-"
_LIST_CHARS = b"[] \t\r\n"
_SPACE = " \t\r\n"


def _msgspec_measurement(text: str) -> tuple[Any, ...] | None:
    """The measurement of an ASCII line in the usual layout exactly as Ansor writes it
    (``", "`` and ``": "`` separators, ``i`` then ``r`` first), decoded by msgspec in C
    with the steps' text kept as it is; None for any other line or any doubt (the next path
    reads it and explains errors). Accepts only lines ``_fast_measurement`` accepts, with
    the same result (costs as ``quick_measurement`` gives them)."""
    if not text.startswith('{"i": [') or not text.isascii():
        return None
    try:
        line = _DECODE_LINE(text)
    except (msgspec.MsgspecError, RecursionError):
        return None
    # A part's text starts at its first character that is not JSON whitespace, so where
    # the usual layout puts a part right after a separator, that text is the part's (an
    # ASCII line has as many characters as bytes).
    raw_task_input, (raw_stages, raw_steps) = line.i
    at = 7 + len(raw_task_input)
    stages_at = at + 3
    steps_at = stages_at + len(raw_stages) + 2
    steps_end = steps_at + len(raw_steps)
    result_at = steps_end + 9
    result_end = result_at + len(line.r)
    if (
        text[7] in _SPACE
        or not text.startswith(", [", at)
        or text[stages_at] in _SPACE
        or not text.startswith(", ", stages_at + len(raw_stages))
        or text[steps_at] != "["
        or not text.startswith(']], "r": ', steps_end)
        or text[result_at] in _SPACE
        or not _rest_is_plain(text, result_end)
    ):
        return None
    steps = text[steps_at:steps_end]
    if not _are_steps(steps):
        return None
    task_input = text[7:at]
    known = _TASK_INPUTS.get(task_input, False)
    if known is False:
        known = _task_input_of(task_input)
        if len(_TASK_INPUTS) >= _TASK_INPUTS_LIMIT:
            _TASK_INPUTS.clear()
        _TASK_INPUTS[task_input] = known
    if known is None:
        return None
    return quick_measurement(known, line.r, steps)


def _are_steps(steps: str) -> bool:
    """Whether valid JSON ``steps`` (ASCII) is a list of ``[code, ...]`` steps.

    Decided once per shape: the text without digits and minus signs. Two valid JSON texts
    of one shape hold the same arrays, strings and numbers in the same places (a backslash
    is never followed by a digit), except that an array of one number and an empty array
    look alike. That never changes the answer (either is an array, never a step's code,
    and neither is a step) unless it is the whole list, so such texts are decoded.
    """
    shape = steps.encode("ascii").translate(None, _NUMBER_CHARS)
    if not shape.strip(_LIST_CHARS):  # ``[]``, ``[5]``, ``[[]]``...: decoded
        return _decodes_as_steps(steps)
    known = _SHAPES.get(shape)
    if known is None:
        known = _decodes_as_steps(steps)
        if len(_SHAPES) >= _SHAPES_LIMIT:
            _SHAPES.clear()
        _SHAPES[shape] = known
    return known


def _decodes_as_steps(steps: str) -> bool:
    try:
        _DECODE_STEPS(steps)
    except (msgspec.MsgspecError, RecursionError):
        return False
    return True


_VERSION_TAIL = ', "v": "v0.6"}'


def _rest_is_plain(text: str, at: int) -> bool:
    """True when the members after ``r`` (from ``at``) are what ``_fast_measurement``
    accepts: any but ``i`` or ``r``."""
    if text.endswith(_VERSION_TAIL) and len(text) - at == len(_VERSION_TAIL):
        return True
    try:
        while (m := _COMMA.match(text, at)) is not None:
            key, at = scan_json(text, m.end())
            if type(key) is not str or key in ("i", "r") or (m := _COLON.match(text, at)) is None:
                return False
            _, at = scan_json(text, m.end())
    except (StopIteration, ValueError, RecursionError):
        return False
    return (m := _OBJECT_END.match(text, at)) is not None and m.end() == len(text)


def _task_input_of(raw: str) -> tuple[str, str | None] | None:
    """(workload key, target) of a line's task input text, as ``_from_parts`` makes them."""
    try:
        task_input = parse_json(raw)
    except BadLine:
        return None
    if type(task_input) is not list or not task_input or type(task_input[0]) is not str:
        return None
    target = task_input[1] if len(task_input) > 1 and isinstance(task_input[1], str) else None
    return task_input[0], target


LINES = LineFormat(
    "ansor", looks_like, _measurement, "not an Ansor record (no i/r)", _fast_measurement,
    _msgspec_measurement,
)  # fmt: skip


def _describe(m: Measurement) -> WorkloadInfo:
    try:
        parts = json.loads(m.key)
    except json.JSONDecodeError:
        parts = None
    shapes: tuple[tuple[int, ...], ...] = ()
    if isinstance(parts, list) and parts and isinstance(parts[0], str):
        head, rest = parts[0], parts[1:]
        shapes = tuple(
            tuple(s) for s in rest if isinstance(s, list) and all(type(d) is int for d in s)
        )
        if _MD5.match(head):
            op = "compute_dag"
            wanted = f"{head[:8]}({', '.join(shape_text(s) for s in shapes)})"
            detail = f"workload key {m.key}; the log names this compute DAG only by its hash"
        else:
            op = head
            wanted = f"{head}({', '.join(json.dumps(a) for a in rest)})"
            detail = f"workload key {m.key}"
    else:
        op, wanted, detail = "compute_dag", m.key[:60], f"workload key {m.key}"
    return WorkloadInfo(
        name=wanted,
        op=op,
        workload_hash=hashlib.sha1(m.key.encode()).hexdigest()[:16],
        shapes=shapes,
        detail=detail,
    )
