"""MetaSchedule targets as plain JSON, without TVM: a record's target as a dict, the key of the
code it generates, its core count, and a one-line text for display.

A target is a record's target JSON (``{"kind": "llvm", "mcpu": "znver5", "num-cores": 2,
...}``), a kind name, or a ``tvm.target.Target`` (read through its ``export()``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Attributes that say nothing about the code a target generates.
_NOT_CODE = ("keys", "tag", "host")
# ... nor does the core count: a schedule tuned for another core count computes the same.
_NOT_IN_KEY = (*_NOT_CODE, "num-cores", "kind")


def target_dict(target: Any) -> dict[str, Any]:
    """A target as a plain dict without the attributes that do not matter for reuse (``keys``,
    ``tag``, ``host``). Raises ValueError for anything that is not a target."""
    if hasattr(target, "export"):
        target = target.export()
    if isinstance(target, str):
        target = {"kind": target}
    if not isinstance(target, Mapping) or not isinstance(target.get("kind"), str):
        raise ValueError(f"not a target: {target!r}")
    return {str(k): _plain(v) for k, v in sorted(target.items()) if k not in _NOT_CODE}


def target_key(target: Any) -> str:
    """What code a target generates, e.g. ``llvm -mcpu=znver5`` (``num-cores`` left out).
    Raises ValueError for anything that is not a target."""
    config = target_dict(target)
    parts = [str(config["kind"])]
    parts += [f"-{k}={_attr_text(v)}" for k, v in config.items() if k not in _NOT_IN_KEY]
    return " ".join(parts)


def target_cores(target: Any) -> int | None:
    """The target's ``num-cores`` (None when it does not say)."""
    cores = target_dict(target).get("num-cores")
    return int(cores) if isinstance(cores, int) else None


def target_text(target: Any) -> str | None:
    """``{"kind": "llvm", "num-cores": 2, ...}`` -> ``llvm -num-cores=2 ...`` (every attribute
    but ``tag``, empty ones left out); a string as it is; None when it is not a target."""
    if isinstance(target, str):
        return target
    if not isinstance(target, dict) or not isinstance(target.get("kind"), str):
        return None
    parts = [target["kind"]]
    for key in sorted(target):
        value = target[key]
        if key in ("kind", "tag") or value in ("", None, [], {}):
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value, separators=(",", ":"))
        parts.append(f"-{key}={value}")
    return " ".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _attr_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
