"""The least-peak and least-planned orders of a model rewritten for memory
(``rewrite.rewrite_for_memory``, without and with its separable convolutions on channel
slices: the one that needs the least storage is kept), measured as the other orders are,
and whether the rewrite pays: it is applied only when its best measured storage is below
``baseline_bytes`` (the best of the orders without rewriting) and its outputs equal the
original module's (within ``RTOL``/``ATOL``: the rewrites reassociate float sums).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import tvm
from tvm.target import Target

from tuner.memory.apply import outputs_match, planned_memory, reorder_module
from tuner.memory.channel_split import without_inputs
from tuner.memory.compact_order import compacted
from tuner.memory.graph import MemoryGraph
from tuner.memory.order import min_peak_order
from tuner.memory.planned_order import least_planned_order, search_starts
from tuner.memory.relax_graph import memory_graph
from tuner.memory.rewrite import Rewritten, rewrite_for_memory
from tuner.models._base import LoadedModel

LEAST_PEAK = "least-peak order"
LEAST_PLANNED = "least-planned order"
# Rewriting reassociates float sums, which changes rounding (measured: 1e-5 on outputs of
# magnitude 60): outputs are compared with this tolerance, not the orders' 1e-5 / 1e-6.
RTOL = ATOL = 1e-4
SLICES = (4,)  # channel slices tried for separable convolutions (``channel_slices``)
SLICED_SIZES = 2  # slice those writing the largest activations, then the two largest sizes
COMPACTED = "the least-peak order without model inputs, compacted"
NOTHING = (
    "nothing to rewrite: no sum of three or more tensors, no concatenation read only by "
    "convolutions, no separable convolution to slice"
)


@dataclass(frozen=True)
class RewrittenOrders:
    """What rewriting gave. ``rewrites``: count per kind (empty: nothing to rewrite).
    ``applied``: it lowers the measured storage below the baseline with equal outputs;
    ``reason`` says why or why not. With a rewrite: the rewritten ``graph``, its least
    modelled ``peak_bytes`` (``exact``, ``lower_bound_bytes``), the storage measured for
    TVM's order of the rewritten module and for its least-peak and least-planned orders,
    and the better of those two (``order``, from ``order_from``, ``measured_bytes``)."""

    rewrites: dict[str, int]
    applied: bool
    reason: str
    graph: MemoryGraph | None = None
    order: tuple[int, ...] = ()
    order_from: str = ""
    peak_bytes: int | None = None
    lower_bound_bytes: int | None = None
    exact: bool | None = None
    measured_bytes: int | None = None
    tvm_order_measured_bytes: int | None = None
    least_peak_measured_bytes: int | None = None
    least_planned_measured_bytes: int | None = None
    outputs_match: bool | None = None
    storages: tuple[int, ...] = field(default_factory=tuple)
    alternatives: tuple[dict[str, Any], ...] = ()  # the other rewrites tried, measured

    def to_json(self) -> dict[str, Any]:
        """The JSON ``tuneloom memory`` prints under ``rewritten``."""
        names = [self.graph.nodes[i].name for i in self.order] if self.graph else []
        return {
            "applied": self.applied,
            "reason": self.reason,
            "rewrites": dict(self.rewrites),
            "nodes": len(self.graph.nodes) if self.graph else None,
            "peak_bytes": self.peak_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "exact": self.exact,
            "measured_bytes": self.measured_bytes,
            "tvm_order_measured_bytes": self.tvm_order_measured_bytes,
            "least_peak_measured_bytes": self.least_peak_measured_bytes,
            "least_planned_measured_bytes": self.least_planned_measured_bytes,
            "order_from": self.order_from,
            "order": names,
            "storages": list(self.storages),
            "outputs_match": self.outputs_match,
            "alternatives": [dict(a) for a in self.alternatives],
        }


def rewritten_orders(
    model: LoadedModel,
    original: tvm.IRModule,
    target: Target | Mapping[str, Any],
    *,
    baseline_bytes: int,
    time_limit_s: float = 60.0,
    slices: Sequence[int] = SLICES,
) -> RewrittenOrders:
    """Rewrite ``model`` for memory, order and measure it (see the module docstring);
    ``original`` is its fused module without rewriting (the outputs are compared with
    it). Each rewrite tried (without channel slices, and with each count of ``slices`` where
    the model has separable convolutions of its largest activations) is ordered and
    measured; the one needing the least storage is kept (the first on ties)."""
    tried = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    variants = [(0, 0)] + [
        (parts, size) for parts in slices for size in _largest_activations(original, target)
    ]
    for parts, min_bytes in variants:
        rewritten = rewrite_for_memory(model, target, parts=parts, min_bytes=min_bytes)
        key = tuple(sorted(rewritten.rewrites.items()))
        if not rewritten.changed or key in seen:
            continue
        if parts and "sliced_separables" not in rewritten.rewrites:
            continue
        seen.add(key)
        tried.append(_ordered(model, original, target, rewritten, time_limit_s))
    if not tried:
        return RewrittenOrders({}, False, NOTHING)
    matching = [r for r in tried if r.outputs_match] or tried
    best = min(matching, key=lambda r: math.inf if r.measured_bytes is None else r.measured_bytes)
    lower = best.measured_bytes is not None and best.measured_bytes < baseline_bytes
    if not best.outputs_match:
        reason = "not applied: the rewritten model's outputs differ"
    elif lower:
        reason = (
            f"applied: its {best.order_from} needs less storage than any order without rewriting"
        )
    else:
        reason = "not applied: no less storage than the best order without rewriting"
    others = tuple(
        {"rewrites": dict(r.rewrites), "measured_bytes": r.measured_bytes}
        for r in tried
        if r is not best
    )
    return replace(
        best, applied=bool(best.outputs_match) and lower, reason=reason, alternatives=others
    )


def _largest_activations(mod: tvm.IRModule, target: Target | Mapping[str, Any]) -> list[int]:
    """The ``SLICED_SIZES`` largest sizes of the tensors ``mod``'s kernels write, largest
    first: separable convolutions writing at least each are sliced (one rewrite each)."""
    graph = memory_graph(mod, target)
    sizes = {t.bytes for t in graph.tensors.values() if t.producer is not None and t.bytes}
    return sorted(sizes, reverse=True)[:SLICED_SIZES]


def _ordered(
    model: LoadedModel,
    original: tvm.IRModule,
    target: Target | Mapping[str, Any],
    rewritten: Rewritten,
    time_limit_s: float,
) -> RewrittenOrders:
    """One rewritten module ordered (least peak, least planned) and measured."""
    graph = memory_graph(rewritten.mod, target, name=model.name)
    best = min_peak_order(graph, time_limit_s=time_limit_s)
    starts = search_starts(graph, best.order)
    if "sliced_separables" in rewritten.rewrites:
        # what TVM plans: the least peak without the model inputs (a stem recomputed per
        # slice keeps the input live), compacted (slices made right before they are read)
        free = min_peak_order(without_inputs(graph), time_limit_s=min(time_limit_s, 20.0))
        starts[COMPACTED] = compacted(graph, free.order)
    planned = least_planned_order(graph, starts)
    measured = {
        LEAST_PEAK: (best.order, planned_memory(reorder_module(rewritten.mod, best.order), target)),
        LEAST_PLANNED: (
            planned.order,
            planned_memory(reorder_module(rewritten.mod, planned.order), target),
        ),
    }
    label = min(measured, key=lambda k: measured[k][1].total_bytes)
    order, memory = measured[label]
    same = outputs_match(
        model, original, reorder_module(rewritten.mod, order), target=target, rtol=RTOL, atol=ATOL
    )
    return RewrittenOrders(
        rewrites=dict(rewritten.rewrites),
        applied=False,
        reason="",
        graph=graph,
        order=tuple(order),
        order_from=label,
        peak_bytes=best.peak_bytes,
        lower_bound_bytes=best.lower_bound_bytes,
        exact=best.exact,
        measured_bytes=memory.total_bytes,
        tvm_order_measured_bytes=planned_memory(rewritten.mod, target).total_bytes,
        least_peak_measured_bytes=measured[LEAST_PEAK][1].total_bytes,
        least_planned_measured_bytes=measured[LEAST_PLANNED][1].total_bytes,
        outputs_match=same,
        storages=memory.storage_sizes,
    )
