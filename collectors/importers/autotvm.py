"""AutoTVM JSON-lines logs to events (plain JSON, no TVM needed).

Log v0.2 lines look like::

    {"input": [target, task_name, args, kwargs],
     "config": {"index": 129, "code_hash": null, "entity": [["tile_y", "sp", [-1, 1]], ...]},
     "result": [costs, error_no, all_cost, timestamp], "version": 0.2, "tvm_version": "..."}

Older v0.1 lines use ``{"i": [target, task_name, args, kwargs, workload, {"i": index, "e":
entity, ...}], "r": result, "v": 0.1}``. Knobs become readable text (``tile_y=[-1, 1]``); failed
measurements (``error_no != 0``) are kept with their error name and class.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from collectors.events import Event
from collectors.importers._common import (
    BadLine,
    ImportContext,
    UniqueNames,
    compact,
    parse_result,
    shape_text,
    tensor_shapes,
)
from collectors.importers._measured import (
    Measurement,
    WorkloadInfo,
    json_line_measurements,
    measured_log_events,
)
from collectors.importers.op_info import autotvm_flops

KNOB_KINDS = {"sp": "split", "re": "reorder", "an": "annotate", "ot": "other"}


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
    return measured_log_events(
        ctx,
        "AutoTVM log",
        json_line_measurements(
            ctx, looks_like, _measurement, "not an AutoTVM record (no input/config/result)"
        ),
        _describe,
    )


def knob_text(entity: Any) -> str:
    """Knobs one per line: ``tile_y=[-1, 8]  (split)``."""
    if not isinstance(entity, list):
        raise BadLine("config entity is not a list")
    lines = []
    for knob in entity:
        if not isinstance(knob, list) or len(knob) != 3 or not isinstance(knob[0], str):
            raise BadLine(f"config knob is not [name, kind, value]: {knob!r}"[:200])
        name, kind, value = knob
        kind_name = KNOB_KINDS.get(kind, str(kind))
        lines.append(f"{name}={compact(value)}  ({kind_name})")
    return "\n".join(lines)


def _measurement(number: int, obj: dict[str, Any]) -> Measurement:
    if "input" in obj:
        inp, config, result = obj["input"], obj["config"], obj["result"]
        if not isinstance(config, dict):
            raise BadLine("config is not an object")
        index, entity = config.get("index"), config.get("entity")
    else:
        inp, result = obj["i"], obj["r"]
        config = inp[5]
        if not isinstance(config, dict):
            raise BadLine("config is not an object")
        index, entity = config.get("i"), config.get("e")
    if not isinstance(inp, list) or len(inp) < 3:
        raise BadLine("input is not [target, task, args, kwargs]")
    target, task_name, args = inp[0], inp[1], inp[2]
    if not isinstance(target, str) or not isinstance(task_name, str):
        raise BadLine("input target and task name must be strings")
    if not isinstance(args, list):
        raise BadLine("input args is not a list")
    costs, error_no, all_cost, ts = parse_result(result)
    header = f"config #{index}" if type(index) is int else "config"
    return Measurement(
        line=number,
        key=json.dumps([task_name, args], separators=(",", ":")),
        target=target,
        costs=costs,
        error_no=error_no,
        all_cost=all_cost,
        ts=ts,
        trace=f"{header}\n{knob_text(entity)}",
    )


def _describe(m: Measurement, names: UniqueNames) -> WorkloadInfo:
    task_name, args = json.loads(m.key)
    shapes, dtype = tensor_shapes(args)
    wanted = f"{task_name}({', '.join(shape_text(s) for s in shapes)})"
    return WorkloadInfo(
        name=names.add(m.key, wanted),
        op=task_name,
        workload_hash=hashlib.sha1(m.key.encode()).hexdigest()[:16],
        shapes=shapes,
        dtype=dtype,
        flops=autotvm_flops(task_name, args),
        detail=f"args: {json.dumps(args)}",
    )
