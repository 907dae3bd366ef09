"""A model's memory plan, as both sides share it (the ``memory`` event's JSON).

``tensors``: every activation tensor with its bytes. ``orders``: operator orders of the
model's fused kernels (TVM's order, the least-peak order, the order TVM's planner allocates
the least for...), each with the kernel run at every step, the tensors live at every step,
and the storage TVM plans for it (measured, when known). ``tcm``: optionally, a placement
with a small fast memory for one of those orders: the tensors resident in the TCM at every
step, and the moves to and from DRAM (loads, spills, operands streamed by a kernel).

Plain JSON, no TVM: ``MemoryPlan.from_json`` validates and raises ``MemoryPlanError`` naming
the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from collectors._json_fields import optional, typed

MEMORY_PLAN_SCHEMA_VERSION = 1


class MemoryPlanError(ValueError):
    """Memory plan JSON that does not match the schema; the message names the field."""


@dataclass(frozen=True, slots=True)
class OrderProfile:
    """One order: ``steps[k]`` is the kernel run at step k, ``live[k]`` the tensors live
    then; ``planned_bytes`` what TVM allocates for it (None when not measured)."""

    label: str
    steps: tuple[str, ...]
    live: tuple[tuple[str, ...], ...]
    planned_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class TcmPlacement:
    """TCM contents over the steps of the order labelled ``order``; moves are (step,
    tensor) pairs."""

    tcm_bytes: int
    order: str
    resident: tuple[tuple[str, ...], ...]
    loads: tuple[tuple[int, str], ...] = ()
    spills: tuple[tuple[int, str], ...] = ()
    streamed: tuple[tuple[int, str], ...] = ()
    dram_bytes: int = 0
    greedy_dram_bytes: int | None = None
    compulsory_dram_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Tensors, orders and an optional TCM placement of one model (see the module)."""

    model: str
    tensors: dict[str, int]
    orders: tuple[OrderProfile, ...]
    tcm: TcmPlacement | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        labels = [o.label for o in self.orders]
        for i, order in enumerate(self.orders):
            if labels.count(order.label) > 1:
                raise MemoryPlanError(f"orders[{i}].label: {order.label!r} appears twice")
            if len(order.live) != len(order.steps):
                raise MemoryPlanError(
                    f"orders[{i}].live: {len(order.live)} steps for {len(order.steps)} kernels"
                )
            self._known(order.live, f"orders[{i}].live")
        if self.tcm is not None:
            if self.tcm.order not in labels:
                raise MemoryPlanError(f"tcm.order: no order labelled {self.tcm.order!r}")
            steps = len(self.orders[labels.index(self.tcm.order)].steps)
            if len(self.tcm.resident) != steps:
                raise MemoryPlanError(f"tcm.resident: {len(self.tcm.resident)} steps for {steps}")
            self._known(self.tcm.resident, "tcm.resident")
            for name in ("loads", "spills", "streamed"):
                for j, (step, tensor) in enumerate(getattr(self.tcm, name)):
                    if not 0 <= step < steps or tensor not in self.tensors:
                        raise MemoryPlanError(f"tcm.{name}[{j}]: no step {step} or tensor")

    def _known(self, steps: tuple[tuple[str, ...], ...], where: str) -> None:
        for k, names in enumerate(steps):
            for name in names:
                if name not in self.tensors:
                    raise MemoryPlanError(f"{where}[{k}]: unknown tensor {name!r}")

    def order(self, label: str) -> OrderProfile:
        """The order with this label (KeyError when missing)."""
        for order in self.orders:
            if order.label == label:
                return order
        raise KeyError(label)

    def to_json(self) -> str:
        """Canonical JSON text (what a ``MemoryEvent.plan`` holds)."""
        tcm = None
        if self.tcm is not None:
            t = self.tcm
            tcm = {
                "tcm_bytes": t.tcm_bytes,
                "order": t.order,
                "resident": [list(s) for s in t.resident],
                "loads": [list(m) for m in t.loads],
                "spills": [list(m) for m in t.spills],
                "streamed": [list(m) for m in t.streamed],
                "dram_bytes": t.dram_bytes,
                "greedy_dram_bytes": t.greedy_dram_bytes,
                "compulsory_dram_bytes": t.compulsory_dram_bytes,
            }
        return json.dumps(
            {
                "version": MEMORY_PLAN_SCHEMA_VERSION,
                "model": self.model,
                "detail": self.detail,
                "tensors": [{"name": n, "bytes": b} for n, b in self.tensors.items()],
                "orders": [
                    {
                        "label": o.label,
                        "steps": list(o.steps),
                        "live": [list(s) for s in o.live],
                        "planned_bytes": o.planned_bytes,
                    }
                    for o in self.orders
                ],
                "tcm": tcm,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> MemoryPlan:
        """Parse and validate memory plan JSON; raises MemoryPlanError naming the field."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise MemoryPlanError(f"plan: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise MemoryPlanError("plan: expected a JSON object")
        version = data.get("version")
        if version != MEMORY_PLAN_SCHEMA_VERSION:
            raise MemoryPlanError(f"plan.version: unknown version {version!r}")
        tensors: dict[str, int] = {}
        for i, item in enumerate(_typed(data, "tensors", list, "plan")):
            where = f"tensors[{i}]"
            if not isinstance(item, dict):
                raise MemoryPlanError(f"{where}: expected a JSON object")
            size = _typed(item, "bytes", int, where)
            if size < 0:
                raise MemoryPlanError(f"{where}.bytes: must not be negative")
            tensors[_typed(item, "name", str, where)] = size
        orders = []
        for i, item in enumerate(_typed(data, "orders", list, "plan")):
            where = f"orders[{i}]"
            if not isinstance(item, dict):
                raise MemoryPlanError(f"{where}: expected a JSON object")
            orders.append(
                OrderProfile(
                    label=_typed(item, "label", str, where),
                    steps=_strings(item.get("steps"), f"{where}.steps"),
                    live=_steps(item.get("live"), f"{where}.live"),
                    planned_bytes=_optional(item, "planned_bytes", int, where),
                )
            )
        tcm = None
        raw = data.get("tcm")
        if raw is not None:
            if not isinstance(raw, dict):
                raise MemoryPlanError("tcm: expected a JSON object or null")
            tcm = TcmPlacement(
                tcm_bytes=_typed(raw, "tcm_bytes", int, "tcm"),
                order=_typed(raw, "order", str, "tcm"),
                resident=_steps(raw.get("resident"), "tcm.resident"),
                loads=_moves(raw.get("loads"), "tcm.loads"),
                spills=_moves(raw.get("spills"), "tcm.spills"),
                streamed=_moves(raw.get("streamed"), "tcm.streamed"),
                dram_bytes=_typed(raw, "dram_bytes", int, "tcm"),
                greedy_dram_bytes=_optional(raw, "greedy_dram_bytes", int, "tcm"),
                compulsory_dram_bytes=_optional(raw, "compulsory_dram_bytes", int, "tcm"),
            )
        return cls(
            model=_typed(data, "model", str, "plan"),
            tensors=tensors,
            orders=tuple(orders),
            tcm=tcm,
            detail=_optional(data, "detail", str, "plan"),
        )


def _typed(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return typed(data, key, kind, where, MemoryPlanError)


def _optional(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return optional(data, key, kind, where, MemoryPlanError)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise MemoryPlanError(f"{where}: expected a list of strings")
    return tuple(value)


def _steps(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise MemoryPlanError(f"{where}: expected a list of lists of tensor names")
    return tuple(_strings(step, f"{where}[{k}]") for k, step in enumerate(value))


def _moves(value: Any, where: str) -> tuple[tuple[int, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MemoryPlanError(f"{where}: expected a list of [step, tensor]")
    moves = []
    for j, move in enumerate(value):
        if not (
            isinstance(move, list)
            and len(move) == 2
            and type(move[0]) is int
            and isinstance(move[1], str)
        ):
            raise MemoryPlanError(f"{where}[{j}]: expected [step, tensor]")
        moves.append((move[0], move[1]))
    return tuple(moves)
