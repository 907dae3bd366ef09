"""Readable text for MetaSchedule's JSON forms without TVM: traces and workload names
(targets: ``ms_targets``).

A trace is ``[instructions, decisions]``; an instruction is ``[kind, inputs, attrs, outputs]``
and a decision ``[instruction index, value]``. Each instruction becomes one line in the style
of ``Trace.as_python``::

    v5, v6 = sample_perfect_tile(l2, attrs=[2, 64], decision=[4, 8])
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.importers._common import compact
from collectors.workload_json import workload_graph

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def trace_text(trace: Any) -> str:
    """Render a trace's JSON form one instruction per line; raises ValueError if malformed."""
    if not isinstance(trace, list) or len(trace) != 2 or not isinstance(trace[0], list):
        raise ValueError("trace is not [instructions, decisions]")
    insts, decisions = trace
    chosen: dict[int, Any] = {}
    if isinstance(decisions, list):
        for item in decisions:
            if isinstance(item, list) and len(item) == 2 and type(item[0]) is int:
                chosen[item[0]] = item[1]
    lines = []
    for index, inst in enumerate(insts):
        if (
            not isinstance(inst, list)
            or len(inst) != 4
            or not isinstance(inst[0], str)
            or not isinstance(inst[1], list | None)
            or not isinstance(inst[3], list | None)
        ):
            raise ValueError(f"instruction {index} is not [kind, inputs, attrs, outputs]")
        kind, inputs, attrs, outputs = inst
        args = [_operand(x) for x in inputs or []]
        if attrs:
            args.append(f"attrs={compact(attrs)}")
        if index in chosen:
            args.append(f"decision={compact(chosen[index])}")
        call = f"{_snake(kind)}({', '.join(args)})"
        outs = ", ".join(str(o) for o in outputs or [])
        lines.append(f"{outs} = {call}" if outs else call)
    return "\n".join(lines)


def args_info_shapes(args_info: Any) -> tuple[tuple[tuple[int, ...], ...], str | None]:
    """Shapes and first dtype of ``["TENSOR", dtype, shape]`` entries of a record."""
    shapes: list[tuple[int, ...]] = []
    dtype = None
    if not isinstance(args_info, list):
        return (), None
    for arg in args_info:
        if (
            isinstance(arg, list)
            and len(arg) == 3
            and arg[0] == "TENSOR"
            and isinstance(arg[2], list)
            and all(type(d) is int for d in arg[2])
        ):
            shapes.append(tuple(arg[2]))
            if dtype is None and isinstance(arg[1], str):
                dtype = arg[1]
    return tuple(shapes), dtype


def workload_names(encoded: str) -> tuple[str | None, list[str]]:
    """(function name, block names) from a workload's base64 structural JSON, without TVM.

    The payload is an 8-byte length header followed by TVM's JSON graph; the name is the
    ``global_symbol`` attribute, else the ``ir.GlobalVar`` name, and block names come from
    the block nodes. Both graph layouts are read: nodes with ``type`` and ``data`` (TVM's FFI
    graph, 0.20 on) and the older ``type_key`` and ``attrs`` (string indices, strings in
    ``repr_str``, string-keyed maps with ``keys``). Returns (None, []) when it cannot be read.
    """
    graph = workload_graph(encoded)
    if graph is None:
        return None, []
    nodes = graph["nodes"]
    legacy = any(isinstance(node, dict) and "type_key" in node for node in nodes[:2])
    return _graph_names(nodes, _LEGACY if legacy else _FFI)


@dataclass(frozen=True, slots=True)
class _GraphLayout:
    """Where one of TVM's JSON graph layouts keeps a node's type, attributes and text."""

    type_field: str
    attrs_field: str
    text_field: str
    map_kind: str
    global_var_kind: str
    legacy: bool  # node indices written as strings; maps with literal ``keys``


_FFI = _GraphLayout("type", "data", "data", "ffi.Map", "ir.GlobalVar", legacy=False)
_LEGACY = _GraphLayout("type_key", "attrs", "repr_str", "Map", "GlobalVar", legacy=True)


def _graph_names(nodes: list[Any], layout: _GraphLayout) -> tuple[str | None, list[str]]:
    """``workload_names`` of a graph in ``layout``."""

    def string_at(index: Any) -> str | None:
        if layout.legacy and type(index) is str and index.isdigit():
            index = int(index)
        if type(index) is int and 0 <= index < len(nodes):
            text = nodes[index].get(layout.text_field) if isinstance(nodes[index], dict) else None
            return text if isinstance(text, str) else None
        return None

    function = symbol = None
    blocks: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind, attrs = node.get(layout.type_field, ""), node.get(layout.attrs_field)
        if kind == layout.map_kind and symbol is None:
            for key, value in _map_items(node, layout, string_at):
                if key == "global_symbol":
                    symbol = string_at(value)
        if not isinstance(attrs, dict):
            continue
        if kind == layout.global_var_kind and function is None:
            function = string_at(attrs.get("name_hint"))
        elif isinstance(kind, str) and kind.endswith("Block") and "Realize" not in kind:
            name = string_at(attrs.get("name_hint"))
            if name and name != "root":
                blocks.append(name)
    return symbol or function, blocks


def _map_items(
    node: dict[str, Any], layout: _GraphLayout, string_at: Callable[[Any], str | None]
) -> list[tuple[str | None, Any]]:
    """A map node's (key text, value index) pairs: keys as node indices in one flat list
    with the values (FFI), or as literal ``keys`` beside the values' indices (legacy)."""
    data = node.get("data")
    if not isinstance(data, list):
        return []
    if layout.legacy:
        keys = node.get("keys")
        return list(zip(keys, data, strict=False)) if isinstance(keys, list) else []
    return [(string_at(k), v) for k, v in zip(data[::2], data[1::2], strict=False)]


@functools.cache
def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _operand(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_operand(v) for v in value) + "]"
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    return compact(value)
