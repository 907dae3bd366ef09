"""Channel partitioning of concatenations read by convolutions (a rewrite for memory).

``conv2d(concat(x1, ..., xk), W)`` over channels equals ``conv2d(x1, W1) + ... +
conv2d(xk, Wk)``, ``Wi`` the input channels of ``W`` that meet ``xi`` (for any kernel size,
padding or stride, with ``groups`` 1: a convolution is linear in its input channels). A
channel-wise pooling of a concatenation is the concatenation of the pooled parts, which
convolutions read in turn. ``partition_concats`` rewrites every concatenation (NHWC,
over channels) whose readers are all such convolutions (with constant weights) or such
poolings, recursively: the concatenated tensor is never built, and each part can die as
soon as the convolutions have read it. The sums it makes are left to
``rewrite.accumulate_sums``. Works on ``main``'s Relax module before fusion; pure rewriting
of IR (TVM), no build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tuner.memory.slice_ops import call_op, static_shape

CHANNEL_AXIS = 3  # NHWC
POOLS = ("relax.nn.max_pool2d", "relax.nn.avg_pool2d")


@dataclass(frozen=True)
class Partitioned:
    """The module after partitioning, with how many concatenations were removed and how
    many convolutions split into sums."""

    mod: tvm.IRModule
    concats: int = 0
    convolutions: int = 0


def partition_concats(mod: tvm.IRModule) -> Partitioned:
    """``mod`` with its partitionable concatenations rewritten (see the module docstring);
    ``mod`` itself when there is none. Only ``main``'s first dataflow block is read."""
    func = mod["main"]
    index = next(
        (i for i, b in enumerate(func.body.blocks) if isinstance(b, relax.DataflowBlock)), None
    )
    if index is None:
        return Partitioned(mod)
    block = func.body.blocks[index]
    rewriter = _Rewriter(list(block.bindings), relax.analysis.free_vars(func.body.body))
    bindings = rewriter.run()
    if not rewriter.concats:
        return Partitioned(mod)
    blocks = list(func.body.blocks)
    blocks[index] = relax.DataflowBlock(bindings)
    new = with_blocks(func, blocks)
    out = mod.clone()
    out.update_func(out.get_global_var("main"), new)
    return Partitioned(out, rewriter.concats, rewriter.convolutions)


def with_blocks(func: relax.Function, blocks: list[Any]) -> relax.Function:
    """``func`` with these binding blocks, normalized (every expression typed)."""
    body = relax.SeqExpr(blocks, func.body.body)
    new = relax.Function(func.params, body, func.ret_ty, func.is_pure, func.attrs, func.span)
    return relax.BlockBuilder().normalize(new)


class _Rewriter:
    """Rewrites one block's bindings, concatenation by concatenation."""

    def __init__(self, bindings: list[Any], returned: Any) -> None:
        self.bindings = bindings
        self.returned = set(returned)
        self.builder = relax.BlockBuilder()
        self.concats = 0
        self.convolutions = 0
        self.fresh = 0

    def run(self) -> list[Any]:
        changed = True
        while changed:
            changed = False
            for binding in self.bindings:
                if _is_channel_concat(binding) and self._partitionable(binding.var):
                    self._partition(binding)
                    changed = True
                    break
        return self.bindings

    def _readers(self, var: Any) -> list[Any]:
        return [b for b in self.bindings if var in relax.analysis.free_vars(b.value)]

    def _partitionable(self, var: Any) -> bool:
        """Every reader of ``var`` is a convolution with constant weights reading it as its
        data, or a channel-wise pooling whose result is partitionable in turn."""
        if var in self.returned:
            return False
        readers = self._readers(var)
        if not readers:
            return False
        for reader in readers:
            if _is_partitionable_conv(reader, var):
                continue
            if _is_channel_pool(reader, var) and self._partitionable(reader.var):
                continue
            return False
        return True

    def _partition(self, concat: Any) -> None:
        parts = list(concat.value.args[0].fields)
        widths = [static_shape(p.ty)[CHANNEL_AXIS] for p in parts]
        self.concats += 1
        replacements: dict[Any, list[Any]] = {concat: []}
        for reader in self._readers(concat.var):
            if _is_partitionable_conv(reader, concat.var):
                replacements[reader] = self._conv_sum(reader, parts, widths)
                self.convolutions += 1
            else:  # a pooling: the concatenation of the pooled parts
                replacements[reader] = self._pooled_concat(reader, parts)
        out = []
        for binding in self.bindings:
            if binding in replacements:
                out.extend(replacements[binding])
            else:
                out.append(binding)
        self.bindings = out

    def _conv_sum(self, conv: Any, parts: list[Any], widths: list[int]) -> list[Any]:
        weight = conv.value.args[1].value.numpy()
        new, total, start = [], None, 0
        for i, (part, width) in enumerate(zip(parts, widths, strict=True)):
            piece = relax.const(np.ascontiguousarray(weight[:, :, start : start + width, :]))
            start += width
            term = self._bind(
                new, relax.Call(conv.value.op, [part, piece], conv.value.attrs), "part"
            )
            if total is None:
                total = term
            elif i == len(parts) - 1:
                last = self.builder.normalize(relax.op.add(total, term))
                new.append(relax.VarBinding(conv.var, last))
            else:
                total = self._bind(new, relax.op.add(total, term), "partsum")
        return new

    def _pooled_concat(self, pool: Any, parts: list[Any]) -> list[Any]:
        new: list[Any] = []
        pooled = [
            self._bind(new, relax.Call(pool.value.op, [part], pool.value.attrs), "pool")
            for part in parts
        ]
        joined = self.builder.normalize(relax.op.concat(pooled, axis=CHANNEL_AXIS))
        new.append(relax.VarBinding(pool.var, joined))
        return new

    def _bind(self, into: list[Any], expr: Any, stem: str) -> Any:
        expr = self.builder.normalize(expr)
        var = relax.DataflowVar(f"partition_{stem}{self.fresh}", expr.ty)
        self.fresh += 1
        into.append(relax.VarBinding(var, expr))
        return var


def _is_channel_concat(binding: Any) -> bool:
    """``R.concat`` over the channels of static NHWC tensor variables."""
    if call_op(binding) != "relax.concat":
        return False
    shape = static_shape(binding.var.ty)
    axis = binding.value.attrs.axis
    if shape is None or len(shape) != 4 or axis is None:
        return False
    if int(axis) % 4 != CHANNEL_AXIS or not isinstance(binding.value.args[0], relax.Tuple):
        return False
    return all(
        isinstance(p, relax.Var) and static_shape(p.ty) is not None
        for p in binding.value.args[0].fields
    )


def _is_partitionable_conv(binding: Any, data: Any) -> bool:
    """A ``conv2d`` of ``data`` (NHWC, HWIO, one group) with constant weights."""
    if call_op(binding) != "relax.nn.conv2d":
        return False
    value, attrs = binding.value, binding.value.attrs
    return (
        value.args[0].same_as(data)
        and isinstance(value.args[1], tvm.ir.expr.Constant)
        and int(attrs.groups) == 1
        and str(attrs.data_layout) == "NHWC"
        and str(attrs.kernel_layout) == "HWIO"
        and str(attrs.out_layout) == "NHWC"
    )


def _is_channel_pool(binding: Any, data: Any) -> bool:
    """A 2-D pooling of ``data`` in NHWC (each channel pooled on its own)."""
    return (
        call_op(binding) in POOLS
        and binding.value.args[0].same_as(data)
        and str(binding.value.attrs.layout) == "NHWC"
        and str(binding.value.attrs.out_layout) == "NHWC"
    )
