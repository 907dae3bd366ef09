"""Which tuning task each fused kernel of a compiled model belongs to.

The compiled model calls the PrimFuncs of the module after fusion (``prepare_module``) by
their names (``fused_conv2d1_add_relu``...). ``extract_tasks`` names a task after the first
PrimFunc of its workload and folds structurally equal PrimFuncs into it (its weight counts
them), so a kernel belongs to the task of its own name or, when it was folded into another,
to the task whose workload is structurally equal. VM builtins (``vm.builtin.alloc_tensor``,
``vm.builtin.reshape``...) and kernels that no task covers map to no task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner._base import one_line
from tuner.models._base import LoadedModel, ModelError
from tuner.models.profile import NO_TASK
from tuner.models.tasks import prepare_module

__all__ = ["NO_TASK", "extracted_tasks", "kernel_task_names", "model_kernel_tasks"]


def workload_hash(func: tvm.tirx.PrimFunc) -> int:
    """The structural hash of a PrimFunc as a task's workload (a module of one ``main``)."""
    workload = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    return int(tvm_ffi.structural_hash(workload))


def kernel_task_names(prepared: tvm.IRModule, tasks: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """``{PrimFunc name: task name}`` for the PrimFuncs of ``prepared`` (the module after
    fusion) that a task of ``tasks`` (``(name, workload module)`` pairs) covers."""
    by_hash: dict[int, str] = {}
    names: set[str] = set()
    for name, mod in tasks:
        names.add(name)
        by_hash.setdefault(int(tvm_ffi.structural_hash(mod)), name)
    found: dict[str, str] = {}
    for gvar, func in prepared.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        kernel = str(gvar.name_hint)
        if kernel in names:
            found[kernel] = kernel
            continue
        task = by_hash.get(workload_hash(func))
        if task is not None:
            found[kernel] = task
    return found


def extracted_tasks(prepared: tvm.IRModule, target: Target) -> list[tuple[str, Any]]:
    """``(task name, workload module)`` of every task MetaSchedule extracts from the fused
    module (no design spaces are generated: cheaper than ``tasks.extract_tasks``)."""
    return [
        (str(item.task_name), item.dispatched[0])
        for item in ms.relax_integration.extract_tasks(prepared, target)
    ]


def model_kernel_tasks(model: LoadedModel, target: Target | Mapping[str, Any]) -> dict[str, str]:
    """``kernel_task_names`` for a loaded model (its module is prepared and its tasks
    extracted here); ModelError when the model does not lower."""
    target = target if isinstance(target, Target) else Target(dict(target))
    try:
        prepared = prepare_module(model.mod, target)
        return kernel_task_names(prepared, extracted_tasks(prepared, target))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(model.name, f"cannot lower to TIR: {one_line(exc, last=True)}") from None
