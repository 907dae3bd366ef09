"""A ``collectors.memoryplan.MemoryPlan`` from a graph, its orders and a TCM plan: what the
``memory`` event carries to the dashboard. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from collectors.memoryplan import MemoryPlan, OrderProfile, TcmPlacement
from tuner.memory.graph import MemoryGraph
from tuner.memory.profile import live_tensors
from tuner.memory.tcm import TcmResult


def memory_plan(
    graph: MemoryGraph,
    orders: Mapping[str, tuple[Sequence[int], int | None]],
    *,
    tcm: tuple[str, int, TcmResult] | None = None,
    detail: str | None = None,
    rewritten: tuple[str, MemoryGraph, Sequence[int], int | None] | None = None,
) -> MemoryPlan:
    """``orders``: label -> (order, bytes TVM plans for it or None). ``tcm``: (label of the
    order planned, TCM bytes, its plans); the ILP's placement is shown. ``rewritten``:
    (label, the graph of the model rewritten for memory, an order of it, bytes planned)
    adds that order; its tensors join the plan's (a name already taken by a tensor of
    another size gets `` (rewritten)``; tensors of 0 bytes are left out)."""
    profiles = tuple(
        OrderProfile(
            label,
            tuple(graph.nodes[i].name for i in order),
            tuple(live_tensors(graph, order)),
            planned,
        )
        for label, (order, planned) in orders.items()
    )
    placement = None
    if tcm is not None:
        label, tcm_bytes, result = tcm
        plan = result.ilp
        placement = TcmPlacement(
            tcm_bytes=tcm_bytes,
            order=label,
            resident=plan.placement,
            loads=plan.loads,
            spills=plan.spills,
            streamed=plan.streamed,
            dram_bytes=plan.dram_bytes,
            greedy_dram_bytes=result.greedy.dram_bytes,
            compulsory_dram_bytes=result.compulsory_dram_bytes,
        )
    tensors = {name: t.bytes for name, t in graph.tensors.items()}
    if rewritten is not None:
        label, other, order, planned = rewritten
        names = _joined_names(tensors, other)
        live = tuple(
            tuple(names[n] for n in step if other.tensors[n].bytes)
            for step in live_tensors(other, order)
        )
        steps = tuple(other.nodes[i].name for i in order)
        profiles = (*profiles, OrderProfile(label, steps, live, planned))
        tensors.update({names[n]: t.bytes for n, t in other.tensors.items() if t.bytes})
    return MemoryPlan(graph.name, tensors, profiles, placement, detail)


def _joined_names(tensors: Mapping[str, int], other: MemoryGraph) -> dict[str, str]:
    """Names for ``other``'s tensors beside ``tensors``: the same name for the same size."""
    names = {}
    for name, tensor in other.tensors.items():
        same = tensors.get(name, tensor.bytes) == tensor.bytes
        names[name] = name if same else f"{name} (rewritten)"
    return names
