"""Match a model's fused kernels back to the framework layers they came from. Pure, no TVM.

The Relax frontends of TVM 0.27 keep no source names (no spans reach the fused module), so
layers are matched by operator kind, tensor size and data flow. The framework graph is a list
of ``FrameworkOp`` in its own (topological) order; each says which Relax operators it lowers
to (``lowers``: the anchor first, e.g. a TFLite ``CONV_2D`` with bias and a fused ReLU lowers
to ``conv2d``, ``add``, ``relu``) and which names it carries (``layers``). The fused kernels
come as ``KernelSig`` in run order, each with its fused operators (``conv2d``, ``add``,
``relu``) and the element counts of its tensors.

The walk, node by node in run order: framework ops that only re-view data (reshape, flatten)
pass as soon as their inputs exist. The *frontier* is the ops whose inputs all exist; an op
*fits* a node when its anchor is among the node's fused operators not yet claimed and one of
its outputs has the size of one of the node's tensors. Fitting ops are ranked by data flow
(inputs produced by ops the node's predecessors took count for, inputs from other nodes'
ops against) and then by how many of the node's fused operators they explain. The node takes
the best one, then every op that reads what the node took and still fits (the chain a
fusion swallowed: ``Conv`` then ``Relu``). When several ops rank best with the same kind
and sizes (two parallel identical branches) the match is *ambiguous*: the node lists every
one of them. When no frontier op fits (the data flow was lost), the first fitting op
anywhere later is taken, ambiguous when another one looks the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameworkOp:
    """One operator of the framework graph (see the module docstring)."""

    name: str
    kind: str
    lowers: tuple[str, ...]
    layers: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sizes: tuple[int, ...]  # element count of each output
    view: bool = False  # only re-views its input: produces no kernel


@dataclass(frozen=True, slots=True)
class KernelSig:
    """One fused kernel call: its fused operators and the element counts of its tensors."""

    fused: tuple[str, ...]
    sizes: frozenset[int]
    preds: tuple[int, ...] = ()  # indices of the kernels whose outputs this one reads


@dataclass(frozen=True, slots=True)
class LayerMatch:
    """The layers a kernel call came from, and whether several layers fit equally."""

    layers: tuple[str, ...] = ()
    ambiguous: bool = False
    ops: tuple[int, ...] = ()  # indices of the framework ops taken


def same_op(anchor: str, fused: str) -> bool:
    """A framework op's Relax operator name against a fused operator name (exact, or one
    names the other: ``avg_pool2d`` / ``adaptive_avg_pool2d``)."""
    if anchor == fused:
        return True
    return min(len(anchor), len(fused)) >= 4 and (anchor in fused or fused in anchor)


def match_layers(kernels: Sequence[KernelSig], ops: Sequence[FrameworkOp]) -> list[LayerMatch]:
    """One ``LayerMatch`` per kernel (see the module docstring)."""
    walk = _Walk(ops)
    return [walk.take(kernel) for kernel in kernels]


class _Walk:
    def __init__(self, ops: Sequence[FrameworkOp]) -> None:
        self.ops = ops
        produced = {t for op in ops for t in op.outputs}
        self.available = {t for op in ops for t in op.inputs if t not in produced}
        self.consumed: set[int] = set()
        self.producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
        self.owner: dict[int, int] = {}  # framework op -> the kernel that took it
        self.kernel = 0

    def take(self, kernel: KernelSig) -> LayerMatch:
        self._pass_views()
        left = Counter(kernel.fused)
        frontier = [i for i in self._open() if self._ready(i) and self._fits(i, left, kernel)]
        pool = frontier or [i for i in self._open() if self._fits(i, left, kernel)]
        if not pool:
            self.kernel += 1
            return LayerMatch()
        ranks = {i: self._rank(i, left, kernel) for i in pool}
        best = max(ranks.values())
        pool = [i for i in pool if ranks[i] == best]
        first = pool[0]
        twins = [i for i in pool if self._signature(i) == self._signature(first)]
        ambiguous = len(twins) > 1
        taken = [first]
        self._consume(first, left)
        grown = True
        while grown:  # the chain the fusion swallowed
            grown = False
            outputs = {t for i in taken for t in self.ops[i].outputs}
            for i in self._open():
                op = self.ops[i]
                reads = any(t in outputs for t in op.inputs)
                if reads and self._ready(i) and self._fits(i, left, kernel):
                    taken.append(i)
                    self._consume(i, left)
                    grown = True
                    break
        shown = [*twins, *(i for i in taken if i not in twins)] if ambiguous else taken
        layers = tuple(dict.fromkeys(name for i in shown for name in self.ops[i].layers))
        self.kernel += 1
        return LayerMatch(layers, ambiguous, tuple(taken))

    def _rank(self, i: int, left: Counter[str], kernel: KernelSig) -> tuple[int, int]:
        """(data flow agreement, fused operators explained) of op ``i`` for ``kernel``."""
        flow = 0
        for t in self.ops[i].inputs:
            source = self._source(t)
            if source is not None:
                flow += 1 if self.owner[source] in kernel.preds else -1
        remaining = Counter(left)
        explained = 0
        for name in self.ops[i].lowers:
            for fused in remaining:
                if remaining[fused] > 0 and same_op(name, fused):
                    remaining[fused] -= 1
                    explained += 1
                    break
        return flow, explained

    def _source(self, tensor: str) -> int | None:
        """The framework op a kernel took that produced ``tensor`` (through views)."""
        seen = set()
        while tensor in self.producer and tensor not in seen:
            seen.add(tensor)
            op = self.producer[tensor]
            if op in self.owner:
                return op
            if not self.ops[op].view or not self.ops[op].inputs:
                return None
            tensor = self.ops[op].inputs[0]
        return None

    def _open(self) -> list[int]:
        return [i for i in range(len(self.ops)) if i not in self.consumed and not self.ops[i].view]

    def _ready(self, i: int) -> bool:
        return all(t in self.available for t in self.ops[i].inputs)

    def _fits(self, i: int, left: Counter[str], kernel: KernelSig) -> bool:
        op = self.ops[i]
        if not op.lowers or not any(same_op(op.lowers[0], f) for f, n in left.items() if n > 0):
            return False
        return not op.sizes or any(size in kernel.sizes for size in op.sizes)

    def _signature(self, i: int) -> tuple[str, tuple[int, ...]]:
        return self.ops[i].kind, self.ops[i].sizes

    def _consume(self, i: int, left: Counter[str]) -> None:
        self.consumed.add(i)
        self.owner[i] = self.kernel
        self.available.update(self.ops[i].outputs)
        for name in self.ops[i].lowers:
            for fused in left:
                if left[fused] > 0 and same_op(name, fused):
                    left[fused] -= 1
                    break

    def _pass_views(self) -> None:
        moved = True
        while moved:
            moved = False
            for i, op in enumerate(self.ops):
                if op.view and i not in self.consumed and self._ready(i):
                    self.consumed.add(i)
                    self.available.update(op.outputs)
                    moved = True
