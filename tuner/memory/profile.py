"""The memory an order of a graph's nodes keeps live at every step.

Running the nodes in ``order``, a tensor is allocated when its producer runs (a model input
is live from the first step) and freed after its last reader has run (a model output stays
until the last step; a tensor no one reads lives only during its producer's step). The
memory at step k is the sum of the bytes of every tensor live while the k-th node runs: its
inputs, its outputs and everything else not yet freed. Weights are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from tuner.memory.graph import MemoryGraph


def check_order(graph: MemoryGraph, order: Sequence[int]) -> None:
    """ValueError naming the problem unless ``order`` runs every node once, each after the
    nodes whose outputs it reads."""
    n_nodes = len(graph.nodes)
    if len(order) != n_nodes:
        raise ValueError(f"the order has {len(order)} steps for a graph of {n_nodes} nodes")
    step_of: dict[int, int] = {}
    for step, node in enumerate(order):
        if not isinstance(node, Integral) or not 0 <= node < n_nodes:
            raise ValueError(f"step {step} names node {node!r}, not one of 0..{n_nodes - 1}")
        if node in step_of:
            raise ValueError(
                f"node {graph.nodes[node].name} runs twice (steps {step_of[node]} and {step})"
            )
        step_of[node] = step
    for step, node in enumerate(order):
        for before in graph.predecessors(node):
            if step_of[before] > step:
                raise ValueError(
                    f"node {graph.nodes[node].name} runs at step {step}, before "
                    f"{graph.nodes[before].name} (step {step_of[before]}) whose output it reads"
                )


def live_intervals(graph: MemoryGraph, order: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Each tensor's first and last live step (both included) in ``order`` (checked)."""
    check_order(graph, order)
    if not order:
        return {}
    step_of = {node: step for step, node in enumerate(order)}
    last_step = len(order) - 1
    intervals = {}
    for name, tensor in graph.tensors.items():
        first = 0 if tensor.producer is None else step_of[tensor.producer]
        if tensor.is_output:
            last = last_step
        else:
            last = max((step_of[c] for c in tensor.consumers), default=first)
        intervals[name] = (first, max(first, last))
    return intervals


def live_tensors(graph: MemoryGraph, order: Sequence[int]) -> list[tuple[str, ...]]:
    """The names of the tensors live at every step (in the graph's tensor order)."""
    steps: list[list[str]] = [[] for _ in order]
    for name, (first, last) in live_intervals(graph, order).items():
        for step in range(first, last + 1):
            steps[step].append(name)
    return [tuple(names) for names in steps]


def memory_profile(graph: MemoryGraph, order: Sequence[int]) -> list[int]:
    """The bytes live at every step of ``order``."""
    delta = [0] * (len(order) + 1)
    for name, (first, last) in live_intervals(graph, order).items():
        delta[first] += graph.tensors[name].bytes
        delta[last + 1] -= graph.tensors[name].bytes
    profile, live = [], 0
    for change in delta[:-1]:
        live += change
        profile.append(live)
    return profile


def peak_bytes(graph: MemoryGraph, order: Sequence[int]) -> int:
    """The most bytes live at any step of ``order`` (0 for a graph without nodes)."""
    return max(memory_profile(graph, order), default=0)
