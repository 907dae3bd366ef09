"""A graph seen as the search space of its orders: sets of scheduled nodes as int bitmasks.

The bytes resident between steps depend only on the set of nodes already run (Serenity,
MLSys 2020), so a search state is that set and the resident bytes follow from it; running a
ready node ``v`` next costs ``resident + out_bytes[v]`` at its step (the memory model of
``profile``) and leaves ``resident`` plus its outputs that are still needed, minus its inputs
that no one else will read.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph


@dataclass(frozen=True, slots=True)
class ScheduleSpace:
    """Bitmask tables of a graph for order search (node ``i`` is bit ``1 << i``)."""

    n_nodes: int
    predecessors: tuple[int, ...]  # mask of the nodes each node reads from
    successors: tuple[tuple[int, ...], ...]  # nodes that read each node
    out_bytes: tuple[int, ...]  # bytes a node allocates at its step
    kept_out_bytes: tuple[int, ...]  # of those, the bytes still live after its step
    model_out_bytes: tuple[int, ...]  # of those, the bytes of model outputs (never freed)
    freeable_reads: tuple[tuple[tuple[int, int], ...], ...]  # (readers mask, bytes) per input
    initial_bytes: int  # model inputs, live before the first step
    unread_input_bytes: int  # model inputs no one reads: freed after the first step
    constant_bytes: int  # model inputs that are model outputs: live at every step

    @property
    def all_nodes(self) -> int:
        return (1 << self.n_nodes) - 1

    def ready(self, done: int) -> int:
        """Mask of the nodes not in ``done`` whose predecessors all are."""
        out = 0
        for node in range(self.n_nodes):
            if not done >> node & 1 and self.predecessors[node] & ~done == 0:
                out |= 1 << node
        return out

    def newly_ready(self, done: int, node: int) -> int:
        """Mask of the successors of ``node`` that become ready once ``done`` (with ``node``)
        has run."""
        out = 0
        for succ in self.successors[node]:
            if self.predecessors[succ] & ~done == 0:
                out |= 1 << succ
        return out

    def freed_reads(self, done: int, node: int) -> int:
        """Bytes of ``node``'s inputs freed after its step, ``done`` including ``node``."""
        return sum(size for readers, size in self.freeable_reads[node] if readers & ~done == 0)

    def step(self, done: int, resident: int, node: int) -> tuple[int, int]:
        """(bytes live during ``node``'s step, bytes resident after it) when ``node`` runs
        after the set ``done`` holding ``resident`` bytes."""
        during = resident + self.out_bytes[node]
        after = resident + self.kept_out_bytes[node] - self.freed_reads(done | 1 << node, node)
        if not done:
            after -= self.unread_input_bytes
        return during, after


def schedule_space(graph: MemoryGraph) -> ScheduleSpace:
    """The bitmask tables of ``graph``."""
    n_nodes = len(graph.nodes)
    successors: list[list[int]] = [[] for _ in range(n_nodes)]
    predecessors = []
    for node in range(n_nodes):
        mask = 0
        for pred in graph.predecessors(node):
            mask |= 1 << pred
            successors[pred].append(node)
        predecessors.append(mask)
    readers = {name: _mask(t.consumers) for name, t in graph.tensors.items()}
    out_bytes, kept_out_bytes, model_out_bytes, freeable_reads = [], [], [], []
    for node in graph.nodes:
        outputs = [graph.tensors[name] for name in dict.fromkeys(node.outputs)]
        out_bytes.append(sum(t.bytes for t in outputs))
        kept_out_bytes.append(sum(t.bytes for t in outputs if t.consumers or t.is_output))
        model_out_bytes.append(sum(t.bytes for t in outputs if t.is_output))
        inputs = [graph.tensors[name] for name in dict.fromkeys(node.inputs)]
        freeable_reads.append(
            tuple((readers[t.name], t.bytes) for t in inputs if not t.is_output and t.bytes)
        )
    model_inputs = [t for t in graph.tensors.values() if t.producer is None]
    return ScheduleSpace(
        n_nodes=n_nodes,
        predecessors=tuple(predecessors),
        successors=tuple(tuple(s) for s in successors),
        out_bytes=tuple(out_bytes),
        kept_out_bytes=tuple(kept_out_bytes),
        model_out_bytes=tuple(model_out_bytes),
        freeable_reads=tuple(freeable_reads),
        initial_bytes=sum(t.bytes for t in model_inputs),
        unread_input_bytes=sum(
            t.bytes for t in model_inputs if not t.consumers and not t.is_output
        ),
        constant_bytes=sum(t.bytes for t in model_inputs if t.is_output),
    )


def _mask(nodes: tuple[int, ...]) -> int:
    mask = 0
    for node in nodes:
        mask |= 1 << node
    return mask
