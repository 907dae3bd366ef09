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
    if any(isinstance(node, dict) and "type_key" in node for node in nodes[:2]):
        return _legacy_names(nodes)
    return _ffi_names(nodes)


def _ffi_names(nodes: list[Any]) -> tuple[str | None, list[str]]:
    """``workload_names`` of a graph in the FFI layout (``type``, ``data``)."""

    def string_at(index: Any) -> str | None:
        if type(index) is int and 0 <= index < len(nodes):
            node = nodes[index]
            if isinstance(node, dict) and isinstance(node.get("data"), str):
                return node["data"]
        return None

    function = symbol = None
    blocks: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind, data = node.get("type", ""), node.get("data")
        if kind == "ffi.Map" and isinstance(data, list) and symbol is None:
            for key, value in zip(data[::2], data[1::2], strict=False):
                if string_at(key) == "global_symbol":
                    symbol = string_at(value)
        if not isinstance(data, dict):
            continue
        if kind == "ir.GlobalVar" and function is None:
            function = string_at(data.get("name_hint"))
        elif isinstance(kind, str) and kind.endswith("Block") and "Realize" not in kind:
            name = string_at(data.get("name_hint"))
            if name and name != "root":
                blocks.append(name)
    return symbol or function, blocks


def _legacy_names(nodes: list[Any]) -> tuple[str | None, list[str]]:
    """``workload_names`` of a graph in the layout before TVM 0.20 (``type_key``, ``attrs``
    with node indices as strings, strings as ``runtime.String`` nodes' ``repr_str``)."""

    def string_at(index: Any) -> str | None:
        if type(index) is str and index.isdigit():
            index = int(index)
        if type(index) is int and 0 <= index < len(nodes):
            node = nodes[index]
            if isinstance(node, dict) and isinstance(node.get("repr_str"), str):
                return node["repr_str"]
        return None

    function = symbol = None
    blocks: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind, attrs = node.get("type_key", ""), node.get("attrs")
        if kind == "Map" and symbol is None:
            symbol = _legacy_map_value(node, "global_symbol", string_at)
        if not isinstance(attrs, dict):
            continue
        if kind == "GlobalVar" and function is None:
            function = string_at(attrs.get("name_hint"))
        elif isinstance(kind, str) and kind.endswith("Block") and "Realize" not in kind:
            name = string_at(attrs.get("name_hint"))
            if name and name != "root":
                blocks.append(name)
    return symbol or function, blocks


def _legacy_map_value(
    node: dict[str, Any], key: str, string_at: Callable[[Any], str | None]
) -> str | None:
    """The string a string-keyed legacy ``Map`` node holds under ``key``, or None."""
    keys, data = node.get("keys"), node.get("data")
    if not isinstance(keys, list) or not isinstance(data, list) or key not in keys:
        return None
    at = keys.index(key)
    return string_at(data[at]) if at < len(data) else None


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
