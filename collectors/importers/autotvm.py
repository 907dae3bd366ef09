"""AutoTVM JSON-lines logs to events (plain JSON, no TVM needed).

Log v0.2 lines look like::

    {"input": [target, task_name, args, kwargs],
     "config": {"index": 129, "code_hash": null, "entity": [["tile_y", "sp", [-1, 1]], ...]},
     "result": [costs, error_no, all_cost, timestamp], "version": 0.2, "tvm_version": "..."}

Older v0.1 lines use ``{"i": [target, task_name, args, kwargs, workload, {"i": index, "e":
entity, ...}], "r": result, "v": 0.1}``. Failed measurements (``error_no != 0``) are kept with
their error name and class.

A record's trace is its config exactly as the log writes it (JSON, origin ``"autotvm"``);
``render_trace`` turns it into readable knob lines (``tile_y=[-1, 1]  (split)``) when a viewer
shows one record. Lines in the v0.2 layout above are read in one pass that keeps the
config's text as it is (checking that its knobs are ``[name, kind, value]``): by msgspec in
C when written exactly as AutoTVM writes them (``_msgspec_measurement``, 2-3x faster),
else piece by piece with ``json``'s scanner; any other layout is decoded as a whole.
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
    tensor_shapes,
)
from collectors.importers._measured import (
    LineFormat,
    Measurement,
    WorkloadInfo,
    json_line_measurements,
    measured_log_events,
)
from collectors.importers.op_info import autotvm_flops

KNOB_KINDS = {"sp": "split", "re": "reorder", "an": "annotate", "ot": "other"}
ORIGIN = "autotvm"  # the origin of every imported record: its trace is the config's JSON


def looks_like(obj: Any) -> bool:
    """True for a decoded AutoTVM log line (v0.2 keys, or v0.1 with a string target)."""
    if not isinstance(obj, dict):
        return False
    if "input" in obj and "config" in obj and "result" in obj:
        return True
    inp = obj.get("i")
    return (
        "r" in obj
        and isinstance(inp, list)
        and len(inp) >= 6
        and isinstance(inp[0], str)
        and isinstance(inp[1], str)
    )


def read(ctx: ImportContext) -> Iterator[Event]:
    """Stream events from an AutoTVM log at ``ctx.path``."""
    measurements = json_line_measurements(ctx, LINES)
    return measured_log_events(ctx, "AutoTVM log", ORIGIN, measurements, _describe)


def render_trace(trace: str) -> str:
    """An imported record's config (its JSON, as stored) as ``config #N`` and one line per
    knob. Raises ValueError when ``trace`` is not such a config."""
    try:
        config = json.loads(trace)
    except json.JSONDecodeError as exc:
        raise ValueError(f"AutoTVM config is not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise ValueError("AutoTVM config is not a JSON object")
    index = config.get("index", config.get("i"))
    header = f"config #{index}" if type(index) is int else "config"
    try:
        return f"{header}\n{knob_text(config.get('entity', config.get('e')))}"
    except BadLine as exc:
        raise ValueError(str(exc)) from None


def knob_text(entity: Any) -> str:
    """Knobs one per line: ``tile_y=[-1, 8]  (split)``."""
    check_entity(entity)
    lines = []
    for name, kind, value in entity:
        kind_name = KNOB_KINDS.get(kind) if type(kind) is str else None
        lines.append(f"{name}={compact(value)}  ({kind_name or kind})")
    return "\n".join(lines)


def check_entity(entity: Any) -> None:
    """Raise BadLine unless ``entity`` is a list of ``[name, kind, value]`` knobs."""
    if type(entity) is not list:
        raise BadLine("config entity is not a list")
    for knob in entity:
        if type(knob) is not list or len(knob) != 3 or type(knob[0]) is not str:
            raise BadLine(f"config knob is not [name, kind, value]: {knob!r}"[:200])


class _WorkloadKeys:
    """Workload keys (compact JSON of ``[task name, args]``) by the raw text of the line's
    input, so the repeated inputs of a log are encoded once. Holds at most ``LIMIT``."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._by_text: dict[str, str] = {}

    def get(self, raw: str | None, task_name: str, args: list[Any]) -> str:
        key = self._by_text.get(raw) if raw is not None else None
        if key is None:
            key = _KEY([task_name, args])
            if raw is not None:
                if len(self._by_text) >= self.LIMIT:
                    self._by_text.clear()
                self._by_text[raw] = key
        return key


_KEY = json.JSONEncoder(separators=(",", ":")).encode  # a workload's key: [task name, args]
_KEYS = _WorkloadKeys()  # one per process: keys depend only on the text they are made from


def _measurement(obj: dict[str, Any]) -> Measurement:
    if "input" in obj:
        inp, config, result = obj["input"], obj["config"], obj["result"]
        if not isinstance(config, dict):
            raise BadLine("config is not an object")
        entity = config.get("entity")
    else:
        inp, result = obj["i"], obj["r"]
        config = inp[5]
        if not isinstance(config, dict):
            raise BadLine("config is not an object")
        entity = config.get("e")
    check_entity(entity)
    return _from_parts(inp, None, result, json.dumps(config))


def _from_parts(inp: Any, raw_input: str | None, result: Any, config: str) -> Measurement:
    if not isinstance(inp, list) or len(inp) < 3:
        raise BadLine("input is not [target, task, args, kwargs]")
    target, task_name, args = inp[0], inp[1], inp[2]
    if not isinstance(target, str) or not isinstance(task_name, str):
        raise BadLine("input target and task name must be strings")
    if not isinstance(args, list):
        raise BadLine("input args is not a list")
    costs, error_no, all_cost, ts = parse_result(result)
    key = _KEYS.get(raw_input, task_name, args)
    return Measurement(key, target, costs, error_no, all_cost, ts, config)


# The v0.2 layout, read piece by piece: {"input": [...], "config": {...}, "result": [...], ...}
_HEAD = re.compile(r'\{[ \t]*"input"[ \t]*:[ \t]*')
_CONFIG = re.compile(r'[ \t]*,[ \t]*"config"[ \t]*:[ \t]*')
_RESULT = re.compile(r'[ \t]*,[ \t]*"result"[ \t]*:[ \t]*')
# Then only version fields: numbers or strings without escapes.
_TAIL = re.compile(
    r'(?:[ \t]*,[ \t]*"(?:version|tvm_version)"[ \t]*:[ \t]*'
    r'(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?|"[^"\\]*"))*[ \t]*\}'
)


def _fast_measurement(text: str) -> Measurement | None:
    """The measurement of a line in the v0.2 layout, keeping the config's text as it is;
    None for any other line (read by the general path, which also explains errors)."""
    try:
        if (m := _HEAD.match(text)) is None:
            return None
        start = m.end()
        inp, at = scan_json(text, start)
        raw_input = text[start:at]
        if (m := _CONFIG.match(text, at)) is None:
            return None
        start = m.end()
        config, at = scan_json(text, start)
        raw_config = text[start:at]
        if (m := _RESULT.match(text, at)) is None:
            return None
        result, at = scan_json(text, m.end())
        if (m := _TAIL.match(text, at)) is None or m.end() != len(text):
            return None
    except (StopIteration, ValueError, RecursionError):
        return None
    if type(config) is not dict:
        raise BadLine("config is not an object")
    check_entity(config.get("entity"))
    return _from_parts(inp, raw_input, result, raw_config)


class _Line(msgspec.Struct, gc=False):
    """A v0.2 line as msgspec reads it: each part's JSON text kept as written."""

    input: msgspec.Raw
    config: msgspec.Raw
    result: msgspec.Raw


class _Config(msgspec.Struct, gc=False):
    """What a config must hold: knobs ``[name, kind, value]`` (other members ignored)."""

    entity: list[tuple[str, msgspec.Raw, msgspec.Raw]]


_DECODE_LINE = msgspec.json.Decoder(_Line).decode
_CHECK_CONFIG = msgspec.json.Decoder(_Config).decode
_INPUTS: dict[str, tuple[str, str] | None] = {}  # raw input text -> (workload key, target)
_HEAD_TEXT, _CONFIG_TEXT, _RESULT_TEXT = '{"input": ', ', "config": ', ', "result": '
_TAILS: set[str] = set()  # version fields seen after the result, checked by ``_TAIL``
_TAILS_LIMIT = 64


def _msgspec_measurement(text: str) -> tuple[Any, ...] | None:
    """The measurement of an ASCII line in the v0.2 layout exactly as AutoTVM writes it
    (``", "`` and ``": "`` separators), decoded by msgspec in C with the config's text kept
    as it is; None for any other line or any doubt (the next path reads it and explains
    errors). Accepts only lines ``_fast_measurement`` accepts, with the same result (costs
    as ``quick_measurement`` gives them)."""
    if not text.startswith(_HEAD_TEXT) or not text.isascii():
        return None
    try:
        line = _DECODE_LINE(text)
        config = str(line.config, "ascii")
        _CHECK_CONFIG(config)
    except (msgspec.MsgspecError, RecursionError):
        return None
    # The parts must sit where the usual layout puts them (which also rules out repeated
    # keys), followed only by version fields.
    raw_input = str(line.input, "ascii")
    parts = (
        f"{_HEAD_TEXT}{raw_input}{_CONFIG_TEXT}{config}{_RESULT_TEXT}{str(line.result, 'ascii')}"
    )
    if not text.startswith(parts):
        return None
    if (tail := text[len(parts) :]) not in _TAILS:
        if (m := _TAIL.match(tail)) is None or m.end() != len(tail):
            return None
        if len(_TAILS) >= _TAILS_LIMIT:
            _TAILS.clear()
        _TAILS.add(tail)
    known = _INPUTS.get(raw_input, False)
    if known is False:
        try:
            known = _workload_of(raw_input)
        except (BadLine, ValueError, RecursionError):
            known = None
        if len(_INPUTS) >= _WorkloadKeys.LIMIT:
            _INPUTS.clear()
        _INPUTS[raw_input] = known
    if known is None:
        return None
    return quick_measurement(known, line.result, config)


def _workload_of(raw_input: str) -> tuple[str, str] | None:
    """(workload key, target) of a line's input text, as ``_from_parts`` makes them."""
    inp = parse_json(raw_input)
    if not isinstance(inp, list) or len(inp) < 3:
        return None
    target, task_name, args = inp[0], inp[1], inp[2]
    if type(target) is not str or type(task_name) is not str or type(args) is not list:
        return None
    return _KEYS.get(raw_input, task_name, args), target


LINES = LineFormat(
    "autotvm", looks_like, _measurement, "not an AutoTVM record (no input/config/result)",
    _fast_measurement, _msgspec_measurement,
)  # fmt: skip


def _describe(m: Measurement) -> WorkloadInfo:
    task_name, args = json.loads(m.key)
    shapes, dtype = tensor_shapes(args)
    return WorkloadInfo(
        name=f"{task_name}({', '.join(shape_text(s) for s in shapes)})",
        op=task_name,
        workload_hash=hashlib.sha1(m.key.encode()).hexdigest()[:16],
        shapes=shapes,
        dtype=dtype,
        flops=autotvm_flops(task_name, args),
        detail=f"args: {json.dumps(args)}",
    )
