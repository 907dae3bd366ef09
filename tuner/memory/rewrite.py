"""Graph rewriting for memory: sums of three or more tensors computed as accumulations
(and, in ``rewrite_for_memory``, concatenations read by convolutions partitioned first).

A model's N-ary sum (Keras ``Add`` of N inputs: a chain of ``R.add``) is fused by TVM into
the kernel of its last term, so every other term stays alive until that kernel runs. The
rewrite ``accumulate_sums`` computes the sum as partial sums instead: ``acc = t1 + t2``,
``acc = acc + t3``, ... each an elementwise kernel of its own that runs as soon as its two
operands exist and writes in place of an operand no one else reads (``call_tir_inplace``),
so a term's storage is freed once it is added and the accumulator needs no new storage.
The last addition stays an ordinary ``R.add`` that TVM fuses into the last term's kernel as
before. Terms are accumulated in the order their values are defined.

It works on the model's Relax module before fusion and returns the fused module (the
partial sums marked opaque so that ``FuseOps`` leaves them alone), with what it rewrote.
Floating-point addition is reassociated, so outputs equal the original's within rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tvm
from tvm import relax
from tvm.target import Target

from tuner.memory.channel_slices import accumulator_input, slice_separables
from tuner.memory.in_place import kernels_in_place
from tuner.memory.partition import partition_concats, with_blocks
from tuner.memory.relax_graph import as_target, fused_module, is_fused
from tuner.memory.slice_ops import static_shape
from tuner.models._base import LoadedModel

ACCUMULATE = "accumulate_sum"
PARTIAL_PREFIX = "partial_sum"
OPAQUE = 8  # tvm.relax OpPatternKind kOpaque: FuseOps fuses nothing into or out of it
MIN_TERMS = 3  # a sum of two is one fused addition already


class RewriteError(ValueError):
    """A module the rewrite cannot read (the message names the problem)."""


@dataclass(frozen=True)
class Rewritten:
    """The fused module after rewriting and what was rewritten: ``rewrites`` counts each
    kind (``accumulated_sums``: sums rewritten; ``partial_sums``: additions now run on
    their own, ``in_place``: of those, written in place of an operand)."""

    mod: tvm.IRModule
    rewrites: dict[str, int] = field(default_factory=dict)
    sums: tuple[tuple[str, ...], ...] = ()  # the terms of every sum rewritten, in order

    @property
    def changed(self) -> bool:
        return bool(self.rewrites)


def rewrite_for_memory(
    model_or_mod: LoadedModel | tvm.IRModule,
    target: Target | Mapping[str, Any],
    *,
    parts: int = 0,
    min_bytes: int = 0,
) -> Rewritten:
    """Every rewrite for memory, fused: with ``parts`` >= 2, separable convolutions of
    outputs of at least ``min_bytes`` run on channel slices first
    (``channel_slices.slice_separables``: ``sliced_separables`` into ``channel_slices``
    slices, ``recomputed_per_slice`` bindings of which ``recomputed_stems`` convolutions of
    a model input, ``in_place_accumulations``); then concatenations read by convolutions
    partitioned (``partition.partition_concats``: ``partitioned_concats`` removed,
    ``partitioned_convolutions`` split into sums), then sums accumulated
    (``accumulate_sums``). RewriteError as for ``accumulate_sums``, or for ``parts`` 1 or
    below 0."""
    mod = model_or_mod.mod if isinstance(model_or_mod, LoadedModel) else model_or_mod
    _main(mod)
    if parts == 1 or parts < 0:
        raise RewriteError(f"parts must be 0 (no slicing) or at least 2, got {parts}")
    rewrites = {}
    sliced = slice_separables(mod, parts, min_bytes=min_bytes) if parts else None
    if sliced is not None and sliced.separables:
        mod = sliced.mod
        rewrites["sliced_separables"] = sliced.separables
        rewrites["channel_slices"] = sliced.parts
        rewrites["recomputed_per_slice"] = sliced.recomputed
        rewrites["recomputed_stems"] = sliced.stems
    parted = partition_concats(mod)
    summed = accumulate_sums(parted.mod, target)
    fused = summed.mod
    if sliced is not None and sliced.separables:
        fused, count = kernels_in_place(fused, accumulator_input)
        rewrites["in_place_accumulations"] = count
    if parted.concats:
        rewrites["partitioned_concats"] = parted.concats
        rewrites["partitioned_convolutions"] = parted.convolutions
    rewrites.update(summed.rewrites)
    return Rewritten(fused, rewrites, summed.sums)


def accumulate_sums(
    model_or_mod: LoadedModel | tvm.IRModule, target: Target | Mapping[str, Any]
) -> Rewritten:
    """The fused module of ``model_or_mod`` with the sums of ``MIN_TERMS`` or more tensors
    in ``main``'s first dataflow block accumulated (see the module docstring); a module with
    no such sum is fused as ``relax_graph.fused_module`` fuses it (``rewrites`` empty).
    RewriteError when ``main`` has no dataflow block or the module is already fused."""
    mod = model_or_mod.mod if isinstance(model_or_mod, LoadedModel) else model_or_mod
    target = as_target(target)
    func = _main(mod)
    block_index, sums = _find_sums(func)
    if not sums:
        return Rewritten(fused_module(mod, target))
    new_func, partials, in_place = _accumulate(func, block_index, sums)
    out = mod.clone()
    out.update_func(out.get_global_var("main"), new_func)
    fused = _fuse_keeping_partials(out, target, partials, in_place)
    counts = {
        "accumulated_sums": len(sums),
        "partial_sums": len(partials),
        "in_place": sum(1 for v in in_place.values() if v is not None),
    }
    terms = tuple(tuple(str(t.name) for t in s.terms) for s in sums)
    return Rewritten(fused, counts, terms)


def _main(mod: Any) -> relax.Function:
    """``mod``'s ``main``, checked: a Relax function with a dataflow block, not fused."""
    if not isinstance(mod, tvm.IRModule):
        raise RewriteError(f"expected a Relax IRModule, got {type(mod).__name__}")
    if "main" not in [g.name_hint for g in mod.get_global_vars()]:
        raise RewriteError("the module has no function main to rewrite")
    func = mod["main"]
    if not isinstance(func, relax.Function):
        raise RewriteError("main is not a Relax function")
    if not any(isinstance(b, relax.DataflowBlock) for b in func.body.blocks):
        raise RewriteError("main has no dataflow block: nothing to rewrite")
    calls = [getattr(b.value, "op", None) for blk in func.body.blocks for b in blk.bindings]
    if is_fused(mod) and any(isinstance(op, tvm.ir.Op) for op in calls):  # call_tir only
        raise RewriteError("main is already fused: rewrite the model's module before fusion")
    return func


# ---------------------------------------------------------------- finding sums
@dataclass(frozen=True)
class _Sum:
    root: Any  # the binding of the last addition
    interior: tuple[Any, ...]  # the other additions of the chain (replaced)
    terms: tuple[Any, ...]  # the tensors summed, in definition order


def _find_sums(func: relax.Function) -> tuple[int, list[_Sum]]:
    """(index of the dataflow block, the sums of ``MIN_TERMS``+ tensors in it). A partial
    sum read by anything else (e.g. shared by two sums) is a term, not opened."""
    candidates = [i for i, b in enumerate(func.body.blocks) if isinstance(b, relax.DataflowBlock)]
    index = candidates[0]
    block = func.body.blocks[index]
    uses = _use_counts(func)
    adds = {b.var: b for b in block.bindings if _is_tensor_add(b)}
    position = {b.var: i for i, b in enumerate(block.bindings)}
    for i, param in enumerate(func.params):
        position[param] = -len(func.params) + i

    read_by_add = {arg for b in adds.values() for arg in b.value.args}

    def interior(var: Any) -> bool:  # an addition read once, by another addition
        return var in adds and var in read_by_add and uses.get(var, 0) == 1

    sums = []
    for var, binding in adds.items():
        if interior(var):
            continue
        terms: list[Any] = []
        inner: list[Any] = []
        stack = list(reversed(binding.value.args))
        while stack:
            expr = stack.pop()
            if interior(expr):
                inner.append(adds[expr])
                stack.extend(reversed(adds[expr].value.args))
            else:
                terms.append(expr)
        if len(terms) >= MIN_TERMS and len(set(terms)) == len(terms):
            ordered = tuple(sorted(terms, key=lambda t: position.get(t, -len(position))))
            sums.append(_Sum(binding, tuple(inner), ordered))
    return index, sums


def _is_tensor_add(binding: Any) -> bool:
    """``x = R.add(a, b)`` of two tensor variables of ``x``'s own shape and dtype."""
    value = binding.value
    if not (isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.add")):
        return False
    out = binding.var.ty
    if not isinstance(out, relax.TensorType):
        return False
    for arg in value.args:
        ty = getattr(arg, "ty", None)
        if not isinstance(arg, relax.Var) or not isinstance(ty, relax.TensorType):
            return False
        if str(ty.dtype) != str(out.dtype) or static_shape(ty) != static_shape(out):
            return False
    return static_shape(out) is not None


def _use_counts(func: relax.Function) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            for var in relax.analysis.free_vars(binding.value):
                counts[var] = counts.get(var, 0) + 1
    for var in relax.analysis.free_vars(func.body.body):
        counts[var] = counts.get(var, 0) + 1
    return counts


# ---------------------------------------------------------------- rewriting
def _accumulate(
    func: relax.Function, block_index: int, sums: list[_Sum]
) -> tuple[relax.Function, set[str], dict[str, int | None]]:
    """``func`` with each sum's chain replaced by partial sums in term order; the names of
    the partial sums and, per partial sum, the operand it may overwrite (None: none)."""
    block = func.body.blocks[block_index]
    uses = _use_counts(func)
    local = {b.var for b in block.bindings}  # may be overwritten (not a parameter)
    taken = {str(b.var.name) for blk in func.body.blocks for b in blk.bindings}
    removed = _dead_after(block, sums)
    position = {b.var: float(i) for i, b in enumerate(block.bindings)}
    placed: list[tuple[float, int, Any]] = [
        (position[b.var], 0, b) for b in block.bindings if b.var not in removed
    ]
    partials: set[str] = set()
    in_place: dict[str, int | None] = {}
    builder = relax.BlockBuilder()
    replace_root: dict[Any, Any] = {}
    n = 0
    for s in sums:
        acc = s.terms[0]
        acc_owned = False  # the accumulator is ours: it may be overwritten
        for term in s.terms[1:-1]:
            while f"{PARTIAL_PREFIX}{n}" in taken:
                n += 1
            name = f"{PARTIAL_PREFIX}{n}"
            n += 1
            var = relax.DataflowVar(name, s.root.var.ty)
            where = max(position.get(acc, -1.0), position.get(term, -1.0)) + 0.5
            added = builder.normalize(relax.op.add(acc, term))
            placed.append((where, n, relax.VarBinding(var, added)))
            position[var] = where
            partials.add(name)
            if acc_owned or (acc in local and uses.get(acc, 0) == 1):
                in_place[name] = 0
            elif term in local and uses.get(term, 0) == 1:
                in_place[name] = 1
            else:
                in_place[name] = None
            acc, acc_owned = var, True
        last = builder.normalize(relax.op.add(acc, s.terms[-1]))
        replace_root[s.root.var] = relax.VarBinding(s.root.var, last)
    placed.sort(key=lambda item: (item[0], item[1]))
    bindings = [replace_root.get(b.var, b) for _, _, b in placed]
    blocks = list(func.body.blocks)
    blocks[block_index] = relax.DataflowBlock(bindings)
    new = with_blocks(func, blocks)
    return new, partials, in_place


def _dead_after(block: Any, sums: list[_Sum]) -> set[Any]:
    """The interior additions no binding reads once the sums are rewritten."""
    replaced = {s.root.var for s in sums}
    candidates = {b.var for s in sums for b in s.interior}
    dead: set[Any] = set()
    changed = True
    while changed:
        changed = False
        read: set[Any] = set()
        for b in block.bindings:
            if b.var in dead or b.var in replaced:
                continue
            read.update(relax.analysis.free_vars(b.value))
        for var in candidates - dead - read:
            dead.add(var)
            changed = True
    return dead


def _fuse_keeping_partials(
    mod: tvm.IRModule, target: Target, partials: set[str], in_place: dict[str, int | None]
) -> tvm.IRModule:
    """Legalize and fuse as ``prepare_module`` does, the partial sums opaque (unfused),
    then written in place where ``in_place`` allows."""
    from tvm.relax import pipeline

    try:
        dispatch = list(pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    t = relax.transform
    with target, tvm.transform.PassContext(opt_level=3):
        mod = tvm.transform.Sequential(
            [*dispatch, t.LegalizeOps(), t.AnnotateTIROpPattern(), t.FoldConstant()]
        )(mod)
        mod = _mark_opaque(mod, partials)
        mod = tvm.transform.Sequential([t.FuseOps(), t.FuseTIR()])(mod)
        mod = _in_place(mod, in_place)
        return t.RewriteDataflowReshape()(mod)


def _mark_opaque(mod: tvm.IRModule, partials: set[str]) -> tvm.IRModule:
    """Point each partial sum's ``call_tir`` at a copy of its kernel marked opaque."""
    func = mod["main"]
    copies: dict[str, Any] = {}
    builder = relax.BlockBuilder(mod)

    def remap(binding: Any) -> Any:
        value = binding.value
        if str(binding.var.name) not in partials:
            return binding
        callee = value.args[0]
        key = callee.name_hint
        if key not in copies:
            prim = mod[callee].with_attr("op_pattern", OPAQUE)
            copies[key] = builder.add_func(prim, f"{ACCUMULATE}_{key}")
        call = relax.call_tir(copies[key], value.args[1], binding.var.ty)
        return relax.VarBinding(binding.var, call)

    return _with_bindings(builder, func, remap)


def _in_place(mod: tvm.IRModule, in_place: dict[str, int | None]) -> tvm.IRModule:
    """Each partial sum allowed to overwrite an operand becomes a ``call_tir_inplace``."""
    func = mod["main"]
    builder = relax.BlockBuilder(mod)
    made: dict[tuple[Any, str, int], Any] = {}  # (shape, dtype, operand) -> kernel

    def remap(binding: Any) -> Any:
        index = in_place.get(str(binding.var.name))
        if index is None:
            return binding
        value = binding.value
        shape = static_shape(binding.var.ty)
        dtype = str(binding.var.ty.dtype)
        key = (shape, dtype, index)
        if key not in made:
            kernel = in_place_add(shape, dtype, index).with_attr("op_pattern", OPAQUE)
            made[key] = builder.add_func(kernel, f"{ACCUMULATE}_in_place")
        call = relax.op.call_tir_inplace(made[key], value.args[1], [index], binding.var.ty)
        return relax.VarBinding(binding.var, call)

    return _with_bindings(builder, func, remap)


def in_place_add(shape: tuple[int, ...], dtype: str, into: int) -> Any:
    """A TIR kernel ``(a, b)`` adding ``b`` to ``a`` elementwise, written into ``a``
    (``into`` 0) or ``b`` (1)."""
    dims = ", ".join(f"T.int64({d})" for d in shape)
    loops = [f"i{k}" for k in range(len(shape))]
    axes = [f"v{k}" for k in range(len(shape))]
    at = ", ".join(axes)
    buffer = f'T.Buffer(({dims},), "{dtype}")'
    out = "ab"[into]
    text = f"""
@T.prim_func(private=True, s_tir=True)
def accumulate(a: {buffer}, b: {buffer}):
    for {", ".join(loops)} in T.grid({dims}):
        with T.sblock("accumulate"):
            {", ".join(axes)}, = T.axis.remap("{"S" * len(shape)}", [{", ".join(loops)}])
            T.reads(a[{at}], b[{at}])
            T.writes({out}[{at}])
            {out}[{at}] = a[{at}] + b[{at}]
"""
    return tvm.script.from_source(text)


def _with_bindings(builder: Any, func: relax.Function, remap: Any) -> tvm.IRModule:
    blocks = []
    for block in func.body.blocks:
        bindings = [remap(b) for b in block.bindings]
        blocks.append(type(block)(bindings))
    new = with_blocks(func, blocks)
    builder.update_func(builder.get().get_global_var("main"), new)
    return builder.get()
