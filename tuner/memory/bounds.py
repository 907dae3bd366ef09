"""Lower bounds on the least peak memory of any order of a graph, without search.

A tensor is live at a node's step in every order when it is the node's own input or output,
or when it is produced before the node in every order (a model input, or an ancestor's
output) and still needed after it in every order (a model output, or read by the node or one
of its descendants). The most such bytes at any node is a lower bound on every order's
peak. So are the first step (all model inputs and a source node's outputs) and the last step
(all model outputs and a sink node's other tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph


@dataclass(frozen=True, slots=True)
class PeakBounds:
    """``peak``: a lower bound on every order's peak. ``floors[v]``: the bytes live at node
    v's step in every order that are not model outputs produced by other nodes or model
    inputs that are model outputs, so that the model outputs already made (never freed) can
    be added to it for a bound that depends on the nodes already run."""

    peak: int
    floors: tuple[int, ...]


def peak_bounds(graph: MemoryGraph) -> PeakBounds:
    """The lower bounds of ``graph`` (see the module docstring)."""
    n_nodes = len(graph.nodes)
    if not n_nodes:
        return PeakBounds(0, ())
    ancestors, descendants = _reachability(graph)
    must_live = [0] * n_nodes
    floors = [0] * n_nodes
    for tensor in graph.tensors.values():
        readers = 0
        for reader in tensor.consumers:
            readers |= 1 << reader
        for node in range(n_nodes):
            own = tensor.producer == node
            made_before = tensor.producer is None or own or ancestors[node] >> tensor.producer & 1
            needed_after = tensor.is_output or own or readers & (descendants[node] | 1 << node)
            if made_before and needed_after:
                must_live[node] += tensor.bytes
                if not tensor.is_output or own:
                    floors[node] += tensor.bytes
    sources = [v for v in range(n_nodes) if not graph.predecessors(v)]
    sinks = [v for v in range(n_nodes) if not descendants[v]]
    model_inputs = sum(t.bytes for t in graph.tensors.values() if t.producer is None)
    model_outputs = sum(t.bytes for t in graph.tensors.values() if t.is_output)
    first_step = model_inputs + min(_out_bytes(graph, v) for v in sources)
    last_step = model_outputs + min(_non_output_bytes(graph, v) for v in sinks)
    return PeakBounds(max(*must_live, first_step, last_step), tuple(floors))


def _reachability(graph: MemoryGraph) -> tuple[list[int], list[int]]:
    """Ancestor and descendant masks per node (node indices are a topological order)."""
    n_nodes = len(graph.nodes)
    ancestors = [0] * n_nodes
    successors: list[list[int]] = [[] for _ in range(n_nodes)]
    for node in range(n_nodes):
        for pred in graph.predecessors(node):
            ancestors[node] |= ancestors[pred] | 1 << pred
            successors[pred].append(node)
    descendants = [0] * n_nodes
    for node in reversed(range(n_nodes)):
        for succ in successors[node]:
            descendants[node] |= descendants[succ] | 1 << succ
    return ancestors, descendants


def _out_bytes(graph: MemoryGraph, node: int) -> int:
    return sum(graph.tensors[name].bytes for name in dict.fromkeys(graph.nodes[node].outputs))


def _non_output_bytes(graph: MemoryGraph, node: int) -> int:
    names = dict.fromkeys((*graph.nodes[node].inputs, *graph.nodes[node].outputs))
    return sum(graph.tensors[n].bytes for n in names if not graph.tensors[n].is_output)
