"""What TVM Relax's ``StaticPlanBlockMemory`` allocates for an order of a graph's nodes,
simulated in pure Python (no TVM).

The pass walks the calls in program order with a pool of free storage tokens per
(scope, dtype) (``TokenAllocator1D`` in ``src/relax/transform/static_plan_block_memory.cc``):

- a call's outputs are requested, in output order, before its inputs are released;
- a request of ``size`` bytes takes the smallest free token of ``size`` to ``16 * size``
  bytes (the oldest among equal sizes), else the largest free token of ``size // 16`` to
  ``size - 1`` bytes (the newest among equal sizes), which grows to ``size``, else a new
  token of ``size`` bytes;
- after the call, each argument's token whose last reader has run goes back to the pool
  (inputs in argument order, then outputs: an output no one reads is freed at once);
- model inputs (parameters) and model outputs get no token: the outputs are allocated on
  their own. Neither does the 0-byte tensor ``relax_graph`` gives an in-place call's
  result (its storage is the argument written into). A reshape shares its input's token
  (in a ``MemoryGraph`` it already is its input).

The storage planned is the sum of the tokens' final sizes, so it depends on the order in
ways the bytes live at each step do not: the order with the least live bytes need not be
the one TVM plans the least storage for. ``tests/tuner/test_memory_planner.py`` checks this
simulation equals ``apply.planned_memory`` storage by storage on every zoo model.
Assumed, as ``relax_graph`` reads the graph: one binding block, every node a kernel call
(a call to a Relax function would keep its arguments out of the plan).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph
from tuner.memory.profile import check_order

MATCH_RANGE = 16  # TokenAllocator1D::match_range_


@dataclass(frozen=True, slots=True)
class TokenPlan:
    """The storages TVM's planner creates for an order.

    ``storage_sizes``: each storage's final bytes, in the order they are first allocated
    (the order of ``R.memory.alloc_storage`` in the planned module). ``tensor_storage``:
    the storage index each planned tensor lives in. ``output_bytes``: model outputs,
    allocated apart from the plan."""

    storage_sizes: tuple[int, ...]
    tensor_storage: dict[str, int]
    output_bytes: int

    @property
    def planned_bytes(self) -> int:
        """Bytes of the shared storages (``PlannedMemory.planned_bytes``)."""
        return sum(self.storage_sizes)

    @property
    def total_bytes(self) -> int:
        """All the VM allocates per call (``PlannedMemory.total_bytes``)."""
        return self.planned_bytes + self.output_bytes


@dataclass(frozen=True, slots=True)
class PlannerTables:
    """A graph's per-node tensor lists and reference counts, built once for many orders."""

    outputs: tuple[tuple[tuple[str, int, str], ...], ...]  # planned (name, bytes, dtype)
    releases: tuple[tuple[str, ...], ...]  # planned tensors a node's call names, in order
    references: dict[str, int]  # calls naming each planned tensor (producer + readers)
    dtypes: dict[str, str]  # each planned tensor's dtype: its token's pool
    output_bytes: int


def planner_tables(graph: MemoryGraph) -> PlannerTables:
    """The tables ``simulate_planner`` walks (see the module docstring)."""
    planned = {
        name
        for name, t in graph.tensors.items()
        if t.producer is not None and not t.is_output and t.bytes
    }
    outputs, releases = [], []
    references = dict.fromkeys(planned, 0)
    for node in graph.nodes:
        outs = tuple(dict.fromkeys(n for n in node.outputs if n in planned))
        ins = tuple(dict.fromkeys(n for n in node.inputs if n in planned))
        outputs.append(tuple((n, graph.tensors[n].bytes, graph.tensors[n].dtype) for n in outs))
        releases.append((*ins, *outs))
        for name in (*ins, *outs):
            references[name] += 1
    output_bytes = sum(
        t.bytes for t in graph.tensors.values() if t.is_output and t.producer is not None
    )
    dtypes = {name: graph.tensors[name].dtype for name in planned}
    return PlannerTables(tuple(outputs), tuple(releases), references, dtypes, output_bytes)


def simulate_planner(
    graph: MemoryGraph, order: Sequence[int], tables: PlannerTables | None = None
) -> TokenPlan:
    """The storages ``StaticPlanBlockMemory`` plans when ``graph``'s nodes run in ``order``
    (checked)."""
    check_order(graph, order)
    return simulate_checked(tables or planner_tables(graph), order)


def simulate_checked(tables: PlannerTables, order: Sequence[int]) -> TokenPlan:
    """``simulate_planner`` for an order already known to be valid (for searches)."""
    sizes: list[int] = []  # token -> its current bytes
    pools: dict[str, list[tuple[int, int, int]]] = {}  # dtype -> sorted (bytes, seq, token)
    tensor_token: dict[str, int] = {}
    left = dict(tables.references)
    seq = 0
    for node in order:
        for name, size, dtype in tables.outputs[node]:
            pool = pools.setdefault(dtype, [])
            tensor_token[name] = _request(pool, sizes, size)
        for name in tables.releases[node]:
            left[name] -= 1
            if not left[name]:
                token = tensor_token[name]
                pool = pools.setdefault(tables.dtypes[name], [])
                insort(pool, (sizes[token], seq, token))
                seq += 1
    return TokenPlan(tuple(sizes), tensor_token, tables.output_bytes)


def _request(pool: list[tuple[int, int, int]], sizes: list[int], size: int) -> int:
    """A free token for ``size`` bytes from ``pool`` (removed from it), or a new one."""
    at = bisect_left(pool, (size, -1, -1))
    if at < len(pool) and pool[at][0] <= size * MATCH_RANGE:
        return pool.pop(at)[2]
    if at > 0 and pool[at - 1][0] >= size // MATCH_RANGE:
        token = pool.pop(at - 1)[2]
        sizes[token] = size
        return token
    sizes.append(size)
    return len(sizes) - 1
