"""Separable convolutions run on channel slices (a rewrite for memory; Serenity's
kernel-wise partitioning, built).

A depthwise convolution ``d = dw(y) (+ b)`` read only by a convolution over channels
``z = conv(d, W)`` (a separable convolution) is rewritten into ``parts`` channel slices:
slice ``s`` computes ``d_s = dw(y[..., s], Wd[s]) (+ b[s])`` (a depthwise kernel per slice)
and adds ``conv(d_s, W[:, :, s, :])`` into one accumulator (a convolution is linear in its
input channels): ``acc = conv(d_0, W_0)``, then ``acc += conv(d_s, W_s)`` written in place
of ``acc`` (``in_place.kernels_in_place``), the last slice also applying the elementwise
ops that follow ``z`` (bias, a residual sum, ReLU), in place too. A whole ``d`` is never
built: each slice dies once added.

The slice ``y[..., s]`` is read from the whole ``y`` inside the slice's kernel, or, where
``y`` is a channel-wise op (ReLU, a bias, a sum of two tensors read once) whose readers are
all sliced, computed per slice from that op's inputs; a convolution of a model input (a
stem, cheap: the input is never planned) read only by sliced kernels is recomputed per
reader by output-channel slices, so its whole output is never built either. Where the
ops after ``z`` start with sums and one adds a tensor ``r`` of ``z``'s type whose other
readers neither depend on ``z`` nor feed its slices, the accumulation starts in place of
``r`` (``r + conv(d_0, W_0)``); the block is reordered so those readers run first, and
``relax_graph`` keeps every searched order so.

Works on ``main``'s first dataflow block before fusion (NHWC data, constant weights); the
kernels it builds are ``Primitive`` Relax functions that ``FuseTIR`` turns into TIR, their
names starting with ``SLICE_PREFIX`` / ``ACCUMULATE_PREFIX``. Outputs equal the original's
within rounding (sums are reassociated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from tuner.memory.partition import with_blocks
from tuner.memory.slice_ops import (
    BINARY,
    CHANNEL,
    UNARY,
    KernelBody,
    call_op,
    const_slice,
    dtype_or_none,
    elementwise_of,
    is_depthwise,
    is_nhwc_conv,
    kernel_slice,
    ordered_bindings,
    static_shape,
)

SLICE_PREFIX = "channel_slice"
ACCUMULATE_PREFIX = "channel_accumulate"


@dataclass(frozen=True)
class Sliced:
    """The module with its separable convolutions sliced: how many (``separables``), into
    how many ``parts``, and how many bindings are now computed per slice (``recomputed``;
    ``stems``: of those, convolutions of a model input)."""

    mod: tvm.IRModule
    separables: int = 0
    parts: int = 0
    recomputed: int = 0
    stems: int = 0


def accumulator_input(kernel_name: str) -> int | None:
    """The argument an accumulation kernel of this rewrite writes into (its first), or
    None for any other kernel (``in_place.kernels_in_place``'s ``wanted``)."""
    return 0 if kernel_name.startswith(ACCUMULATE_PREFIX) else None


def slice_separables(mod: tvm.IRModule, parts: int, *, min_bytes: int = 0) -> Sliced:
    """``mod`` with every separable convolution whose output has at least ``min_bytes``
    and whose channels divide by ``parts`` run on ``parts`` slices (see the module
    docstring); ``mod`` itself when there is none. ValueError when ``parts`` < 2."""
    if parts < 2:
        raise ValueError(f"parts must be at least 2, got {parts}")
    func = mod["main"]
    index = next(
        (i for i, b in enumerate(func.body.blocks) if isinstance(b, relax.DataflowBlock)), None
    )
    if index is None:
        return Sliced(mod)
    slicer = _Slicer(mod, func, index, parts, min_bytes)
    if not slicer.separables:
        return Sliced(mod)
    try:
        new = slicer.run()
    except ValueError:  # accumulating into a tensor would need a reader after the write
        slicer = _Slicer(mod, func, index, parts, min_bytes, into=False)
        new = slicer.run()
    stems = sum(1 for v in slicer.pushed if call_op(slicer.binding[v]) == "relax.nn.conv2d")
    return Sliced(new, len(slicer.separables), parts, len(slicer.pushed), stems)


# ---------------------------------------------------------------- recognising
@dataclass
class _Separable:
    source: Any  # the depthwise convolution's data
    depthwise: Any
    bias: Any | None
    pointwise: Any
    absorbed: list[Any]  # elementwise bindings after the pointwise one, run in its last kernel
    into: tuple[int, Any] | None = None  # (absorbed sum, its other operand): accumulate into it


class _Slicer:
    def __init__(
        self,
        mod: tvm.IRModule,
        func: relax.Function,
        index: int,
        parts: int,
        min_bytes: int,
        *,
        into: bool = True,
    ) -> None:
        self.mod, self.func, self.index, self.parts = mod, func, index, parts
        self.bindings = list(func.body.blocks[index].bindings)
        self.binding = {b.var: b for b in self.bindings}
        self.params = set(func.params)
        returned = set(relax.analysis.free_vars(func.body.body))
        for block in func.body.blocks[index + 1 :]:
            for b in block.bindings:
                returned.update(relax.analysis.free_vars(b.value))
        self.returned = returned
        self.readers: dict[Any, list[Any]] = {}
        for b in self.bindings:
            for v in relax.analysis.free_vars(b.value):
                self.readers.setdefault(v, []).append(b)
        self.separables = self._find(min_bytes)
        self.pushed = self._pushable()
        self.fresh = 0
        if into:
            self._choose_into()

    def _only_reader(self, var: Any) -> Any | None:
        readers = self.readers.get(var, [])
        if len(readers) != 1 or var in self.returned:
            return None
        return readers[0]

    def _find(self, min_bytes: int) -> list[_Separable]:
        found: list[_Separable] = []
        taken: set[Any] = set()
        for dw in self.bindings:
            if dw.var in taken or not is_depthwise(dw):
                continue
            channels = static_shape(dw.var.ty)[CHANNEL]
            if channels % self.parts or channels < self.parts:
                continue
            bias, data = None, dw.var
            nxt = self._only_reader(dw.var)
            if (
                nxt is not None
                and call_op(nxt) == "relax.add"
                and elementwise_of(nxt, dw.var)
                and isinstance(nxt.value.args[1], Constant)
            ):
                bias, data, nxt = nxt, nxt.var, self._only_reader(nxt.var)
            if nxt is None or not is_nhwc_conv(nxt) or int(nxt.value.attrs.groups) != 1:
                continue
            if not nxt.value.args[0].same_as(data):
                continue
            out = static_shape(nxt.var.ty)
            if int(np.prod(out)) * 4 < min_bytes:
                continue
            taken.update(b.var for b in (dw, bias, nxt) if b is not None)
            chain = self._absorbed(nxt.var, taken)
            taken.update(b.var for b in chain)
            found.append(_Separable(dw.value.args[0], dw, bias, nxt, chain))
        return found

    def _absorbed(self, var: Any, taken: set[Any]) -> list[Any]:
        """The elementwise bindings that follow ``var``, each its only reader, none taken
        by another separable convolution."""
        chain = []
        while True:
            reader = self._only_reader(var)
            if reader is None or reader.var in taken or not elementwise_of(reader, var):
                return chain
            chain.append(reader)
            var = reader.var

    def _pushable(self) -> set[Any]:
        """Channel-wise bindings whose every reader is a sliced depthwise convolution (as
        its data) or another such binding: computed per slice, never whole."""
        sliced_dw = {id(s.depthwise) for s in self.separables}
        absorbed = {b.var for s in self.separables for b in s.absorbed}
        candidates = {
            b.var for b in self.bindings if self._channel_wise(b) and b.var not in absorbed
        }
        changed = True
        while changed:
            changed = False
            for var in list(candidates):
                readers = self.readers.get(var, [])
                ok = bool(readers) and var not in self.returned
                for r in readers:
                    is_dw_data = id(r) in sliced_dw and r.value.args[0].same_as(var)
                    if not (is_dw_data or r.var in candidates):
                        ok = False
                if ok and self._is_sum(self.binding[var]) and len(readers) > 1:
                    ok = False  # a sum read twice would be computed twice per slice
                if not ok:
                    candidates.discard(var)
                    changed = True
        return candidates

    def _choose_into(self) -> None:
        """For each separable convolution whose absorbed ops start with sums, one of which
        adds a tensor ``r`` of its output's type whose other readers neither depend on the
        convolution nor feed its slices: accumulate into ``r`` (in place, from the first
        slice; ``run`` orders the other readers first). One per ``r``, the convolution
        defined last."""
        chosen: set[Any] = set()
        for s in reversed(self.separables):
            below = self._descendants(s.pointwise.var)
            own = self._feeding(s.source)
            running = s.pointwise.var
            for k, b in enumerate(s.absorbed):
                if call_op(b) != "relax.add":
                    break
                other = next((a for a in b.value.args if not a.same_as(running)), None)
                if (
                    isinstance(other, relax.DataflowVar)
                    and other not in chosen
                    and other not in self.returned
                    and str(other.ty) == str(s.pointwise.var.ty)
                    and all(
                        r.var not in below and r.var not in own
                        for r in self.readers[other]
                        if not r.same_as(b)
                    )
                ):
                    s.into = (k, other)
                    chosen.add(other)
                    break
                running = b.var

    def _descendants(self, var: Any) -> set[Any]:
        seen: set[Any] = set()
        stack = [var]
        while stack:
            for r in self.readers.get(stack.pop(), []):
                if r.var not in seen:
                    seen.add(r.var)
                    stack.append(r.var)
        return seen

    def _feeding(self, var: Any) -> set[Any]:
        """The per-slice bindings that compute ``var``'s slices (itself included)."""
        if var not in self.pushed:
            return set()
        out = {var}
        for a in self.binding[var].value.args:
            if isinstance(a, relax.Var):
                out |= self._feeding(a)
        return out

    @staticmethod
    def _is_sum(binding: Any) -> bool:
        return call_op(binding) in BINARY and all(
            isinstance(a, relax.Var) for a in binding.value.args
        )

    def _channel_wise(self, binding: Any) -> bool:
        shape = static_shape(binding.var.ty)
        if shape is None or len(shape) != 4 or shape[CHANNEL] % self.parts:
            return False
        op = call_op(binding)
        if op in UNARY:
            return static_shape(binding.value.args[0].ty) == shape
        if op in BINARY:
            args = list(binding.value.args)
            first = next((a for a in args if isinstance(a, relax.Var)), None)
            return first is not None and elementwise_of(binding, first)
        if is_nhwc_conv(binding) and int(binding.value.attrs.groups) == 1:
            return binding.value.args[0] in self.params  # a stem: recomputed from the input
        return False

    # ------------------------------------------------------------ rewriting
    def run(self) -> tvm.IRModule:
        self.builder = relax.BlockBuilder(self.mod)
        self.overwrites: list[tuple[Any, Any]] = []  # (in-place binding's var, what it writes)
        dropped: set[Any] = set(self.pushed)
        at: dict[Any, _Separable] = {}
        for s in self.separables:
            dropped.update(b.var for b in (s.depthwise, s.bias, s.pointwise) if b is not None)
            dropped.update(b.var for b in s.absorbed)
            at[(s.absorbed[-1] if s.absorbed else s.pointwise).var] = s
        out: list[Any] = []
        for b in self.bindings:
            if b.var in at:
                out.extend(self._emit(at[b.var]))
            elif b.var not in dropped:
                out.append(b)
        blocks = list(self.func.body.blocks)
        blocks[self.index] = relax.DataflowBlock(ordered_bindings(out, self.overwrites))
        mod = self.builder.get()
        mod.update_func(mod.get_global_var("main"), with_blocks(self.func, blocks))
        return mod

    def _outlined(self) -> KernelBody:
        return KernelBody(
            outlined=True, normalize=relax.BlockBuilder().normalize, names=self._var_name
        )

    def _var_name(self, stem: str) -> str:
        return self._name(f"{SLICE_PREFIX}_{stem}")

    def _name(self, stem: str) -> str:
        self.fresh += 1
        return f"{stem}{self.fresh}"

    def _emit(self, s: _Separable) -> list[Any]:
        main = KernelBody(outlined=False, normalize=self.builder.normalize, names=self._var_name)
        channels = static_shape(s.depthwise.var.ty)[CHANNEL]
        width = channels // self.parts
        pw = s.pointwise.value
        acc = None
        for part in range(self.parts):
            lo, hi = part * width, (part + 1) * width
            piece = kernel_slice(pw, "I", lo, hi)
            d = self._slice_kernel(s, lo, hi, main)
            if part == 0 and s.into is None:
                acc = main.emit(relax.Call(pw.op, [d, piece], pw.attrs), "acc")
                continue
            if part == 0:
                acc = s.into[1]
            last = part == self.parts - 1
            body = self._outlined()
            a = body.leaf(acc)
            term = body.emit(relax.Call(pw.op, [body.leaf(d), body.leaf(piece)], pw.attrs), "t")
            value = body.emit(relax.op.add(a, term), "v")
            if last:
                skip = s.into[0] if s.into is not None else None
                value = self._replay(s.pointwise.var, value, s.absorbed, body, skip)
            name = self._name(ACCUMULATE_PREFIX)
            call = self._call(body, name)
            final = (s.absorbed[-1] if s.absorbed else s.pointwise).var if last else None
            written = acc
            acc = main.emit(call, "acc", var=final)
            if part == 0:
                self.overwrites.append((acc, written))
        return main.bindings

    def _slice_kernel(self, s: _Separable, lo: int, hi: int, main: KernelBody) -> Any:
        """The depthwise convolution (and bias) of channels ``lo:hi``, emitted into
        ``main``: directly when its input is recomputed from model inputs alone, else as
        one kernel reading the whole tensors it slices."""
        outlined = not self._from_params(s.source)
        body = self._outlined() if outlined else main
        data = self._slice_of(s.source, lo, hi, body)
        dw = s.depthwise.value
        attrs = dw.attrs
        piece = kernel_slice(dw, "O", lo, hi)
        conv = relax.op.nn.conv2d(
            data, body.leaf(piece), strides=attrs.strides, padding=attrs.padding,
            dilation=attrs.dilation, groups=hi - lo, data_layout=str(attrs.data_layout),
            kernel_layout=str(attrs.kernel_layout), out_layout=str(attrs.out_layout),
            out_dtype=dtype_or_none(attrs.out_dtype),
        )  # fmt: skip
        out = body.emit(conv, "dw")
        if s.bias is not None:
            out = body.emit(self._sliced_binary(s.bias, s.depthwise.var, out, lo, hi, body), "d")
        if not outlined:
            return out
        return main.emit(self._call(body, self._name(SLICE_PREFIX)), "d")

    def _from_params(self, var: Any) -> bool:
        if var in self.params:
            return True
        if var not in self.pushed:
            return False
        b = self.binding[var]
        return all(self._from_params(a) for a in b.value.args if isinstance(a, relax.Var))

    def _slice_of(self, var: Any, lo: int, hi: int, body: KernelBody) -> Any:
        """Channels ``lo:hi`` of ``var``: recomputed when ``var`` is computed per slice,
        else sliced from the whole tensor."""
        if var not in self.pushed:
            return body.emit(
                relax.op.strided_slice(body.leaf(var), axes=[CHANNEL], begin=[lo], end=[hi]),
                "slice",
            )
        b = self.binding[var]
        value, op = b.value, call_op(b)
        if op in UNARY:
            arg = self._slice_of(value.args[0], lo, hi, body)
            return body.emit(relax.Call(value.op, [arg], value.attrs), "slice")
        if op in BINARY:
            first = next(a for a in value.args if isinstance(a, relax.Var))
            return body.emit(self._sliced_binary(b, first, None, lo, hi, body), "slice")
        # a convolution of a model input, by output channels
        piece = kernel_slice(value, "O", lo, hi)
        conv = relax.Call(value.op, [body.leaf(value.args[0]), body.leaf(piece)], value.attrs)
        return body.emit(conv, "stem")

    def _sliced_binary(
        self, b: Any, var: Any, given: Any | None, lo: int, hi: int, body: KernelBody
    ) -> Any:
        """``b`` (an elementwise binary op) on channels ``lo:hi``; ``given``: the slice of
        ``var`` already computed."""
        args = []
        for a in b.value.args:
            if a.same_as(var) and given is not None:
                args.append(given)
            elif isinstance(a, relax.Var):
                args.append(self._slice_of(a, lo, hi, body))
            else:
                args.append(body.leaf(const_slice(a, lo, hi)))
        return relax.Call(b.value.op, args, b.value.attrs)

    def _replay(
        self, var: Any, value: Any, chain: list[Any], body: KernelBody, skip: int | None
    ) -> Any:
        """The elementwise bindings of ``chain`` applied to ``value`` (standing for
        ``var``), their other operands read whole; the sum at ``skip`` left out (its
        operand is already accumulated)."""
        for k, b in enumerate(chain):
            if k == skip:
                var = b.var
                continue
            args = []
            for a in b.value.args:
                if a.same_as(var):
                    args.append(value)
                else:
                    args.append(body.leaf(a))
            value = body.emit(relax.Call(b.value.op, args, b.value.attrs), "v")
            var = b.var
        return value

    def _call(self, body: KernelBody, name: str) -> Any:
        gv = self.builder.add_func(body.function(), name)
        return relax.Call(gv, body.args)
