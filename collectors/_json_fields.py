"""Reading fields of decoded JSON objects, with errors that name the field."""

from __future__ import annotations

from typing import Any


def typed(data: dict[str, Any], key: str, kind: type, where: str, error: type[Exception]) -> Any:
    """``data[key]``, which must be a ``kind`` (a bool is not an int); else ``error`` naming
    ``where.key``."""
    if key not in data:
        raise error(f"{where}.{key}: missing field")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise error(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def optional(data: dict[str, Any], key: str, kind: type, where: str, error: type[Exception]) -> Any:
    """``data[key]`` as ``typed`` reads it, or None when it is missing or null."""
    return None if data.get(key) is None else typed(data, key, kind, where, error)
