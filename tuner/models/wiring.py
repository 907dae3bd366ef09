"""Seeded random DAGs that wire the zoo's randomly wired networks (as in RandWire and in
Serenity's evaluation): a Watts-Strogatz or Erdos-Renyi graph on ``nodes`` nodes whose edges
point from the lower node index to the higher. Pure NumPy, no framework.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRAPHS = ("ws", "er")


@dataclass(frozen=True)
class Wiring:
    """A DAG on nodes ``0 .. nodes-1``; every edge ``(a, b)`` has ``a < b``."""

    nodes: int
    edges: tuple[tuple[int, int], ...]

    def predecessors(self, node: int) -> tuple[int, ...]:
        """The nodes whose outputs ``node`` sums, in index order."""
        return tuple(a for a, b in self.edges if b == node)

    @property
    def sources(self) -> tuple[int, ...]:
        """Nodes nothing feeds: they read the stage's input."""
        fed = {b for _, b in self.edges}
        return tuple(n for n in range(self.nodes) if n not in fed)

    @property
    def sinks(self) -> tuple[int, ...]:
        """Nodes nothing reads: the stage's output is their sum."""
        read = {a for a, _ in self.edges}
        return tuple(n for n in range(self.nodes) if n not in read)


def random_wiring(graph: str, nodes: int, rng: np.random.Generator) -> Wiring:
    """A random DAG: ``ws`` is Watts-Strogatz (k=4, p=0.75, RandWire's setting), ``er`` is
    Erdos-Renyi (p=0.3)."""
    if graph == "ws":
        return watts_strogatz(nodes, 4, 0.75, rng)
    if graph == "er":
        return erdos_renyi(nodes, 0.3, rng)
    raise ValueError(f"unknown graph {graph!r}; choose from {', '.join(GRAPHS)}")


def watts_strogatz(nodes: int, k: int, p: float, rng: np.random.Generator) -> Wiring:
    """A ring where each node links to its ``k`` nearest neighbours, each link then moved
    with probability ``p`` to a random node it is not yet linked to."""
    if nodes < 2 or k < 2 or k % 2 or k >= nodes:
        raise ValueError(f"Watts-Strogatz needs an even k with 2 <= k < nodes, got {k}, {nodes}")
    links = {_link(i, (i + j) % nodes) for j in range(1, k // 2 + 1) for i in range(nodes)}
    for j in range(1, k // 2 + 1):
        for i in range(nodes):
            old = _link(i, (i + j) % nodes)
            if rng.random() >= p or old not in links:
                continue
            free = [n for n in range(nodes) if n != i and _link(i, n) not in links]
            if free:
                links.remove(old)
                links.add(_link(i, free[int(rng.integers(len(free)))]))
    return Wiring(nodes, tuple(sorted(links)))


def erdos_renyi(nodes: int, p: float, rng: np.random.Generator) -> Wiring:
    """Every pair of nodes linked independently with probability ``p``."""
    if nodes < 1:
        raise ValueError(f"a graph needs at least one node, got {nodes}")
    links = [(a, b) for a in range(nodes) for b in range(a + 1, nodes) if rng.random() < p]
    return Wiring(nodes, tuple(links))


def _link(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)
