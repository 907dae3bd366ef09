"""The passes that turn a model into a Relax VM executable with tuned schedules.

They are MetaSchedule's ``compile_relax`` pipeline, written out so that each part can be
used alone and the build can choose how the VM runs ``main``:

1. ``preparation_passes``: library dispatch, legalization, op-pattern annotation, constant
   folding, fusion. Task extraction runs exactly these, so the tasks' workloads are the
   ones the compiled model asks the database for;
2. ``MetaScheduleApplyDatabase``: every fused function with a tuned record takes its best
   schedule (on a GPU target DLight schedules the rest);
3. ``lowering_passes``: dataflow lowering and finalization (memory planning among them).

``exec_mode_for`` picks ``compiled`` (the VM's own functions built to native code, calling
the kernels directly) for CPU targets: tuned models whose kernels take microseconds ran
1.08-1.14x faster than with the bytecode interpreter (``benchmarks/README.md``, "The VM's
functions compiled, and kernels for one core"). The bytecode
interpreter is still needed to profile kernels: its instrument hook sees every call, and
compiled functions call kernels without it.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax
from tvm.target import Target

COMPILED = "compiled"
BYTECODE = "bytecode"


def preparation_passes(target: Target) -> list[Any]:
    """The passes ``compile_relax`` runs before it reads the database."""
    from tvm.relax import pipeline

    try:
        dispatch = list(pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    return [
        *dispatch,
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]


def prepare_module(mod: tvm.IRModule, target: Target) -> tvm.IRModule:
    """The module after the passes ``compile_relax`` applies before reading the database."""
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(preparation_passes(target))(mod)


def lowering_passes(target: Target) -> list[Any]:
    """The passes ``compile_relax`` runs on a fused module (its dataflow lowering and
    finalization), with the same fallback it uses when the target has no pipeline."""
    from tvm.relax import pipeline

    try:
        return [*pipeline.dataflow_lower_passes(target), *pipeline.finalize_passes(target)]
    except (ValueError, AttributeError):
        transform = relax.transform
        return [
            transform.RewriteDataflowReshape(),
            transform.ToNonDataflow(),
            transform.RemovePurityChecking(),
            transform.CallTIRRewrite(),
            transform.StaticPlanBlockMemory(),
            transform.LowerAllocTensor(),
            transform.KillAfterLastUse(),
            transform.LowerRuntimeBuiltin(),
            transform.ComputePrimValue(),
            transform.VMShapeLower(),
            transform.AttachGlobalSymbol(),
        ]


def is_gpu(target: Target) -> bool:
    """Whether ``target`` is a GPU target (DLight schedules its untuned functions)."""
    return "gpu" in target.keys


def exec_mode_for(target: Target) -> str:
    """How the VM runs ``main`` for ``target``: ``compiled`` on CPUs, where it was measured
    faster; ``bytecode`` elsewhere."""
    return BYTECODE if is_gpu(target) else COMPILED


def build_with_database(mod: tvm.IRModule, target: Target, database: Any, exec_mode: str) -> Any:
    """``mod`` (the imported model) built for ``target`` with the schedules ``database``
    holds, its ``main`` run as ``exec_mode`` (``compiled`` or ``bytecode``)."""
    from tvm.relax.transform import MetaScheduleApplyDatabase
    from tvm.s_tir import dlight

    if exec_mode not in (COMPILED, BYTECODE):
        raise ValueError(f"exec_mode must be {COMPILED!r} or {BYTECODE!r}, not {exec_mode!r}")
    prepare = tvm.transform.Sequential(preparation_passes(target))
    lower = tvm.transform.Sequential(lowering_passes(target))
    gpu = is_gpu(target)

    @tvm.transform.module_pass(opt_level=3)
    def tuned_pipeline(module: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        module = MetaScheduleApplyDatabase()(prepare(module))
        if gpu:
            module = dlight.ApplyDefaultSchedule(
                dlight.gpu.Matmul(),
                dlight.gpu.GEMV(),
                dlight.gpu.Reduction(),
                dlight.gpu.GeneralReduction(),
                dlight.gpu.Fallback(),
            )(module)
        return lower(module)

    with target, database, tvm.transform.PassContext(opt_level=3):
        return relax.build(mod, target=target, relax_pipeline=tuned_pipeline, exec_mode=exec_mode)
