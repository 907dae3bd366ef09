"""Loop names of a MetaSchedule workload's blocks, so decisions read ``tile j[inner]``.

The names come from the workload's structural JSON (``database_workload.json``, base64, as
``ms_trace.workload_names`` reads it), without TVM: for each block, the loop variables of the
``For`` nodes around it, outermost first. ``loops_from_database`` finds a task's workload in
a MetaSchedule database folder by its structural hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collectors.workload_json import workload_graph


def block_loops(encoded: str) -> dict[str, list[str]]:
    """``{block name: [loop names, outermost first]}`` of a base64 workload; {} if unreadable."""
    graph = workload_graph(encoded)
    if graph is None:
        return {}
    nodes = graph["nodes"]

    def node(index: Any) -> dict[str, Any] | None:
        if type(index) is int and 0 <= index < len(nodes) and isinstance(nodes[index], dict):
            return nodes[index]
        return None

    def text(index: Any) -> str | None:
        found = node(index)
        return found["data"] if found and isinstance(found.get("data"), str) else None

    parent: dict[int, int] = {}
    for i, item in enumerate(nodes):
        data = item.get("data") if isinstance(item, dict) else None
        children = data.values() if isinstance(data, dict) else data
        if isinstance(children, (list, type({}.values()))):
            for child in children:
                if type(child) is int and child not in parent and child != i:
                    parent[child] = i
    out: dict[str, list[str]] = {}
    for i, item in enumerate(nodes):
        if not (isinstance(item, dict) and str(item.get("type", "")).endswith("BlockRealize")):
            continue
        block = node(item["data"].get("block")) if isinstance(item.get("data"), dict) else None
        name = text(block["data"].get("name_hint")) if block else None
        if not name or name == "root":
            continue
        names: list[str] = []
        at = parent.get(i)
        while at is not None:
            found = nodes[at]
            if isinstance(found, dict) and str(found.get("type", "")).endswith(".For"):
                var = node(found["data"].get("loop_var"))
                loop = text(var["data"].get("name")) if var else None
                names.append(loop or "?")
            elif isinstance(found, dict) and str(found.get("type", "")).endswith("BlockRealize"):
                break  # loops above an enclosing block belong to that block
            at = parent.get(at)
        out[name] = names[::-1]
    return out


def loops_from_database(folder: str | Path, workload_hash: str) -> dict[str, list[str]]:
    """Block loop names of the workload with ``workload_hash`` in a MetaSchedule database
    folder; {} when the folder, the file or the workload is not there."""
    path = Path(folder) / "database_workload.json"
    prefix = f'["{workload_hash}"'
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                if line.startswith(prefix):
                    entry = json.loads(line)
                    return block_loops(entry[1]) if len(entry) > 1 else {}
    except (OSError, ValueError):
        return {}
    return {}


def database_folder(detail: str | None) -> str | None:
    """The ``metaschedule_database=<folder>`` a task or job detail names, or None."""
    for line in (detail or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "metaschedule_database" and value.strip():
            return value.strip()
    return None
