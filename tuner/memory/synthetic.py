"""Seeded random graphs in the spirit of randomly wired networks (Xie et al., 2019): every
node reads one to three earlier nodes. For tests and benchmarks."""

from __future__ import annotations

import random

from tuner.memory.graph import MemoryGraph, graph_from_edges


def random_dag(
    n_nodes: int,
    seed: int,
    *,
    edge_prob: float = 0.5,
    sizes: tuple[int, int] = (1, 100),
    input_bytes: int | None = None,
    window: int | None = None,
) -> MemoryGraph:
    """A graph of ``n_nodes`` single-output nodes whose output sizes are drawn from
    ``sizes`` (bytes, both included). Node i > 0 reads 1 + Binomial(2, ``edge_prob``)
    distinct nodes drawn uniformly from the ``window`` nodes before it (all earlier nodes
    when None; fewer when there are fewer); nodes no one reads are model outputs. A model
    input of ``input_bytes`` (drawn from ``sizes`` when None; 0: none) feeds node 0."""
    if n_nodes < 1:
        raise ValueError(f"a random graph needs at least one node, not {n_nodes}")
    if not 0.0 <= edge_prob <= 1.0:
        raise ValueError(f"edge_prob must be within [0, 1], not {edge_prob}")
    if window is not None and window < 1:
        raise ValueError(f"window must be at least 1 (or None), not {window}")
    low, high = sizes
    if not 0 <= low <= high:
        raise ValueError(f"sizes must be (low, high) with 0 <= low <= high, not {sizes}")
    rng = random.Random(seed)
    node_sizes = [rng.randint(low, high) for _ in range(n_nodes)]
    edges = []
    for node in range(1, n_nodes):
        n_reads = 1 + sum(rng.random() < edge_prob for _ in range(2))
        earlier = range(0 if window is None else max(0, node - window), node)
        edges += [(pred, node) for pred in rng.sample(earlier, min(n_reads, len(earlier)))]
    if input_bytes is None:
        input_bytes = rng.randint(max(low, 1), max(high, 1))
    return graph_from_edges(
        node_sizes, edges, input_bytes=input_bytes, name=f"random_dag({n_nodes}, {seed})"
    )
