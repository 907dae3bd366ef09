"""A model's tuning tasks: the fused TIR functions MetaSchedule tunes, with their weights.

``extract_tasks`` runs the passes ``compile_relax`` runs before it looks tuned schedules up
(library dispatch, legalization, op-pattern annotation, constant folding, fusion), so the
tasks' workloads are exactly the ones the compiled model will ask the database for. Each
task becomes a ``TuningTask``: its anchor operator (the block doing the main computation,
e.g. ``conv2d_nhwc``), buffer shapes, FLOPs and how many times the model calls it. A task
whose design spaces hold no decision to search (an elementwise kernel, a concatenation)
keeps them as its fixed schedules, which the tuner measures once with a vector loop and
the unscheduled function: left unscheduled, such kernels run as scalar loops (an addition
of 4,096 floats takes ~4.6 us instead of ~0.45 us). A reshape is marked untunable with the
reason, not dropped: the compiled model runs it as a view of its input, which a schedule
would prevent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import tvm
from tvm import relax
from tvm.s_tir import analysis as tir_analysis
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner._base import one_line
from tuner.metaschedule.intrinsics import load_tensor_intrinsics
from tuner.metaschedule.spaces import space_generator
from tuner.metaschedule.tasks import TuningTask
from tuner.models._base import LoadedModel, ModelError
from tuner.models.loaders import load_model
from tuner.models.lowering import unlowered_ops, unlowered_problem
from tuner.models.pipeline import prepare_module

NO_DECISIONS = (
    "a reshape, run as a view of its input: its design spaces have no decisions to search"
)


def model_tasks(
    source: Any, target: Target | Mapping[str, Any], **load: Any
) -> tuple[LoadedModel, list[TuningTask]]:
    """Import a model (``load_model(source, **load)``) and extract its tasks for ``target``:
    (the loaded model, its tasks)."""
    model = load_model(source, **load)
    return model, extract_tasks(model, target)


def extract_tasks(model: LoadedModel, target: Target | Mapping[str, Any]) -> list[TuningTask]:
    """The model's tasks for ``target``, heaviest (weight x FLOPs) first.

    Raises ModelError when the model does not lower to TIR (naming the operators TVM's
    legalization left, e.g. a conv2d_transpose in a layout it declines) or yields no task.
    """
    target = target if isinstance(target, Target) else Target(dict(target))
    try:
        prepared = prepare_module(model.mod, target)
    except Exception as exc:
        raise ModelError(model.name, f"cannot lower to TIR: {one_line(exc, last=True)}") from None
    unlowered = unlowered_ops(prepared)
    if unlowered:
        raise ModelError(model.name, unlowered_problem(unlowered))
    try:
        extracted = ms.relax_integration.extract_tasks(prepared, target)
    except Exception as exc:
        raise ModelError(model.name, f"cannot lower to TIR: {one_line(exc, last=True)}") from None
    if not extracted:
        raise ModelError(model.name, "no operator to tune was found after fusion")
    tasks = [_task(model.name, item, target) for item in extracted]
    tasks.sort(key=lambda t: (-(t.weight * (t.flops or 0.0)), t.name))
    return tasks


def _task(model: str, item: Any, target: Target) -> TuningTask:
    mod = item.dispatched[0]
    func = next(iter(mod.functions.values()))
    shapes = tuple(tuple(int(d) for d in param.ty.shape) for param in func.params)
    dtypes = [str(param.ty.dtype) for param in func.params]
    try:
        flops: float | None = float(tir_analysis.estimate_tir_flops(mod))
    except Exception:
        flops = None
    name = str(item.task_name)
    untunable, fixed = _search_kind(mod, target, name)
    return TuningTask(
        name=name,
        mod=mod,
        op=anchor_op(mod, name),
        shapes=shapes,
        dtype=dtypes[-1] if dtypes else "float32",
        flops=flops,
        weight=float(item.weight),
        untunable=untunable,
        detail=(f"model={model}", f"fused={fused_ops(name)}"),
        fixed_spaces=fixed,
    )


def anchor_op(mod: tvm.IRModule, task_name: str) -> str:
    """The name of the block doing the task's main computation (``conv2d_nhwc``,
    ``depthwise_conv2d_nhwc``, ``matmul``...), else the first op of the fused name."""
    try:
        block = tir_analysis.find_anchor_sblock(mod)
    except Exception:
        block = None
    if block is not None:
        return re.sub(r"^T_", "", str(block.name_hint))
    ops = fused_ops(task_name).split("+")
    return ops[0] if ops and ops[0] else task_name


def fused_ops(task_name: str) -> str:
    """``fused_conv2d1_add2_relu`` -> ``conv2d+add+relu`` (the fused operators, in order)."""
    body = task_name.removeprefix("fused_")
    parts = [re.sub(r"\d+$", "", part) for part in body.split("_")]
    known = ("conv2d", "matmul", "pool2d", "transpose", "reshape", "multiply", "divide")
    merged: list[str] = []
    for part in parts:
        if not part:
            continue
        # Re-join names the split broke apart (``max_pool2d``, ``conv2d_transpose``...).
        if merged and part in known and merged[-1] in ("max", "avg", "batch", "global"):
            merged[-1] = f"{merged[-1]}_{part}"
        else:
            merged.append(part)
    return "+".join(merged)


def _search_kind(mod: tvm.IRModule, target: Target, name: str) -> tuple[str | None, int]:
    """(why the task cannot be tuned or None, how many design spaces it has when none
    holds a decision to search, else 0)."""
    load_tensor_intrinsics(target)
    try:
        context = ms.TuneContext(
            mod, target=target, space_generator=space_generator(target), task_name=name
        )
        spaces = context.generate_design_space()
    except Exception as exc:
        return f"no design space: {one_line(exc, last=True)}", 0
    if any(len(space.trace.decisions) for space in spaces):
        return None, 0
    if relax.analysis.has_reshape_pattern(next(iter(mod.functions.values()))):
        return NO_DECISIONS, 0
    return None, len(spaces)
