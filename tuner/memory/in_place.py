"""Fused kernels made to write their result in place of an argument (``call_tir_inplace``).

A kernel ``out = f(acc, ...)`` whose every output element reads ``acc`` at the same index
only (an accumulation ``acc + conv(x, W)``, then elementwise ops) can write ``out`` over
``acc``: its TIR function loses its output parameter and stores into ``acc`` instead, and
the call becomes ``call_tir_inplace`` on that argument, so the planner gives the result the
argument's storage. Used by ``channel_slices`` after fusion, on the kernels it built for that
(their names start with its prefixes), whose elementwise form it guarantees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import tvm
from tvm import relax

from tuner.memory.partition import with_blocks

CALL_TIR = "relax.call_tir"


def kernels_in_place(
    mod: tvm.IRModule, wanted: Callable[[str], int | None]
) -> tuple[tvm.IRModule, int]:
    """``mod`` (fused) with each ``call_tir`` of ``main`` whose kernel name ``wanted`` maps
    to an argument index made a ``call_tir_inplace`` writing into that argument; and how
    many were. The argument must have the result's type and be read by no later binding."""
    func = mod["main"]
    last = _last_readers(func)
    builder = relax.BlockBuilder(mod)
    made: dict[str, Any] = {}
    blocks = []
    for block in func.body.blocks:
        bindings = []
        for binding in block.bindings:
            value = binding.value
            index = _wanted_index(value, wanted)
            if index is not None and _can_overwrite(value, binding.var, index, last):
                name = f"{value.args[0].name_hint}_in_place{index}"
                if name not in made:
                    made[name] = builder.add_func(in_place_kernel(mod[value.args[0]], index), name)
                call = relax.op.call_tir_inplace(made[name], value.args[1], [index], binding.var.ty)
                binding = relax.VarBinding(binding.var, call)
            bindings.append(binding)
        blocks.append(type(block)(bindings))
    if not made:
        return mod, 0
    out = builder.get()
    out.update_func(out.get_global_var("main"), with_blocks(func, blocks))
    changed = sum(
        1
        for block in blocks
        for b in block.bindings
        if getattr(getattr(b.value, "op", None), "name", "") == "relax.call_tir_inplace"
    )
    return out, changed


def _wanted_index(value: Any, wanted: Callable[[str], int | None]) -> int | None:
    if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)):
        return None
    if value.op.name != CALL_TIR or not isinstance(value.args[0], tvm.ir.GlobalVar):
        return None
    return wanted(value.args[0].name_hint)


def _can_overwrite(call: Any, var: Any, index: int, last: dict[Any, Any]) -> bool:
    """The argument is a dataflow tensor of the result's type, read once by this call and
    by no later binding (earlier readers are ordered before it: ``relax_graph``)."""
    args = list(call.args[1].fields)
    if index >= len(args):
        return False
    arg = args[index]
    reader = last.get(arg)
    return (
        isinstance(arg, relax.DataflowVar)
        and reader is not None
        and reader.same_as(var)
        and sum(1 for a in args if a.same_as(arg)) == 1
        and str(arg.ty) == str(var.ty)
    )


def _last_readers(func: relax.Function) -> dict[Any, Any]:
    """Each variable's last reader (the variable it binds; None: read by the result)."""
    last: dict[Any, Any] = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            for v in relax.analysis.free_vars(binding.value):
                last[v] = binding.var
    for v in relax.analysis.free_vars(func.body.body):
        last[v] = None
    return last


def in_place_kernel(func: Any, into: int) -> Any:
    """The TIR function ``func`` (inputs, then one output buffer) storing its output into
    its input ``into`` instead: the output parameter removed, every access to it made an
    access to that input. ValueError when ``func`` has not exactly one output of that
    input's type."""
    params = [str(p.name) for p in func.params]
    if len(params) < 2 or into >= len(params) - 1:
        raise ValueError(f"no input {into} to write into among {params}")
    output, target = params[-1], params[into]
    text = func.script()
    signature = re.compile(
        r",\s*" + re.escape(output) + r': T\.Buffer\((\((?:[^()]|\([^()]*\))*\)), "(\w+)"\)'
    )
    match = signature.search(text)
    if match is None:
        raise ValueError(f"cannot find the output buffer {output} in the kernel")
    declared = re.search(
        re.escape(target) + r': T\.Buffer\((\((?:[^()]|\([^()]*\))*\)), "(\w+)"\)', text
    )
    if declared is None or declared.groups() != match.groups():
        raise ValueError(f"the output {output} and the input {target} differ in type")
    text = text[: match.start()] + text[match.end() :]
    text = re.sub(r"\b" + re.escape(output) + r"\b", target, text)
    return tvm.script.from_source(text)
