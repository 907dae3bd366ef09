"""An order compacted so that each node runs just before the first node that reads it.

An order that keeps the least bytes live at its peak (``order.min_peak_order``) says
nothing about the steps below the peak, and often computes small tensors long before they
are read (all the channel slices of a kernel, say, before the first is accumulated). TVM's
planner then gives those tensors storages of their own, or lends them larger storages a
larger tensor later needs. ``compacted`` rebuilds the order from its end: a node is placed
as soon as every node that reads it is placed, the one made placeable last first (ties: the
later in the given order), so producers run right before their readers and the given
order's sequence of readers is kept.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from tuner.memory.graph import MemoryGraph
from tuner.memory.profile import check_order


def compacted(graph: MemoryGraph, order: Sequence[int]) -> tuple[int, ...]:
    """``order`` compacted (see the module docstring); a valid order of ``graph``.
    Raises as ``profile.check_order`` when ``order`` is not an order of ``graph``."""
    check_order(graph, order)
    position = {node: i for i, node in enumerate(order)}
    n = len(graph.nodes)
    predecessors = [set(graph.predecessors(i)) for i in range(n)]
    readers_left = [0] * n
    for i in range(n):
        for p in predecessors[i]:
            readers_left[p] += 1
    heap = [(0, -position[i], i) for i in range(n) if readers_left[i] == 0]
    heapq.heapify(heap)
    placed: list[int] = []
    step = 0
    while heap:
        _, _, node = heapq.heappop(heap)
        placed.append(node)
        step -= 1
        for p in predecessors[node]:
            readers_left[p] -= 1
            if readers_left[p] == 0:
                heapq.heappush(heap, (step, -position[p], p))
    return tuple(reversed(placed))
