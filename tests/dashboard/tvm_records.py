"""MetaSchedule trace JSON from TVM objects (for building test records)."""

from __future__ import annotations

from typing import Any


def plain_json(value: Any) -> Any:
    """TVM's ``Trace.as_json()`` (arrays, maps, IntImm, strings) as plain JSON values."""
    kind = type(value).__name__
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if kind in ("IntImm", "FloatImm"):
        return value.value
    if isinstance(value, dict) or kind == "Map":
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or kind == "Array":
        return [plain_json(v) for v in value]
    return str(value)
