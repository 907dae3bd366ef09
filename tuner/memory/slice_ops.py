"""Pieces of ``channel_slices`` (``call_op`` and ``static_shape`` serve every rewrite for
memory): recognising NHWC convolutions and channel-wise ops in Relax bindings, building the
bindings of a slice's kernel (``KernelBody``), and ordering a rewritten block so that
in-place writes follow the other readers (``ordered_bindings``)."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

CHANNEL = 3  # NHWC
UNARY = ("relax.nn.relu", "relax.sigmoid", "relax.tanh", "relax.nn.silu")
BINARY = ("relax.add", "relax.multiply", "relax.subtract")


def call_op(binding: Any) -> str | None:
    """The name of the Relax operator ``binding`` calls (None: not an operator call)."""
    value = binding.value
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return str(value.op.name)
    return None


def static_shape(ty: Any) -> tuple[int, ...] | None:
    """A tensor type's shape when every dimension is a constant, else None."""
    dims = getattr(getattr(ty, "shape", None), "values", None)
    if dims is None or not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
        return None
    return tuple(int(d) for d in dims)


def is_nhwc_conv(binding: Any) -> bool:
    """A ``conv2d`` of NHWC data with constant weights (any H/W/I/O kernel layout) and
    static shapes."""
    if call_op(binding) != "relax.nn.conv2d":
        return False
    attrs = binding.value.attrs
    layout = str(attrs.kernel_layout)
    return (
        str(attrs.data_layout) == "NHWC"
        and str(attrs.out_layout) == "NHWC"
        and sorted(layout) == sorted("HWIO")
        and isinstance(binding.value.args[1], Constant)
        and static_shape(binding.var.ty) is not None
        and static_shape(binding.value.args[0].ty) is not None
    )


def is_depthwise(binding: Any) -> bool:
    """A convolution of one channel per group, one output channel per input channel."""
    if not is_nhwc_conv(binding):
        return False
    channels = static_shape(binding.var.ty)[CHANNEL]
    data = static_shape(binding.value.args[0].ty)
    layout = str(binding.value.attrs.kernel_layout)
    weight = static_shape(binding.value.args[1].ty)
    return (
        int(binding.value.attrs.groups) == channels == data[CHANNEL]
        and weight[layout.index("I")] == 1
        and weight[layout.index("O")] == channels
    )


def channel_const(expr: Any, channels: int) -> bool:
    """A constant that broadcasts over the channels of an NHWC tensor per channel."""
    shape = static_shape(getattr(expr, "ty", None))
    return (
        isinstance(expr, Constant)
        and shape is not None
        and len(shape) <= 4
        and all(d == 1 for d in shape[:-1])
        and (not shape or shape[-1] in (1, channels))
    )


def elementwise_of(binding: Any, var: Any) -> bool:
    """``binding`` computes each element of its result from ``var``'s element at the same
    index (and the same element of another tensor of that shape, or a channel constant)."""
    op = call_op(binding)
    shape = static_shape(var.ty)
    if op in UNARY:
        return binding.value.args[0].same_as(var)
    if op not in BINARY or static_shape(binding.var.ty) != shape:
        return False
    args = list(binding.value.args)
    if not any(a.same_as(var) for a in args):
        return False
    other = args[1] if args[0].same_as(var) else args[0]
    if isinstance(other, relax.Var):
        return static_shape(other.ty) == shape and str(other.ty.dtype) == str(var.ty.dtype)
    return channel_const(other, shape[CHANNEL])


def ordered_bindings(bindings: list[Any], overwrites: list[tuple[Any, Any]]) -> list[Any]:
    """``bindings`` in an order where each binding follows those it reads and each
    in-place write follows every other reader of what it overwrites (stable: otherwise
    in the given order). ValueError when no such order exists."""
    index = {b.var: i for i, b in enumerate(bindings)}
    after: list[set[int]] = [set() for _ in bindings]
    for i, b in enumerate(bindings):
        for v in relax.analysis.free_vars(b.value):
            if v in index:
                after[i].add(index[v])
    for var, written in overwrites:
        at = index[var]
        for i, b in enumerate(bindings):
            if i != at and any(v.same_as(written) for v in relax.analysis.free_vars(b.value)):
                after[at].add(i)
    waiting = [len(a) for a in after]
    users: list[list[int]] = [[] for _ in bindings]
    for i, before in enumerate(after):
        for j in before:
            users[j].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(bindings[i])
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(bindings):
        raise ValueError("an in-place accumulation cannot follow the other readers it needs")
    return order


def dtype_or_none(dtype: Any) -> str | None:
    """An attribute's dtype as ``relax.op`` takes it (None for void)."""
    text = str(dtype)
    return text if text and text not in ("void", "None") else None


def const_slice(expr: Any, lo: int, hi: int) -> Any:
    """Channels ``lo:hi`` of a per-channel constant (a broadcast one as it is)."""
    data = expr.value.numpy()
    if data.ndim and data.shape[-1] > 1:
        data = np.ascontiguousarray(data[..., lo:hi])
    return relax.const(data)


def kernel_slice(conv: Any, dim: str, lo: int, hi: int) -> Any:
    """Channels ``lo:hi`` of a convolution call's constant kernel along the dimension its
    kernel layout names ``dim`` (``"O"``: output channels, ``"I"``: input channels)."""
    weight = conv.args[1].value.numpy()
    axis = str(conv.attrs.kernel_layout).index(dim)
    return relax.const(np.ascontiguousarray(np.take(weight, range(lo, hi), axis=axis)))


class KernelBody:
    """Bindings being built: straight into ``main`` (``outlined`` False) or into a
    ``Primitive`` function whose parameters are made for the outer values it reads."""

    def __init__(self, *, outlined: bool, normalize: Any, names: Any) -> None:
        self.outlined = outlined
        self.names = names
        self.normalize = normalize
        self.bindings: list[Any] = []
        self.args: list[Any] = []
        self.params: list[Any] = []
        self.seen: dict[Any, Any] = {}

    def leaf(self, expr: Any) -> Any:
        if not self.outlined:
            return expr
        for outer, param in self.seen.items():
            if outer.same_as(expr):
                return param
        param = relax.Var(f"p{len(self.params)}", expr.ty)
        self.params.append(param)
        self.args.append(expr)
        self.seen[expr] = param
        return param

    def emit(self, expr: Any, stem: str, *, var: Any = None) -> Any:
        expr = self.normalize(expr)
        if var is None:
            var = relax.DataflowVar(self.names(stem), expr.ty)
        self.bindings.append(relax.VarBinding(var, expr))
        return var

    def function(self) -> relax.Function:
        *rest, last = self.bindings
        out = relax.Var("out", last.var.ty)
        block = relax.DataflowBlock([*rest, relax.VarBinding(out, last.value)])
        func = relax.Function(self.params, relax.SeqExpr([block], out), out.ty, True)
        func = func.with_attr("Primitive", True)
        return relax.BlockBuilder().normalize(func)
