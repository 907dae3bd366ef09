"""The least-peak and least-planned orders of a model rewritten for memory
(``rewrite.rewrite_for_memory``), measured as the other orders are, and whether the rewrite
pays: it is applied only when its best measured storage is below ``baseline_bytes`` (the
best of the orders without rewriting) and its outputs equal the original module's (within
``RTOL``/``ATOL``: the rewrites reassociate float sums).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tvm
from tvm.target import Target

from tuner.memory.apply import outputs_match, planned_memory, reorder_module
from tuner.memory.graph import MemoryGraph
from tuner.memory.order import min_peak_order
from tuner.memory.planned_order import least_planned_order, search_starts
from tuner.memory.relax_graph import memory_graph
from tuner.memory.rewrite import rewrite_for_memory
from tuner.models._base import LoadedModel

LEAST_PEAK = "least-peak order"
LEAST_PLANNED = "least-planned order"
# Rewriting reassociates float sums, which changes rounding (measured: 1e-5 on outputs of
# magnitude 60): outputs are compared with this tolerance, not the orders' 1e-5 / 1e-6.
RTOL = ATOL = 1e-4
NOTHING = (
    "nothing to rewrite: no sum of three or more tensors, no concatenation read only by "
    "convolutions"
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
        }


def rewritten_orders(
    model: LoadedModel,
    original: tvm.IRModule,
    target: Target | Mapping[str, Any],
    *,
    baseline_bytes: int,
    time_limit_s: float = 60.0,
) -> RewrittenOrders:
    """Rewrite ``model`` for memory, order and measure it (see the module docstring);
    ``original`` is its fused module without rewriting (the outputs are compared with
    it)."""
    rewritten = rewrite_for_memory(model, target)
    if not rewritten.changed:
        return RewrittenOrders({}, False, NOTHING)
    graph = memory_graph(rewritten.mod, target, name=model.name)
    best = min_peak_order(graph, time_limit_s=time_limit_s)
    planned = least_planned_order(graph, search_starts(graph, best.order))
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
    lower = memory.total_bytes < baseline_bytes
    if not same:
        reason = "not applied: the rewritten model's outputs differ"
    elif lower:
        reason = f"applied: its {label} needs less storage than any order without rewriting"
    else:
        reason = "not applied: no less storage than the best order without rewriting"
    return RewrittenOrders(
        rewrites=dict(rewritten.rewrites),
        applied=same and lower,
        reason=reason,
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
