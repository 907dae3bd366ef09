"""Operators TVM's legalization cannot lower to TIR, and the layouts that let it.

``lowerable_layouts`` rewrites what an importer produces in a layout TVM can compute but not
legalize: TVM 0.27 legalizes transposed convolutions only channels-first (``conv2d_transpose``
as NCHW data with IOHW weights; likewise 1-D and 3-D), and the TFLite importer (every Keras
``Conv1DTranspose``, ``Conv2DTranspose``, ``Conv3DTranspose``) gives channels-last;
converted, the operator is computed channels-first between two transposes.
``unlowered_ops`` names the operators a prepared module still holds that legalization should
have lowered, so that a model TVM cannot compile fails with their names instead of the VM
code generator's message.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.target import Target

from tuner.models.pipeline import prepare_module

# Operator -> the (data, kernel) layouts TVM's legalization supports for it.
LEGAL_LAYOUTS = {
    "relax.nn.conv1d_transpose": ["NCW", "IOW"],
    "relax.nn.conv2d_transpose": ["NCHW", "IOHW"],
    "relax.nn.conv3d_transpose": ["NCDHW", "IODHW"],
}


def _calls(mod: tvm.IRModule) -> list[relax.Call]:
    """Every call of a Relax operator in ``mod``'s Relax functions."""
    found: list[relax.Call] = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            found.append(expr)

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return found


def _layouts(call: relax.Call) -> list[str]:
    """The call's (data, kernel) layouts, where its attributes say."""
    attrs = call.attrs
    return [
        str(getattr(attrs, name))
        for name in ("data_layout", "kernel_layout")
        if attrs is not None and hasattr(attrs, name)
    ]


def lowerable_layouts(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with every operator of ``LEGAL_LAYOUTS`` in a layout TVM can legalize (the same
    module when all already are)."""
    wrong = {
        call.op.name
        for call in _calls(mod)
        if call.op.name in LEGAL_LAYOUTS and _layouts(call) != LEGAL_LAYOUTS[call.op.name]
    }
    if not wrong:
        return mod
    desired = {name: LEGAL_LAYOUTS[name] for name in sorted(wrong)}
    return relax.transform.ConvertLayout(desired)(mod)


def unlowered_ops(prepared: tvm.IRModule) -> list[str]:
    """The operators left in a module after legalization that have a legalization (it
    declined them, e.g. for their layout), each once, with its layouts where it has them:
    ``relax.nn.conv2d_transpose (NHWC, IOHW)``."""
    names = set()
    for call in _calls(prepared):
        if call.op.get_attr("FLegalize") is None:
            continue
        layouts = _layouts(call)
        names.add(f"{call.op.name} ({', '.join(layouts)})" if layouts else call.op.name)
    return sorted(names)


def unlowered_problem(ops: list[str]) -> str:
    """The one-line problem for a model whose operators ``ops`` TVM cannot lower."""
    return (
        f"TVM cannot lower operator(s) {', '.join(ops)} to TIR (its legalization declines "
        "them as the model uses them), so TVM cannot compile this model"
    )


def prepared_unlowered_ops(mod: tvm.IRModule, target: Target) -> list[str]:
    """``unlowered_ops`` of ``mod`` after the preparation passes for ``target`` (none when
    the preparation itself fails: the caller's own error stands then)."""
    try:
        prepared = prepare_module(mod, target)
    except Exception:  # the caller reports its own failure
        return []
    return unlowered_ops(prepared)
