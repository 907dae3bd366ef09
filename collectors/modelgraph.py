"""A model's graph after fusion, as both sides share it (the ``graph`` event's JSON).

One node per fused kernel call in the order the model runs them; an edge from the node
that produces a tensor to each node that reads it. Each node names its kernel (the PrimFunc
the call runs, as ``ProfileEvent.kernels`` names it), its tuning task (None for kernels no
task covers), the operators fused into it and the source layers it came from (Keras
layer / TFLite op / ONNX node names, found by matching operators and shapes back to the
framework's graph). ``ambiguous`` says a match could not be decided between several layers;
``block`` groups nodes of one repeated block so a view can collapse them.

Plain JSON, no TVM: ``ModelGraph.from_json`` validates and raises ``GraphError`` naming
the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from collectors._json_fields import optional, typed

GRAPH_SCHEMA_VERSION = 1


class GraphError(ValueError):
    """Graph JSON that does not match the schema; the message names the field."""


@dataclass(frozen=True, slots=True)
class KernelNode:
    """One fused kernel call of the model."""

    id: str
    kernel: str
    op: str
    task: str | None = None
    fused: tuple[str, ...] = ()
    shapes: tuple[tuple[int, ...], ...] = ()
    layers: tuple[str, ...] = ()
    ambiguous: bool = False
    block: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return {
            "id": self.id,
            "kernel": self.kernel,
            "op": self.op,
            "task": self.task,
            "fused": list(self.fused),
            "shapes": [list(s) for s in self.shapes],
            "layers": list(self.layers),
            "ambiguous": self.ambiguous,
            "block": self.block,
        }


@dataclass(frozen=True, slots=True)
class ModelGraph:
    """Nodes in run order and data-flow edges ``(producer id, consumer id)``."""

    model: str
    nodes: tuple[KernelNode, ...]
    edges: tuple[tuple[str, str], ...] = ()
    framework: str | None = None
    detail: str | None = None
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            if node.id in index:
                raise GraphError(f"nodes[{i}].id: {node.id!r} appears twice")
            index[node.id] = i
        for i, (src, dst) in enumerate(self.edges):
            for end, name in ((src, "producer"), (dst, "consumer")):
                if end not in index:
                    raise GraphError(f"edges[{i}]: unknown {name} node {end!r}")
        object.__setattr__(self, "_index", index)

    def node(self, node_id: str) -> KernelNode:
        """The node with this id (KeyError when missing)."""
        return self.nodes[self._index[node_id]]

    def to_json(self) -> str:
        """Canonical JSON text (what a ``GraphEvent.graph`` holds)."""
        return json.dumps(
            {
                "version": GRAPH_SCHEMA_VERSION,
                "model": self.model,
                "framework": self.framework,
                "detail": self.detail,
                "nodes": [n.to_dict() for n in self.nodes],
                "edges": [list(e) for e in self.edges],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelGraph:
        """Parse and validate graph JSON; raises GraphError naming the field."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise GraphError(f"graph: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise GraphError("graph: expected a JSON object")
        version = data.get("version")
        if version != GRAPH_SCHEMA_VERSION:
            raise GraphError(f"graph.version: unknown version {version!r}")
        nodes_in = _typed(data, "nodes", list, "graph")
        nodes = tuple(_node(item, f"nodes[{i}]") for i, item in enumerate(nodes_in))
        edges = []
        for i, edge in enumerate(_typed(data, "edges", list, "graph")):
            if not (
                isinstance(edge, list) and len(edge) == 2 and all(isinstance(x, str) for x in edge)
            ):
                raise GraphError(f"edges[{i}]: expected [producer id, consumer id]")
            edges.append((edge[0], edge[1]))
        return cls(
            model=_typed(data, "model", str, "graph"),
            nodes=nodes,
            edges=tuple(edges),
            framework=_optional(data, "framework", str, "graph"),
            detail=_optional(data, "detail", str, "graph"),
        )


def _node(data: Any, where: str) -> KernelNode:
    if not isinstance(data, dict):
        raise GraphError(f"{where}: expected a JSON object")
    shapes = []
    for i, shape in enumerate(data.get("shapes") or []):
        if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
            raise GraphError(f"{where}.shapes[{i}]: expected a list of integers")
        shapes.append(tuple(shape))
    return KernelNode(
        id=_typed(data, "id", str, where),
        kernel=_typed(data, "kernel", str, where),
        op=_typed(data, "op", str, where),
        task=_optional(data, "task", str, where),
        fused=_strings(data, "fused", where),
        shapes=tuple(shapes),
        layers=_strings(data, "layers", where),
        ambiguous=bool(_optional(data, "ambiguous", bool, where) or False),
        block=_optional(data, "block", str, where),
    )


def _typed(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return typed(data, key, kind, where, GraphError)


def _optional(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return optional(data, key, kind, where, GraphError)


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise GraphError(f"{where}.{key}: expected a list of strings")
    return tuple(value)
