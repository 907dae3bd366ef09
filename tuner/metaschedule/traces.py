"""Schedule traces in MetaSchedule's JSON form, as the job's database and record events hold
them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def trace_json_text(trace: Any) -> str:
    """A trace as compact MetaSchedule JSON (``[instructions, decisions]``, the form of
    ``database_tuning_record.json``; ``Trace.apply_json_to_schedule`` replays it)."""
    return json.dumps(_plain(trace.as_json(remove_postproc=False)), separators=(",", ":"))


def _plain(value: Any) -> Any:
    """TVM containers and scalars -> plain JSON values."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    if hasattr(value, "value"):
        return value.value
    return str(value)
