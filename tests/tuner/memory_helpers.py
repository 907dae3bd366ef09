"""Small graphs for the memory planning tests: a hypothesis strategy for graphs with every
shape the model allows, and every topological order of a graph (the brute force)."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import strategies as st

from tuner.memory.graph import MemoryGraph, Node, Tensor


@st.composite
def memory_graphs(draw: st.DrawFn, *, max_nodes: int = 7, max_bytes: int = 20) -> MemoryGraph:
    """Graphs of 1..``max_nodes`` nodes writing one or two tensors and reading up to three
    earlier ones (a read may repeat), with model inputs, model outputs that are read again,
    outputs nobody needs, and empty tensors."""
    size = st.integers(0, max_bytes)
    producer: dict[str, int | None] = {}
    sizes: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    for i in range(draw(st.integers(0, 2))):
        producer[f"x{i}"], sizes[f"x{i}"], readers[f"x{i}"] = None, draw(size), []
    nodes = []
    for index in range(draw(st.integers(1, max_nodes))):
        reads = draw(st.lists(st.sampled_from(sorted(producer)), max_size=3)) if producer else []
        writes = [f"t{index}_{k}" for k in range(draw(st.integers(1, 2)))]
        for name in dict.fromkeys(reads):
            readers[name].append(index)
        for name in writes:
            producer[name], sizes[name], readers[name] = index, draw(size), []
        nodes.append(Node(f"n{index}", "op", tuple(reads), tuple(writes)))
    tensors = {}
    for name, made_by in producer.items():
        unread = made_by is not None and not readers[name]
        is_output = draw(st.booleans()) if unread else draw(st.integers(0, 5)) == 0
        tensors[name] = Tensor(name, sizes[name], made_by, tuple(readers[name]), is_output)
    return MemoryGraph(tuple(nodes), tensors)


def topological_orders(graph: MemoryGraph) -> Iterator[tuple[int, ...]]:
    """Every order of ``graph``'s nodes that runs each after the nodes it reads from."""
    predecessors = [set(graph.predecessors(node)) for node in range(len(graph.nodes))]

    def extend(order: list[int], done: set[int]) -> Iterator[tuple[int, ...]]:
        if len(order) == len(predecessors):
            yield tuple(order)
        for node, before in enumerate(predecessors):
            if node not in done and before <= done:
                yield from extend([*order, node], done | {node})

    yield from extend([], set())
