"""A model's ``MemoryGraph`` read from its Relax module after fusion.

``fused_module`` is the module the tuner sees (``prepare_module``: legalization and fusion)
with reshapes already rewritten into views, as the build's ``RewriteDataflowReshape`` does.
In ``main``'s binding blocks every call (``call_tir`` of a fused function, an extern
``call_dps_packed``, a call to another function) is one node, in binding order. What the
build does not allocate is not a node: a ``reshape`` is a view of its input, tuples and
``TupleGetItem`` only regroup tensors, and constants and weight parameters count as
``weight_bytes``. A tensor's bytes are its static shape times its dtype's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax
from tvm.target import Target

from tuner.memory.graph import MemoryGraph, Node, Tensor
from tuner.models._base import LoadedModel, ModelError
from tuner.models.inputs import override_hint, shape_text
from tuner.models.tasks import prepare_module

# Calls that allocate nothing: the build turns them into views of their first argument.
VIEW_OPS = ("relax.reshape",)
IN_PLACE_OP = "relax.call_tir_inplace"
CALL_OPS = ("relax.call_tir", IN_PLACE_OP, "relax.call_dps_packed")

# A binding's tensors: a tensor name, a tuple of those (nested), or None (no tensor).
Held = Any


@dataclass(frozen=True)
class BindingSite:
    """Where a binding sits in ``main``: its block, its index there, and whether it is a
    node (a call that writes new tensors)."""

    block: int
    index: int
    binding: Any
    is_node: bool


def as_target(target: Target | Mapping[str, Any]) -> Target:
    """A TVM target from a ``Target`` or its dict form (``target_config``)."""
    return target if isinstance(target, Target) else Target(dict(target))


def fused_module(
    model_or_mod: LoadedModel | tvm.IRModule, target: Target | Mapping[str, Any]
) -> tvm.IRModule:
    """The module after fusion with reshapes as views; a module already fused (every call
    in ``main`` a ``call_tir``, ``call_dps_packed``, reshape or function call) is kept."""
    mod = model_or_mod.mod if isinstance(model_or_mod, LoadedModel) else model_or_mod
    target = as_target(target)
    if not is_fused(mod):
        mod = prepare_module(mod, target)
    with target, tvm.transform.PassContext(opt_level=3):
        return relax.transform.RewriteDataflowReshape()(mod)


def is_fused(mod: tvm.IRModule) -> bool:
    """True when no call in ``main`` still names a high-level Relax operator."""
    for site in binding_sites(mod["main"]):
        op = getattr(site.binding.value, "op", None)
        if isinstance(op, tvm.ir.Op) and op.name not in (*CALL_OPS, *VIEW_OPS):
            return False
    return True


def binding_sites(func: relax.Function) -> list[BindingSite]:
    """Every binding of ``func``'s body, block by block, marked node or not."""
    sites = []
    for b, block in enumerate(func.body.blocks):
        for i, binding in enumerate(block.bindings):
            sites.append(BindingSite(b, i, binding, _is_node(binding)))
    return sites


def _is_node(binding: Any) -> bool:
    value = binding.value
    if not isinstance(value, relax.Call):
        return False
    return not (isinstance(value.op, tvm.ir.Op) and value.op.name in VIEW_OPS)


def memory_graph(
    model_or_mod: LoadedModel | tvm.IRModule,
    target: Target | Mapping[str, Any],
    *,
    name: str | None = None,
) -> MemoryGraph:
    """The graph of ``main``'s calls after fusion (see the module docstring).

    Raises ModelError when a tensor's shape is not static (naming the input to give a shape
    for) or ``main`` has no call at all."""
    label = name or (model_or_mod.name if isinstance(model_or_mod, LoadedModel) else "module")
    mod = fused_module(model_or_mod, target)
    return _GraphReader(label, mod["main"]).graph()


class _GraphReader:
    """Walks ``main`` once, naming tensors and recording producers and readers."""

    def __init__(self, label: str, func: relax.Function) -> None:
        self.label = label
        self.func = func
        self.held: dict[Any, Held] = {}  # relax Var -> the tensors it holds
        self.tensors: dict[str, dict[str, Any]] = {}
        self.nodes: list[Node] = []
        self.weights: dict[Any, int] = {}  # constant or weight parameter -> bytes
        self.views = 0
        self.regroupings = 0
        self.in_place = 0
        self.taken: set[str] = set()
        self.readers: dict[str, list[int]] = {}  # tensor -> the nodes read so far

    def graph(self) -> MemoryGraph:
        self._read_params()
        for site in binding_sites(self.func):
            self._read_binding(site)
        if not self.nodes:
            raise ModelError(self.label, "main calls no function after fusion: nothing to order")
        outputs = _flatten(self._held(self.func.body.body))
        consumers: dict[str, list[int]] = {t: [] for t in self.tensors}
        for index, node in enumerate(self.nodes):
            for t in node.inputs:
                consumers[t].append(index)
        tensors = {
            t: Tensor(
                t,
                info["bytes"],
                info["producer"],
                tuple(consumers[t]),
                t in outputs,
                info["dtype"],
            )
            for t, info in self.tensors.items()
        }
        return MemoryGraph(
            tuple(self.nodes),
            tensors,
            weight_bytes=sum(self.weights.values()),
            name=self.label,
            notes=self._notes(),
        )

    def _notes(self) -> tuple[str, ...]:
        notes = []
        if self.views:
            notes.append(
                f"{self.views} reshape(s) are views of their input (no memory of their own); "
                "their readers read the input"
            )
        if self.in_place:
            notes.append(
                f"{self.in_place} in-place call(s) write into an argument: their result is "
                "that argument's storage (a 0-byte tensor orders its readers after the call)"
            )
        if self.regroupings:
            notes.append(
                f"{self.regroupings} tuple or TupleGetItem binding(s) only regroup tensors: "
                "not nodes"
            )
        return tuple(notes)

    def _read_params(self) -> None:
        params = list(self.func.params)
        num_input = self.func.attrs.get("num_input") if self.func.attrs else None
        count = int(num_input) if num_input is not None else len(params)
        for i, param in enumerate(params):
            if i >= count:
                self.weights[param] = _bytes_of(param.ty, self.label, str(param.name))
                self.held[param] = None
                continue
            self.held[param] = self._new_tensors(param.ty, str(param.name), None)

    def _read_binding(self, site: BindingSite) -> None:
        binding = site.binding
        var, value = binding.var, binding.value
        if site.is_node:
            index = len(self.nodes)
            args = value.args[1] if _call_op(value) in CALL_OPS else relax.Tuple(value.args)
            inputs = _unique(_flatten(self._held(args)))
            name = self._fresh(str(var.name))
            if _call_op(value) == IN_PLACE_OP:
                held, made = self._in_place_outputs(value, var.ty, name, index)
                inputs.extend(self._order_after_readers(value, index))
            else:
                held = self._new_tensors(var.ty, name, index)
                made = _flatten(held)
            op = _callee(value)
            self.nodes.append(Node(name, op, tuple(inputs), tuple(made)))
            for t in inputs:
                self.readers.setdefault(t, []).append(index)
            self.held[var] = held
            return
        if isinstance(value, relax.Call):  # a view (reshape): the same storage
            self.views += 1
            self.held[var] = self._held(value.args[0])
            return
        if isinstance(value, relax.Tuple | relax.TupleGetItem):
            self.regroupings += 1
        self.held[var] = self._held(value)

    def _held(self, expr: Any) -> Held:
        if isinstance(expr, relax.Var):
            return self.held.get(expr)
        if isinstance(expr, relax.Tuple):
            return tuple(self._held(field) for field in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            whole = self._held(expr.tuple_value)
            return whole[int(expr.index)] if isinstance(whole, tuple) else whole
        if isinstance(expr, tvm.ir.expr.Constant):
            self.weights.setdefault(expr, _bytes_of(expr.ty, self.label, "a constant"))
        return None

    def _in_place_outputs(
        self, call: Any, ty: Any, name: str, producer: int
    ) -> tuple[Held, list[str]]:
        """(what an in-place call's result holds, the tensors it makes): an output
        written into an argument holds that argument's tensor and a tensor of 0 bytes
        that orders the result's readers after the call; other outputs are new."""
        self.in_place += 1
        fields = list(ty.fields) if isinstance(ty, relax.TupleType) else [ty]
        indices = [int(i) for i in call.attrs.inplace_indices]
        args = call.args[1].fields
        held, made = [], []
        for k, (field_ty, at) in enumerate(zip(fields, indices, strict=True)):
            part = name if len(fields) == 1 else f"{name}.{k}"
            if at < 0:
                held.append(self._new_tensors(field_ty, part, producer))
                made.extend(_flatten(held[-1]))
                continue
            self.tensors[part] = {"bytes": 0, "producer": producer, "dtype": str(field_ty.dtype)}
            held.append((*_flatten(self._held(args[at])), part))
            made.append(part)
        return (held[0] if len(fields) == 1 else tuple(held)), made

    def _order_after_readers(self, call: Any, index: int) -> list[str]:
        """0-byte tensors that order an in-place call after every earlier reader of the
        tensors it overwrites (each such reader writes one more, which the call reads)."""
        args = call.args[1].fields
        read = _flatten(self._held(call.args[1]))
        before = {self.tensors[t]["producer"] for t in read if t in self.tensors}
        order = []
        for at in (int(i) for i in call.attrs.inplace_indices):
            if at < 0:
                continue
            for t in _flatten(self._held(args[at])):
                for reader in self.readers.get(t, []):
                    link = f"{t}^{self.nodes[reader].name}"
                    if reader in before or link in self.tensors:
                        continue
                    dtype = self.tensors[t]["dtype"]
                    self.tensors[link] = {"bytes": 0, "producer": reader, "dtype": dtype}
                    node = self.nodes[reader]
                    self.nodes[reader] = Node(
                        node.name, node.op, node.inputs, (*node.outputs, link)
                    )
                    order.append(link)
        return order

    def _new_tensors(self, ty: Any, name: str, producer: int | None) -> Held:
        if isinstance(ty, relax.TupleType):
            return tuple(
                self._new_tensors(field, f"{name}.{i}", producer)
                for i, field in enumerate(ty.fields)
            )
        if not isinstance(ty, relax.TensorType):
            return None
        size = _bytes_of(ty, self.label, name, is_input=producer is None)
        self.tensors[name] = {"bytes": size, "producer": producer, "dtype": str(ty.dtype)}
        return name

    def _fresh(self, name: str) -> str:
        fresh, n = name, 0
        while fresh in self.taken or fresh in self.tensors:
            n += 1
            fresh = f"{name}_{n}"
        self.taken.add(fresh)
        return fresh


def _call_op(call: Any) -> str:
    return call.op.name if isinstance(call.op, tvm.ir.Op) else ""


def _callee(call: Any) -> str:
    """The function a node runs: the fused TIR function, the extern, or the operator."""
    if _call_op(call) in CALL_OPS:
        target = call.args[0]
        return str(getattr(target, "name_hint", None) or getattr(target, "global_symbol", target))
    if isinstance(call.op, tvm.ir.Op):
        return str(call.op.name)
    return str(getattr(call.op, "name_hint", call.op))


def _bytes_of(ty: Any, label: str, what: str, *, is_input: bool = False) -> int:
    """Static bytes of a tensor type; ModelError for a shape known only at run time."""
    shape = getattr(ty, "shape", None)
    dims = getattr(shape, "values", None) if shape is not None else None
    static = dims is not None and all(isinstance(d, tvm.tirx.IntImm) for d in dims)
    if not static:
        known = None if dims is None else [_dim(d) for d in dims]
        shown = "of unknown rank" if known is None else shape_text(known)
        if is_input:
            problem = f"input {what} has a dynamic shape {shown}: {override_hint(what, known)}"
        else:
            problem = (
                f"{what} has a shape known only at run time {shown}; memory planning needs "
                "static shapes: give the model's input shapes (CLI: --input-shape NAME:DIMS)"
            )
        raise ModelError(label, problem)
    dtype = tvm.DataType(str(ty.dtype))
    count = 1
    for d in dims:
        count *= int(d)
    return count * ((dtype.bits * dtype.lanes + 7) // 8)


def _dim(dim: Any) -> int | str:
    return int(dim) if isinstance(dim, tvm.tirx.IntImm) else str(dim)


def _flatten(held: Held) -> list[str]:
    if held is None:
        return []
    if isinstance(held, str):
        return [held]
    return [t for item in held for t in _flatten(item)]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def node_sites(func: relax.Function) -> Iterator[BindingSite]:
    """The bindings that are nodes, in node order (node ``i`` is the ``i``-th)."""
    return (site for site in binding_sites(func) if site.is_node)
