"""The dataflow graph of a model's fused calls, with the bytes of every tensor between them.

``nodes`` are in the order TVM would run them (the bindings of the model's dataflow blocks).
A tensor is produced by one node (or is a model input, ``producer`` None) and read by
``consumers``; it is live from its producer's step until its last consumer's step, both
included (a model input from the first step, a model output until the last). Weights are
not tensors here: ``weight_bytes`` reports them apart. Pure data, no TVM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class MemoryGraphError(ValueError):
    """A graph that is not a DAG of tensors as described (the message names the problem)."""


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    bytes: int
    producer: int | None  # index of the node that writes it; None: a model input
    consumers: tuple[int, ...] = ()  # indices of the nodes that read it
    is_output: bool = False  # a model output: live until the last step
    dtype: str = ""  # element type; TVM's planner shares storage only within one dtype


@dataclass(frozen=True, slots=True)
class Node:
    name: str  # the binding's variable, e.g. "lv3"
    op: str  # the fused function it calls, e.g. "fused_conv2d_add_relu"
    inputs: tuple[str, ...]  # tensor names
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class MemoryGraph:
    """Nodes in TVM's order and the tensors between them (see the module docstring)."""

    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]
    weight_bytes: int = 0
    name: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the extraction had to assume

    def __post_init__(self) -> None:
        check_graph(self)

    @property
    def tvm_order(self) -> tuple[int, ...]:
        return tuple(range(len(self.nodes)))

    def predecessors(self, node: int) -> tuple[int, ...]:
        """Nodes whose outputs ``node`` reads."""
        out = {self.tensors[t].producer for t in self.nodes[node].inputs} - {None}
        return tuple(sorted(out))  # type: ignore[arg-type]


def check_graph(graph: MemoryGraph) -> None:
    """MemoryGraphError unless every tensor named exists with a size >= 0, producers and
    consumers agree with the nodes, and the nodes in their given order are topological."""
    for index, node in enumerate(graph.nodes):
        for name in (*node.inputs, *node.outputs):
            if name not in graph.tensors:
                raise MemoryGraphError(f"node {node.name} names unknown tensor {name!r}")
        for name in node.outputs:
            if graph.tensors[name].producer != index:
                raise MemoryGraphError(f"tensor {name} is not produced by node {node.name}")
        for name in node.inputs:
            producer = graph.tensors[name].producer
            if producer is not None and producer >= index:
                raise MemoryGraphError(f"node {node.name} reads {name} before it is produced")
            if index not in graph.tensors[name].consumers:
                raise MemoryGraphError(f"tensor {name} does not list node {node.name} as a reader")
    for tensor in graph.tensors.values():
        if tensor.bytes < 0:
            raise MemoryGraphError(f"tensor {tensor.name} has a negative size")


def graph_from_edges(
    sizes: Sequence[int],
    edges: Sequence[tuple[int, int]],
    *,
    input_bytes: int = 0,
    name: str = "",
) -> MemoryGraph:
    """A graph of single-output nodes (node i writes tensor ``t{i}`` of ``sizes[i]`` bytes)
    from (producer, consumer) edges between node indices, producer < consumer; nodes no one
    reads are model outputs; with ``input_bytes`` a model input ``x`` feeds node 0. For tests
    and synthetic graphs."""
    consumers: dict[int, list[int]] = {i: [] for i in range(len(sizes))}
    inputs: dict[int, list[str]] = {i: [] for i in range(len(sizes))}
    for a, b in sorted(set(edges)):
        if not 0 <= a < b < len(sizes):
            raise MemoryGraphError(f"edge {a}->{b} is not between two nodes in order")
        consumers[a].append(b)
        inputs[b].append(f"t{a}")
    tensors: dict[str, Tensor] = {}
    if input_bytes:
        tensors["x"] = Tensor("x", input_bytes, None, (0,))
        inputs[0].insert(0, "x")
    nodes = []
    for i, size in enumerate(sizes):
        tensors[f"t{i}"] = Tensor(f"t{i}", size, i, tuple(consumers[i]), not consumers[i])
        nodes.append(Node(f"n{i}", "op", tuple(inputs[i]), (f"t{i}",)))
    return MemoryGraph(tuple(nodes), tensors, name=name)
