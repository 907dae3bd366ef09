"""What a tuning task is, whichever way it was made: a built-in workload spec or a task
extracted from a model.

A ``TuningTask`` carries the TIR module MetaSchedule searches over plus what the ``task``
event tells a reader: the operator kind, the buffer shapes, the work and how many times the
model calls it. Nothing here imports TVM (``workload_task`` builds the module lazily).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuner.metaschedule.workloads import WorkloadSpec, task_names, workload_module


@dataclass(frozen=True, eq=False)
class TuningTask:
    """One task to tune.

    ``name`` is unique within its job; ``mod`` is a TIR IRModule with one PrimFunc;
    ``shapes`` are the buffers' shapes (inputs then outputs); ``flops`` counts a multiply-add
    as two operations (None when unknown); ``weight`` is how many times one run of the model
    calls the task (1 for a workload spec). ``untunable`` says why the task cannot be tuned
    (e.g. a reshape, which the compiled model runs as a view), None when it can.
    ``fixed_spaces`` counts the design spaces of a task when none holds a decision to
    search (an elementwise kernel): the tuner measures each of them, post-processed, and a
    few other fixed schedules once instead of searching (0: searched). ``detail`` lines go
    into the task event (``spec=...`` for workload specs, ``model=...`` for model tasks).
    """

    name: str
    mod: Any
    op: str
    shapes: tuple[tuple[int, ...], ...]
    dtype: str
    flops: float | None = None
    weight: float = 1.0
    untunable: str | None = None
    detail: tuple[str, ...] = ()
    fixed_spaces: int = 0

    @property
    def searched(self) -> bool:
        """Whether the tuner searches this task (it is neither untunable nor fixed)."""
        return self.untunable is None and not self.fixed_spaces


def workload_tasks(specs: list[WorkloadSpec]) -> list[TuningTask]:
    """Tasks for built-in workload specs, named by their canonical spec (``#2`` for repeats)."""
    return [
        TuningTask(
            name=name,
            mod=workload_module(spec),
            op=spec.op,
            shapes=spec.shapes,
            dtype=spec.dtype,
            flops=spec.flops,
            detail=(f"spec={spec.name}",),
        )
        for name, spec in zip(task_names(specs), specs, strict=True)
    ]
