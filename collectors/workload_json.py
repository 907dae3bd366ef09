"""The JSON graph inside a MetaSchedule workload, without TVM.

``database_workload.json`` holds each workload as base64 of an 8-byte length header followed
by TVM's JSON graph of the module. The header's bytes may themselves be a ``{``, so the graph
is read from just after the header, and only a payload without one is searched for its first
``{``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

HEADER_BYTES = 8


def workload_graph(encoded: str) -> dict[str, Any] | None:
    """The JSON graph of a base64 workload (a dict with ``nodes``), or None if unreadable."""
    try:
        raw = base64.b64decode(encoded, validate=False)
        start = HEADER_BYTES if raw[HEADER_BYTES : HEADER_BYTES + 1] == b"{" else raw.find(b"{")
        graph = json.loads(raw[start:]) if start >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return None
    return graph
