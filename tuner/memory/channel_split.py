"""Channel-wise and kernel-wise partitioning of a graph, modelled (Serenity, MLSys 2020).

A node whose every output channel reads only the same channel of its inputs (a depthwise
convolution, ReLU, a bias or batch-norm add, an elementwise sum) can run as ``parts`` nodes,
one per channel slice; a node that reduces over the channels of one input (a pointwise or
full convolution: ``reduces`` names that input) can run split by output channels (each part
reads every slice of that input) or **accumulated** over its input slices (``accumulate``:
part ``s`` adds ``W[:, s] @ x_s`` into one whole output, in place, so each input slice can
die once read; the last part also applies the rest of the kernel). An accumulation can start
in place of one of the node's other inputs (``into``, e.g. a residual summed into the
output), which the node must then be the last reader of. A sliced tensor is ``parts``
tensors that die one by one; a whole tensor dies only when its last reader has run.

``split_channels`` returns the graph with those nodes split (pure, no TVM), so that the
least-peak search (``order.min_peak_order``) gives the least peak any order of the
partitioned kernels can reach. ``recompute_per_reader`` copies a node once per reader of its
output (recomputation instead of keeping the output alive).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph, MemoryGraphError, Node, Tensor

SLICE = "#"  # tensor and node names of the parts: "lv4#0"
LINK = "^"  # 0-byte tensors that order the parts of an accumulation: "lv4^1"
COPY = "@"  # names of recomputed copies: "lv@2"


@dataclass(frozen=True, slots=True)
class Split:
    """How one node is split. ``reduces``: the input whose every channel each output
    channel reads (None: the node is channel-wise). ``accumulate``: accumulate over that
    input's slices into a whole output instead of splitting by output channels; ``into``:
    start the accumulation in place of this other input."""

    reduces: str | None = None
    accumulate: bool = False
    into: str | None = None


def split_channels(graph: MemoryGraph, splits: Mapping[int, Split], parts: int) -> MemoryGraph:
    """``graph`` with the nodes in ``splits`` split into ``parts`` channel slices (see the
    module docstring); other nodes read every slice of a sliced input. MemoryGraphError
    when a split names a tensor the node does not read, a sliced tensor's bytes do not
    divide by ``parts``, or an ``into`` tensor cannot be written over (a model input or
    output, or a reader of it depends on the node)."""
    if parts < 1:
        raise MemoryGraphError(f"parts must be at least 1, got {parts}")
    return _Splitter(graph, splits, parts).run()


class _Splitter:
    def __init__(self, graph: MemoryGraph, splits: Mapping[int, Split], parts: int) -> None:
        self.graph = graph
        self.splits = splits
        self.parts = parts
        self.tensors: dict[str, list] = {}  # name -> [bytes, dtype, is_output]
        self.nodes: list[tuple[str, str, list[str], list[str], int]] = []  # + original index
        self.read_as: dict[str, list[str]] = {}  # original tensor -> names its readers read
        self.slices: dict[str, list[str]] = {}  # original tensor -> its slices, when sliced
        self.after: list[tuple[int, str]] = []  # (original node, first part name): ordering

    def run(self) -> MemoryGraph:
        for name, tensor in self.graph.tensors.items():
            if tensor.producer is None:
                self._tensor(name, tensor.bytes, tensor)
                self.read_as[name] = [name]
        for index, node in enumerate(self.graph.nodes):
            split = self.splits.get(index)
            if split is None:
                self._whole(index, node)
            elif split.reduces is not None and split.accumulate:
                self._accumulated(index, node, split)
            else:
                self._sliced(index, node, split)
        return self._graph()

    # ------------------------------------------------------------ building
    def _tensor(self, name: str, size: int, like: Tensor) -> None:
        self.tensors[name] = [size, like.dtype, like.is_output]

    def _node(self, name: str, op: str, inputs: list[str], outputs: list[str], index: int) -> None:
        self.nodes.append((name, op, list(dict.fromkeys(inputs)), outputs, index))

    def _all(self, tensor: str) -> list[str]:
        return list(self.read_as[tensor])

    def _part(self, tensor: str, s: int) -> list[str]:
        return [self.slices[tensor][s]] if tensor in self.slices else self._all(tensor)

    def _whole(self, index: int, node: Node) -> None:
        inputs = [name for t in node.inputs for name in self._all(t)]
        for t in node.outputs:
            self._tensor(t, self.graph.tensors[t].bytes, self.graph.tensors[t])
            self.read_as[t] = [t]
        self._node(node.name, node.op, inputs, list(node.outputs), index)

    def _check_reads(self, node: Node, split: Split) -> None:
        for name in (split.reduces, split.into):
            if name is not None and name not in node.inputs:
                raise MemoryGraphError(f"node {node.name} does not read {name}")

    def _sliced(self, index: int, node: Node, split: Split) -> None:
        self._check_reads(node, split)
        for t in node.outputs:
            tensor = self.graph.tensors[t]
            if tensor.bytes % self.parts:
                raise MemoryGraphError(
                    f"tensor {t} of {tensor.bytes} bytes does not split into {self.parts} parts"
                )
            self.slices[t] = [f"{t}{SLICE}{s}" for s in range(self.parts)]
            self.read_as[t] = list(self.slices[t])
            for name in self.slices[t]:
                self._tensor(name, tensor.bytes // self.parts, tensor)
        for s in range(self.parts):
            inputs = []
            for t in node.inputs:
                inputs += self._all(t) if t == split.reduces else self._part(t, s)
            outputs = [self.slices[t][s] for t in node.outputs]
            self._node(f"{node.name}{SLICE}{s}", node.op, inputs, outputs, index)

    def _accumulated(self, index: int, node: Node, split: Split) -> None:
        self._check_reads(node, split)
        if len(node.outputs) != 1:
            raise MemoryGraphError(f"node {node.name} has {len(node.outputs)} outputs")
        (out,) = node.outputs
        rest = [t for t in node.inputs if t not in (split.reduces, split.into)]
        if split.into is None:
            self._tensor(out, self.graph.tensors[out].bytes, self.graph.tensors[out])
            storage = [out]
        else:
            into = self.graph.tensors[split.into]
            if into.producer is None or into.is_output or self.graph.tensors[out].is_output:
                raise MemoryGraphError(
                    f"node {node.name} cannot accumulate over {split.into}: a model input or output"
                )
            storage = self._all(split.into)
            first = f"{node.name}{SLICE}0"
            self.after += [(reader, first) for reader in into.consumers if reader != index]
        previous: list[str] = []
        for s in range(self.parts):
            link = f"{out}{LINK}{s}"
            self.tensors[link] = [0, self.graph.tensors[out].dtype, False]
            inputs = self._part(split.reduces, s) + previous  # type: ignore[arg-type]
            if s or split.into is not None:
                inputs += storage
            if s == self.parts - 1:
                inputs += [name for t in rest for name in self._all(t)]
            outputs = [link] if s or split.into is not None else [out, link]
            self._node(f"{node.name}{SLICE}{s}", node.op, inputs, outputs, index)
            previous = [link]
        self.read_as[out] = [*storage, *previous]

    # ------------------------------------------------------------ ordering
    def _graph(self) -> MemoryGraph:
        names = [n[0] for n in self.nodes]
        inputs = [list(n[2]) for n in self.nodes]
        outputs = [list(n[3]) for n in self.nodes]
        producer = {t: i for i, outs in enumerate(outputs) for t in outs}
        parts_of: dict[int, list[int]] = {}
        for i, n in enumerate(self.nodes):
            parts_of.setdefault(n[4], []).append(i)
        for reader, first in self.after:  # a 0-byte tensor per ordering edge
            for part in parts_of[reader]:
                tag = f"{names[part]}{LINK}order"
                if tag not in self.tensors:
                    self.tensors[tag] = [0, "", False]
                    outputs[part].append(tag)
                    producer[tag] = part
                inputs[names.index(first)].append(tag)
        preds = [{producer[t] for t in ins if t in producer} for ins in inputs]
        order = _topological(preds, names)
        position = {old: new for new, old in enumerate(order)}
        nodes = [
            Node(names[old], self.nodes[old][1], tuple(inputs[old]), tuple(outputs[old]))
            for old in order
        ]
        consumers: dict[str, list[int]] = {t: [] for t in self.tensors}
        for new, node in enumerate(nodes):
            for t in node.inputs:
                consumers[t].append(new)
        tensors = {
            t: Tensor(
                t,
                size,
                position[producer[t]] if t in producer else None,
                tuple(consumers[t]),
                is_output,
                dtype,
            )
            for t, (size, dtype, is_output) in self.tensors.items()
        }
        return MemoryGraph(tuple(nodes), tensors, name=self.graph.name, notes=self.graph.notes)


def _topological(preds: list[set[int]], names: list[str]) -> list[int]:
    """Node indices in an order that runs every node after its predecessors, keeping the
    given order where it can; MemoryGraphError on a cycle (an ``into`` that cannot be)."""
    done: set[int] = set()
    order: list[int] = []
    pending = list(range(len(preds)))
    while pending:
        ready = next((i for i in pending if preds[i] <= done), None)
        if ready is None:
            stuck = ", ".join(names[i] for i in pending[:3])
            raise MemoryGraphError(
                f"no order runs {stuck}: an accumulation in place of a tensor still read after it"
            )
        pending.remove(ready)
        done.add(ready)
        order.append(ready)
    return order


def recompute_per_reader(graph: MemoryGraph, node: int) -> MemoryGraph:
    """``graph`` with ``node`` (one output, read by several nodes) run once per reader, each
    copy writing its own tensor (``lv@0``, ``lv@1``, ...); the copies come first."""
    source = graph.nodes[node]
    if len(source.outputs) != 1:
        raise MemoryGraphError(f"node {source.name} has {len(source.outputs)} outputs")
    (out,) = source.outputs
    original = graph.tensors[out]
    if original.is_output:
        raise MemoryGraphError(f"tensor {out} is a model output: it is kept, not recomputed")
    readers = list(original.consumers)
    copies = [
        Node(f"{source.name}{COPY}{j}", source.op, source.inputs, (f"{out}{COPY}{j}",))
        for j in range(len(readers))
    ]
    rest = []
    for index, n in enumerate(graph.nodes):
        if index == node:
            continue
        if index in readers:
            copy = f"{out}{COPY}{readers.index(index)}"
            n = Node(n.name, n.op, tuple(copy if t == out else t for t in n.inputs), n.outputs)
        rest.append(n)
    nodes = (*copies, *rest)
    producer = {t: i for i, n in enumerate(nodes) for t in n.outputs}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            consumers.setdefault(t, []).append(i)
    tensors = {}
    for name in {*producer, *consumers}:
        base = graph.tensors[name.split(COPY)[0]]
        tensors[name] = Tensor(
            name, base.bytes, producer.get(name), tuple(consumers.get(name, ())),
            base.is_output, base.dtype,
        )  # fmt: skip
    return MemoryGraph(nodes, tensors, graph.weight_bytes, graph.name, graph.notes)


def without_inputs(graph: MemoryGraph) -> MemoryGraph:
    """``graph`` with model inputs of 0 bytes (TVM's planner does not allocate them)."""
    tensors = {
        name: Tensor(t.name, 0, None, t.consumers, t.is_output, t.dtype)
        if t.producer is None
        else t
        for name, t in graph.tensors.items()
    }
    return MemoryGraph(graph.nodes, tensors, graph.weight_bytes, graph.name, graph.notes)


def largest_region(graph: MemoryGraph) -> set[int]:
    """Nodes that read or write a tensor of the graph's largest activation size."""
    largest = max(t.bytes for t in graph.tensors.values() if t.producer is not None)
    return {
        i
        for i, n in enumerate(graph.nodes)
        if any(graph.tensors[t].bytes == largest for t in (*n.inputs, *n.outputs))
    }
